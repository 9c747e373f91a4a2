"""Fusion baselines (concat / attention, with and without graph smoothing) behind the model API."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgcn.config import ConfigError
from mmgcn.data.dataset import Dataset
from mmgcn.models import available_models, build_model
from mmgcn.models.fusion import AttentionEmbeddings
from mmgcn.nn.losses import l2_reg

NAMES = ("concat", "attention", "concat-graph", "attention-graph")
ADDITIVE = [
    ("concat", {"hidden_dims": []}),
    ("attention", {}),
    ("concat-graph", {"hidden_dims": []}),
    ("attention-graph", {}),
]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: intra-op threads only add synchronisation (much slower on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _build(name, dataset, seed=0, **config):
    torch.manual_seed(seed)
    return build_model(name, dataset, {"dim": 8, **config})


def _all_triples(dataset: Dataset, seed: int = 0):
    # (rows, cols) from indptr: scipy's tocoo() rejects the Dataset's int32/int64 index mix
    train = dataset.train
    rows = np.repeat(np.arange(dataset.n_users), np.diff(train.indptr))
    rng = np.random.default_rng(seed)
    neg = []
    for u in rows:
        seen = set(dataset.train[u].indices)
        choices = [i for i in range(dataset.n_items) if i not in seen]
        neg.append(rng.choice(choices))
    return (torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(train.indices, dtype=torch.long),
            torch.as_tensor(np.array(neg), dtype=torch.long))


def test_all_four_are_registered():
    assert set(NAMES) <= set(available_models())


@pytest.mark.parametrize("name", NAMES)
def test_shapes_scores_and_recommend(name, tiny_dataset):
    model = _build(name, tiny_dataset)
    assert model.uses_content
    emb = model.embed()
    assert emb.users.shape == (4, 8) and emb.items.shape == (5, 8)
    scores = model.score(torch.arange(4))
    assert scores.shape == (4, 5) and torch.isfinite(scores).all()
    torch.testing.assert_close(model.score(torch.tensor([1, 3]), torch.tensor([4, 0])), scores[[1, 3]][:, [4, 0]])
    _, items = model.recommend([0, 1], k=3, mask=("train",))
    for row, user in zip(items.tolist(), [0, 1]):
        assert not set(row) & set(tiny_dataset.train[user].indices.tolist())
    assert "modalities=[visual:6, acoustic:3]" in repr(model)


@pytest.mark.parametrize("name,config", ADDITIVE)
def test_parts_decompose_the_score_exactly(name, config, tiny_dataset):
    model = _build(name, tiny_dataset, **config)
    emb = model.embed()
    assert {"id", "visual", "acoustic"} <= set(emb.parts)
    scores = model.score(torch.arange(4), emb=emb)
    part_scores = model.score_parts(torch.arange(4), emb=emb)
    torch.testing.assert_close(sum(part_scores.values()), scores)
    torch.testing.assert_close(sum(i for _, i in emb.parts.values()), emb.items)


def test_non_additive_models_say_so(tiny_dataset):
    for model in (_build("concat", tiny_dataset), _build("attention", tiny_dataset, score_head="mlp")):
        assert model.embed().parts == {}
        with pytest.raises(ValueError, match="not additive"):
            model.score_parts(torch.arange(2))


def test_attention_weights_are_inspectable_and_sum_to_one(tiny_dataset):
    model = _build("attention", tiny_dataset)
    weights = model.attention_weights()
    assert weights.shape == (5, 3) and model.part_names == ("id", "visual", "acoustic")
    torch.testing.assert_close(weights.sum(1), torch.ones(5))
    # item 4 has no train edge: with cold_item_ids="zero" its ID part gets no weight
    assert weights[4, 0] == 0 and (weights[:4, 0] > 0).all()
    # the "attention" parts are alpha_p e_p: the weights reproduce them
    emb = model.embed()
    assert torch.allclose(emb.parts["visual"][1][1], weights[1, 1] * model.fusion.projections.proj["visual"](
        model.features()["visual"][1]), atol=1e-6)
    with pytest.raises(ValueError, match="user_conditioned"):
        model.attention_weights(users=torch.tensor([0]))


def test_user_conditioned_attention(tiny_dataset):
    model = _build("attention", tiny_dataset, user_conditioned=True)
    weights = model.attention_weights(users=torch.tensor([0, 1, 2]))
    assert weights.shape == (3, 5, 3)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 5))
    assert not torch.allclose(weights[0], weights[1])
    emb = model.embed()
    assert isinstance(emb, AttentionEmbeddings) and isinstance(emb.detach(), AttentionEmbeddings)
    scores = model.score(torch.arange(4), emb=emb)
    torch.testing.assert_close(sum(model.score_parts(torch.arange(4), emb=emb).values()), scores)
    # a non-dot score: not the product of the returned user/item vectors
    assert not torch.allclose(scores, emb.users @ emb.items.T)
    # the loss scores pairs the same way as full ranking
    users, pos, neg = torch.tensor([0, 1]), torch.tensor([0, 2]), torch.tensor([4, 3])
    model.eval()
    loss = model.loss(users, pos, neg)
    full = model.score(users)
    pos_s, neg_s = full[[0, 1], pos], full[[0, 1], neg]
    # the L2 term is on the layer-0 vectors: user ID rows and the user-independent fused items
    reg = l2_reg(emb.users[users], emb.items[pos], emb.items[neg])
    expected = torch.nn.functional.softplus(neg_s - pos_s).mean() + model.config.reg_weight * reg
    torch.testing.assert_close(loss.detach(), expected.detach())


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_ids_and_every_modality_projection(name, tiny_dataset):
    model = _build(name, tiny_dataset)
    users, pos, neg = _all_triples(tiny_dataset)
    model.loss(users, pos, neg).backward()
    assert model.user_emb.weight.grad.abs().sum() > 0
    assert model.item_emb.weight.grad[:4].abs().sum(1).gt(0).all()
    # item 4 is cold: its ID row is zeroed, so it gets no gradient (its content path does)
    assert model.item_emb.weight.grad[4].abs().sum() == 0
    for m in ("visual", "acoustic"):
        assert model.fusion.projections.proj[m].weight.grad.abs().sum() > 0, m


def test_graph_variant_matches_hand_computed_layer_mean(tiny_dataset):
    model = _build("attention-graph", tiny_dataset, num_layers=1)
    plain = _build("attention", tiny_dataset)
    emb, emb0 = model.embed(), plain.embed()  # same seed: same layer-0 vectors
    r = tiny_dataset.train.toarray().astype(np.float64)
    du, di = r.sum(1), r.sum(0)
    with np.errstate(divide="ignore"):
        inv_u, inv_i = np.where(du > 0, du**-0.5, 0), np.where(di > 0, di**-0.5, 0)
    norm = inv_u[:, None] * r * inv_i[None, :]
    u0, i0 = emb0.users.detach().double().numpy(), emb0.items.detach().double().numpy()
    np.testing.assert_allclose(emb.users.detach().numpy(), (u0 + norm @ i0) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(emb.items.detach().numpy(), (i0 + norm.T @ u0) / 2, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(emb.users, emb0.users)
    # cold item 4 has no neighbours: it keeps its own (content) vector, halved
    torch.testing.assert_close(emb.items[4], emb0.items[4] / 2)


def test_graph_uses_only_train_edges(tiny_dataset):
    other_holdout = dataclasses.replace(
        tiny_dataset,
        valid=sp.csr_matrix(([1.0], ([3], [4])), shape=(4, 5)),
        test=sp.csr_matrix(([1.0], ([1], [0])), shape=(4, 5)),
    )
    for name in ("concat-graph", "attention-graph"):
        a = _build(name, tiny_dataset).embed()
        b = _build(name, other_holdout).embed()
        torch.testing.assert_close(a.users, b.users)
        torch.testing.assert_close(a.items, b.items)
    extra_train = dataclasses.replace(
        tiny_dataset, train=tiny_dataset.train + sp.csr_matrix(([1.0], ([3], [3])), shape=(4, 5))
    )
    assert not torch.allclose(_build("concat-graph", tiny_dataset).embed().users,
                              _build("concat-graph", extra_train).embed().users)


def test_cold_items_are_represented_by_content(tiny_dataset):
    model = _build("attention", tiny_dataset)
    before = model.embed().items[4].clone()
    assert before.norm() > 1e-3 and not torch.allclose(before, model.embed().items[3])
    with torch.no_grad():  # the cold item's ID row is ignored ("zero" is the default)
        model.item_emb.weight[4].add_(5.0)
    torch.testing.assert_close(model.embed().items[4], before)
    keep = _build("concat", tiny_dataset, cold_item_ids="keep")
    before = keep.embed().items[4].clone()
    with torch.no_grad():
        keep.item_emb.weight[4].add_(5.0)
    assert not torch.allclose(keep.embed().items[4], before)


def test_id_dropout_only_in_training(tiny_dataset):
    model = _build("attention", tiny_dataset, id_dropout=0.5)
    model.eval()
    torch.testing.assert_close(model.embed().items, model.embed().items)
    model.train()
    torch.manual_seed(1)
    draws = [model.embed().items for _ in range(4)]
    assert any(not torch.allclose(draws[0], d) for d in draws[1:])


@pytest.mark.parametrize("name,config", [
    ("concat", {}), ("attention", {}), ("concat-graph", {}), ("attention-graph", {}),
    ("attention", {"user_conditioned": True}), ("concat", {"score_head": "mlp"}),
])
def test_training_steps_reduce_the_loss_and_are_deterministic(name, config, tiny_dataset):
    def run():
        model = _build(name, tiny_dataset, seed=7, **config)
        users, pos, neg = _all_triples(tiny_dataset)
        optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
        losses = []
        for _ in range(30):
            optimiser.zero_grad()
            loss = model.loss(users, pos, neg)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        return losses, model.score(torch.arange(4)).detach()

    losses, scores = run()
    assert losses[-1] < 0.5 * losses[0]
    losses_again, scores_again = run()
    assert losses == losses_again
    assert torch.equal(scores, scores_again)


def test_content_path_ranks_cold_items_by_planted_preference():
    """Users of group g only interact with items whose visual feature says g; the cold items
    of each group must be ranked by content for the users of that group."""
    rng = np.random.default_rng(0)
    n_users, n_items = 40, 40
    group_item = np.arange(n_items) % 2
    visual = rng.normal(size=(n_items, 4)).astype(np.float32)
    visual[:, 0] = np.where(group_item == 1, 2.0, -2.0) + 0.3 * rng.normal(size=n_items)
    cold = np.arange(32, 40)
    rows, cols = [], []
    for u in range(n_users):
        warm = [i for i in range(32) if group_item[i] == u % 2]
        for i in rng.choice(warm, size=5, replace=False):
            rows.append(u)
            cols.append(i)
    train = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))
    empty = sp.csr_matrix((n_users, n_items))
    dataset = Dataset("planted", n_users, n_items, train, empty, empty,
                      features={"visual": visual, "noise": rng.normal(size=(n_items, 3)).astype(np.float32)})
    for name in ("concat", "attention-graph"):
        model = _build(name, dataset, seed=0)
        users, pos, _ = _all_triples(dataset)
        optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
        gen = torch.Generator().manual_seed(0)
        for _ in range(60):
            neg = torch.randint(0, n_items, pos.shape, generator=gen)
            optimiser.zero_grad()
            model.loss(users, pos, neg).backward()
            optimiser.step()
        scores = model.score(torch.arange(n_users)).detach()[:, cold]
        same = torch.as_tensor(group_item[cold])[None, :] == (torch.arange(n_users) % 2)[:, None]
        # mean score of same-group cold items beats the other group's, for most users
        wins = (scores.masked_fill(~same, 0).sum(1) / same.sum(1)) > (scores.masked_fill(same, 0).sum(1) / (~same).sum(1))
        assert wins.float().mean() > 0.9, name


def test_config_errors(tiny_dataset):
    with pytest.raises(ConfigError, match="unknown key"):
        build_model("concat", tiny_dataset, {"num_layers": 2})
    with pytest.raises(ConfigError, match="user_conditioned"):
        build_model("attention-graph", tiny_dataset, {"user_conditioned": True})
    with pytest.raises(ConfigError, match="num_layers"):
        build_model("concat-graph", tiny_dataset, {"num_layers": 0})
    with pytest.raises(ConfigError, match="id_dropout"):
        build_model("attention", tiny_dataset, {"id_dropout": 1.0})
    with pytest.raises(ConfigError, match="not one of"):
        build_model("attention", tiny_dataset, {"cold_item_ids": "drop"})
    with pytest.raises(ValueError, match="not in dataset"):
        build_model("attention", tiny_dataset, {"modalities": ["text"]})
    no_features = tiny_dataset.with_features({})
    with pytest.raises(ValueError, match="has none"):
        build_model("concat", no_features)


def test_modality_subset(tiny_dataset):
    model = _build("attention", tiny_dataset, modalities=["acoustic"])
    assert model.part_names == ("id", "acoustic")
    assert set(model.embed().parts) == {"id", "acoustic"}
