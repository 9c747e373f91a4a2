"""MMGCN: shapes, gradients, faithful flags, layers, combine modes, cold items, training."""

from __future__ import annotations

import pytest
import torch

from mmgcn.config import ConfigError
from mmgcn.models import build_model
from mmgcn.models.mmgcn import MMGCN, MMGCNFaithful
from mmgcn.nn.mmgcn_conv import MMGCNConv

# tiny_dataset: train u0 {0,1}, u1 {1,2}, u2 {2,3}, u3 {0}; item 4 cold; visual 6-d, acoustic 3-d
TRIPLES = (torch.tensor([0, 0, 1, 1, 2, 2, 3]), torch.tensor([0, 1, 1, 2, 2, 3, 0]), torch.tensor([4, 3, 0, 4, 0, 1, 2]))


def _model(dataset, name="mmgcn", seed=0, **config):
    torch.manual_seed(seed)
    return build_model(name, dataset, {"dim": 8, **config})


def _train_steps(model, steps=5, lr=0.01):
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = model.loss(*TRIPLES)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_shapes_and_registry(tiny_dataset):
    model = _model(tiny_dataset, latent_dim=5)
    assert isinstance(model, MMGCN) and model.uses_content and model.trainable
    emb = model.embed()
    assert emb.users.shape == (4, 8) and emb.items.shape == (5, 8)
    assert set(emb.parts) == {"visual", "acoustic"}
    assert model.score(torch.tensor([0, 2])).shape == (2, 5)
    assert model.score(torch.tensor([1]), torch.tensor([0, 4])).shape == (1, 2)
    assert isinstance(build_model("mmgcn-faithful", tiny_dataset), MMGCNFaithful)
    with pytest.raises(ConfigError, match="unknown key"):
        build_model("mmgcn", tiny_dataset, {"layers": 2})
    with pytest.raises(ConfigError, match="num_layers"):
        build_model("mmgcn", tiny_dataset, {"num_layers": 0})


@pytest.mark.parametrize("fusion", ["mean", "sum", "attention"])
def test_parts_decompose_the_score_exactly(tiny_dataset, fusion):
    model = _model(tiny_dataset, fusion=fusion)
    emb = model.embed()
    by_parts = sum(u @ i.T for u, i in emb.parts.values())
    torch.testing.assert_close(by_parts, emb.users @ emb.items.T)


