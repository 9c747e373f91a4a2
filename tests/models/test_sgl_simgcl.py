"""SGL and SimGCL: losses by hand on a 3-user toy, augmentation properties, per-epoch views."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgcn.data.dataset import Dataset
from mmgcn.models import build_model
from mmgcn.models.sgl import edge_dropout_subgraph
from mmgcn.models.simgcl import sign_aligned_noise
from mmgcn.utils.seed import epoch_generator

# tiny_dataset: train u0 {0,1}, u1 {1,2}, u2 {2,3}, u3 {0}; item 4 cold
TRIPLES = (torch.tensor([0, 0, 1, 1, 2, 2, 3]), torch.tensor([0, 1, 1, 2, 2, 3, 0]), torch.tensor([4, 3, 0, 4, 0, 1, 2]))


def _csr(pairs, shape=(3, 3)):
    rows, cols = zip(*pairs)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)


def toy() -> Dataset:
    """3 users x 3 items: train u0 {0,1}, u1 {1}, u2 {2}."""
    return Dataset(name="toy", n_users=3, n_items=3, train=_csr([(0, 0), (0, 1), (1, 1), (2, 2)]),
                   valid=_csr([(1, 0)]), test=_csr([(2, 0)]))


def dense_layers(train: np.ndarray, users: np.ndarray, items: np.ndarray, k: int) -> list[np.ndarray]:
    """[E^(0), ..., E^(k)] of LightGCN's propagation over ``train``, stacked users then items."""
    n_u, n_i = train.shape
    adj = np.block([[np.zeros((n_u, n_u)), train], [train.T, np.zeros((n_i, n_i))]])
    deg = adj.sum(1)
    inv = np.zeros_like(deg)
    inv[deg > 0] = deg[deg > 0] ** -0.5
    norm = inv[:, None] * adj * inv[None, :]
    layers = [np.vstack([users, items])]
    for _ in range(k):
        layers.append(norm @ layers[-1])
    return layers


def nce(anchor: np.ndarray, positive: np.ndarray, candidates: np.ndarray, tau: float) -> float:
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    a, p, c = unit(anchor), unit(positive), unit(candidates)
    logits = a @ c.T / tau
    return float(np.mean(np.log(np.exp(logits).sum(1)) - (a * p).sum(1) / tau))


def softplus(x: np.ndarray) -> np.ndarray:
    return np.log1p(np.exp(x))


E_U = np.array([[0.5, -0.2], [0.1, 0.4], [-0.3, 0.2]])
E_I = np.array([[0.2, 0.3], [-0.4, 0.1], [0.3, -0.5]])
BATCH = (np.array([0, 1, 0]), np.array([0, 1, 1]), np.array([2, 0, 2]))


def _set(model, users=E_U, items=E_I):
    with torch.no_grad():
        model.user_embedding.copy_(torch.tensor(users, dtype=torch.float32))
        model.item_embedding.copy_(torch.tensor(items, dtype=torch.float32))


# ---------------------------------------------------------------------- SGL
def test_edge_dropout_subgraph_properties():
    train = toy().train
    first = edge_dropout_subgraph(train, 0.5, np.random.default_rng(0))
    assert first.nnz == 2 and set(first.data) == {1.0}
    assert (first - first.multiply(train)).nnz == 0  # a subgraph: only train edges
    again = edge_dropout_subgraph(train, 0.5, np.random.default_rng(0))
    assert (first != again).nnz == 0
    draws = {tuple(map(tuple, np.argwhere(edge_dropout_subgraph(train, 0.5, np.random.default_rng(s)).toarray())))
             for s in range(20)}
    assert len(draws) > 1
    assert (edge_dropout_subgraph(train, 0.0, np.random.default_rng(1)) != train).nnz == 0
    with pytest.raises(ValueError, match="drop"):
        edge_dropout_subgraph(train, 1.0, np.random.default_rng(0))


def test_sgl_loss_by_hand_on_a_three_user_toy():
    data = toy()
    model = build_model("sgl", data, {"dim": 2, "num_layers": 1, "reg_weight": 0.1, "ssl_weight": 0.5,
                                      "temperature": 0.4})
    _set(model)
    view1 = _csr([(0, 0), (1, 1), (2, 2)])  # (0, 1) dropped
    view2 = _csr([(0, 0), (0, 1), (1, 1)])  # (2, 2) dropped
    model.set_views(view1, view2)
    model.eval()  # no epoch clock: the hand-set views stay

    def mean(train):
        layers = dense_layers(train.toarray(), E_U, E_I, 1)
        z = (layers[0] + layers[1]) / 2
        return z[:3], z[3:]

    zu, zi = mean(data.train)
    u, p, n = BATCH
    bpr = softplus((zu[u] * zi[n]).sum(1) - (zu[u] * zi[p]).sum(1)).mean()
    reg = ((E_U[u] ** 2).sum() + (E_I[p] ** 2).sum() + (E_I[n] ** 2).sum()) / (2 * 3)
    u1, i1 = mean(view1)
    u2, i2 = mean(view2)
    users, items = np.array([0, 1]), np.array([0, 1])  # distinct batch users / positives
    ssl = nce(u1[users], u2[users], u2, 0.4) + nce(i1[items], i2[items], i2, 0.4)
    expected = bpr + 0.1 * reg + 0.5 * ssl
    got = model.loss(*(torch.tensor(a) for a in BATCH))
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_sgl_without_ssl_is_lightgcn(tiny_dataset):
    torch.manual_seed(0)
    sgl = build_model("sgl", tiny_dataset, {"dim": 4, "ssl_weight": 0.0})
    lightgcn = build_model("lightgcn", tiny_dataset, {"dim": 4})
    with torch.no_grad():
        sgl.user_embedding.copy_(lightgcn.user_embedding)
        sgl.item_embedding.copy_(lightgcn.item_embedding)
    torch.testing.assert_close(sgl.loss(*TRIPLES), lightgcn.loss(*TRIPLES))
    torch.testing.assert_close(sgl.embed().items, lightgcn.embed().items)


