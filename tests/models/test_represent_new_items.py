"""Content-only representations of unseen items (``Recommender.represent_new_items``).

The contract: a new item is what a dataset item without train edges is, minus its own ID
embedding. On ``tiny_dataset`` item 4 has no train edge, so zeroing its ID terms must make
``embed()``'s item 4 score exactly like ``represent_new_items(features of item 4)``.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mmgcn.models import build_model, model_class
from mmgcn.models.base import NewItemsUnsupportedError

COLD, WARM = 4, 1

CONTENT_MODELS = [
    ("mmgcn", {}),
    ("mmgcn", {"fusion": "attention", "combine": "ele", "aggr": "sym"}),
    ("mmgcn-faithful", {"latent_dim": 8}),
    ("vbpr", {}),
    ("concat", {}),
    ("concat", {"hidden_dims": ()}),
    ("concat", {"score_head": "mlp"}),
    ("concat-graph", {"hidden_dims": ()}),
    ("attention", {}),
    ("attention", {"user_conditioned": True}),
    ("attention-graph", {"feature_norm": "zscore"}),
    ("lgmrec", {}),
    ("lgmrec", {"modality_layers": 0, "hyper_layers": 2}),
    ("dragon", {"knn_k": 2, "user_k": 2}),
    ("grcn", {}),
]


def _trained_looking(name: str, config: dict, dataset) -> torch.nn.Module:
    """A model with non-trivial weights (zero-initialised biases would hide mistakes)."""
    torch.manual_seed(0)
    model = build_model(name, dataset, config)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.2 * torch.randn_like(param))
    model.eval()
    return model


def _zero_id_terms(model, item: int) -> None:
    """Remove ``item``'s own ID terms (what a never-seen item lacks)."""
    with torch.no_grad():
        if model.name.startswith("mmgcn"):
            model.item_id[item] = 0.0
        elif model.name == "vbpr":
            model.item_id[item] = 0.0
            model.bias_id[item] = 0.0
        elif model.name in ("lgmrec", "grcn"):
            model.item_embedding[item] = 0.0
        # dragon has no item ID embedding
        # fusion models already zero the ID rows of items without train edges


def _features(dataset, items: list[int]) -> dict[str, torch.Tensor]:
    return {m: f[items] for m, f in dataset.features.items()}


@pytest.mark.parametrize(("name", "config"), CONTENT_MODELS, ids=lambda v: str(v))
def test_cold_item_equals_new_item_up_to_its_id_terms(tiny_dataset, name, config):
    assert tiny_dataset.train[:, COLD].nnz == 0 and tiny_dataset.train[:, WARM].nnz > 0
    model = _trained_looking(name, config, tiny_dataset)
    _zero_id_terms(model, COLD)
    users = torch.arange(tiny_dataset.n_users)
    emb = model.embed()
    new = model.represent_new_items(_features(tiny_dataset, [COLD, WARM]))

    assert new.items.shape == (2, emb.items.shape[1])
    assert torch.equal(new.users, emb.users)
    assert sorted(new.parts) == sorted(emb.parts)
    new_scores = model.score(users, emb=new)
    assert new_scores.shape == (tiny_dataset.n_users, 2)
    old_scores = model.score(users, emb=emb)
    torch.testing.assert_close(new_scores[:, 0], old_scores[:, COLD], atol=1e-5, rtol=1e-5)
    # a warm item's score uses its ID embedding (and graph neighbours): content alone differs
    assert (new_scores[:, 1] - old_scores[:, WARM]).abs().max() > 1e-3
    if emb.parts or model.name.startswith("attention"):
        parts = model.score_parts(users, emb=new)
        torch.testing.assert_close(sum(parts.values()), new_scores, atol=1e-5, rtol=1e-5)


def test_new_items_need_no_grad_and_keep_the_mode(tiny_dataset):
    has_dropout = "dropout" in {f.name for f in dataclasses.fields(model_class("mmgcn").Config)}
    model = build_model("mmgcn", tiny_dataset, {"dropout": 0.5} if has_dropout else {})
    model.train()
    new = model.represent_new_items(_features(tiny_dataset, [0, 1, 2]))
    assert model.training and not new.items.requires_grad
    again = model.represent_new_items(_features(tiny_dataset, [0, 1, 2]))
    assert torch.equal(new.items, again.items)  # eval mode inside: no dropout noise


