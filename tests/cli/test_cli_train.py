"""``mmgcn train`` / ``mmgcn evaluate`` end to end on the tiny dataset, and config errors."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
import yaml
from torch import nn

import mmgcn.cli.train as cli_train
import mmgcn.train.loading as loading
from mmgcn.cli import main
from mmgcn.data.dataset import Dataset
from mmgcn.models.base import MODEL_REGISTRY, Embeddings, ModelConfig, Recommender, register_model
from mmgcn.nn.losses import bpr_loss
from mmgcn.train import run_dir as rd


@dataclass(frozen=True)
class CliMFConfig(ModelConfig):
    dim: int = 4


class CliMF(Recommender):
    name = "tiny-mf-cli-test"
    Config = CliMFConfig
    train_defaults = {"lr": 0.05, "ks": [1, 2], "metric": "recall@2"}

    def __init__(self, config: CliMFConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        self.users = nn.Parameter(torch.randn(self.n_users, config.dim) * 0.1)
        self.items = nn.Parameter(torch.randn(self.n_items, config.dim) * 0.1)

    def embed(self) -> Embeddings:
        return Embeddings(self.users, self.items)

    def loss(self, users, pos, neg):
        u = self.users[users]
        return bpr_loss((u * self.items[pos]).sum(1), (u * self.items[neg]).sum(1))


if CliMF.name not in MODEL_REGISTRY:
    register_model(CliMF)


@pytest.fixture
def tiny_loader(tiny_dataset, monkeypatch):
    calls = []

    def fake_load(name, data_dir=None, **kwargs):
        calls.append((name, data_dir, kwargs))
        return tiny_dataset

    monkeypatch.setattr(cli_train, "load_dataset", fake_load)
    monkeypatch.setattr(loading, "load_dataset", fake_load)  # `mmgcn evaluate` goes through load_run
    return calls


def train_args(run_dir, *extra):
    return ["train", "--model", CliMF.name, "--dataset", "tiny", "--run-dir", str(run_dir),
            "--set", "train.epochs=3", "--set", "train.progress=false", *extra]


def test_train_then_evaluate(tmp_path, tiny_loader, capsys):
    run_dir = tmp_path / "run"
    config_file = tmp_path / "exp.yaml"
    config_file.write_text(yaml.safe_dump({"model": {"dim": 6}, "train": {"epochs": 9, "lr": 0.02},
                                           "dataset": {"split": "default"}}))
    code = main(train_args(run_dir, "--config", str(config_file), "--seed", "5", "--data-dir", "/data"))
    assert code == 0
    out = capsys.readouterr().out
    assert "test, mask train+valid" in out and "recall" in out and "cold items" in out
    resolved = yaml.safe_load((run_dir / rd.CONFIG_FILE).read_text())
    # defaults < model's train_defaults < file < --set < --seed
    assert resolved["train"]["epochs"] == 3          # --set beats the file's 9
    assert resolved["train"]["lr"] == 0.02           # the file beats the model's 0.05
    assert resolved["train"]["ks"] == [1, 2]         # the model's train_defaults beat TrainConfig's
    assert resolved["train"]["seed"] == 5
    assert resolved["model"]["dim"] == 6 and resolved["model"]["reg_weight"] == ModelConfig.reg_weight
    assert resolved["run"] == {"model": CliMF.name, "dataset": "tiny", "data_dir": "/data"}
    assert tiny_loader[0] == ("tiny", "/data", {"split": "default"})
    assert len(rd.read_jsonl(run_dir / rd.METRICS_FILE)) == 3

    test_json = json.loads((run_dir / rd.TEST_METRICS_FILE).read_text())
    assert main(["evaluate", str(run_dir), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["metrics"] == pytest.approx(test_json["metrics"])
    assert evaluated["epoch"] == test_json["best_epoch"]
    assert main(["evaluate", str(run_dir), "--split", "valid", "--mask", "train", "--ks", "1"]) == 0
    assert "split valid, mask train" in capsys.readouterr().out
    assert main(["evaluate", str(run_dir), "--cold-only"]) == 0
    assert "cold items only: 1 users (3 skipped), 1 candidate items" in capsys.readouterr().out
    # sections other tools record in config.yaml (the benchmark's 'bench') do not break evaluate
    recorded = yaml.safe_load((run_dir / rd.CONFIG_FILE).read_text())
    (run_dir / rd.CONFIG_FILE).write_text(yaml.safe_dump({**recorded, "bench": {"seed": 0}}))
    assert main(["evaluate", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == pytest.approx(test_json["metrics"])


def test_resume_continues_with_the_recorded_config(tmp_path, tiny_loader, capsys):
    run_dir = tmp_path / "run"
    assert main(train_args(run_dir)) == 0
    # a second plain run into the same directory is refused
    assert main(train_args(run_dir)) == 2
    assert "--resume" in capsys.readouterr().err
    # resume with more epochs: no --model / --dataset needed, they come from config.yaml
    assert main(["train", "--resume", "--run-dir", str(run_dir), "--set", "train.epochs=5"]) == 0
    assert [r["epoch"] for r in rd.read_jsonl(run_dir / rd.METRICS_FILE)] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "train.bogus=1"], "unknown key(s) ['bogus']"),
        (["--set", "model.layers=2"], "unknown key(s) ['layers']"),
        (["--set", "epochs=2"], "unknown section(s) ['epochs']"),
        (["--set", "train.metric=recall@20"], "k in train.ks"),
        (["--set", "train.epochs=two"], "expected an integer"),
    ],
)
def test_unknown_or_bad_keys_exit_with_an_error(tmp_path, tiny_loader, capsys, extra, message):
    code = main(train_args(tmp_path / "run", *extra))
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / rd.LAST_CHECKPOINT).exists()


def test_config_file_errors_name_the_file(tmp_path, tiny_loader, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer: {epochs: 3}\n")
    assert main(train_args(tmp_path / "run", "--config", str(bad))) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "unknown section(s) ['trainer']" in err


def test_dataset_keys_are_checked_against_the_loader(monkeypatch):
    import sys
    import types

    def strict_loader(name, data_dir=None, split="default", modalities=None):
        return (name, split)

    fake = types.ModuleType("mmgcn.data.registry")
    fake.load_dataset = strict_loader
    monkeypatch.setitem(sys.modules, "mmgcn.data.registry", fake)
    assert cli_train.load_dataset("tiny", None, split="x") == ("tiny", "x")
    with pytest.raises(ValueError, match=r"dataset: unknown key\(s\) \['splt'\]"):
        cli_train.load_dataset("tiny", None, splt="x")


def test_missing_model_name_and_missing_run(tmp_path, tiny_loader, capsys):
    assert main(["train", "--dataset", "tiny", "--run-dir", str(tmp_path / "r")]) == 2
    assert "--model NAME" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 2
    assert "written by 'mmgcn train'" in capsys.readouterr().err
