"""DRAGON against a dense reference of its update rules; the co-user graph by hand; cold items."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmgcn.graph import normalized_adjacency
from mmgcn.models import build_model

# tiny_dataset: train u0 {0,1}, u1 {1,2}, u2 {2,3}, u3 {0}; item 4 has no train edge
COLD = 4
# shared items: u0-u1 (item 1), u0-u3 (item 0), u1-u2 (item 2); softmax over equal counts
CO_USERS = torch.tensor([[0, 0.5, 0, 0.5], [0.5, 0, 0.5, 0], [0, 1, 0, 0], [1, 0, 0, 0]])


def _model(dataset, **config):
    torch.manual_seed(0)
    model = build_model("dragon", dataset, {"dim": 3, "knn_k": 2, **config})
    with torch.no_grad():  # unequal user modality weights
        model.user_modality_weights.add_(0.3 * torch.randn_like(model.user_modality_weights))
    return model


def _knn_sym(features: torch.Tensor, k: int) -> torch.Tensor:
    unit = F.normalize(features, dim=1)
    top = (unit @ unit.T).topk(k, dim=1).indices
    binary = torch.zeros(len(features), len(features)).scatter_(1, top, 1.0)
    inv = binary.sum(1).pow(-0.5)
    return inv[:, None] * binary * inv[None, :]


def _reference(model, dataset, co_users=CO_USERS):
    cfg = model.config
    adj = normalized_adjacency(dataset.train, "sym").to_dense()
    n_users = dataset.n_users
    users, items = [], []
    for k, m in enumerate(model.modalities):
        x = torch.cat([model.preferences[m], model.mlps[m](dataset.features[m])])
        x = F.normalize(x, dim=1)
        h, total = x, x
        for _ in range(cfg.num_layers):
            h = adj @ h
            total = total + h
        users.append(model.user_modality_weights[:, k : k + 1] * total[:n_users])
        items.append(total[n_users:])
    users, items = torch.cat(users, 1), torch.cat(items, 1)
    weights = model.weights
    s = sum(weights[m] * _knn_sym(dataset.features[m], cfg.knn_k) for m in model.modalities)
    item_graph, user_graph = items, users
    for _ in range(cfg.item_layers):
        item_graph = s @ item_graph
    for _ in range(cfg.user_layers):
        user_graph = co_users @ user_graph
    return users + user_graph, items + item_graph


def test_co_user_graph_by_hand(tiny_dataset):
    model = _model(tiny_dataset)
    torch.testing.assert_close(model.user_graph.adjacency.to_dense(), CO_USERS)
    # one co-user each: ties broken by the smaller user id (u0 -> u1, u1 -> u0)
    one = _model(tiny_dataset, user_k=1).user_graph.adjacency.to_dense()
    torch.testing.assert_close(one, torch.tensor([[0, 1.0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]]))


@pytest.mark.parametrize("config", [{}, {"num_layers": 1, "item_layers": 2, "user_layers": 2,
                                         "modality_weights": {"visual": 1.0, "acoustic": 3.0}}], ids=str)
def test_embed_equals_the_dense_reference(tiny_dataset, config):
    model = _model(tiny_dataset, **config)
    emb = model.embed()
    users, items = _reference(model, tiny_dataset)
    torch.testing.assert_close(emb.users, users, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(emb.items, items, rtol=1e-5, atol=1e-6)
    assert emb.users.shape == (4, 6) and list(emb.parts) == ["visual", "acoustic"]
    torch.testing.assert_close(sum(model.score_parts(torch.arange(4), emb=emb).values()),
                               model.score(torch.arange(4), emb=emb), rtol=1e-5, atol=1e-6)


def test_loss_is_bpr_plus_the_preference_and_weight_squares(tiny_dataset):
    model = _model(tiny_dataset, reg_weight=0.1)
    users, pos, neg = torch.tensor([0, 1, 3]), torch.tensor([1, 2, 0]), torch.tensor([4, 0, 2])
    loss = model.loss(users, pos, neg)
    u_all, i_all = _reference(model, tiny_dataset)
    u = u_all[users]
    expected = -torch.log(torch.sigmoid((u * i_all[pos]).sum(1) - (u * i_all[neg]).sum(1))).mean()
    reg = sum(model.preferences[m][users].pow(2).sum() / 9 for m in model.modalities)
    expected = expected + 0.1 * (reg + model.user_modality_weights.pow(2).sum() / 8)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert model.user_modality_weights.grad.abs().sum() > 0 and model.mlps["visual"][0].weight.grad is not None


def test_new_items_are_their_content_and_their_rows_of_the_item_graph(tiny_dataset):
    model = _model(tiny_dataset)
    model.eval()
    emb = model.embed()
    # items have no ID embedding: a new item with an edgeless item's content is that item
    new = model.represent_new_items({m: f[[COLD, 1]] for m, f in tiny_dataset.features.items()})
    torch.testing.assert_close(new.items[0], emb.items[COLD], rtol=1e-5, atol=1e-6)
    assert (new.items[1] - emb.items[1]).abs().max() > 1e-3  # a warm item also has its edges
    # without any item-item layer a new item is its layer-0 content alone
    plain = _model(tiny_dataset, item_layers=0)
    plain.eval()
    alone = plain.represent_new_items({m: f[[1]] for m, f in tiny_dataset.features.items()})
    expected = torch.cat([F.normalize(plain.mlps[m](tiny_dataset.features[m][[1]]), dim=1) for m in plain.modalities], 1)
    torch.testing.assert_close(alone.items, expected)


def test_items_without_a_modality_have_a_zero_layer0_block_in_it(tiny_dataset):
    masks = {"visual": np.ones(5, bool), "acoustic": np.array([True, True, True, True, False])}
    dataset = tiny_dataset.with_features(tiny_dataset.features, content_masks=masks)
    model = _model(dataset, item_layers=0)
    model.eval()
    acoustic = model.embed().parts["acoustic"][1]
    assert acoustic[COLD].abs().sum() == 0  # no edges and no acoustic content: nothing at all
    assert acoustic[3].abs().sum() > 0
    # and the item is nobody's kNN neighbour in the acoustic graph
    knn = build_model("dragon", dataset, {"knn_k": 2})._knn["acoustic"].toarray()
    assert knn[:, COLD].sum() == 0 and knn[COLD].sum() == 0


@pytest.mark.parametrize("names", [("poster",), ("a", "b", "c")])
def test_any_number_of_modalities(tiny_dataset, names):
    rng = np.random.default_rng(1)
    dataset = tiny_dataset.with_features({m: rng.normal(size=(5, 2 + k)).astype(np.float32)
                                          for k, m in enumerate(names)})
    model = _model(dataset)
    assert model.user_modality_weights.shape == (4, len(names))
    users, items = _reference(model, dataset)
    torch.testing.assert_close(model.embed().items, items, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.embed().users, users, rtol=1e-5, atol=1e-6)
