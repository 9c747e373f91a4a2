"""BPR-MF, LightGCN, VBPR and most-popular behind the common API."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgcn.data.dataset import Dataset
from mmgcn.data.graph import normalized_adjacency
from mmgcn.models import available_models, build_model

# tiny_dataset: train u0 {0,1}, u1 {1,2}, u2 {2,3}, u3 {0}; item 4 cold
TRIPLES = (torch.tensor([0, 0, 1, 1, 2, 2, 3]), torch.tensor([0, 1, 1, 2, 2, 3, 0]), torch.tensor([4, 3, 0, 4, 0, 1, 2]))
LEARNED = ["bpr", "lightgcn", "vbpr"]


def _model(dataset, name, seed=0, **config):
    torch.manual_seed(seed)
    return build_model(name, dataset, {"dim": 4, **config})


def _train_steps(model, steps=8, lr=0.05):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = model.loss(*TRIPLES)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_all_models_registered():
    assert {"bpr", "lightgcn", "vbpr", "popular", "mmgcn", "mmgcn-faithful"} <= set(available_models())


@pytest.mark.parametrize("name", LEARNED)
def test_shapes_parts_and_scores(tiny_dataset, name):
    model = _model(tiny_dataset, name)
    emb = model.embed()
    assert emb.users.shape[0] == 4 and emb.items.shape[0] == 5
    assert emb.users.shape[1] == emb.items.shape[1]
    by_parts = sum(u @ i.T for u, i in emb.parts.values())
    torch.testing.assert_close(by_parts, emb.users @ emb.items.T)
    assert model.score(torch.tensor([0, 3])).shape == (2, 5)


@pytest.mark.parametrize("name", LEARNED)
def test_training_reduces_loss_deterministically(tiny_dataset, name):
    losses = _train_steps(_model(tiny_dataset, name))
    assert losses[-1] < losses[0]
    assert losses == _train_steps(_model(tiny_dataset, name))


@pytest.mark.parametrize("name", LEARNED + ["popular"])
@pytest.mark.parametrize("mask", [("train",), ("train", "valid")])
def test_recommend_never_returns_masked_items(tiny_dataset, name, mask):
    model = _model(tiny_dataset, name)
    full_scores, full_items = model.recommend(torch.arange(4), k=5, mask=mask)
    for user in range(4):
        seen = set().union(*(tiny_dataset.split(s)[user].indices.tolist() for s in mask))
        n_unseen = 5 - len(seen)
        assert not seen & set(full_items[user, :n_unseen].tolist())
        for score, item in zip(full_scores[user].tolist(), full_items[user].tolist()):
            assert (score == float("-inf")) == (item in seen)
    # the default masks train and valid, as the evaluator does at test time
    torch.testing.assert_close(model.recommend(torch.arange(4), k=5)[1],
                               model.recommend(torch.arange(4), k=5, mask=("train", "valid"))[1])
    with pytest.raises(ValueError, match="mask may name"):
        model.recommend([0], k=2, mask=("test",))


def test_recommend_breaks_ties_as_the_evaluator(tiny_dataset):
    """Equal scores: the lower item id first, in recommend() exactly as in evaluate()."""
    model = build_model("popular", tiny_dataset)  # items 0-3 have 2, 2, 2, 1 train users
    _, items = model.recommend([3], k=4, mask=())
    assert items.tolist() == [[0, 1, 2, 3]]
    _, items = model.recommend([3], k=3, mask=("train",))  # u3 saw item 0
    assert items.tolist() == [[1, 2, 3]]


def test_loss_matches_bpr_formula_for_mf(tiny_dataset):
    model = _model(tiny_dataset, "bpr", reg_weight=0.5)
    users, pos, neg = TRIPLES
    u, i, j = model.user_embedding[users], model.item_embedding[pos], model.item_embedding[neg]
    diff = (u * i).sum(1) - (u * j).sum(1)
    expected = -torch.log(torch.sigmoid(diff)).mean() + 0.5 * (u.pow(2).sum() + i.pow(2).sum() + j.pow(2).sum()) / (2 * 7)
    torch.testing.assert_close(model.loss(users, pos, neg), expected)


def test_lightgcn_is_layer_mean_of_propagated_embeddings(tiny_dataset):
    model = _model(tiny_dataset, "lightgcn", num_layers=2)
    adj = normalized_adjacency(tiny_dataset.train, "sym").to_dense()
    e0 = torch.cat([model.user_embedding, model.item_embedding]).detach()
    expected = (e0 + adj @ e0 + adj @ adj @ e0) / 3
    emb = model.embed()
    torch.testing.assert_close(torch.cat([emb.users, emb.items]).detach(), expected)
    # zero layers is plain MF
    flat = _model(tiny_dataset, "lightgcn", num_layers=0).embed()
    torch.testing.assert_close(flat.users, _model(tiny_dataset, "lightgcn").user_embedding)


def test_lightgcn_regularises_ego_embeddings_only(tiny_dataset):
    model = _model(tiny_dataset, "lightgcn", reg_weight=0.0)
    plain = model.loss(*TRIPLES)
    model_reg = _model(tiny_dataset, "lightgcn", reg_weight=1.0)
    users, pos, neg = TRIPLES
    ego = (model_reg.user_embedding[users].pow(2).sum() + model_reg.item_embedding[pos].pow(2).sum()
           + model_reg.item_embedding[neg].pow(2).sum()) / (2 * 7)
    torch.testing.assert_close(model_reg.loss(*TRIPLES), plain + ego)


def test_lightgcn_gradients_reach_all_connected_embeddings(tiny_dataset):
    model = _model(tiny_dataset, "lightgcn", num_layers=2)
    model.loss(*TRIPLES).backward()
    assert (model.user_embedding.grad.abs().sum(1) > 0).all()
    assert (model.item_embedding.grad.abs().sum(1) > 0).all()


def test_vbpr_cold_items_scored_from_content(tiny_dataset):
    model = _model(tiny_dataset, "vbpr")
    _train_steps(model, steps=3)
    emb = model.embed()
    content_users, content_items = emb.parts["content"]
    assert content_items[4].abs().sum() > 0  # item 4 has no train edge
    changed = dict(tiny_dataset.features)
    changed["visual"] = changed["visual"].clone()
    changed["visual"][4] *= -1
    twin = _model(tiny_dataset.with_features(changed), "vbpr")
    twin.load_state_dict(model.state_dict())
    assert not torch.allclose(twin.embed().items[4], emb.items[4])
    torch.testing.assert_close(twin.embed().items[:4], emb.items[:4])


def test_vbpr_needs_features_and_content_dim(tiny_dataset):
    with pytest.raises(ValueError, match="needs item features"):
        build_model("vbpr", tiny_dataset.with_features({}))
    model = _model(tiny_dataset, "vbpr", content_dim=3, item_bias=False)
    assert model.embed().users.shape == (4, 4 + 3)
    assert set(model.embed().parts) == {"id", "content"}


def _counts_dataset():
    # item train counts: i0 3, i1 1, i2 2, i3 0
    pairs = [(0, 0), (1, 0), (2, 0), (0, 2), (1, 2), (2, 1)]
    rows, cols = zip(*pairs)
    train = sp.csr_matrix((np.ones(6, np.float32), (rows, cols)), shape=(3, 4))
    empty = sp.csr_matrix((3, 4), dtype=np.float32)
    test = sp.csr_matrix(([1.0], ([0], [3])), shape=(3, 4))
    return Dataset(name="counts", n_users=3, n_items=4, train=train, valid=empty, test=test)


def test_popular_ranks_by_train_counts():
    data = _counts_dataset()
    model = build_model("popular", data)
    assert not model.trainable and model.num_parameters() == 0
    torch.testing.assert_close(model.score(torch.tensor([0, 2])), torch.tensor([[3.0, 1.0, 2.0, 0.0]] * 2))
    _, unmasked = model.recommend([2], k=4, mask=())
    assert unmasked.tolist() == [[0, 2, 1, 3]]
    _, masked = model.recommend([0, 2], k=2)  # u0 saw 0, 2; u2 saw 0, 1
    assert masked.tolist() == [[1, 3], [2, 3]]
    with pytest.raises(RuntimeError, match="nothing to train"):
        model.loss(*[torch.tensor([0])] * 3)


def test_bpr_item_bias_scores_and_loss_by_hand(tiny_dataset):
    model = _model(tiny_dataset, "bpr", item_bias=True, reg_weight=0.5)
    assert model.bias.abs().sum() == 0  # starts at zero: the same scores as plain MF
    with torch.no_grad():
        model.bias.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0, 3.0]))
    expected_scores = model.user_embedding @ model.item_embedding.T + model.bias
    torch.testing.assert_close(model.score(torch.arange(4)), expected_scores)
    emb = model.embed()
    assert set(emb.parts) == {"id", "bias"}
    torch.testing.assert_close(emb.parts["bias"][0] @ emb.parts["bias"][1].T, model.bias.expand(4, 5))
    users, pos, neg = TRIPLES
    u, i, j = model.user_embedding[users], model.item_embedding[pos], model.item_embedding[neg]
    bi, bj = model.bias[pos], model.bias[neg]
    diff = (u * i).sum(1) + bi - (u * j).sum(1) - bj
    reg = u.pow(2).sum() + i.pow(2).sum() + j.pow(2).sum() + bi.pow(2).sum() + bj.pow(2).sum()
    torch.testing.assert_close(model.loss(users, pos, neg), -torch.log(torch.sigmoid(diff)).mean() + 0.5 * reg / 14)
    model.loss(users, pos, neg).backward()
    assert model.bias.grad[[0, 1, 2, 3, 4]].abs().sum() > 0
    plain = _model(tiny_dataset, "bpr")
    assert not hasattr(plain, "bias") or plain.bias is None
    assert plain.num_parameters() + 5 == model.num_parameters()


def test_vbpr_standardize_features_switch(tiny_dataset):
    model = _model(tiny_dataset, "vbpr", standardize_features=True, normalize_features=False)
    # z-scored over the items with train edges (0-3), not over the cold item 4
    visual = model.content[:4, :6]
    torch.testing.assert_close(visual.mean(0), torch.zeros(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(visual.std(0, unbiased=False), torch.ones(6))
    plain = _model(tiny_dataset, "vbpr", normalize_features=False)
    assert not torch.allclose(model.content, plain.content)
    # new items are placed with the catalogue's statistics: item 4 (cold) == a new copy of it
    with torch.no_grad():
        model.bias_content.weight.normal_()
        model.item_id[4] = 0.0
        model.bias_id[4] = 0.0
    new = model.represent_new_items({m: f[[4]] for m, f in tiny_dataset.features.items()})
    torch.testing.assert_close(new.items[0], model.embed().items[4])


def test_vbpr_reg_content_adds_l2_of_projected_batch_content(tiny_dataset):
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), torch.tensor([4, 3, 0])
    plain = _model(tiny_dataset, "vbpr", reg_weight=0.5, reg_content=False)
    regularised = _model(tiny_dataset, "vbpr", reg_weight=0.5, reg_content=True)
    regularised.load_state_dict(plain.state_dict())
    with torch.no_grad():
        plain.bias_content.weight.fill_(0.3)  # non-zero content bias, so its term shows
        regularised.bias_content.weight.fill_(0.3)
        content_pos, content_neg = regularised.content[pos], regularised.content[neg]
        extra = sum(
            t.pow(2).sum()
            for t in (
                regularised.projection(content_pos), regularised.projection(content_neg),
                regularised.bias_content(content_pos), regularised.bias_content(content_neg),
            )
        ) / (2 * users.numel())
        difference = regularised.loss(users, pos, neg) - plain.loss(users, pos, neg)
    assert difference.item() == pytest.approx(0.5 * extra.item(), rel=1e-5)
