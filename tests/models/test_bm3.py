"""BM3: the loss by hand on a 3-user toy, missing modalities, content-only new items."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgcn.data.dataset import Dataset
from mmgcn.models import build_model

E_U = np.array([[0.5, -0.2], [0.1, 0.4], [-0.3, 0.2]])
E_I = np.array([[0.2, 0.3], [-0.4, 0.1], [0.3, -0.5]])
X = np.array([[1.0, 0.0, 2.0], [0.5, -1.0, 0.0], [0.0, 1.0, 1.0]], dtype=np.float32)
W_P, B_P = np.array([[1.0, 0.5], [-0.2, 0.8]]), np.array([0.1, -0.1])
W_M, B_M = np.array([[0.3, -0.1, 0.2], [0.0, 0.4, -0.5]]), np.array([0.05, 0.02])


def _csr(pairs, shape=(3, 3)):
    rows, cols = zip(*pairs)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)


def toy(masks=None) -> Dataset:
    """3 users x 3 items: train u0 {0,1}, u1 {1}, u2 {2}; one 3-d modality."""
    return Dataset(name="toy", n_users=3, n_items=3, train=_csr([(0, 0), (0, 1), (1, 1), (2, 2)]),
                   valid=_csr([(1, 0)]), test=_csr([(2, 0)]), features={"image": X},
                   content_masks=masks or {})


def _hand_set(model):
    with torch.no_grad():
        model.user_embedding.copy_(torch.tensor(E_U))
        model.item_embedding.copy_(torch.tensor(E_I))
        model.predictor.weight.copy_(torch.tensor(W_P))
        model.predictor.bias.copy_(torch.tensor(B_P))
        model.projections["image"].weight.copy_(torch.tensor(W_M))
        model.projections["image"].bias.copy_(torch.tensor(B_M))


def _online(train):
    adj = np.block([[np.zeros((3, 3)), train], [train.T, np.zeros((3, 3))]])
    inv = adj.sum(1) ** -0.5
    norm = inv[:, None] * adj * inv[None, :]
    e = np.vstack([E_U, E_I])
    z = (e + norm @ e) / 2
    return z[:3], z[3:] + E_I


def _c(a, b):
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return float(np.mean(1 - cos))


def _pred(h):
    return h @ W_P.T + B_P


@pytest.mark.parametrize("missing", [False, True])
def test_bm3_loss_by_hand_without_dropout(missing):
    masks = {"image": np.array([True, False, True])} if missing else None
    data = toy(masks)
    model = build_model("bm3", data, {"dim": 2, "num_layers": 1, "dropout": 0.0, "reg_weight": 0.3, "cl_weight": 2.0,
                                      "feature_transform": "none"})
    _hand_set(model)
    users, pos, neg = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), np.array([2, 2, 0, 0])
    h_u, h_i = _online(data.train.toarray())
    hu, hi = h_u[users], h_i[pos]
    rec = _c(_pred(hu), hi) + _c(_pred(hi), hu)  # targets: the detached online views (dropout 0)
    keep = np.array([p != 1 for p in pos]) if missing else np.ones(4, bool)
    latent = X[pos[keep]] @ W_M.T + B_M
    modal = _c(_pred(latent), hi[keep]) + _c(_pred(latent), latent)
    reg = (np.linalg.norm(h_u) + np.linalg.norm(h_i)) / 3  # whole online tables, unsquared, over n_items
    got = model.loss(torch.tensor(users), torch.tensor(pos), torch.tensor(neg))
    assert got.item() == pytest.approx(rec + 2.0 * modal + 0.3 * reg, rel=1e-5)
    # the negatives play no part
    torch.testing.assert_close(model.loss(torch.tensor(users), torch.tensor(pos), torch.tensor(pos)), got)
    # scores are predicted users x predicted items
    emb = model.embed()
    np.testing.assert_allclose(emb.users.detach().numpy(), _pred(h_u), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(emb.items.detach().numpy(), _pred(h_i), rtol=1e-5, atol=1e-6)


def test_bm3_targets_are_dropped_out_and_detached(tiny_dataset):
    torch.manual_seed(0)
    model = build_model("bm3", tiny_dataset, {"dim": 8, "dropout": 0.5})
    users, pos = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2])
    losses = {round(model.loss(users, pos, pos).item(), 6) for _ in range(5)}
    assert len(losses) > 1  # fresh dropout masks each call
    # gradients reach IDs, predictor and every projection
    model.zero_grad()
    model.loss(users, pos, pos).backward()
    for name in ["user_embedding", "item_embedding", "predictor.weight", "projections.visual.weight",
                 "projections.acoustic.weight"]:
        assert model.get_parameter(name).grad.abs().sum() > 0, name


def test_bm3_new_items_from_content():
    data = toy()
    model = build_model("bm3", data, {"dim": 2, "num_layers": 1, "feature_transform": "none"})
    _hand_set(model)
    with torch.no_grad():  # an identity predictor exposes the estimate of the ID view
        model.predictor.weight.copy_(torch.eye(2))
        model.predictor.bias.zero_()
    _, h_i = _online(data.train.toarray())
    new = np.array([[1.0, 2.0, -1.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    out = model.represent_new_items({"image": torch.tensor(new)})
    latent = new @ W_M.T + B_M
    expected = latent / np.linalg.norm(latent, axis=1, keepdims=True) * np.linalg.norm(h_i, axis=1).mean()
    np.testing.assert_allclose(out.items.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(out.users.numpy(), model.embed().users.detach().numpy(), rtol=1e-6)
    # an item without the modality has no content: the zero estimate (the predictor's bias)
    absent = model.represent_new_items({"image": torch.tensor(new)}, present={"image": torch.tensor([True, False])})
    np.testing.assert_allclose(absent.items[1].numpy(), [0.0, 0.0], atol=1e-7)
    with pytest.raises(ValueError, match="reads modalities"):
        model.represent_new_items({"text": torch.tensor(new)})


def test_bm3_feature_transform_is_fitted_on_train_items_and_edgeless_policy(tiny_dataset):
    torch.manual_seed(0)
    model = build_model("bm3", tiny_dataset, {"dim": 4, "edgeless_items": "content"})
    train_rows = tiny_dataset.features["visual"][:4]  # item 4 has no train edge
    torch.testing.assert_close(model.content.transforms["visual"].mean, train_rows.mean(0, keepdim=True))
    emb = model.ranking_embed()
    new = model.represent_new_items({m: f[[4]] for m, f in tiny_dataset.features.items()})
    torch.testing.assert_close(emb.items[4], new.items[0])
    torch.testing.assert_close(emb.items[:4], model.embed().items[:4])


def test_bm3_config_and_feature_errors(tiny_dataset):
    for bad in ({"dropout": 1.0}, {"cl_weight": -1.0}, {"feature_transform": "pca"}, {"num_layers": -1}):
        with pytest.raises(ValueError):
            build_model("bm3", tiny_dataset, bad)
    no_features = Dataset(name="ids", n_users=3, n_items=3, train=_csr([(0, 0), (1, 1)]), valid=_csr([(2, 2)]),
                          test=_csr([(2, 1)]))
    with pytest.raises(ValueError, match="needs item features"):
        build_model("bm3", no_features)


def test_bm3_tune_features_trains_the_tables_from_the_transformed_features(tiny_dataset):
    torch.manual_seed(0)
    model = build_model("bm3", tiny_dataset, {"dim": 4, "tune_features": True})
    table = model.content.table("visual")
    assert isinstance(table, torch.nn.Parameter)
    torch.testing.assert_close(table.detach(), model.content.base("visual"))
    model.loss(torch.tensor([0, 1]), torch.tensor([0, 2]), torch.tensor([4, 4])).backward()
    assert table.grad[[0, 2]].abs().sum() > 0 and table.grad[[1, 3, 4]].abs().sum() == 0
    assert not isinstance(build_model("bm3", tiny_dataset, {"dim": 4}).content.table("visual"), torch.nn.Parameter)
