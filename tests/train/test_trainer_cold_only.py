"""The trainer's final test ranked among cold test items only (the cold-start protocol)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from mmgcn.data.synthetic import make_synthetic
from mmgcn.eval.evaluator import evaluate
from mmgcn.models import build_model
from mmgcn.models.base import Embeddings
from mmgcn.train import run_dir as rd
from mmgcn.train.trainer import TrainConfig, Trainer
from mmgcn.utils.seed import seed_everything

QUICK = {"epochs": 1, "batch_size": 4, "progress": False, "ks": (1, 2), "metric": "recall@2"}


def test_cold_only_ranking_on_the_tiny_dataset(tiny_dataset, tmp_path):
    # item 4 is the only cold test item; user 2 holds it: among the cold items it is
    # ranked first whatever the model, so every metric is 1 (hand-computed)
    assert tiny_dataset.cold_items("test").tolist() == [4]
    seed_everything(0)
    model = build_model("vbpr", tiny_dataset)
    result = Trainer(model, tiny_dataset, TrainConfig(**QUICK), tmp_path / "run", cold_only_test=True).fit()
    cold = result.test_cold_only
    assert cold is not None and cold.n_candidates == 1
    assert cold.users.tolist() == [2] and cold.n_users_skipped == tiny_dataset.n_users - 1
    assert cold.metrics["recall@1"] == 1.0 and cold.metrics["ndcg@1"] == 1.0
    # the all-items ranking is unchanged by the extra ranking
    assert result.test.n_candidates == tiny_dataset.n_items and result.test.users.tolist() == [0, 2]

    recorded = json.loads((tmp_path / "run" / rd.TEST_METRICS_FILE).read_text())
    assert recorded["cold_only"]["n_candidates"] == 1
    assert recorded["cold_only"]["metrics"]["recall@1"] == 1.0
    with np.load(tmp_path / "run" / rd.TEST_PER_USER_FILE, allow_pickle=False) as arrays:
        assert arrays["cold-only/users"].tolist() == [2]
        assert arrays["cold-only/recall@1"].tolist() == [1.0]
        assert arrays["users"].tolist() == [0, 2]


def test_cold_only_ranking_equals_evaluating_among_cold_items():
    data = make_synthetic(60, 40, modalities={"image": 6}, interactions_per_user=8, cold_item_fraction=0.3,
                          seed=1, progress=False)
    cold_items = data.cold_items("test")
    assert cold_items.size >= 3
    seed_everything(0)
    model = build_model("vbpr", data)
    config = TrainConfig(epochs=2, batch_size=64, progress=False, ks=(2, 5), metric="recall@5")
    result = Trainer(model, data, config, cold_only_test=True).fit()
    direct = evaluate(model, data, "test", ks=(2, 5), candidate_items=cold_items)
    assert result.test_cold_only.metrics == direct.metrics
    # every cold-only positive is a cold item, so the users are those holding cold test items
    assert result.test_cold_only.users.tolist() == result.test.groups["cold"].users.tolist()


def test_no_cold_only_ranking_unless_asked_or_possible(tiny_dataset, tmp_path, caplog):
    seed_everything(0)
    result = Trainer(build_model("vbpr", tiny_dataset), tiny_dataset, TrainConfig(**QUICK), tmp_path / "a").fit()
    assert result.test_cold_only is None
    assert "cold_only" not in json.loads((tmp_path / "a" / rd.TEST_METRICS_FILE).read_text())

    warm_only = tiny_dataset.__class__(
        name="tiny-warm", n_users=4, n_items=5, train=tiny_dataset.train, valid=tiny_dataset.valid,
        test=_without_cold(tiny_dataset),
        features=tiny_dataset.features,
    )
    with caplog.at_level(logging.WARNING, logger="mmgcn.train.trainer"):
        result = Trainer(build_model("vbpr", warm_only), warm_only, TrainConfig(**QUICK), cold_only_test=True).fit()
    assert result.test_cold_only is None
    assert "no test item lacks train edges" in caplog.text


def _without_cold(dataset):
    test = dataset.test.tolil()
    for item in dataset.cold_items("test"):
        test[:, int(item)] = 0
    out = test.tocsr()
    out.eliminate_zeros()
    return out


@pytest.mark.parametrize("name", ["bpr", "popular"])
def test_id_only_models_still_rank_cold_items_when_asked(tiny_dataset, name):
    # the trainer does not judge models; the bench leaves ID-only models out of this ranking
    seed_everything(0)
    model = build_model(name, tiny_dataset)
    result = Trainer(model, tiny_dataset, TrainConfig(**QUICK), cold_only_test=True).fit()
    assert result.test_cold_only is not None and result.test_cold_only.n_candidates == 1


def _named_item_rows(model, n_items):
    """Every parameter with one row per item (ID embeddings, item biases), by name."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.shape[:1] == (n_items,)}


