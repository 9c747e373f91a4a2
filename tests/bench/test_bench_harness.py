"""Harness logic with a scripted cell runner: skipping finished cells, re-runs, crashes, grids,
significance, and the results round trip (JSON -> objects -> identical Markdown / CSV)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from mmgcn.bench.cells import MARKER, CellOutput, CellRunner, CellTask, load_per_user
from mmgcn.bench.config import BenchConfig
from mmgcn.bench.harness import run_benchmark
from mmgcn.bench.report import rebuild
from mmgcn.bench.results import CellResult, read_results
from mmgcn.bench.stats import paired_tests, pool_seeds
from mmgcn.bench.tables import to_csv, to_markdown
from mmgcn.config import ConfigError
from mmgcn.data.dataset import Dataset

N_USERS = 40


def fake_metrics(model: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng([zlib.crc32(model.encode()), seed])
    return rng.random(N_USERS)


class ScriptedRunner(CellRunner):
    """Deterministic fake training: per-user metrics from (model, seed), valid from the config."""

    def __init__(self, fail: set[str] | None = None, interrupt: set[str] | None = None) -> None:
        self.calls: list[tuple[str, int, str | None]] = []
        self.fail = fail or set()
        self.interrupt = interrupt or set()
        self.resumed: list[str] = []

    def can_resume(self, task: CellTask) -> bool:
        return (task.directory / "partial").exists()

    def run(self, task: CellTask, dataset: Dataset, config: BenchConfig, resume: bool = False) -> CellOutput:
        point = json.dumps(task.grid_point, sort_keys=True) if task.grid_point is not None else None
        self.calls.append((task.spec.name, task.seed, point))
        if resume:
            self.resumed.append(task.label)
        (task.directory / "partial").write_text("state to resume from")
        if task.spec.name in self.interrupt:
            raise KeyboardInterrupt
        if task.spec.name in self.fail:
            raise RuntimeError(f"scripted crash of {task.spec.name}")
        recall = fake_metrics(task.spec.name, task.seed)
        ndcg = recall / 2
        valid = float(task.model_config.get("dim", 8)) / 100
        result = CellResult(
            model=task.spec.name,
            seed=task.seed,
            test={"recall@20": float(recall.mean()), "ndcg@20": float(ndcg.mean())},
            valid_curve=[[1, valid / 2], [2, valid]],
            best_epoch=2,
            best_valid=valid,
            epochs=2,
            train_s_per_epoch=0.5,
            eval_s=0.1,
            params=1000,
            model_config=dict(task.model_config),
        )
        users = np.arange(N_USERS, dtype=np.int64)
        return CellOutput(result, {"users": users, "recall@20": recall, "ndcg@20": ndcg})


def make_config(tmp_path: Path, **kwargs) -> BenchConfig:
    values = {
        "dataset": "tiny",
        "models": ("mmgcn", "bpr", "popular"),
        "seeds": 2,
        "train": {"epochs": 2, "patience": 1},
        "out": str(tmp_path / "results"),
        "budget_note": "scripted",
    }
    values.update(kwargs)
    return BenchConfig(**values)


def run(config: BenchConfig, runner: CellRunner, dataset: Dataset, **kwargs):
    kwargs.setdefault("plots", False)  # figures are covered by the round-trip test and test_bench_plots
    return run_benchmark(config, runner=runner, dataset=dataset, progress=False, **kwargs)


def test_rerun_skips_finished_cells(tmp_path: Path, tiny_dataset: Dataset) -> None:
    config = make_config(tmp_path)
    first = ScriptedRunner()
    result = run(config, first, tiny_dataset)
    assert len(first.calls) == 6 and result.ran == 6
    marker = result.folder / "cells" / "bpr" / "seed-1" / MARKER
    assert marker.is_file()
    again = ScriptedRunner()
    result2 = run(config, again, tiny_dataset)
    assert again.calls == [] and result2.skipped == 6
    # the skipped run reports the same table
    assert to_markdown(result2.results).split("\n## All")[1] == to_markdown(result.results).split("\n## All")[1]


def test_changed_config_or_force_reruns(tmp_path: Path, tiny_dataset: Dataset) -> None:
    config = make_config(tmp_path)
    run(config, ScriptedRunner(), tiny_dataset)
    # a model-specific change re-runs only that model
    changed = make_config(tmp_path, model_configs={"bpr": {"dim": 16}})
    runner = ScriptedRunner()
    run(changed, runner, tiny_dataset)
    assert sorted(runner.calls) == [("bpr", 0, None), ("bpr", 1, None)]
    # a shared trainer change re-runs everything
    runner = ScriptedRunner()
    run(make_config(tmp_path, train={"epochs": 3, "patience": 1}, model_configs={"bpr": {"dim": 16}}), runner, tiny_dataset)
    assert len(runner.calls) == 6
    forced = ScriptedRunner()
    run(changed, forced, tiny_dataset, force=True)
    assert len(forced.calls) == 6
    # adding a model runs only the new cells
    runner = ScriptedRunner()
    run(make_config(tmp_path, models=("mmgcn", "bpr", "popular", "lightgcn"), model_configs={"bpr": {"dim": 16}}), runner, tiny_dataset)
    assert sorted(runner.calls) == [("lightgcn", 0, None), ("lightgcn", 1, None)]


def test_crashed_cell_is_reported_and_leaves_no_marker(tmp_path: Path, tiny_dataset: Dataset) -> None:
    config = make_config(tmp_path)
    result = run(config, ScriptedRunner(fail={"bpr"}), tiny_dataset)
    assert result.failed == 2 and result.ran == 4
    cell_dir = result.folder / "cells" / "bpr" / "seed-0"
    assert not cell_dir.exists()  # a crashed attempt never reaches the cell's place
    assert "scripted crash of bpr" in (cell_dir.parent / ".seed-0.partial" / "error.txt").read_text()
    bpr = next(s for s in result.results.summaries if s.model == "bpr")
    assert bpr.seeds == [] and bpr.failed_seeds == [0, 1]
    markdown = (result.folder / "results.md").read_text()
    assert "## Failed cells" in markdown and "bpr seed 0: RuntimeError: scripted crash of bpr" in markdown
    # the next run retries only the crashed cells
    retry = ScriptedRunner()
    run(config, retry, tiny_dataset)
    assert sorted(retry.calls) == [("bpr", 0, None), ("bpr", 1, None)]


def test_interrupted_cell_resumes_but_crashed_cell_restarts(tmp_path: Path, tiny_dataset: Dataset) -> None:
    config = make_config(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run(config, ScriptedRunner(interrupt={"bpr"}), tiny_dataset)
    cell_dir = tmp_path / "results" / "tiny-quick" / "cells" / "bpr" / "seed-0"
    assert not cell_dir.exists()  # the interrupted attempt stays in its staging directory
    assert (cell_dir.parent / ".seed-0.partial" / "partial").exists()
    runner = ScriptedRunner()
    run(config, runner, tiny_dataset)
    # mmgcn finished before the interrupt; bpr seed 0 resumes, the rest start fresh
    assert runner.resumed == ["bpr seed 0"]
    assert sorted(runner.calls) == [("bpr", 0, None), ("bpr", 1, None), ("popular", 0, None), ("popular", 1, None)]
    # a crashed attempt is never resumed, even with its state on disk
    config2 = make_config(tmp_path, train={"epochs": 5, "patience": 1})
    run(config2, ScriptedRunner(fail={"bpr"}), tiny_dataset)
    retry = ScriptedRunner()
    run(config2, retry, tiny_dataset)
    assert retry.resumed == []
    # --force never resumes either
    with pytest.raises(KeyboardInterrupt):
        run(config2, ScriptedRunner(interrupt={"mmgcn"}), tiny_dataset, force=True)
    forced = ScriptedRunner()
    run(config2, forced, tiny_dataset, force=True)
    assert forced.resumed == [] and len(forced.calls) == 6


def test_significance_against_reference_pools_seeds(tmp_path: Path, tiny_dataset: Dataset) -> None:
    result = run(make_config(tmp_path), ScriptedRunner(), tiny_dataset)
    summaries = {s.model: s for s in result.results.summaries}
    assert summaries["mmgcn"].significance == {}
    users = np.arange(N_USERS)
    _, ref = pool_seeds([(users, fake_metrics("mmgcn", s)) for s in (0, 1)])
    _, bpr = pool_seeds([(users, fake_metrics("bpr", s)) for s in (0, 1)])
    expected = paired_tests(bpr, ref)
    got = summaries["bpr"].significance["recall@20"]
    assert got.wilcoxon_p == pytest.approx(expected.wilcoxon_p)
    assert got.t_p == pytest.approx(expected.t_p)
    assert got.n_users == N_USERS
    # mean and sample std over the two seeds
    per_seed = [fake_metrics("bpr", s).mean() for s in (0, 1)]
    assert summaries["bpr"].mean["recall@20"] == pytest.approx(np.mean(per_seed))
    assert summaries["bpr"].std["recall@20"] == pytest.approx(np.std(per_seed, ddof=1))
    # per-user vectors are stored and load without pickle
    arrays = load_per_user(result.folder / "cells" / "bpr" / "seed-1" / "per_user.npz")
    np.testing.assert_allclose(arrays["recall@20"], fake_metrics("bpr", 1))


def test_grid_selected_on_validation_and_trial_reused(tmp_path: Path, tiny_dataset: Dataset) -> None:
    config = make_config(tmp_path, models=("mmgcn", "bpr"), grids={"bpr": {"params": {"dim": [4, 32, 16]}}})
    runner = ScriptedRunner()
    result = run(config, runner, tiny_dataset)
    trials = [c for c in runner.calls if c[2] is not None]
    assert [json.loads(c[2])["dim"] for c in trials] == [4, 32, 16]
    bpr = next(s for s in result.results.summaries if s.model == "bpr")
    assert bpr.selected == {"dim": 32}  # best validation value
    assert [p["selected"] for p in result.results.grids["bpr"]] == [False, True, False]
    # seed 0 reuses the selected trial; only seed 1 trains again
    finals = [c for c in runner.calls if c[0] == "bpr" and c[2] is None]
    assert finals == [("bpr", 1, None)]
    cells = [c for c in result.results.cells if c.model == "bpr"]
    assert all(c.model_config == {"dim": 32} for c in cells)


def test_modality_spec_checked_against_dataset(tmp_path: Path, tiny_dataset: Dataset) -> None:
    ok = make_config(tmp_path, models=("mmgcn", "mmgcn[visual]"))
    result = run(ok, ScriptedRunner(), tiny_dataset)
    assert (result.folder / "cells" / "mmgcn[visual]" / "seed-0" / MARKER).is_file()
    with pytest.raises(ConfigError, match="no modality"):
        run(make_config(tmp_path, models=("mmgcn[image]",)), ScriptedRunner(), tiny_dataset)


def test_results_round_trip_and_report_rebuild(tmp_path: Path, tiny_dataset: Dataset) -> None:
    result = run(make_config(tmp_path), ScriptedRunner(fail={"popular"}), tiny_dataset, plots=True)
    folder = result.folder
    assert sorted(p.name for p in folder.glob("*.png")) == ["bar_chart.png", "time_vs_quality.png", "validation_curves.png"]
    markdown = (folder / "results.md").read_text()
    csv_text = (folder / "results.csv").read_text()
    loaded = read_results(folder)
    assert to_markdown(loaded) == markdown
    assert to_csv(loaded) == csv_text
    assert loaded.to_dict() == json.loads((folder / "results.json").read_text())
    # the header block states dataset, split, protocol, masking, selection and seeds
    for key in ("dataset:", "split:", "protocol:", "masking:", "selection:", "seeds:"):
        assert f"> {key}" in markdown
    assert "patience 1" in markdown and "validation recall@20" in markdown
    # report rebuilds identical tables from the JSON alone
    (folder / "results.md").unlink()
    (folder / "results.csv").write_text("stale")
    for png in folder.glob("*.png"):
        png.unlink()
    reports = rebuild(tmp_path / "results")
    assert [r.folder for r in reports] == [folder]
    assert (folder / "results.md").read_text() == markdown
    assert (folder / "results.csv").read_text() == csv_text
    assert sorted(p.name for p in folder.glob("*.png")) == ["bar_chart.png", "time_vs_quality.png", "validation_curves.png"]


def test_report_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        rebuild(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no results.json"):
        rebuild(tmp_path)
    bad = tmp_path / "tiktok"
    bad.mkdir()
    (bad / "results.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        rebuild(tmp_path)


def test_cli_report(tmp_path: Path, tiny_dataset: Dataset, capsys: pytest.CaptureFixture[str]) -> None:
    from mmgcn.cli import main

    result = run(make_config(tmp_path), ScriptedRunner(), tiny_dataset)
    markdown = (result.folder / "results.md").read_text()
    (result.folder / "results.md").unlink()
    assert main(["report", str(tmp_path / "results"), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert markdown in printed and f"rebuilt {result.folder}" in printed
    assert (result.folder / "results.md").read_text() == markdown
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no such results directory" in capsys.readouterr().err
