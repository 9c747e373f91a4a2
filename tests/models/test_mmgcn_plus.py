"""MMGCN+: hand-checked branches, the item graph's construction, items without train edges
scored exactly as new items, content-only dropout, alignment, the ID branch's
noise-perturbed contrast, missing content, calibration."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mmgcn.data.synthetic import make_synthetic
from mmgcn.models import build_model
from mmgcn.models.mmgcn_plus import MMGCNPlusConfig
from mmgcn.nn.losses import bpr_loss, info_nce, l2_reg
from mmgcn.train.trainer import TrainConfig, Trainer

COLD = 4  # tiny_dataset: item 4 has no train edge


def _model(dataset, **config):
    torch.manual_seed(0)
    return build_model("mmgcn-plus", dataset, config)


def _features(model, m):
    return model.features(m)


def test_branches_one_layer_by_hand(tiny_dataset):
    """item_graph_k=0, one layer, no preferences: the ID branch is LightGCN over (e_u, e_i);
    a modality branch propagates c^m_i = W_m x_i from users at zero; the score is the sum
    of the branches' dot products (the 'bias' part is zero for catalogue items)."""
    model = _model(tiny_dataset, item_graph_k=0, num_layers=1)
    with torch.no_grad():
        emb = model.embed()
        a = model.graph.user_to_item.to_dense()  # (users, items), symmetric-normalised
        expected = {"id": ((model.user_id + a @ model.item_id) / 2, (model.item_id + a.T @ model.user_id) / 2)}
        for m in model.modalities:
            c = _features(model, m) @ model.projections[m].weight.T
            expected[m] = ((a @ c) / 2, c / 2)
    for branch, (u, i) in expected.items():
        torch.testing.assert_close(emb.parts[branch][0], u)
        torch.testing.assert_close(emb.parts[branch][1], i)
    assert (emb.parts["bias"][1] == 0).all()
    scores = emb.users @ emb.items.T
    torch.testing.assert_close(sum(u @ i.T for u, i in expected.values()), scores)


def test_user_preference_starts_modality_users_from_parameters(tiny_dataset):
    model = _model(tiny_dataset, item_graph_k=0, num_layers=0, user_preference=True)
    with torch.no_grad():
        emb = model.embed()
    for m in model.modalities:
        torch.testing.assert_close(emb.parts[m][0], model.preferences[m])


def test_item_graph_links_warm_items_and_queries_edgeless_ones(tiny_dataset):
    model = _model(tiny_dataset, item_graph_k=2)
    warm = set(np.flatnonzero(tiny_dataset.items_in_train).tolist())
    for m in model.modalities:
        knn = torch.from_numpy(model._catalogue[m][1].toarray())
        assert (torch.diagonal(knn) == 0).all()  # neighbours are other items
        assert (knn[:, COLD] == 0).all() and (knn[COLD] == 0).all()  # built over warm items only
        assert ((knn[sorted(warm)] > 0).sum(dim=1) >= 2).all()
    mean = model.item_graph.adjacency.to_dense()
    assert (mean[:, COLD] == 0).all()  # nobody aggregates the item without train edges
    row = set(torch.nonzero(mean[COLD]).flatten().tolist())
    assert 2 <= len(row) <= 4 and row <= warm  # its row: a query against the warm items


@pytest.mark.parametrize("graph_k", [0, 2])
def test_cold_items_are_scored_as_new_items(tiny_dataset, graph_k):
    """An item without train edges: with edgeless_items='content' its ranking row is exactly
    represent_new_items of its own features; its own row differs only by e_i / (L + 1)."""
    model = _model(tiny_dataset, item_graph_k=graph_k, num_layers=2, edgeless_items="content")
    with torch.no_grad():
        new = model.represent_new_items({m: torch.as_tensor(f[[COLD]]) for m, f in tiny_dataset.features.items()})
        ranking, own = model.ranking_embed(), model.embed()
    torch.testing.assert_close(ranking.items[COLD], new.items[0])
    torch.testing.assert_close(ranking.items[:COLD], own.items[:COLD])
    d = model.config.dim
    diff = own.items[COLD] - new.items[0]
    torch.testing.assert_close(diff[:d], model.item_id[COLD].detach() / 3)
    assert diff[d:].abs().max() < 1e-6


