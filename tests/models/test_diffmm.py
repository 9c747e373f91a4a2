"""DiffMM: representations and loss by hand, generated graphs, denoiser schedule, new items."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgcn.data.dataset import Dataset
from mmgcn.models import build_model
from mmgcn.models.diffmm import drop_edges
from mmgcn.utils.seed import epoch_generator

E_U = np.array([[0.5, -0.2], [0.1, 0.4], [-0.3, 0.2]])
E_I = np.array([[0.2, 0.3], [-0.4, 0.1], [0.3, -0.5]])
X = np.array([[1.0, 0.0, 2.0], [0.5, -1.0, 0.0], [0.0, 1.0, 1.0]], dtype=np.float32)
W_M, B_M = np.array([[0.3, -0.1, 0.2], [0.0, 0.4, -0.5]]), np.array([0.05, 0.02])
TRAIN = [(0, 0), (0, 1), (1, 1), (2, 2)]
SMALL = {"dim": 2, "denoiser_dims": [4], "feature_transform": "none"}
# tiny_dataset's seven train triples
TRIPLES = (torch.tensor([0, 0, 1, 1, 2, 2, 3]), torch.tensor([0, 1, 1, 2, 2, 3, 0]), torch.tensor([4, 3, 0, 4, 0, 1, 2]))


def _csr(pairs, shape=(3, 3)):
    rows, cols = zip(*pairs)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)


def toy() -> Dataset:
    return Dataset(name="toy", n_users=3, n_items=3, train=_csr(TRAIN), valid=_csr([(1, 0)]), test=_csr([(2, 0)]),
                   features={"image": X})


def _hand_set(model):
    with torch.no_grad():
        model.user_embedding.copy_(torch.tensor(E_U))
        model.item_embedding.copy_(torch.tensor(E_I))
        model.projections["image"].weight.copy_(torch.tensor(W_M))
        model.projections["image"].bias.copy_(torch.tensor(B_M))


def _sym_with_loops(train: np.ndarray) -> np.ndarray:
    n_u, n_i = train.shape
    adj = np.block([[np.zeros((n_u, n_u)), train], [train.T, np.zeros((n_i, n_i))]]) + np.eye(n_u + n_i)
    inv = adj.sum(1) ** -0.5
    return inv[:, None] * adj * inv[None, :]


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _hand_forward(generated: np.ndarray, layers: int, res: float, gen: float):
    a = _sym_with_loops(_csr(TRAIN).toarray())
    a_gen = _sym_with_loops(generated)
    f = _unit(X @ W_M.T + B_M)
    ids = np.vstack([E_U, E_I])
    s = a @ np.vstack([E_U, f])
    s2 = a @ np.vstack([s[:3], E_I])
    modal = s + s2 + gen * (a_gen @ ids)  # one modality: softmax weight 1

    def stack(x):
        total, h = x, x
        for _ in range(layers):
            h = a @ h
            total = total + h
        return total

    z = stack(modal) + res * _unit(modal)
    view = stack(a_gen @ np.vstack([E_U, f]))
    return z, view


def _nce(anchor, positive, candidates, tau):
    a, p, c = _unit(anchor), _unit(positive), _unit(candidates)
    return float(np.mean(np.log(np.exp(a @ c.T / tau).sum(1)) - (a * p).sum(1) / tau))


@pytest.mark.parametrize("generated_items", [None, [[2], [0], [-1]]])
def test_representation_and_loss_by_hand(generated_items):
    model = build_model("diffmm", toy(), {**SMALL, "num_layers": 1, "residual_weight": 0.5, "generated_weight": 0.2,
                                          "reg_weight": 0.01, "ssl_weight": 0.1, "temperature": 0.5})
    _hand_set(model)
    generated = np.zeros((3, 3))
    if generated_items is not None:
        with torch.no_grad():
            model.generated_image.copy_(torch.tensor(generated_items))
        generated[0, 2] = generated[1, 0] = 1.0
    model.eval()  # ranking graphs: the generated graph whole, no denoiser step
    z, view = _hand_forward(generated, layers=1, res=0.5, gen=0.2)
    emb = model.embed()
    np.testing.assert_allclose(emb.users.detach().numpy(), z[:3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(emb.items.detach().numpy(), z[3:], rtol=1e-5, atol=1e-6)

    users, pos, neg = np.array([0, 1, 0]), np.array([0, 1, 1]), np.array([2, 2, 2])
    zu, zi = z[:3], z[3:]
    bpr = np.log1p(np.exp((zu[users] * zi[neg]).sum(1) - (zu[users] * zi[pos]).sum(1))).mean()
    reg = (E_U ** 2).sum() + (E_I ** 2).sum()
    u, i = np.array([0, 1]), np.array([0, 1])
    ssl = _nce(zu[u], view[:3][u], view[:3], 0.5) + _nce(zi[i], view[3:][i], view[3:], 0.5)
    got = model.loss(*(torch.tensor(a) for a in (users, pos, neg)))
    assert got.item() == pytest.approx(bpr + 0.01 * reg + 0.1 * ssl, rel=1e-5)


def test_generated_graphs_come_from_the_denoisers_top_k(tiny_dataset):
    torch.manual_seed(0)
    model = build_model("diffmm", tiny_dataset, {**SMALL, "generated_k": 2})
    assert bool((model.generated_visual == -1).all())  # nothing generated before the denoisers train
    model.regenerate_graphs()
    for m in ("visual", "acoustic"):
        rows = torch.from_numpy(tiny_dataset.train.toarray().astype(np.float32))
        expected = torch.topk(model.diffusion.generate(model.denoisers[m], rows), 2, dim=1).indices
        assert torch.equal(getattr(model, f"generated_{m}"), expected)
    adjacency = model.generated_adjacency("visual").toarray()
    generated = np.zeros((4, 5))
    generated[np.repeat(np.arange(4), 2), model.generated_visual.numpy().ravel()] = 1.0
    np.testing.assert_allclose(adjacency, _sym_with_loops(generated), rtol=1e-12)


def test_drop_edges_keeps_a_share_scaled_up():
    adjacency = sp.csr_matrix(np.arange(1, 401, dtype=np.float64).reshape(20, 20))
    dropped = drop_edges(adjacency, 0.5, np.random.default_rng(0))
    kept = dropped.toarray() != 0
    assert 120 < kept.sum() < 280
    np.testing.assert_allclose(dropped.toarray()[kept], 2 * adjacency.toarray()[kept])
    assert drop_edges(adjacency, 1.0, np.random.default_rng(0)) is adjacency


def test_each_epoch_trains_the_denoisers_on_every_user_once_and_then_regenerates(tiny_dataset):
    torch.manual_seed(0)
    model = build_model("diffmm", tiny_dataset, SMALL)
    chunks: list[list[int]] = []
    original = model.diffusion_loss
    model.diffusion_loss = lambda users: (chunks.append(list(users)), original(users))[1]
    model.train()
    batches = [(TRIPLES[0][s], TRIPLES[1][s], TRIPLES[2][s]) for s in (slice(0, 2), slice(2, 5), slice(5, 7))]
    for epoch in (1, 2):
        model.on_epoch_start(epoch, epoch_generator(0, epoch))
        if epoch == 1:
            assert bool((model.generated_visual == -1).all())  # epoch 1: empty generated graphs
        else:
            assert bool((model.generated_visual >= 0).all())  # regenerated from the trained denoisers
        chunks.clear()
        for batch in batches:
            model.loss(*batch)
        assert sorted(u for chunk in chunks for u in chunk) == list(range(4)), f"epoch {epoch}"
    assert int(model.denoiser_updates) == 2 * len(batches)  # one denoiser update per batch
    # the epoch's dropped graphs come from the epoch's generator alone
    model.on_epoch_start(3, epoch_generator(0, 3))
    dropped = model.train_graphs["visual"].adjacency.to_dense()
    model.on_epoch_start(3, epoch_generator(0, 3))
    assert torch.equal(model.train_graphs["visual"].adjacency.to_dense(), dropped)
    assert not any(k.startswith("train_graphs") for k in model.state_dict())


def test_cold_item_equals_new_item_up_to_its_id(tiny_dataset):
    torch.manual_seed(0)
    model = build_model("diffmm", tiny_dataset, {"dim": 4, "denoiser_dims": [4], "num_layers": 2})
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.2 * torch.randn_like(param))
        model.item_embedding[4] = 0.0  # item 4 has no train edge and is in no generated graph
    model.eval()
    emb = model.embed()
    new = model.represent_new_items({m: f[[4, 1]] for m, f in tiny_dataset.features.items()})
    torch.testing.assert_close(new.items[0], emb.items[4], atol=1e-5, rtol=1e-5)
    assert (new.items[1] - emb.items[1]).abs().max() > 1e-3
    torch.testing.assert_close(new.users, emb.users)
    # a modality an item lacks is left out
    absent = model.represent_new_items({m: f[[4]] for m, f in tiny_dataset.features.items()},
                                       present={"visual": torch.tensor([False]), "acoustic": torch.tensor([True])})
    only = model.represent_new_items({m: f[[4]] for m, f in tiny_dataset.features.items()},
                                     present={"visual": torch.tensor([True]), "acoustic": torch.tensor([True])})
    assert not torch.allclose(absent.items, only.items)


def test_contrast_between_modality_views(tiny_dataset):
    torch.manual_seed(0)
    model = build_model("diffmm", tiny_dataset, {**SMALL, "contrast": "modalities"})
    model.eval()
    views = model._views(model._graphs(), model.modal_features())
    out = model._main(model._graphs(), model.modal_features())
    users, pos = torch.tensor([0, 2]), torch.tensor([1, 3])
    got = model.contrastive_loss(out, views, users, pos)
    from mmgcn.nn.losses import info_nce
    v, a = views["visual"], views["acoustic"]
    expected = (info_nce(v[users], a[users], 0.5, candidates=a[:4])
                + info_nce(v[4 + pos], a[4 + pos], 0.5, candidates=a[4:]))
    torch.testing.assert_close(got, expected)


def test_config_errors(tiny_dataset):
    for bad in ({"keep_rate": 0.0}, {"denoiser_dims": []}, {"contrast": "all"}, {"generated_k": 0},
                {"noise_max": 2.0}, {"temperature": 0.0}):
        with pytest.raises(ValueError):
            build_model("diffmm", tiny_dataset, {**SMALL, **bad})