def test_gradients_reach_ids_preferences_and_every_projection(tiny_dataset):
    model = _model(tiny_dataset)
    model.loss(*TRIPLES).backward()
    for name in ("user_id", "item_id"):
        grad = getattr(model, name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    for m, gcn in model.gcns.items():
        assert gcn.projection is not None, m  # correct mode projects every modality
        assert gcn.preference.grad.abs().sum() > 0, m
        assert gcn.projection.weight.grad.abs().sum() > 0, m
        for layer in gcn.layers:
            assert layer.aggregate_weight.weight.grad.abs().sum() > 0, m


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_faithful_defaults_freeze_ids_and_preferences(tiny_dataset):
    model = _model(tiny_dataset, "mmgcn-faithful", project_modalities=["visual"])
    cfg = model.config
    assert (cfg.num_layers, cfg.combine, cfg.latent_dim) == (3, "concat", 256)
    assert not model.user_id.requires_grad and not model.item_id.requires_grad
    assert all(not gcn.preference.requires_grad for gcn in model.gcns.values())
    # only the visual modality is projected (to 256-d); acoustic enters raw (3-d)
    assert model.gcns["visual"].projection.out_features == 256
    assert model.gcns["visual"].preference.shape == (4, 256)
    assert model.gcns["acoustic"].projection is None
    assert model.gcns["acoustic"].preference.shape == (4, 3)
    assert all(len(gcn.layers) == 3 for gcn in model.gcns.values())
    before = _snapshot(model)
    _train_steps(model, steps=2)
    after = _snapshot(model)
    frozen = {"user_id", "item_id", "gcns.visual.preference", "gcns.acoustic.preference"}
    for name in frozen:
        assert torch.equal(before[name], after[name]), name
    changed = [n for n in before if n not in frozen and not torch.equal(before[n], after[n])]
    assert "gcns.visual.projection.weight" in changed and len(changed) > 10


def test_faithful_default_projects_image_only_and_ignores_absent_names(tiny_dataset):
    # the default ("image",) is absent from the tiny dataset: nothing is projected
    model = _model(tiny_dataset, "mmgcn-faithful")
    assert model.projected == ()
    assert all(gcn.projection is None for gcn in model.gcns.values())


@pytest.mark.parametrize(
    "flag, frozen",
    [("train_id_embedding", {"user_id", "item_id"}), ("train_preference", {"gcns.visual.preference", "gcns.acoustic.preference"})],
)
def test_each_freezing_flag_is_separate(tiny_dataset, flag, frozen):
    model = _model(tiny_dataset, **{flag: False})
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not (frozen & trainable)
    all_frozen = {"user_id", "item_id", "gcns.visual.preference", "gcns.acoustic.preference"}
    assert all_frozen - frozen <= trainable
    before = _snapshot(model)
    _train_steps(model, steps=2)
    for name in all_frozen:
        assert torch.equal(before[name], model.get_parameter(name)) == (name in frozen), name


def test_num_layers_sets_the_receptive_field(tiny_dataset):
    """Perturbing item 3's features reaches exactly the nodes within num_layers hops."""
    changed_features = dict(tiny_dataset.features)
    changed_features["visual"] = changed_features["visual"].clone()
    changed_features["visual"][3] += 1.0
    perturbed = tiny_dataset.with_features(changed_features)
    for layers, users_hit, items_hit in ((1, {2}, {3}), (2, {2}, {2, 3}), (3, {1, 2}, {2, 3})):
        model = _model(tiny_dataset, num_layers=layers)
        twin = _model(perturbed, num_layers=layers)
        assert len(model.gcns["visual"].layers) == layers
        a, b = model.embed(), twin.embed()
        user_diff = {u for u in range(4) if not torch.allclose(a.users[u], b.users[u])}
        item_diff = {i for i in range(5) if not torch.allclose(a.items[i], b.items[i])}
        assert (user_diff, item_diff) == (users_hit, items_hit), layers


def test_concat_and_elementwise_differ_in_weights_and_outputs(tiny_dataset):
    concat = _model(tiny_dataset, combine="concat", latent_dim=5)
    ele = _model(tiny_dataset, combine="ele", latent_dim=5)
    first_concat, first_ele = concat.gcns["visual"].layers[0], ele.gcns["visual"].layers[0]
    assert first_concat.combine_weight.in_features == 5 + 8
    assert first_ele.combine_weight.in_features == 5
    assert not torch.allclose(concat.embed().items, ele.embed().items)


def test_conv_elementwise_rule_by_hand():
    """One MMGCNConv in ele mode against the update rule written out densely."""
    torch.manual_seed(0)
    import scipy.sparse as sp

    from mmgcn.nn.propagation import BipartitePropagation

    train = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 0, 1], [0, 1, 1])), shape=(2, 2))
    graph = BipartitePropagation(train, "left")
    conv = MMGCNConv(3, 2, combine="ele", negative_slope=0.2)
    users, items = torch.randn(2, 3), torch.randn(2, 3)
    uid, iid = torch.randn(2, 2), torch.randn(2, 2)
    out_users, _ = conv(users, items, graph, uid, iid)
    act = torch.nn.LeakyReLU(0.2)
    mean_u0 = (items[0] + items[1]) / 2  # user 0 averages items 0 and 1
    h = act(conv.aggregate_weight(mean_u0))
    x_hat = act(conv.self_weight(users[0])) + uid[0]
    torch.testing.assert_close(out_users[0], act(conv.combine_weight(h) + x_hat))


def test_cold_item_gets_a_content_based_representation(tiny_dataset):
    model = _model(tiny_dataset)
    cold = model.embed().items[4]  # item 4 has no train edge
    assert cold.abs().sum() > 0
    changed = dict(tiny_dataset.features)
    changed["acoustic"] = changed["acoustic"].clone()
    changed["acoustic"][4] = -changed["acoustic"][4] + 2.0
    twin = _model(tiny_dataset.with_features(changed))
    assert not torch.allclose(twin.embed().items[4], cold)
    torch.testing.assert_close(twin.embed().items[:4], model.embed().items[:4])