def test_new_items_borrow_their_neighbours_states(tiny_dataset):
    """With the item graph, a new item's representation moves with the trained IDs of the
    items it resembles; without it, it does not."""
    for k, moves in ((0, False), (2, True)):
        model = _model(tiny_dataset, item_graph_k=k)
        feats = {m: torch.as_tensor(f[[COLD]]) for m, f in tiny_dataset.features.items()}
        before = model.represent_new_items(feats).items.clone()
        with torch.no_grad():
            model.item_id[:COLD] += 1.0
        after = model.represent_new_items(feats).items
        assert (not torch.allclose(before, after)) == moves


def test_content_dropout_scores_dropped_items_from_content(tiny_dataset):
    """With (almost) every item dropped, the loss is BPR over the items' new-item vectors
    (layer 0 of each branch, no ID) plus the L2 term."""
    model = _model(tiny_dataset, item_graph_k=2, content_dropout=0.999999)
    assert model.new_bias is not None and model.new_bias.item() == 0.0
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3]), torch.tensor([4, 0, 0])
    loss = model.loss(users, pos, neg)
    with torch.no_grad():
        branches, neighbours, contents = model._branches()
        alone = model._as_new(neighbours, contents, {b: u for b, (u, _) in branches.items()})
        u = model._assemble(branches).users[users]
        expected = bpr_loss((u * alone.items[pos]).sum(1), (u * alone.items[neg]).sum(1))
        expected = expected + model.config.reg_weight * l2_reg(model.user_id[users], model.item_id[pos],
                                                               model.item_id[neg])
        # the item without train edges: its dropped vector is its new-item representation
        new = model.represent_new_items({m: torch.as_tensor(f[[COLD]]) for m, f in tiny_dataset.features.items()})
    torch.testing.assert_close(alone.items[COLD], new.items[0])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert model.new_bias.grad is not None  # the offset learns from the dropped items' pairs


def test_alignment_term_by_hand(tiny_dataset):
    plain = _model(tiny_dataset, item_graph_k=0)
    aligned = _model(tiny_dataset, item_graph_k=0, align_weight=0.5, align_temperature=0.3)
    users, pos, neg = torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([3, 0])
    items = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        branches, _, contents = aligned._branches()
        ids = branches["id"][1][items]
        align = torch.stack([info_nce(contents[m][items], ids, 0.3) for m in aligned.modalities]).mean()
    assert aligned.loss(users, pos, neg).item() == pytest.approx(plain.loss(users, pos, neg).item() + 0.5 * align.item(),
                                                                 rel=1e-5)
    aligned.loss(users, pos, neg).backward()
    assert all(p.weight.grad is not None and p.weight.grad.abs().sum() > 0 for p in aligned.projections.values())


def _contrast_by_hand(a, b, t):
    """-mean_k log softmax_j(cos(a_k, b_j) / t)[k]: InfoNCE written out, not the library's."""
    a = a / a.norm(dim=1, keepdim=True)
    b = b / b.norm(dim=1, keepdim=True)
    logits = a @ b.T / t
    return -(logits.diagonal() - logits.logsumexp(dim=1)).mean()


def test_id_contrast_without_noise_is_infonce_of_the_branch_with_itself(tiny_dataset):
    """ssl_noise_eps=0: both views are the ID branch itself, so the added term is
    ssl_weight x (InfoNCE(u, u) + InfoNCE(i, i)) over the batch's distinct users and positives."""
    plain = _model(tiny_dataset, item_graph_k=2, num_layers=2)
    ssl = _model(tiny_dataset, item_graph_k=2, num_layers=2, ssl_weight=0.3, ssl_noise_eps=0.0, ssl_temperature=0.5)
    users, pos, neg = torch.tensor([0, 1, 1, 2]), torch.tensor([1, 2, 2, 3]), torch.tensor([3, 0, 4, 0])
    with torch.no_grad():
        u_id, i_id = ssl._branches()[0]["id"]
        expected = 0.3 * (_contrast_by_hand(u_id[[0, 1, 2]], u_id[[0, 1, 2]], 0.5)
                          + _contrast_by_hand(i_id[[1, 2, 3]], i_id[[1, 2, 3]], 0.5))
    got = ssl.loss(users, pos, neg).item() - plain.loss(users, pos, neg).item()
    assert got == pytest.approx(expected.item(), rel=1e-5)