def test_mmgcn_parts_are_per_modality_and_sum_to_the_item(tiny_dataset):
    model = _trained_looking("mmgcn", {}, tiny_dataset)
    new = model.represent_new_items(_features(tiny_dataset, [COLD]))
    assert list(new.parts) == list(tiny_dataset.features)
    torch.testing.assert_close(sum(i for _, i in new.parts.values()), new.items)


@pytest.mark.parametrize("name", ["bpr", "lightgcn", "popular"])
def test_id_only_models_refuse(tiny_dataset, name):
    model = build_model(name, tiny_dataset)
    assert not model.uses_content
    with pytest.raises(NewItemsUnsupportedError, match="cannot represent items without interactions"):
        model.represent_new_items(_features(tiny_dataset, [COLD]))


@pytest.mark.parametrize("name", ["mmgcn", "vbpr", "attention"])
def test_bad_new_item_features_are_refused(tiny_dataset, name):
    model = build_model(name, tiny_dataset)
    good = _features(tiny_dataset, [COLD])
    with pytest.raises(ValueError, match=r"lack \['acoustic'\]"):
        model.represent_new_items({"visual": good["visual"]})
    with pytest.raises(ValueError, match=r"unknown \['audio'\]"):
        model.represent_new_items({**good, "audio": torch.zeros(1, 3)})
    with pytest.raises(ValueError, match=r"'visual' must be \(n_new, 6\)"):
        model.represent_new_items({**good, "visual": torch.zeros(1, 5)})
    with pytest.raises(ValueError, match="same positive number of rows"):
        model.represent_new_items({**good, "visual": torch.zeros(2, 6)})
    with pytest.raises(ValueError, match="NaN or inf"):
        model.represent_new_items({**good, "acoustic": torch.full((1, 3), float("nan"))})


def test_with_item_rows_replaces_item_rows_only():
    from mmgcn.models.base import Embeddings
    from mmgcn.models.fusion_base import AttentionEmbeddings

    users, items = torch.arange(6.0).reshape(3, 2), torch.zeros(4, 2)
    parts = {"id": (users, items), "image": (users + 1, items + 1)}
    new = Embeddings(users * 0, torch.tensor([[7.0, 7.0], [9.0, 9.0]]),
                     {"id": (users, torch.full((2, 2), 5.0)), "image": (users, torch.full((2, 2), 6.0))})
    out = Embeddings(users, items, parts).with_item_rows(torch.tensor([3, 1]), new)
    assert torch.equal(out.users, users) and torch.equal(items, torch.zeros(4, 2))  # input untouched
    assert out.items.tolist() == [[0, 0], [9, 9], [0, 0], [7, 7]]
    assert out.parts["id"][1][:, 0].tolist() == [0, 5, 0, 5] and out.parts["image"][1][:, 0].tolist() == [1, 6, 1, 6]
    assert torch.equal(out.parts["image"][0], users + 1)
    with pytest.raises(ValueError, match=r"\(2, 2\) new rows for 3 items"):
        Embeddings(users, items).with_item_rows(torch.tensor([0, 1, 2]), new)
    # attention embeddings also carry per-item parts, keys and masks
    att = AttentionEmbeddings(users, items, {}, torch.zeros(4, 2, 2), torch.zeros(4, 2, 1), torch.ones(4, 2, dtype=torch.bool))
    new_att = AttentionEmbeddings(users, torch.ones(1, 2), {}, torch.ones(1, 2, 2), torch.ones(1, 2, 1),
                                  torch.tensor([[True, False]]))
    out = att.with_item_rows(torch.tensor([2]), new_att)
    assert out.part_vectors[2].sum() == 4 and out.part_vectors[[0, 1, 3]].sum() == 0
    assert out.part_mask[2].tolist() == [True, False] and out.part_mask[0].tolist() == [True, True]
    with pytest.raises(TypeError, match="cannot mix"):
        att.with_item_rows(torch.tensor([2]), new)
