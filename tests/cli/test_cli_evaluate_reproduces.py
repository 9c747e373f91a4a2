"""``mmgcn evaluate RUN --split test`` reproduces the trainer's ``test_metrics.json`` exactly,
for every built-in model and both protocols: one item-representation policy, saved with the
run, honoured by every path."""

from __future__ import annotations

import json

import pytest
import torch

import mmgcn.train.loading as loading
from mmgcn.cli import main
from mmgcn.data.synthetic import make_synthetic
from mmgcn.models.base import MODEL_REGISTRY, available_models, build_model
from mmgcn.train import run_dir as rd
from mmgcn.train.trainer import TrainConfig, Trainer

BUILTIN = [name for name in available_models() if MODEL_REGISTRY[name].__module__.startswith("mmgcn.models")]


@pytest.fixture(scope="module")
def synthetic():
    # 25% of the items held out entirely: valid/test hold items without any train edge
    data = make_synthetic(60, 40, modalities={"image": 6, "text": 4}, interactions_per_user=8,
                          cold_item_fraction=0.25, seed=3, progress=False)
    assert data.cold_items("test").size >= 2
    return data


@pytest.mark.parametrize("protocol", ["standard", "cold-start"])
@pytest.mark.parametrize("name", BUILTIN)
def test_evaluate_reproduces_the_trainers_test_metrics(synthetic, tmp_path, monkeypatch, capsys, name, protocol):
    monkeypatch.setattr(loading, "load_dataset", lambda *args, **kwargs: synthetic)
    cold_start = protocol == "cold-start"
    uses_content = MODEL_REGISTRY[name].uses_content
    model_config = {"edgeless_items": "content"} if cold_start and uses_content else {}
    train = TrainConfig(epochs=2, batch_size=64, progress=False, ks=(2, 5), metric="recall@5",
                        negatives="train-items" if cold_start else "all")
    torch.manual_seed(0)
    model = build_model(name, synthetic, model_config)
    run_dir = tmp_path / "run"
    Trainer(model, synthetic, train, run_dir, run_config={"run": {"model": name, "dataset": "synthetic"}},
            cold_only_test=cold_start and uses_content).fit()
    recorded = json.loads((run_dir / rd.TEST_METRICS_FILE).read_text())

    assert main(["evaluate", str(run_dir), "--split", "test", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["metrics"] == recorded["metrics"]
    assert again["groups"] == {g: {**v, "seconds": again["groups"][g]["seconds"]} for g, v in recorded["groups"].items()}
    assert (again["n_users"], again["mask"]) == (recorded["n_users"], recorded["mask"])
    if "cold_only" in recorded:
        assert main(["evaluate", str(run_dir), "--split", "test", "--cold-only", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["metrics"] == recorded["cold_only"]["metrics"]