def test_id_contrast_views_move_every_row_by_the_noise_radius(tiny_dataset):
    """One layer: a view is (layer 0 + (A e + noise)) / 2, and every noise row has norm eps,
    so each row of a view sits exactly eps / 2 from the clean branch -- except the item
    without train edges, whose propagated state is zero (the noise follows its sign, as
    SimGCL's); the two views differ."""
    model = _model(tiny_dataset, item_graph_k=0, num_layers=1, ssl_weight=0.1, ssl_noise_eps=0.2)
    with torch.no_grad():
        clean_u, clean_i = model._branches()[0]["id"]
        view1 = model._perturbed_id_branch(model.item_id)
        view2 = model._perturbed_id_branch(model.item_id)
    torch.testing.assert_close((view1[0] - clean_u).norm(dim=1), torch.full((clean_u.shape[0],), 0.1))
    moved = torch.full((clean_i.shape[0],), 0.1)
    moved[COLD] = 0.0
    torch.testing.assert_close((view1[1] - clean_i).norm(dim=1), moved)
    assert not torch.allclose(view1[0], view2[0])
    users, pos, neg = torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([3, 0])
    model.loss(users, pos, neg).backward()
    assert model.user_id.grad.abs().sum() > 0 and model.item_id.grad.abs().sum() > 0


def test_an_item_without_content_of_a_modality_leaves_it_out(tiny_dataset):
    masks = {"visual": np.array([True, True, False, True, True]), "acoustic": np.ones(5, dtype=bool)}
    data = dataclasses.replace(tiny_dataset, content_masks=masks)
    model = _model(data, item_graph_k=2, num_layers=0)
    with torch.no_grad():
        emb = model.embed()
    assert emb.parts["visual"][1][2].abs().max() == 0  # no content, no visual vector
    assert emb.parts["acoustic"][1][2].abs().max() > 0
    knn = model._catalogue["visual"][1].toarray()
    assert (knn[:, 2] == 0).all() and (knn[2] == 0).all()  # nor visual neighbours


def test_calibration_scales_and_offsets_new_items_only(tiny_dataset):
    """Candidates: every scale with every offset (multiples of the mean top-1/top-k score
    gap), the neutral scale 1 / offset 0 first; an applied candidate scores the items
    represented as new items lambda * y + o and leaves the others alone, and is saved."""
    model = _model(tiny_dataset, item_graph_k=2, edgeless_items="content", calibrate_new_items=(0.0, 0.5, 1.0),
                   calibrate_new_scales=(1.0, 2.0))
    candidates = model.calibration_candidates()
    assert len(candidates) == 6 and candidates[0] == {"new_item_scale": 1.0, "new_item_offset": 0.0}
    gap = candidates[2]["new_item_offset"]
    assert gap > 0 and candidates[1]["new_item_offset"] == pytest.approx(gap / 2)
    assert [c["new_item_scale"] for c in candidates[3:]] == [2.0, 2.0, 2.0]
    assert [c["new_item_offset"] / gap for c in candidates[3:]] == pytest.approx([0.0, 0.5, 1.0])
    with torch.no_grad():
        before = model.score(torch.arange(4), emb=model.ranking_embed())
        model.apply_calibration(candidates[4])
        after = model.score(torch.arange(4), emb=model.ranking_embed())
    torch.testing.assert_close(after[:, COLD], 2 * before[:, COLD] + gap / 2)
    torch.testing.assert_close(after[:, :COLD], before[:, :COLD])
    state = model.state_dict()
    assert float(state["new_item_offset"]) == pytest.approx(gap / 2) and float(state["new_item_scale"]) == 2.0
    # the candidates are computed uncalibrated, whatever was applied before
    assert model.calibration_candidates() == candidates
    assert _model(tiny_dataset, edgeless_items="own").calibration_candidates() == []


@pytest.mark.parametrize("extra", [{}, {"content_dropout": 0.5, "new_item_bias": True}, {"num_layers": 2},
                                   {"num_layers": 1, "item_graph_k": 0}])
