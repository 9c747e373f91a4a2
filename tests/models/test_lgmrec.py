"""LGMRec against a dense reference of its update rules; hyperedges, noise, contrastive loss, cold items."""

from __future__ import annotations

import dataclasses
from itertools import combinations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmgcn.graph import normalized_adjacency
from mmgcn.models import build_model

# tiny_dataset: train u0 {0,1}, u1 {1,2}, u2 {2,3}, u3 {0}; item 4 has no train edge
COLD = 4


def _model(dataset, **config):
    torch.manual_seed(0)
    model = build_model("lgmrec", dataset, {"dim": 4, "num_hyperedges": 3, **config})
    model.eval()  # no Gumbel noise, no dropout: the reference is deterministic
    return model


def _reference(model, dataset):
    """Dense ``(users, items, {m: (G_U^m, G_I^m)})`` of the module docstring's rules."""
    cfg, n_users = model.config, dataset.n_users
    r = torch.from_numpy(dataset.train.toarray())
    adj = normalized_adjacency(dataset.train, "sym").to_dense()
    ego = torch.cat([model.user_embedding, model.item_embedding])
    layers = [ego]
    for _ in range(cfg.num_layers):
        layers.append(adj @ layers[-1])
    cf = torch.stack(layers).mean(0)
    local, glob, hyper = torch.zeros_like(cf), torch.zeros_like(cf), {}
    for m in model.modalities:
        present = torch.from_numpy(dataset.has_content(m).copy()).float().unsqueeze(1)
        feats = dataset.features[m] * present
        items = feats @ model.projections[m].weight.T
        users = (r @ items) / (r @ present).clamp_min(1)
        h = torch.cat([users, items])
        for _ in range(cfg.modality_layers):
            h = adj @ h
        local = local + F.normalize(h, dim=1)
        item_logits = feats @ model.hyperedge_logits[m]
        item_assign = torch.softmax(item_logits / cfg.temperature, 1) * present
        user_assign = torch.softmax(r @ item_logits / cfg.temperature, 1)
        g_i = cf[n_users:]
        for _ in range(cfg.hyper_layers):
            z = item_assign.T @ g_i
            g_i = item_assign @ z
        hyper[m] = (user_assign @ z, g_i)
        glob = glob + torch.cat(hyper[m])
    final = cf + local + cfg.alpha * F.normalize(glob, dim=1)
    return final[:n_users], final[n_users:], hyper, cf[n_users:]


@pytest.mark.parametrize("config", [{}, {"num_layers": 1, "modality_layers": 1, "hyper_layers": 2, "alpha": 0.7}],
                         ids=str)
def test_embed_equals_the_dense_reference(tiny_dataset, config):
    model = _model(tiny_dataset, **config)
    emb = model.embed()
    users, items, _, _ = _reference(model, tiny_dataset)
    torch.testing.assert_close(emb.users, users, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(emb.items, items, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sum(model.score_parts(torch.arange(4), emb=emb).values()),
                               model.score(torch.arange(4), emb=emb), rtol=1e-5, atol=1e-6)


def test_users_start_as_the_mean_of_their_items_features(tiny_dataset):
    model = _model(tiny_dataset, modality_layers=0)
    users, items = model._modality_graph("visual")
    torch.testing.assert_close(items, tiny_dataset.features["visual"] @ model.projections["visual"].weight.T)
    torch.testing.assert_close(users[0], (items[0] + items[1]) / 2)  # u0 has items 0 and 1
    torch.testing.assert_close(users[3], items[0])  # u3 has item 0 only


def test_loss_is_bpr_plus_contrast_between_modalities_plus_norms(tiny_dataset):
    model = _model(tiny_dataset, cl_weight=0.3, reg_weight=0.01)
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3]), torch.tensor([4, 0, 0])
    loss = model.loss(users, pos, neg)
    u_all, i_all, hyper, _ = _reference(model, tiny_dataset)
    u, ip, ineg = u_all[users], i_all[pos], i_all[neg]
    expected = -torch.log(torch.sigmoid((u * ip).sum(1) - (u * ineg).sum(1))).mean()

    def nce(anchor, candidates, rows):
        sims = F.normalize(anchor, dim=1) @ F.normalize(candidates, dim=1).T / 0.2
        return -(sims[torch.arange(len(rows)), rows] - torch.logsumexp(sims, 1)).mean()

    (gu_v, gi_v), (gu_a, gi_a) = hyper["visual"], hyper["acoustic"]
    expected = expected + 0.3 * (nce(gu_v[users], gu_a, users) + nce(gi_v[pos], gi_a, pos))
    expected = expected + 0.01 * (u.norm() + ip.norm() + ineg.norm()) / 3
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    loss.backward()
    assert model.hyperedge_logits["acoustic"].grad.abs().sum() > 0