@pytest.mark.parametrize("name", ["vbpr", "concat", "mmgcn"])
def test_held_out_items_stay_out_of_training_and_are_scored_from_content(name):
    data = make_synthetic(60, 40, modalities={"image": 6}, interactions_per_user=8, cold_item_fraction=0.3,
                          seed=1, progress=False)
    edgeless = np.flatnonzero(np.diff(data.train.tocsc().indptr) == 0)
    assert edgeless.size >= 3
    config = TrainConfig(epochs=2, batch_size=64, progress=False, ks=(2, 5), metric="recall@5",
                         negatives="train-items")

    seed_everything(0)
    model = build_model(name, data, {"edgeless_items": "content"})
    before = _named_item_rows(model, data.n_items)
    assert before, "the model has no per-item parameters to check"
    trainer = Trainer(model, data, config, cold_only_test=True)
    result = trainer.fit()
    # the sampler never draws a held-out item ...
    negatives = trainer.sampler.sample_negatives(np.repeat(np.arange(data.n_users), 50))
    assert not np.isin(negatives, edgeless).any()
    # ... so their per-item rows (IDs, biases) are exactly as initialised, while others moved
    after = _named_item_rows(model, data.n_items)
    for key in before:
        assert torch.equal(before[key][edgeless], after[key][edgeless]), key
    assert any(not torch.equal(before[k], after[k]) for k in before)

    # evaluation represents them from content, as new items: the same numbers by hand
    with torch.no_grad():
        model.eval()
        emb = model.embed()
        new = model.represent_new_items({"image": data.features["image"][torch.from_numpy(edgeless)]})
        items = emb.items.clone()
        items[torch.from_numpy(edgeless)] = new.items
        scores_by_hand = emb.users @ items.T
        by_hand = Embeddings(emb.users, items)
    direct = evaluate(model, data, "test", ks=(2, 5), emb=by_hand, warm_cold=True)
    assert result.test.metrics == pytest.approx(direct.metrics)
    cold_direct = evaluate(model, data, "test", ks=(2, 5), emb=by_hand, candidate_items=data.cold_items("test"))
    assert result.test_cold_only.metrics == pytest.approx(cold_direct.metrics)
    # VBPR and MMGCN would otherwise score held-out items with their own (initial) ID rows;
    # the fusion models already zero the ID of an item without train edges (cold_item_ids)
    own = model.score(torch.arange(data.n_users))
    assert torch.allclose(own[:, edgeless], scores_by_hand[:, edgeless]) == (name == "concat")
    # the policy is the model's: ranking_embed() is the same by-hand representation
    with torch.no_grad():
        torch.testing.assert_close(model.ranking_embed().items, items)


def test_negatives_from_all_items_do_touch_held_out_items():
    # the default (as MMRec and the original): held-out items are drawn as negatives and
    # their ID rows are pushed around although no interaction of theirs was ever seen
    data = make_synthetic(60, 40, modalities={"image": 6}, interactions_per_user=8, cold_item_fraction=0.3,
                          seed=1, progress=False)
    edgeless = np.flatnonzero(np.diff(data.train.tocsc().indptr) == 0)
    seed_everything(0)
    model = build_model("vbpr", data)
    before = _named_item_rows(model, data.n_items)
    Trainer(model, data, TrainConfig(epochs=2, batch_size=64, progress=False, ks=(5,), metric="recall@5")).fit()
    after = _named_item_rows(model, data.n_items)
    assert any(not torch.equal(before[k][edgeless], after[k][edgeless]) for k in before)


def test_unknown_negatives_and_edgeless_policies_are_refused(tiny_dataset):
    with pytest.raises(ValueError, match="train.negatives 'cold'"):
        TrainConfig(negatives="cold")
    with pytest.raises(ValueError, match="edgeless_items: 'zero' is not one of"):
        build_model("vbpr", tiny_dataset, {"edgeless_items": "zero"})
    with pytest.raises(ValueError, match="reads no item content"):
        build_model("lightgcn", tiny_dataset, {"edgeless_items": "content"})
