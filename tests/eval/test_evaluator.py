"""The full-ranking evaluator: masking, skipped users, blocks, warm/cold, candidates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgcn.data.dataset import Dataset
from mmgcn.eval.evaluator import evaluate
from mmgcn.models.base import Embeddings, ModelConfig, Recommender


class FixedScores(Recommender):
    """Scores from a given ``(n_users, n_items)`` table: users = table, items = identity."""

    name = "fixed-scores-eval-test"

    def __init__(self, dataset: Dataset, table) -> None:
        super().__init__(ModelConfig(), dataset)
        self.register_buffer("table", torch.as_tensor(table, dtype=torch.float32))

    def embed(self) -> Embeddings:
        return Embeddings(self.table, torch.eye(self.n_items))


def random_dataset(n_users=40, n_items=25, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    split = rng.choice(4, size=(n_users, n_items), p=[0.6, 0.25, 0.075, 0.075])  # 0 = none
    split[:, -2:] = np.where(split[:, -2:] == 1, 3, split[:, -2:])  # last two items: cold
    split[np.arange(n_users), rng.integers(0, n_items - 2, n_users)] = 1  # every user has train
    train, valid, test = (sp.csr_matrix((split == s).astype(np.float32)) for s in (1, 2, 3))
    return Dataset("random", n_users, n_items, train, valid, test)


def brute_force(table: np.ndarray, dataset: Dataset, split: str, mask: tuple[str, ...], k: int):
    """Per-user recall/NDCG by a plain loop: sort by (-score, item id), skip masked items."""
    target = dataset.split(split).toarray() > 0
    masked = np.zeros_like(target)
    for name in mask:
        masked |= dataset.split(name).toarray() > 0
    out = {}
    for u in range(dataset.n_users):
        positives = set(np.flatnonzero(target[u] & ~masked[u]))
        if not positives:
            continue
        order = sorted(range(dataset.n_items), key=lambda i: (-table[u, i], i))
        ranked = [i for i in order if not masked[u, i]][:k]
        hits = [i in positives for i in ranked]
        dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(positives), k)))
        out[u] = (sum(hits) / len(positives), dcg / idcg)
    return out


def test_tiny_valid_masks_train_and_skips_users_without_valid(tiny_dataset):
    # train: u0 {0,1}, u1 {1,2}, u2 {2,3}, u3 {0}; valid: u0 {2}, u1 {3}
    table = [[5, 4, 3, 2, 1], [5, 4, 3, 2, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    result = evaluate(FixedScores(tiny_dataset, table), tiny_dataset, "valid", ks=(1, 2))
    assert result.mask == ("train",)
    assert result.users.tolist() == [0, 1]
    assert result.n_users_skipped == 2
    # u0: items 0,1 masked -> list [2, 3]: hit at 1; u1: items 1,2 masked -> [0, 3]: hit at 2
    assert result.per_user["recall@1"].tolist() == [1.0, 0.0]
    assert result.per_user["recall@2"].tolist() == [1.0, 1.0]
    assert result.metrics["recall@1"] == 0.5
    assert result.metrics["ndcg@2"] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    assert result.metrics["mrr@2"] == pytest.approx(0.75)
    # coverage@1: u0 -> {2}, u1 -> {0}
    assert result.metrics["coverage@1"] == pytest.approx(2 / 5)


def test_masked_items_never_appear_and_test_masks_train_plus_valid(tiny_dataset):
    # test: u0 {3}, u2 {4}; u0 scores its train (0,1) and valid (2) items highest
    table = [[9, 8, 7, 2, 1], [0] * 5, [1, 1, 1, 1, 5], [0] * 5]
    model = FixedScores(tiny_dataset, table)
    default = evaluate(model, tiny_dataset, "test", ks=(1,))
    assert default.mask == ("train", "valid")
    assert default.per_user["recall@1"].tolist() == [1.0, 1.0]  # u0's top-1 is item 3
    train_only = evaluate(model, tiny_dataset, "test", ks=(1,), mask=("train",))
    assert train_only.per_user["recall@1"].tolist() == [0.0, 1.0]  # valid item 2 now ranks first
    # with masking, no user's list ever holds a masked item: coverage@1 counts items 3 and 4
    assert default.metrics["coverage@1"] == pytest.approx(2 / 5)


def test_users_with_fewer_unmasked_items_than_k(tiny_dataset):
    # u0 has 3 masked items at test; K=5 > 2 unmasked: the positives still count
    table = np.zeros((4, 5))
    result = evaluate(FixedScores(tiny_dataset, table), tiny_dataset, "test", ks=(5,))
    assert result.per_user["recall@5"].tolist() == [1.0, 1.0]
    # precision divides by K even when the list holds masked items
    assert result.per_user["precision@5"].tolist() == [0.2, 0.2]


def test_matches_brute_force_reference():
    dataset = random_dataset(seed=1)
    rng = np.random.default_rng(2)
    table = rng.integers(0, 4, size=(dataset.n_users, dataset.n_items)).astype(np.float32)  # many ties
    for split, mask in (("valid", ("train",)), ("test", ("train", "valid")), ("test", ("train",))):
        result = evaluate(FixedScores(dataset, table), dataset, split, ks=(3, 10), mask=mask)
        expected = brute_force(table, dataset, split, mask, 10)
        assert result.users.tolist() == sorted(expected)
        np.testing.assert_allclose(result.per_user["recall@10"], [expected[u][0] for u in result.users])
        np.testing.assert_allclose(result.per_user["ndcg@10"], [expected[u][1] for u in result.users])
        assert result.n_users_skipped == dataset.n_users - len(expected)


@pytest.mark.parametrize("block_size", [1, 3, 7])
def test_block_size_does_not_change_results(block_size):
    dataset = random_dataset(n_users=30, n_items=20, seed=3)
    table = np.random.default_rng(4).normal(size=(30, 20))
    table[:, :5] = 0.0  # ties too
    model = FixedScores(dataset, table)
    whole = evaluate(model, dataset, "test", ks=(5, 10), block_size=10_000, warm_cold=True)
    assert whole.groups["warm"].n_users > 5 and whole.groups["cold"].n_users > 5
    blocked = evaluate(model, dataset, "test", ks=(5, 10), block_size=block_size, warm_cold=True)
    assert whole.metrics == blocked.metrics
    for name in whole.per_user:
        assert np.array_equal(whole.per_user[name], blocked.per_user[name])
    for group in ("warm", "cold"):
        assert np.array_equal(whole.groups[group].users, blocked.groups[group].users)
        assert whole.groups[group].metrics == blocked.groups[group].metrics


def test_warm_cold_partition_on_tiny(tiny_dataset):
    # test: u0 {3} (warm), u2 {4} (item 4 has no train edge: cold)
    table = [[0, 0, 0, 1, 0], [0] * 5, [0, 0, 0, 0, 1], [0] * 5]
    result = evaluate(FixedScores(tiny_dataset, table), tiny_dataset, "test", ks=(1,), warm_cold=True)
    cold, warm = result.groups["cold"], result.groups["warm"]
    assert cold.users.tolist() == [2] and warm.users.tolist() == [0]
    assert cold.metrics["recall@1"] == 1.0 and warm.metrics["recall@1"] == 1.0
    assert cold.n_users_skipped == 3 and warm.n_users_skipped == 3
    assert "coverage@1" not in cold.metrics
    summary = result.to_dict()
    assert summary["groups"]["cold"]["n_users"] == 1


def test_warm_cold_splits_one_users_positives():
    # train edges only on items 1 and 2: items 0, 3, 4 are cold
    train = sp.csr_matrix(([1, 1], ([0, 1], [2, 1])), shape=(2, 5))
    # user 0 holds out cold {0, 3, 4}; user 1 holds out cold {0}
    test = sp.csr_matrix(([1, 1, 1, 1], ([0, 0, 0, 1], [0, 3, 4, 0])), shape=(2, 5))
    dataset = Dataset("mix", 2, 5, train, sp.csr_matrix((2, 5)), test)
    table = [[0.5, 0.0, 0.0, 3.0, 0.1], [1.0, 0.0, 0.0, 0.0, 0.0]]
    result = evaluate(FixedScores(dataset, table), dataset, "test", ks=(2,), mask=("train",), warm_cold=True)
    assert result.groups["cold"].users.tolist() == [0, 1]
    assert result.groups["cold"].n_positives.tolist() == [3, 1]
    # user 0: list [3, 0] -> both cold hits: recall 2/3; user 1: list [0, 2]: hit
    np.testing.assert_allclose(result.groups["cold"].per_user["recall@2"], [2 / 3, 1.0])
    assert result.groups["warm"].n_users == 0 and result.groups["warm"].metrics == {}


def test_candidate_items_ranks_only_cold_items(tiny_dataset):
    table = [[0, 0, 0, 9, 0], [0] * 5, [9, 9, 9, 9, 1], [0] * 5]
    cold = tiny_dataset.cold_items("test")
    assert cold.tolist() == [4]
    result = evaluate(FixedScores(tiny_dataset, table), tiny_dataset, "test", ks=(1,), candidate_items=cold)
    assert result.n_candidates == 1
    assert result.users.tolist() == [2]  # u0's test item 3 is not a candidate
    assert result.n_users_skipped == 3
    assert result.metrics["recall@1"] == 1.0


def test_per_user_vectors_align_with_users_and_subset(tiny_dataset):
    table = np.arange(20, dtype=np.float32).reshape(4, 5)
    full = evaluate(FixedScores(tiny_dataset, table), tiny_dataset, "test", ks=(2,))
    only_u2 = evaluate(FixedScores(tiny_dataset, table), tiny_dataset, "test", ks=(2,), users=[2, 3])
    assert only_u2.users.tolist() == [2] and only_u2.n_users_skipped == 1
    assert only_u2.per_user["ndcg@2"][0] == full.per_user["ndcg@2"][full.users.tolist().index(2)]
    arrays = full.per_user_arrays()
    assert arrays["users"].tolist() == [0, 2] and arrays["recall@2"].shape == (2,)


def test_errors(tiny_dataset):
    model = FixedScores(tiny_dataset, np.zeros((4, 5)))
    with pytest.raises(ValueError, match="cannot mask the evaluated split"):
        evaluate(model, tiny_dataset, "valid", mask=("train", "valid"))
    with pytest.raises(ValueError, match="unknown split"):
        evaluate(model, tiny_dataset, "dev")
    with pytest.raises(ValueError, match="ks"):
        evaluate(model, tiny_dataset, "valid", ks=(0,))
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate(model, tiny_dataset, "valid", users=[2, 3])
    nan_model = FixedScores(tiny_dataset, np.full((4, 5), np.nan))
    with pytest.raises(ValueError, match="NaN"):
        evaluate(nan_model, tiny_dataset, "valid")


def test_scores_are_computed_without_autograd(tiny_dataset):
    """Ranking builds no autograd graph (validation runs every epoch, inside training)."""
    grad_seen = []

    class Watched(FixedScores):
        def ranking_embed(self):
            grad_seen.append(torch.is_grad_enabled())
            return super().ranking_embed()

        def score(self, users, items=None, emb=None):
            grad_seen.append(torch.is_grad_enabled())
            return super().score(users, items=items, emb=emb)

    model = Watched(tiny_dataset, np.ones((4, 5)))
    assert torch.is_grad_enabled()
    evaluate(model, tiny_dataset, "valid", ks=(1,))
    assert grad_seen and not any(grad_seen)
    assert torch.is_grad_enabled()  # restored for the training that follows


def test_model_mode_restored_and_scores_not_mutated(tiny_dataset):
    class Expanded(FixedScores):
        def score(self, users, items=None, emb=None):
            # a view into the model's own buffer: the evaluator must not write -inf into it
            return self.table[:1].expand(len(users), -1)

    model = Expanded(tiny_dataset, np.ones((4, 5)))
    model.train()
    evaluate(model, tiny_dataset, "valid", ks=(1,))
    assert model.training
    assert torch.isfinite(model.table).all()
