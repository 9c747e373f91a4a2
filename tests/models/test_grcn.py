"""GRCN against a per-edge loop of its update rules (routing, refined graph, convolution), by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmgcn.models import build_model

# tiny_dataset: train u0 {0,1}, u1 {1,2}, u2 {2,3}, u3 {0}; item 4 has no train edge


def _neighbours(dataset):
    train = dataset.train
    users = {u: train[u].indices.tolist() for u in range(dataset.n_users)}
    items = {i: [u for u in users if i in users[u]] for i in range(dataset.n_items)}
    return users, items


def _softmax(scores: list[torch.Tensor]) -> list[torch.Tensor]:
    weights = torch.softmax(torch.stack(scores), 0) if scores else torch.zeros(0)
    return list(weights)


def _reference(model, dataset):
    """The module docstring's rules, one user / item / edge at a time (dicts, Python loops)."""
    cfg = model.config
    by_user, by_item = _neighbours(dataset)
    present = {m: dataset.has_content(m) for m in model.modalities}
    content, to_user, to_item = {}, {}, {}
    for m in model.modalities:
        proj = model.projections[m]
        f = {i: F.normalize(F.leaky_relu(proj(dataset.features[m][i])), dim=0) if present[m][i]
             else torch.zeros(cfg.content_dim) for i in range(dataset.n_items)}
        p = {u: F.normalize(model.preferences[m][u], dim=0) for u in range(dataset.n_users)}
        kept = {u: [i for i in by_user[u] if present[m][i]] for u in by_user}
        for _ in range(cfg.num_routing):
            new = {}
            for u, items in kept.items():
                weights = _softmax([p[u] @ f[i] for i in items])
                new[u] = F.normalize(p[u] + sum((w * f[i] for w, i in zip(weights, items)), torch.zeros_like(p[u])), dim=0)
            p = new
        for u, items in kept.items():
            for w, i in zip(_softmax([p[u] @ f[i] for i in items]), items):
                to_user[m, u, i] = w
        for i in range(dataset.n_items):
            users = [u for u in by_item[i] if present[m][i]]
            for w, u in zip(_softmax([p[u] @ f[i] for u in users]), users):
                to_item[m, u, i] = w
        c_u = {u: p[u] + sum((to_user[m, u, i] * f[i] for i in kept[u]), torch.zeros_like(p[u])) for u in p}
        c_i = {i: f[i] + sum((to_item[m, u, i] * p[u] for u in by_item[i] if (m, u, i) in to_item),
                             torch.zeros_like(f[i])) for i in f}
        content[m] = (torch.stack([c_u[u] for u in sorted(c_u)]), torch.stack([c_i[i] for i in sorted(c_i)]))

    def weight(attention, confidence, u, i):
        values = [attention[m, u, i] * (confidence[k] if cfg.weight_mode == "confid" else 1.0)
                  for k, m in enumerate(model.modalities) if (m, u, i) in attention]
        if not values:
            return torch.tensor(0.0)
        w = torch.stack(values).mean() if cfg.weight_mode == "mean" else torch.stack(values).max()
        return torch.relu(w) if cfg.prune else w

    # confidences exist in "confid" mode only
    assert (model.item_confidence is not None) == (model.user_confidence is not None) == (cfg.weight_mode == "confid")
    item_conf = model.item_confidence if model.item_confidence is not None else [None] * dataset.n_items
    user_conf = model.user_confidence if model.user_confidence is not None else [None] * dataset.n_users
    x_u, x_i = F.normalize(model.user_embedding, dim=1), F.normalize(model.item_embedding, dim=1)
    sum_u, sum_i = x_u, x_i
    for _ in range(cfg.num_layers):
        new_u = torch.stack([sum((weight(to_user, item_conf[i], u, i) * x_i[i] for i in by_user[u]),
                                 torch.zeros(cfg.dim)) for u in range(dataset.n_users)])
        new_i = torch.stack([sum((weight(to_item, user_conf[u], u, i) * x_u[u] for u in by_item[i]),
                                 torch.zeros(cfg.dim)) for i in range(dataset.n_items)])
        x_u, x_i = new_u, new_i
        sum_u, sum_i = sum_u + x_u, sum_i + x_i
    users = torch.cat([sum_u, *(c[0] for c in content.values())], dim=1)
    items = torch.cat([sum_i, *(c[1] for c in content.values())], dim=1)
    return users, items


def _model(dataset, **config):
    torch.manual_seed(0)
    model = build_model("grcn", dataset, {"dim": 3, "content_dim": 4, **config})
    with torch.no_grad():  # non-trivial confidences (some negative: pruned) and biases
        for param in model.parameters():
            param.add_(0.3 * torch.randn_like(param))
    return model


