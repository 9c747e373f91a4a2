"""The cold-only floors: random (expected) and item-id order, hand-computed and against the evaluator."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgcn.data.dataset import Dataset
from mmgcn.eval.evaluator import evaluate
from mmgcn.eval.floors import cold_only_floors
from mmgcn.models.base import Embeddings, ModelConfig, Recommender


def _csr(pairs, shape):
    rows, cols = zip(*pairs)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)


@pytest.fixture()
def hand_made() -> Dataset:
    """4 users x 8 items. train: u0 {0}, u1 {1}, u2 {2}, u3 {0}; valid: u0 {5};
    test: u0 {3, 6}, u1 {7}, u2 {5}, u3 none. Cold test items (no train edge): 3, 5, 6, 7;
    u0's valid item 5 is masked at test, so u0 ranks 3 of them, u1 and u2 all 4."""
    shape = (4, 8)
    return Dataset("hand", 4, 8, _csr([(0, 0), (1, 1), (2, 2), (3, 0)], shape), _csr([(0, 5)], shape),
                   _csr([(0, 3), (0, 6), (1, 7), (2, 5)], shape))


def test_hand_computed(hand_made):
    floors = cold_only_floors(hand_made, ks=(1, 2))
    assert floors["n_candidates"] == 4 and floors["n_users"] == 3  # u3 has no test item
    # random: min(K, n_u) / n_u with n = 3, 4, 4
    assert floors["random"]["recall@1"] == pytest.approx((1 / 3 + 1 / 4 + 1 / 4) / 3)
    assert floors["random"]["recall@2"] == pytest.approx((2 / 3 + 2 / 4 + 2 / 4) / 3)
    # id order: u0 [3, 6] (5 masked) -> 1/2 then 2/2; u1 [3, 5] -> 0; u2 [3, 5] -> 0 then 1/1
    assert floors["item_order"]["recall@1"] == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert floors["item_order"]["recall@2"] == pytest.approx((1 + 0 + 1) / 3)


def test_no_cold_test_item_gives_none():
    shape = (2, 3)
    warm = Dataset("warm", 2, 3, _csr([(0, 0), (1, 1)], shape), _csr([(0, 2)], shape), _csr([(0, 1), (1, 0)], shape))
    assert cold_only_floors(warm) is None


class IdOrder(Recommender):
    """Scores every item by minus its id: the id order, without ties."""

    name = "id-order-floor-test"

    def embed(self) -> Embeddings:
        return Embeddings(torch.ones(self.n_users, 1), -torch.arange(self.n_items, dtype=torch.float32)[:, None])


def random_dataset(seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    n_users, n_items = 60, 40
    split = rng.choice(4, size=(n_users, n_items), p=[0.7, 0.15, 0.05, 0.1])
    split[:, 25:] = np.where(split[:, 25:] == 1, 3, split[:, 25:])  # items 25.. never in train: cold
    train, valid, test = (sp.csr_matrix((split == s).astype(np.float32)) for s in (1, 2, 3))
    return Dataset("random", n_users, n_items, train, valid, test)


def test_bad_split_or_mask_is_refused(hand_made):
    with pytest.raises(ValueError, match="unknown split 'tset'"):
        cold_only_floors(hand_made, "tset")
    with pytest.raises(ValueError, match=r"cannot mask the evaluated split 'valid' \(mask=\('train', 'valid'\)\)"):
        cold_only_floors(hand_made, "valid", mask=("train", "valid"))
    with pytest.raises(ValueError, match=r"mask names unknown split\(s\) \['trian'\]"):
        cold_only_floors(hand_made, mask=("trian",))
    assert cold_only_floors(hand_made)["mask"] == ["train", "valid"]  # the evaluator's test default


@pytest.mark.parametrize(("seed", "mask"), [(0, None), (1, None), (2, None), (0, ()), (1, ("train",)), (2, ("valid",))])
def test_item_order_equals_the_evaluator_ranking_by_id(seed, mask):
    """Same users, masking and metric as the evaluator's cold-only ranking of a model whose
    scores follow the id order, under every mask (users whose cold test items are all masked
    drop out of both); the random floor equals the mean of many random rankings."""
    data = random_dataset(seed)
    floors = cold_only_floors(data, ks=(5, 10), mask=mask)
    cold = data.cold_items("test")
    model = IdOrder(ModelConfig(), data)
    result = evaluate(model, data, split="test", ks=(5, 10), candidate_items=cold, mask=mask)
    assert floors["n_users"] == result.n_users
    for k in (5, 10):
        assert floors["item_order"][f"recall@{k}"] == pytest.approx(result.metrics[f"recall@{k}"])
    generator = torch.Generator().manual_seed(seed)
    draws = []
    for _ in range(300):
        model_random = IdOrder(ModelConfig(), data)
        items = torch.rand(data.n_items, 1, generator=generator)
        draws.append(evaluate(model_random, data, split="test", ks=(10,), candidate_items=cold, mask=mask,
                              emb=Embeddings(torch.ones(data.n_users, 1), items)).metrics["recall@10"])
    assert floors["random"]["recall@10"] == pytest.approx(np.mean(draws), abs=0.01)