def _dense_views(model):
    return tuple(view.user_to_item.to_dense().clone() for view in model.views)


def test_sgl_views_come_from_the_epoch_generator_only(tiny_dataset):
    torch.manual_seed(3)
    model = build_model("sgl", tiny_dataset, {"dim": 4, "edge_dropout": 0.3})
    model.on_epoch_start(2, epoch_generator(5, 2))
    first, second = _dense_views(model)
    assert int((first > 0).sum()) == int((second > 0).sum()) == int(0.7 * 7)
    assert not torch.equal(first, second)  # two independent draws
    model.train()
    model.loss(*TRIPLES)
    assert all(torch.equal(a, b) for a, b in zip(_dense_views(model), (first, second)))  # not redrawn by loss
    # another model (other init, other global seed) draws the same views for the same epoch
    torch.manual_seed(99)
    other = build_model("sgl", tiny_dataset, {"dim": 4, "edge_dropout": 0.3})
    other.on_epoch_start(2, epoch_generator(5, 2))
    assert all(torch.equal(a, b) for a, b in zip(_dense_views(other), (first, second)))
    other.on_epoch_start(3, epoch_generator(5, 3))
    assert any(not torch.equal(a, b) for a, b in zip(_dense_views(other), (first, second)))
    assert not any(k.startswith("views") for k in model.state_dict())  # derived, never saved


# ---------------------------------------------------------------------- SimGCL
def test_sign_aligned_noise_has_radius_eps_and_keeps_signs():
    torch.manual_seed(0)
    states = torch.randn(50, 8)
    noise = sign_aligned_noise(states, 0.1)
    torch.testing.assert_close(noise.norm(dim=1), torch.full((50,), 0.1))
    assert bool((torch.sign(noise) == torch.sign(states)).all())


def test_simgcl_propagation_skips_layer_zero():
    data = toy()
    model = build_model("simgcl", data, {"dim": 2, "num_layers": 2})
    _set(model)
    layers = dense_layers(data.train.toarray(), E_U, E_I, 2)
    z = (layers[1] + layers[2]) / 2
    emb = model.embed()
    np.testing.assert_allclose(emb.users.detach().numpy(), z[:3], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(emb.items.detach().numpy(), z[3:], rtol=1e-5, atol=1e-7)


def test_simgcl_loss_by_hand_without_noise():
    data = toy()
    model = build_model("simgcl", data, {"dim": 2, "num_layers": 1, "reg_weight": 0.1, "ssl_weight": 0.3,
                                         "temperature": 0.5, "noise_eps": 0.0})
    _set(model)
    z = dense_layers(data.train.toarray(), E_U, E_I, 1)[1]
    zu, zi = z[:3], z[3:]
    u, p, n = BATCH
    bpr = softplus((zu[u] * zi[n]).sum(1) - (zu[u] * zi[p]).sum(1)).mean()
    reg = ((E_U[u] ** 2).sum() + (E_I[p] ** 2).sum() + (E_I[n] ** 2).sum()) / (2 * 3)
    users, items = np.array([0, 1]), np.array([0, 1])  # identical views: in-batch negatives only
    cl = nce(zu[users], zu[users], zu[users], 0.5) + nce(zi[items], zi[items], zi[items], 0.5)
    got = model.loss(*(torch.tensor(a) for a in BATCH))
    assert got.item() == pytest.approx(bpr + 0.1 * reg + 0.3 * cl, rel=1e-5)


def test_simgcl_views_are_perturbed_and_reproducible(tiny_dataset):
    torch.manual_seed(0)
    model = build_model("simgcl", tiny_dataset, {"dim": 4, "noise_eps": 0.2})
    torch.manual_seed(5)
    first = model.propagate(0.2)[0]
    torch.manual_seed(5)
    torch.testing.assert_close(model.propagate(0.2)[0], first)
    assert not torch.allclose(model.propagate(0.2)[0], first)
    assert not torch.allclose(model.propagate()[0], first)


# ---------------------------------------------------------------------- both
@pytest.mark.parametrize(("name", "config"), [
    ("sgl", {"dim": 0}), ("sgl", {"edge_dropout": 1.0}), ("sgl", {"temperature": 0.0}), ("sgl", {"num_layers": 0}),
    ("simgcl", {"noise_eps": -0.1}), ("simgcl", {"ssl_weight": -1.0}), ("simgcl", {"num_layers": 0}),
])
def test_config_errors(tiny_dataset, name, config):
    with pytest.raises(ValueError):
        build_model(name, tiny_dataset, config)


@pytest.mark.parametrize("name", ["sgl", "simgcl"])
def test_id_only_models_refuse_content_policies(tiny_dataset, name):
    with pytest.raises(ValueError, match="content"):
        build_model(name, tiny_dataset, {"edgeless_items": "content"})