def test_gumbel_noise_and_dropout_are_drawn_per_epoch_from_the_hook(tiny_dataset):
    model = _model(tiny_dataset)
    model.train()
    model.on_epoch_start(1, np.random.default_rng(5))
    first, second = model.embed().items, model.embed().items
    assert not torch.allclose(first, second)  # fresh noise every pass
    model.on_epoch_start(1, np.random.default_rng(5))
    assert torch.equal(model.embed().items, first)  # the same epoch generator redraws the same noise
    model.eval()
    assert torch.equal(model.embed().items, model.embed().items)  # ranking: no noise


@pytest.mark.parametrize("names", [("poster",), ("a", "b", "c")])
def test_any_number_of_modalities_contrasts_every_pair(tiny_dataset, names):
    rng = np.random.default_rng(1)
    dataset = tiny_dataset.with_features({m: rng.normal(size=(5, 2 + k)).astype(np.float32)
                                          for k, m in enumerate(names)})
    model = _model(dataset, reg_weight=0.0)
    users, pos, neg = torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([4, 4])
    with_cl = model.loss(users, pos, neg)
    without = build_model("lgmrec", dataset, dataclasses.replace(model.config, cl_weight=0.0))
    without.load_state_dict(model.state_dict())
    without.eval()
    _, _, hyper, _ = _reference(model, dataset)
    pairs = list(combinations(names, 2))
    assert len(pairs) == {1: 0, 3: 3}[len(names)]
    contrast = sum(F.cross_entropy(F.normalize(hyper[a][0][users], dim=1) @ F.normalize(hyper[b][0], dim=1).T / 0.2,
                                   users)
                   + F.cross_entropy(F.normalize(hyper[a][1][pos], dim=1) @ F.normalize(hyper[b][1], dim=1).T / 0.2,
                                     pos) for a, b in pairs)
    torch.testing.assert_close(with_cl - without.loss(users, pos, neg), 0.2 * torch.as_tensor(contrast, dtype=torch.float32),
                               rtol=1e-4, atol=1e-5)


def test_items_without_a_modality_have_no_hyperedge_in_it(tiny_dataset):
    masks = {"visual": np.ones(5, bool), "acoustic": np.array([True, False, True, True, True])}
    dataset = tiny_dataset.with_features(tiny_dataset.features, content_masks=masks)
    model = _model(dataset)
    out = model._forward()
    assert out.hyper_items["acoustic"][1].abs().sum() == 0 and out.hyper_items["visual"][1].abs().sum() > 0
    users, items, _, _ = _reference(model, dataset)
    torch.testing.assert_close(out.items, items, rtol=1e-5, atol=1e-6)
    # u0 {0, 1} averages over item 0 only in the acoustic modality
    model_0 = _model(dataset, modality_layers=0)
    u, i = model_0._modality_graph("acoustic")
    torch.testing.assert_close(u[0], i[0])


@pytest.mark.parametrize("modality_layers", [2, 0])
def test_new_items_read_the_catalogues_hyperedges_through_their_content(tiny_dataset, modality_layers):
    model = _model(tiny_dataset, modality_layers=modality_layers)
    emb = model.embed()
    _, _, _, cf_items = _reference(model, tiny_dataset)
    new = model.represent_new_items({m: f[[COLD]] for m, f in tiny_dataset.features.items()})
    # the item without train edges minus its own ID term is exactly the new item
    torch.testing.assert_close(new.items[0], emb.items[COLD] - cf_items[COLD], rtol=1e-5, atol=1e-6)
    assert new.parts["hypergraph"][1].abs().sum() > 0
    assert (new.parts["modalities"][1].abs().sum() > 0) == (modality_layers == 0)
    content_policy = build_model("lgmrec", tiny_dataset, dataclasses.replace(model.config, edgeless_items="content"))
    content_policy.load_state_dict(model.state_dict())
    content_policy.eval()
    torch.testing.assert_close(content_policy.ranking_embed().items[COLD], new.items[0])


def test_config_is_checked(tiny_dataset):
    with pytest.raises(ValueError, match="keep_rate"):
        build_model("lgmrec", tiny_dataset, {"keep_rate": 0.0})
    with pytest.raises(ValueError, match="num_hyperedges"):
        build_model("lgmrec", tiny_dataset, {"num_hyperedges": 0})
