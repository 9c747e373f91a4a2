"""End to end: the real trainer and evaluator behind the harness, and the two CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmgcn.bench.cells import load_per_user
from mmgcn.bench.config import BenchConfig
from mmgcn.bench.harness import run_benchmark
from mmgcn.cli import main
from mmgcn.data.synthetic import make_synthetic
from mmgcn.models.base import available_models

E2E_MODELS = ("concat", "attention[image]")  # a modality subset exercises the ablation path


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic(120, 80, modalities={"image": 8, "text": 4}, interactions_per_user=10, seed=0, progress=False)


@pytest.mark.slow
def test_bench_two_models_two_seeds_end_to_end(tmp_path: Path, synthetic) -> None:
    missing = [m for m in ("concat", "attention") if m not in available_models()]
    assert not missing, f"models {missing} are not registered"
    config = BenchConfig(
        dataset="synthetic", models=E2E_MODELS, seeds=2, baseline="concat",
        train={"epochs": 2, "patience": 2, "batch_size": 256}, out=str(tmp_path),
    )
    run = run_benchmark(config, dataset=synthetic, progress=False)
    assert (run.ran, run.failed) == (4, 0)
    folder = tmp_path / "synthetic-quick"
    for name in ("results.json", "results.md", "results.csv", "bar_chart.png", "validation_curves.png",
                 "time_vs_quality.png"):
        assert (folder / name).is_file(), name
    cell_dir = folder / "cells" / "attention[image]" / "seed-1"
    cell = json.loads((cell_dir / "cell.json").read_text())
    # the trainer's per-epoch log and the single test evaluation back the cell's figures
    history = [json.loads(line) for line in (cell_dir / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2]
    assert cell["valid_curve"] == [[r["epoch"], r["valid"]["recall@20"]] for r in history]
    test_file = json.loads((cell_dir / "run" / "test_metrics.json").read_text())
    assert cell["test"]["recall@20"] == pytest.approx(test_file["metrics"]["recall@20"])
    assert not (cell_dir / "run" / "checkpoints").exists()  # dropped once the cell is done
    per_user = load_per_user(cell_dir / "per_user.npz")
    assert per_user["recall@20"].mean() == pytest.approx(cell["test"]["recall@20"])
    assert np.all(np.diff(per_user["users"]) > 0)
    summary = {s.model: s for s in run.results.summaries}
    assert run.results.comparison("attention[image]", "recall@20").n_users == per_user["users"].size
    assert summary["concat"].mean["params"] > 0 and summary["concat"].mean["epochs"] == 2
    # a re-run trains nothing
    again = run_benchmark(config, dataset=synthetic, progress=False, plots=False)
    assert (again.ran, again.skipped) == (0, 4)


@pytest.mark.slow
def test_grid_trials_never_evaluate_test_and_the_selected_one_is_reused(tmp_path: Path, synthetic) -> None:
    config = BenchConfig(
        dataset="synthetic", models=("concat",), seeds=2, train={"epochs": 3, "patience": 3, "batch_size": 256},
        grids={"concat": {"params": {"reg_weight": [1e-3, 1e-1]}}}, out=str(tmp_path),
    )
    run = run_benchmark(config, dataset=synthetic, progress=False, plots=False)
    folder = tmp_path / "synthetic-quick"
    trials = sorted((folder / "grid" / "concat").glob("point-*/seed-0"))
    assert len(trials) == 2
    for trial in trials:
        # trained and validated, never tested: no test file anywhere in the trial
        assert (trial / "run" / "metrics.jsonl").is_file()
        assert not list(trial.rglob("test_*")) and not (trial / "per_user.npz").exists()
    chosen = run.results.summaries[0].selected
    index = [p["params"] for p in run.results.grids["concat"]].index(chosen)
    # the seed-0 cell is the selected trial, tested once: the same training history, not retrained
    trial_history = (folder / "grid" / "concat" / f"point-{index}" / "seed-0" / "run" / "metrics.jsonl").read_text()
    cell_history = (folder / "cells" / "concat" / "seed-0" / "run" / "metrics.jsonl").read_text()
    assert cell_history == trial_history
    assert (folder / "cells" / "concat" / "seed-0" / "run" / "test_metrics.json").is_file()
    assert run.results.cells[0].test["recall@20"] >= 0


def test_cli_refuses_select_on_test(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bench.yaml"
    config.write_text("dataset: tiktok\ngrids:\n  bpr:\n    params: {dim: [32, 64]}\n    select_on: test\n")
    assert main(["bench", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    assert "select_on='test' is refused" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_bench_popular_on_real_tiktok(tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if "popular" not in available_models():
        pytest.fail("the 'popular' baseline is not registered")
    out = tmp_path / "results"
    argv = ["bench", "--dataset", "tiktok", "--models", "popular", "--seeds", "1", "--out", str(out),
            "--data-dir", str(data_root), "--no-progress", "--no-plots"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| popular (ref) | 1 |" in printed and "split: files: valid = valMat.pkl" in printed
    results = json.loads((out / "tiktok-quick" / "results.json").read_text())
    recall = results["summaries"][0]["mean"]["recall@20"]
    # most-popular on these files (PUBLISHED.md, computed from trnMat / tstMat, train masked):
    # 0.0597; the bench also masks valid items, which can only move it slightly
    assert recall == pytest.approx(0.0597, abs=0.003)


def test_bad_model_or_train_key_fails_before_training(tmp_path: Path, tiny_dataset) -> None:
    from mmgcn.config import ConfigError

    bad_model = BenchConfig(dataset="tiny", models=("bpr", "popular"), seeds=1, out=str(tmp_path),
                            model_configs={"popular": {"no_such_key": 1}})
    with pytest.raises(ConfigError, match="no_such_key"):
        run_benchmark(bad_model, dataset=tiny_dataset, progress=False)
    bad_train = BenchConfig(dataset="tiny", models=("bpr",), seeds=1, out=str(tmp_path), train={"metric": "ndcg@10"})
    with pytest.raises(ConfigError, match="set by the benchmark"):
        run_benchmark(bad_train, dataset=tiny_dataset, progress=False)
    with pytest.raises(ConfigError, match="unknown model"):  # refused when the config is built
        BenchConfig(dataset="tiny", models=("no-such-model",), seeds=1, out=str(tmp_path))
    assert not (tmp_path / "tiny-quick").exists()  # nothing was trained or written