def test_recommend_masks_train_items(tiny_dataset):
    model = _model(tiny_dataset)
    scores, items = model.recommend(torch.arange(4), k=3, mask=("train",))
    for user in range(4):
        seen = set(tiny_dataset.train[user].indices.tolist())
        assert not seen & set(items[user].tolist())
    full_scores, full_items = model.recommend(torch.arange(4), k=5, mask=("train",))
    for user in range(4):
        seen = set(tiny_dataset.train[user].indices.tolist())
        for score, item in zip(full_scores[user].tolist(), full_items[user].tolist()):
            assert (score == float("-inf")) == (item in seen)


@pytest.mark.parametrize("name", ["mmgcn", "mmgcn-faithful"])
def test_training_reduces_the_loss_and_is_deterministic(tiny_dataset, name):
    losses = _train_steps(_model(tiny_dataset, name, fusion="attention"), steps=8)
    assert losses[-1] < losses[0]
    again = _train_steps(_model(tiny_dataset, name, fusion="attention"), steps=8)
    assert losses == again


def test_requires_features(tiny_dataset):
    with pytest.raises(ValueError, match="needs item features"):
        build_model("mmgcn", tiny_dataset.with_features({}))


@pytest.mark.parametrize("fusion", ["mean", "attention"])
def test_batch_restricted_loss_equals_loss_from_full_embedding(tiny_dataset, fusion):
    from mmgcn.nn.losses import bpr_loss, l2_reg

    model = _model(tiny_dataset, fusion=fusion, reg_weight=0.1, num_layers=2)
    users, pos, neg = TRIPLES
    emb = model.embed()
    u = emb.users[users]
    reg = l2_reg(model.user_id[users], model.item_id[pos], model.item_id[neg],
                 *[g.preference[users] for g in model.gcns.values()])
    expected = bpr_loss((u * emb.items[pos]).sum(1), (u * emb.items[neg]).sum(1)) + 0.1 * reg
    torch.testing.assert_close(model.loss(users, pos, neg), expected)


# ---------------------------------------------------------------- tuning switches
def test_faithful_config_pins_every_original_value():
    from mmgcn.models.mmgcn import MMGCNFaithfulConfig

    cfg = MMGCNFaithfulConfig()
    original = {
        "dim": 64, "reg_weight": 1e-4, "num_layers": 3, "aggr": "mean", "combine": "concat", "fusion": "mean",
        "latent_dim": 256, "project_modalities": ("image",), "train_id_embedding": False,
        "train_preference": False, "use_id": True, "normalize_input": True, "negative_slope": 0.01,
        "output_activation": True, "layer_combination": "last", "dropout": 0.0, "id_init_std": None,
        "preference_init_std": None, "standardize_features": False, "edgeless_items": "own",
    }
    assert {k: getattr(cfg, k) for k in original} == original
    import dataclasses

    assert {f.name for f in dataclasses.fields(cfg)} == set(original)


def test_linear_output_layer_is_the_pre_activation():
    """activate_output=False: the layer returns W_g h + b_g + x_hat without the outer LeakyReLU."""
    import scipy.sparse as sp

    from mmgcn.nn.propagation import BipartitePropagation

    torch.manual_seed(0)
    train = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 0, 1], [0, 1, 1])), shape=(2, 2))
    graph = BipartitePropagation(train, "left")
    act_conv = MMGCNConv(3, 2, combine="ele", negative_slope=0.2)
    lin_conv = MMGCNConv(3, 2, combine="ele", negative_slope=0.2, activate_output=False)
    lin_conv.load_state_dict(act_conv.state_dict())
    users, items, uid, iid = torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 2), torch.randn(2, 2)
    act = torch.nn.LeakyReLU(0.2)
    pre = lin_conv.combine_weight(act(lin_conv.aggregate_weight((items[0] + items[1]) / 2)))
    pre = pre + act(lin_conv.self_weight(users[0])) + uid[0]
    torch.testing.assert_close(lin_conv(users, items, graph, uid, iid)[0][0], pre)
    torch.testing.assert_close(act_conv(users, items, graph, uid, iid)[0][0], act(pre))


def test_output_activation_switch_lets_representations_go_negative(tiny_dataset):
    relu = _model(tiny_dataset, negative_slope=0.0, use_id=False)
    linear = _model(tiny_dataset, negative_slope=0.0, use_id=False, output_activation=False)
    assert relu.embed().items.min() >= 0  # ReLU output: never negative
    assert linear.embed().items.min() < 0
    # only the last layer changes: hidden layers keep their activation
    assert linear.gcns["visual"].layers[0].activate_output and not linear.gcns["visual"].layers[-1].activate_output


