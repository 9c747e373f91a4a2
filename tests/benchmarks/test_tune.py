"""benchmarks/tune.py: grids through the bench's engine, records in JSON, the log rendered from them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import mmgcn.data.registry as registry
from mmgcn.data.synthetic import make_synthetic

REPO = Path(__file__).resolve().parents[2]


def _tune_module():
    spec = importlib.util.spec_from_file_location("tune", REPO / "benchmarks" / "tune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_tune_runs_the_grid_engine_and_generates_the_log(tmp_path, monkeypatch, capsys):
    data = make_synthetic(60, 40, modalities={"image": 4}, interactions_per_user=8, seed=0, progress=False)
    monkeypatch.setattr(registry, "load_dataset", lambda *args, **kwargs: data)
    tune = _tune_module()
    argv = ["--dataset", "synthetic", "--model", "bpr", "--grid", "reg_weight=0.01,0.1",
            "--train", "epochs=2", "patience=2", "batch_size=128", "--seeds", "0", "1",
            "--out", str(tmp_path / "runs"), "--log-dir", str(tmp_path / "tuning"), "--note", "reg"]
    assert tune.main(argv) == 0
    records = list((tmp_path / "tuning" / "synthetic").glob("*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert [row["params"] for row in record["rows"]] == [{"reg_weight": 0.01}, {"reg_weight": 0.1}]
    assert sum(row["selected"] for row in record["rows"]) == 1
    for row in record["rows"]:
        assert sorted(row["valid_by_seed"]) == ["0", "1"]
        assert row["valid"] == pytest.approx(sum(row["valid_by_seed"].values()) / 2)
    # validation only: no trial wrote any test file
    trials = list((tmp_path / "runs").rglob("cell.json"))
    assert len(trials) == 4 and not list((tmp_path / "runs").rglob("test_*"))
    log = (tmp_path / "tuning" / "synthetic.md").read_text()
    assert "| reg_weight=0.01 | 0 |" in log and "| reg_weight=0.1 | 1 |" in log and "**yes**" in log
    # the log is generated from the records: re-rendering gives the same page
    (tmp_path / "tuning" / "synthetic.md").unlink()
    assert tune.main(["--render", "synthetic", "--log-dir", str(tmp_path / "tuning")]) == 0
    assert (tmp_path / "tuning" / "synthetic.md").read_text() == log
    with pytest.raises(SystemExit, match="concern the test split"):
        tune.main(["--model", "bpr", "--grid", "reg_weight=0.1", "--train", "test_mask=[train]"])


def test_value_parsing():
    tune = _tune_module()
    assert tune.split_values("1e-3,[a, b],null,true") == [0.001, ["a", "b"], None, True]
    assert tune.parse_assignments(["train.lr=5e-3"], grid=False) == {"train.lr": 0.005}
