"""Post-training calibration: chosen on the valid split, kept in the model's state and in
best.pt, applied before the single test evaluation (and reproduced by mmgcn evaluate)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

import mmgcn.train.loading as loading
from mmgcn.cli import main
from mmgcn.data.dataset import Dataset
from mmgcn.models.base import MODEL_REGISTRY, Embeddings, ModelConfig, Recommender, register_model
from mmgcn.nn.losses import bpr_loss
from mmgcn.train import run_dir as rd
from mmgcn.train.trainer import TrainConfig, Trainer


@dataclass(frozen=True)
class BoostConfig(ModelConfig):
    dim: int = 4


class Boosted(Recommender):
    """Near-zero MF plus a score offset ``boost - 1`` of items 2 and 3 (tiny_dataset's valid
    items): uncalibrated they rank last, any positive boost puts them first."""

    name = "boosted-mf-test"
    Config = BoostConfig

    def __init__(self, config: BoostConfig, dataset) -> None:
        super().__init__(config, dataset)
        generator = torch.Generator().manual_seed(0)
        self.users = nn.Parameter(torch.randn(self.n_users, config.dim, generator=generator) * 1e-3)
        self.items = nn.Parameter(torch.randn(self.n_items, config.dim, generator=generator) * 1e-3)
        self.register_buffer("boost", torch.zeros(()))
        self.tried: list[float] = []

    def embed(self) -> Embeddings:
        bonus = torch.zeros(self.n_items, 1)
        bonus[[2, 3]] = self.boost - 1.0
        return Embeddings(torch.cat([self.users, torch.ones(self.n_users, 1)], 1), torch.cat([self.items, bonus], 1))

    def loss(self, users, pos, neg):
        u = self.users[users]
        return bpr_loss((u * self.items[pos]).sum(1), (u * self.items[neg]).sum(1))

    def calibration_candidates(self) -> list[dict[str, float]]:
        return [{"boost": 0.0}, {"boost": 5.0}, {"boost": 50.0}]

    def apply_calibration(self, values: Mapping[str, float]) -> None:
        self.tried.append(values["boost"])
        self.boost.fill_(values["boost"])


if Boosted.name not in MODEL_REGISTRY:
    register_model(Boosted)


def test_calibration_is_chosen_on_valid_and_saved_with_the_run(tiny_dataset, tmp_path, monkeypatch, capsys):
    model = Boosted(BoostConfig(), tiny_dataset)
    run_dir = tmp_path / "run"
    config = TrainConfig(epochs=1, batch_size=4, progress=False, ks=(1, 2), metric="recall@1", lr=1e-4)
    result = Trainer(model, tiny_dataset, config, run_dir,
                     run_config={"run": {"model": Boosted.name, "dataset": "tiny"}}).fit()
    # every candidate was tried on valid; both boosts rank the valid items first, and the
    # first of equal values wins: 5.0
    assert model.tried[:3] == [0.0, 5.0, 50.0] and float(model.boost) == 5.0
    calibration = json.loads((run_dir / "calibration.json").read_text())
    assert calibration["chosen"]["values"] == {"boost": 5.0}
    assert calibration["tried"][1]["valid"] == 1.0 > calibration["tried"][0]["valid"]
    # the chosen boost is in best.pt: the evaluate command reproduces the trainer's test
    monkeypatch.setattr(loading, "load_dataset", lambda *args, **kwargs: tiny_dataset)
    assert main(["evaluate", str(run_dir), "--split", "test", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["metrics"] == json.loads((run_dir / rd.TEST_METRICS_FILE).read_text())["metrics"]
    assert result.test is not None


def test_models_without_calibration_are_untouched(tiny_dataset, tmp_path):
    from mmgcn.models import build_model

    trainer = Trainer(build_model("bpr", tiny_dataset), tiny_dataset,
                      TrainConfig(epochs=1, batch_size=4, progress=False, ks=(1, 2), metric="recall@1"), tmp_path / "r")
    trainer.fit()
    assert trainer.calibration is None and not (tmp_path / "r" / "calibration.json").exists()


class FixedScores(Recommender):
    """Hand-set scores (rows: users) plus a calibrated offset of item 4, the item with no
    train edge in :func:`_cold_valid_dataset`."""

    name = "fixed-scores-test"
    Config = BoostConfig
    SCORES = [[0.0, 0.0, 1.0, 0.0, 0.5], [0.0, 0.0, 0.0, 1.0, 0.9], [0.5, 0.5, 0.0, 0.0, 0.2], [0.0, 1.0, 0.0, 0.0, 0.0]]

    def __init__(self, config: BoostConfig, dataset) -> None:
        super().__init__(config, dataset)
        self.register_buffer("table", torch.tensor(self.SCORES))
        self.register_buffer("offset", torch.zeros(()))
        self.unused = nn.Parameter(torch.zeros(1))

    def embed(self) -> Embeddings:
        cold = torch.zeros(self.n_items, 1)
        cold[4] = self.offset
        return Embeddings(torch.cat([torch.eye(self.n_users), torch.ones(self.n_users, 1)], 1),
                          torch.cat([self.table.T, cold], 1))

    def loss(self, users, pos, neg):
        return (self.unused ** 2).sum()

    def calibration_candidates(self) -> list[dict[str, float]]:
        return [{"offset": 0.0}, {"offset": 0.35}, {"offset": 1.0}]

    def apply_calibration(self, values: Mapping[str, float]) -> None:
        self.offset.fill_(values["offset"])


if FixedScores.name not in MODEL_REGISTRY:
    register_model(FixedScores)


def _cold_valid_dataset():
    """4 users x 5 items; valid u0 {2}, u1 {3}, u2 {4}: item 4 has no train edge."""
    def csr(pairs):
        rows, cols = zip(*pairs)
        return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(4, 5))

    return Dataset(name="cold-valid", n_users=4, n_items=5,
                   train=csr([(0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (2, 3), (3, 0)]),
                   valid=csr([(0, 2), (1, 3), (2, 4)]), test=csr([(3, 1)]), features={})


def test_calibration_tolerance_trades_valid_hits_for_cold_items(tmp_path):
    """Recall@1 on valid, by hand: offset 0 -> u0, u1 hit, u2 (cold item 4) misses: 2/3,
    cold 0; offset 0.35 -> u0, u2 hit, u1 loses item 3 to item 4: 2/3, cold 1; offset 1 ->
    only u2: 1/3, cold 1. Without a tolerance the neutral first of equal candidates wins;
    with one, the most cold hits within it (the earlier on ties); never one below it."""
    data = _cold_valid_dataset()

    def chosen(tolerance):
        model = FixedScores(BoostConfig(), data)
        config = TrainConfig(epochs=1, batch_size=4, progress=False, ks=(1,), metric="recall@1",
                             calibration_tolerance=tolerance)
        trainer = Trainer(model, data, config, tmp_path / f"r{tolerance}")
        trainer.fit(evaluate_test=False)
        return float(model.offset), trainer.calibration

    offset, calibration = chosen(0.0)
    assert offset == 0.0 and "tolerance" not in calibration and "valid_cold" not in calibration["tried"][0]
    offset, calibration = chosen(0.1)
    assert offset == pytest.approx(0.35) and calibration["tolerance"] == 0.1
    assert [(t["valid"], t["valid_cold"]) for t in calibration["tried"]] == [
        (2 / 3, 0.0), (2 / 3, 1.0), (1 / 3, 1.0)]
    assert json.loads((tmp_path / "r0.1" / "calibration.json").read_text())["chosen"]["values"] == {"offset": 0.35}
    assert chosen(0.6)[0] == pytest.approx(0.35)  # every candidate within it: the earlier of the cold ties
    with pytest.raises(ValueError, match="calibration_tolerance"):
        TrainConfig(calibration_tolerance=1.0)