def test_layer_mean_averages_the_layers_outputs(tiny_dataset):
    model = _model(tiny_dataset, num_layers=3, layer_combination="mean")
    gcn = model.gcns["visual"]
    user_x = torch.nn.functional.normalize(gcn.preference, dim=1)
    item_x = torch.nn.functional.normalize(gcn.projection(model.features("visual")), dim=1)
    users_sum, items_sum = 0, 0
    for layer in gcn.layers:
        user_x, item_x = layer(user_x, item_x, model.graph, model.user_id, model.item_id)
        users_sum, items_sum = users_sum + user_x, items_sum + item_x
    users, items = gcn(model.features("visual"), model.graph, model.user_id, model.item_id)
    torch.testing.assert_close(users, users_sum / 3)
    torch.testing.assert_close(items, items_sum / 3)
    last = _model(tiny_dataset, num_layers=3)
    torch.testing.assert_close(last.gcns["visual"](model.features("visual"), model.graph, model.user_id,
                                                   model.item_id)[1], item_x)


def test_dropout_acts_in_training_only(tiny_dataset):
    plain = _model(tiny_dataset)
    dropped = _model(tiny_dataset, dropout=0.5)
    dropped.eval()
    torch.testing.assert_close(dropped.embed().items, plain.embed().items)  # same init, no dropout in eval
    dropped.train()
    torch.manual_seed(1)
    first = dropped.embed().items
    second = dropped.embed().items
    assert not torch.allclose(first, second)
    with pytest.raises(ValueError, match="dropout"):
        _model(tiny_dataset, dropout=1.0)


def test_init_scales_of_ids_and_preferences(tiny_dataset):
    model = _model(tiny_dataset, id_init_std=0.0, preference_init_std=0.0)
    assert model.user_id.abs().sum() == 0 and model.item_id.abs().sum() == 0
    assert all(gcn.preference.abs().sum() == 0 for gcn in model.gcns.values())
    wide = _model(tiny_dataset, dim=64, id_init_std=3.0, preference_init_std=3.0, latent_dim=256)
    assert 2.5 < wide.item_id.std().item() < 3.5
    assert 2.5 < wide.gcns["visual"].preference.std().item() < 3.5
    with pytest.raises(ValueError, match="id_init_std"):
        _model(tiny_dataset, id_init_std=-1.0)


def test_standardize_features_centres_and_scales_each_column(tiny_dataset):
    model = _model(tiny_dataset, standardize_features=True)
    feats = model.features("visual")
    # z-scored with the statistics of the items with train edges (0-3; item 4 is cold)
    warm = slice(0, 4)
    torch.testing.assert_close(feats[warm].mean(0), torch.zeros(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(feats[warm].std(0, unbiased=False), torch.ones(6))
    raw = tiny_dataset.features["visual"]
    torch.testing.assert_close(feats[:, 0], (raw[:, 0] - raw[warm, 0].mean()) / raw[warm, 0].std(unbiased=False))
    assert not torch.allclose(model.embed().items, _model(tiny_dataset).embed().items)
    # a new item with item 4's raw features is standardised with the catalogue's statistics
    with torch.no_grad():
        model.item_id[4] = 0.0
    new = model.represent_new_items({m: f[[4]] for m, f in tiny_dataset.features.items()})
    torch.testing.assert_close(new.items[0], model.embed().items[4])


@pytest.mark.parametrize("combination", ["last", "mean"])
def test_batch_restricted_loss_with_new_switches(tiny_dataset, combination):
    from mmgcn.nn.losses import bpr_loss, l2_reg

    model = _model(tiny_dataset, num_layers=3, layer_combination=combination, output_activation=False,
                   standardize_features=True, reg_weight=0.1)
    users, pos, neg = TRIPLES
    emb = model.embed()
    u = emb.users[users]
    reg = l2_reg(model.user_id[users], model.item_id[pos], model.item_id[neg],
                 *[g.preference[users] for g in model.gcns.values()])
    expected = bpr_loss((u * emb.items[pos]).sum(1), (u * emb.items[neg]).sum(1)) + 0.1 * reg
    torch.testing.assert_close(model.loss(users, pos, neg), expected)