def test_calibrated_embeddings_equal_a_recomputation_per_candidate(tiny_dataset, extra):
    """The one-pass representations of each candidate (the new items' rows rescaled and
    offset) give the very floats of applying the candidate and recomputing
    ``ranking_embed`` -- with a learned new-item bias, at depths whose 1/(L+1) is not a power
    of two, without the item graph -- and leave the last candidate applied."""
    model = _model(tiny_dataset, **{"item_graph_k": 2, **extra}, edgeless_items="content",
                   calibrate_new_items=(-1.0, 0.0, 0.5), calibrate_new_scales=(1.0, 3.0))
    if model.new_bias is not None:
        with torch.no_grad():
            model.new_bias.fill_(0.3)
    candidates = model.calibration_candidates()
    users = torch.arange(tiny_dataset.n_users)
    fast = [model.score(users, emb=emb) for emb in model.calibrated_embeddings(candidates)]
    assert not any(scores.requires_grad for scores in fast)
    assert float(model.new_item_scale) == candidates[-1]["new_item_scale"]
    assert float(model.new_item_offset) == pytest.approx(candidates[-1]["new_item_offset"])
    assert len(fast) == len(candidates) == 6
    for values, scores in zip(candidates, fast, strict=True):
        model.apply_calibration(values)
        with torch.no_grad():
            assert torch.equal(scores, model.score(users, emb=model.ranking_embed()))
    # the candidates differ on the new items, so a wrong derivation could not pass unnoticed
    assert not torch.allclose(fast[0][:, COLD], fast[-1][:, COLD])


def test_calibrated_embeddings_follow_the_item_policy(tiny_dataset):
    """With ``edgeless_items="own"`` the rows of items without a train edge are the model's
    own, whatever the calibration (given candidates explicitly: the model proposes none);
    no candidate yields nothing and leaves the calibration as it was."""
    model = _model(tiny_dataset, item_graph_k=2, edgeless_items="own")
    candidates = [{"new_item_scale": 1.0, "new_item_offset": 0.0}, {"new_item_scale": 3.0, "new_item_offset": 0.5}]
    users = torch.arange(tiny_dataset.n_users)
    with torch.no_grad():
        own = model.score(users, emb=model.ranking_embed())
    for emb in model.calibrated_embeddings(candidates):
        assert torch.equal(model.score(users, emb=emb), own)
    assert list(model.calibrated_embeddings([])) == [] and float(model.new_item_scale) == 3.0


def test_models_saved_before_the_scale_load_at_scale_one(tiny_dataset):
    """A state dict without ``new_item_scale`` (saved before it existed) loads strictly,
    ranking new items as it did then (scale 1, its own offset)."""
    model = _model(tiny_dataset, item_graph_k=2, edgeless_items="content")
    model.apply_calibration({"new_item_scale": 3.0, "new_item_offset": 0.5})
    old = {k: v for k, v in model.state_dict().items() if k != "new_item_scale"}
    fresh = _model(tiny_dataset, item_graph_k=2, edgeless_items="content")
    fresh.new_item_scale.fill_(2.0)
    fresh.load_state_dict(old)
    assert float(fresh.new_item_scale) == 1.0 and float(fresh.new_item_offset) == 0.5


def test_no_calibration_keeps_the_scale_grid_neutral():
    """With no offsets to try, the scale grid is moot: one config (and one hash), scale 1."""
    config = MMGCNPlusConfig(calibrate_new_items=(), calibrate_new_scales=(1.0, 2.0))
    assert config.calibrate_new_scales == (1.0,)
    assert MMGCNPlusConfig().calibrate_new_scales == (1.0, 2.0, 3.0, 4.0)


def test_trains_and_beats_chance_on_synthetic_data():
    data = make_synthetic(120, 80, modalities={"image": 8}, interactions_per_user=10, seed=0, progress=False)
    torch.manual_seed(0)
    model = build_model("mmgcn-plus", data, {"align_weight": 0.1, "content_dropout": 0.2})
    result = Trainer(model, data, TrainConfig(epochs=15, batch_size=128, lr=5e-3, progress=False,
                                              ks=(10,), metric="recall@10")).fit()
    chance = 10 / data.n_items
    assert result.test.metrics["recall@10"] > 2 * chance


def test_config_validation(tiny_dataset):
    for bad in ({"content_dropout": 1.0}, {"align_temperature": 0.0}, {"item_graph_k": -1},
                {"feature_transform": "minmax"}, {"calibrate_new_items": (-10.0,)}, {"align_weight": -0.1},
                {"calibrate_new_scales": ()}, {"calibrate_new_scales": (0.0,)},
                {"ssl_weight": -0.1}, {"ssl_temperature": 0.0}, {"ssl_noise_eps": -1.0}):
        with pytest.raises(ValueError):
            _model(tiny_dataset, **bad)
