"""Sampled-subgraph training: fan-outs, refused models, training and bit-exact resume."""

from __future__ import annotations

import pytest
import torch

from mmgcn.data.synthetic import make_synthetic
from mmgcn.errors import ConfigError
from mmgcn.models.base import build_model
from mmgcn.train import run_dir as rd
from mmgcn.train.subgraph import SubgraphTraining, resolve_fanouts
from mmgcn.train.trainer import TrainConfig, Trainer
from mmgcn.utils.seed import seed_everything


def test_fanouts_and_unsupported_models():
    assert resolve_fanouts([7], 3, "m") == (7, 7, 7)
    assert resolve_fanouts([7, 3], 2, "m") == (7, 3)
    with pytest.raises(ConfigError, match="3 hops"):
        resolve_fanouts([7, 3], 3, "m")
    data = make_synthetic(30, 20, interactions_per_user=5, cold_item_fraction=0.0, seed=0, progress=False)
    with pytest.raises(ConfigError, match="cannot train on sampled subgraphs"):
        SubgraphTraining(build_model("bpr", data, {}), [5])
    for bad in ((5, 0), (-2,)):
        with pytest.raises(ValueError, match="num_neighbors"):
            TrainConfig(num_neighbors=bad)
    assert TrainConfig(num_neighbors=(-1, 5)).num_neighbors == (-1, 5)  # -1: every neighbour (PyG)


@pytest.mark.parametrize("name", ["lightgcn", "mmgcn"])
def test_trains_on_subgraphs_and_resumes_bit_for_bit(tmp_path, name):
    data = make_synthetic(150, 60, modalities={"image": 6}, interactions_per_user=8, cold_item_fraction=0.0,
                          seed=5, progress=False)
    config = TrainConfig(epochs=4, batch_size=64, lr=0.01, patience=10, progress=False, num_neighbors=(4,))

    def fit(run_dir, epochs, resume=False):
        seed_everything(0)
        model = build_model(name, data, {"num_layers": 2})
        cfg = TrainConfig(**{**config.__dict__, "epochs": epochs})
        return Trainer(model, data, cfg, run_dir, resume=resume).fit(evaluate_test=False), model

    full, model_full = fit(tmp_path / "a", 4)
    assert full.history[-1]["loss"] < full.history[0]["loss"]
    fit(tmp_path / "b", 2)
    resumed, model_resumed = fit(tmp_path / "b", 4, resume=True)
    assert [(r["loss"], r["valid"]) for r in resumed.history] == [(r["loss"], r["valid"]) for r in full.history]
    for key, value in model_full.state_dict().items():
        assert torch.equal(value, model_resumed.state_dict()[key])
    assert rd.read_jsonl(tmp_path / "b" / rd.METRICS_FILE)[-1]["epoch"] == 4