@pytest.mark.parametrize("config", [
    {},
    {"num_routing": 1, "num_layers": 1, "weight_mode": "max"},
    {"num_routing": 0, "weight_mode": "mean", "prune": False},
], ids=str)
def test_embed_equals_the_per_edge_loop(tiny_dataset, config):
    model = _model(tiny_dataset, **config)
    emb = model.embed()
    users, items = _reference(model, tiny_dataset)
    torch.testing.assert_close(emb.users, users, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(emb.items, items, rtol=1e-5, atol=1e-6)
    assert list(emb.parts) == ["id", "visual", "acoustic"]
    scores = model.score(torch.arange(4), emb=emb)
    torch.testing.assert_close(sum(model.score_parts(torch.arange(4), emb=emb).values()), scores)


def test_a_user_with_one_item_routes_all_attention_to_it(tiny_dataset):
    model = _model(tiny_dataset, num_routing=2)
    f = F.normalize(F.leaky_relu(model.projections["visual"](tiny_dataset.features["visual"][0])), dim=0)
    p = F.normalize(model.preferences["visual"][3], dim=0)
    for _ in range(2):  # u3 has item 0 only: softmax over one edge is 1
        p = F.normalize(p + f, dim=0)
    c_u, _ = model.embed().parts["visual"]
    torch.testing.assert_close(c_u[3], p + f)


def test_pruning_zeroes_edges_with_negative_confidence(tiny_dataset):
    model = _model(tiny_dataset, num_layers=1)
    with torch.no_grad():
        model.item_confidence.copy_(-torch.ones_like(model.item_confidence))  # every i -> u weight < 0
    emb = model.embed()
    id_u = emb.parts["id"][0]
    # users receive nothing from their items: their ID part is their own normalised embedding
    torch.testing.assert_close(id_u, F.normalize(model.user_embedding, dim=1))
    soft = build_model("grcn", tiny_dataset, dataclasses.replace(model.config, prune=False))
    soft.load_state_dict(model.state_dict())
    assert not torch.allclose(soft.embed().parts["id"][0], id_u)


def test_loss_is_bpr_plus_the_mean_squares_of_the_batch(tiny_dataset):
    model = _model(tiny_dataset, reg_weight=0.1)
    users, pos, neg = torch.tensor([0, 1, 3]), torch.tensor([1, 2, 0]), torch.tensor([4, 0, 2])
    loss = model.loss(users, pos, neg)
    emb = model.embed()
    u = emb.users[users]
    bpr = -torch.log(torch.sigmoid((u * emb.items[pos]).sum(1) - (u * emb.items[neg]).sum(1))).mean()
    e_u, e_p, e_n = model.user_embedding[users], model.item_embedding[pos], model.item_embedding[neg]
    d = 3 * 3  # batch x dim
    reg = (e_u.pow(2).sum() + 0.5 * (e_p.pow(2).sum() + e_n.pow(2).sum())) / d
    reg = reg + sum(model.preferences[m][users].pow(2).sum() / (3 * 4) for m in model.modalities)
    torch.testing.assert_close(loss, bpr + 0.1 * reg)
    loss.backward()
    assert model.item_confidence.grad.abs().sum() > 0 and model.projections["acoustic"].weight.grad is not None


def test_items_without_a_modality_leave_its_attention_out(tiny_dataset):
    masks = {"visual": np.ones(5, bool), "acoustic": np.array([True, False, True, True, True])}
    dataset = tiny_dataset.with_features(tiny_dataset.features, content_masks=masks)
    model = _model(dataset)
    emb = model.embed()
    users, items = _reference(model, dataset)
    torch.testing.assert_close(emb.users, users, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(emb.items, items, rtol=1e-5, atol=1e-6)
    # item 1 has no acoustic features: its acoustic part is what its users pass it, nothing of its own
    f1 = model._features("acoustic", dataset.features["acoustic"][[1]], torch.tensor([False]))
    assert f1.abs().sum() == 0
    # a new item marked without acoustic content gets a zero acoustic part, whatever its fill row
    new = model.represent_new_items({m: f[[1]] for m, f in dataset.features.items()},
                                    present={"acoustic": torch.tensor([False])})
    assert new.parts["acoustic"][1].abs().sum() == 0 and new.parts["id"][1].abs().sum() == 0
    torch.testing.assert_close(new.parts["visual"][1][0], model._features(
        "visual", dataset.features["visual"][[1]], torch.tensor([True]))[0])


@pytest.mark.parametrize("names", [("poster",), ("a", "b", "c")])
def test_any_number_of_modalities(tiny_dataset, names):
    rng = np.random.default_rng(1)
    features = {m: rng.normal(size=(5, 2 + k)).astype(np.float32) for k, m in enumerate(names)}
    dataset = tiny_dataset.with_features(features)
    model = _model(dataset)
    assert model.item_confidence.shape == (5, len(names))
    emb = model.embed()
    assert emb.items.shape == (5, 3 + 4 * len(names))
    users, items = _reference(model, dataset)
    torch.testing.assert_close(emb.items, items, rtol=1e-5, atol=1e-6)
