"""Harness logic with a scripted cell runner: skipping finished cells, re-runs, crashes, grids
(validation only, test never evaluated for a grid point), seed-aware comparisons, headers
generated from resolved configs, and the results round trip (JSON -> identical Markdown / CSV)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from mmgcn.bench.aggregate import read_per_user
from mmgcn.bench.cells import MARKER, CellOutput, CellRunner, CellTask, load_per_user
from mmgcn.bench.config import BenchConfig
from mmgcn.bench.harness import run_benchmark
from mmgcn.bench.header import build_header
from mmgcn.bench.report import rebuild
from mmgcn.bench.results import CellResult, read_results
from mmgcn.bench.runner import TrainerRunner
from mmgcn.bench.tables import header_lines, to_csv, to_markdown
from mmgcn.config import ConfigError
from mmgcn.data.dataset import Dataset
from mmgcn.errors import DataError
from mmgcn.eval.significance import compare, holm

N_USERS = 40


@pytest.fixture
def tiny_dataset() -> Dataset:
    """40 users x 6 items with two modalities (every user is a test user of the fake runner);
    user u has u % 4 + 1 train items, so the degree breakdown has four buckets."""
    rows, cols = [], []
    for user in range(N_USERS):
        for item in range(user % 4 + 1):
            rows.append(user)
            cols.append((user + item) % 5)
    train = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(N_USERS, 6))
    valid = sp.csr_matrix((np.ones(N_USERS, np.float32), (np.arange(N_USERS), np.full(N_USERS, 5))), shape=(N_USERS, 6))
    empty = sp.csr_matrix((N_USERS, 6), dtype=np.float32)
    rng = np.random.default_rng(0)
    return Dataset(name="tiny", n_users=N_USERS, n_items=6, train=train, valid=valid, test=empty,
                   features={"visual": rng.normal(size=(6, 6)).astype(np.float32),
                             "acoustic": rng.normal(size=(6, 3)).astype(np.float32)})


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
        return (task.directory / "run" / "checkpoints" / "last.pt").exists()

    def run(self, task: CellTask, dataset: Dataset, config: BenchConfig, resume: bool = False) -> CellOutput:
        point = json.dumps(task.grid_point, sort_keys=True) if task.grid_point is not None else None
        self.calls.append((task.spec.name, task.seed, point))
        if resume:
            self.resumed.append(task.label)
        checkpoints = task.directory / "run" / "checkpoints"
        checkpoints.mkdir(parents=True, exist_ok=True)
        (checkpoints / "last.pt").write_text("state to resume from")
        if task.spec.name in self.interrupt:
            raise KeyboardInterrupt
        if task.spec.name in self.fail:
            raise RuntimeError(f"scripted crash of {task.spec.name}")
        valid = float(task.model_config.get("dim", 8)) / 100 + 0.001 * task.seed
        result = CellResult(
            model=task.spec.name,
            seed=task.seed,
            valid_curve=[[1, valid / 2], [2, valid]],
            best_epoch=2,
            best_valid=valid,
            epochs=2,
            train_s_per_epoch=0.5,
            params=1000,
            model_config=dict(task.model_config),
        )
        if task.grid_point is not None:  # a grid trial: trained and validated, never tested
            return CellOutput(result)
        recall = fake_metrics(task.spec.name, task.seed)
        ndcg = recall / 2
        result.test, result.eval_s = {"recall@20": float(recall.mean()), "ndcg@20": float(ndcg.mean())}, 0.1
        users = np.arange(N_USERS, dtype=np.int64)
        return CellOutput(result, {"users": users, "recall@20": recall, "ndcg@20": ndcg, "mrr@20": recall})


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
    assert (cell_dir.parent / ".seed-0.partial" / "run" / "checkpoints" / "last.pt").exists()
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


def test_seed_aware_comparisons_against_the_reference(tmp_path: Path, tiny_dataset: Dataset) -> None:
    result = run(make_config(tmp_path, comparisons=[["popular", "bpr"]]), ScriptedRunner(), tiny_dataset)
    res = result.results
    # the family: 2 models vs mmgcn + popular vs bpr, on 2 metrics = 6 comparisons
    assert len(res.comparisons) == 6
    assert res.comparison("mmgcn", "recall@20") is None
    users = np.arange(N_USERS)
    runs = {m: [(users, fake_metrics(m, s)) for s in (0, 1)] for m in ("mmgcn", "bpr", "popular")}
    expected = compare("bpr", "mmgcn", "recall@20", runs["bpr"], runs["mmgcn"])
    got = res.comparison("bpr", "recall@20")
    assert (got.diff, got.ci_low, got.ci_high, got.p) == (expected.diff, expected.ci_low, expected.ci_high, expected.p)
    assert got.seed_means_model == pytest.approx([fake_metrics("bpr", s).mean() for s in (0, 1)])
    assert got.n_users == N_USERS and len(got.per_seed_wilcoxon_p) == 2
    # Holm over the whole family, in the order the comparisons were made
    assert [c.p_holm for c in res.comparisons] == pytest.approx(holm([c.p for c in res.comparisons]))
    assert res.comparison("popular", "recall@20", reference="bpr") is not None
    markdown = (result.folder / "results.md").read_text()
    assert "## Further comparisons (same family)" in markdown and "Holm-adjusted over the 6 comparisons" in markdown
    # mean and sample std over the two seeds
    summaries = {s.model: s for s in res.summaries}
    per_seed = [fake_metrics("bpr", s).mean() for s in (0, 1)]
    assert summaries["bpr"].mean["recall@20"] == pytest.approx(np.mean(per_seed))
    assert summaries["bpr"].std["recall@20"] == pytest.approx(np.std(per_seed, ddof=1))
    # per-user vectors are stored in the cells and, for the comparisons' metrics only, in the
    # folder's committed per_user.npz; all load without pickle
    arrays = load_per_user(result.folder / "cells" / "bpr" / "seed-1" / "per_user.npz")
    np.testing.assert_allclose(arrays["recall@20"], fake_metrics("bpr", 1))
    folder_file = read_per_user(result.folder / "per_user.npz")
    assert sorted(folder_file["bpr"]) == [0, 1]
    assert sorted(folder_file["bpr"][1]) == ["ndcg@20", "recall@20", "users"]
    np.testing.assert_allclose(folder_file["bpr"][1]["recall@20"], fake_metrics("bpr", 1))
    # by user train degree (1-4 train items: user % 4 + 1), by hand
    breakdown = res.breakdowns["user_degree"]
    assert breakdown["buckets"] == ["1", "2", "3-4"] and breakdown["n_users"] == [10, 10, 20]
    degree = np.arange(N_USERS) % 4 + 1
    by_hand = [np.mean([fake_metrics("bpr", s)[(degree >= lo) & (degree <= hi)].mean() for s in (0, 1)])
               for lo, hi in ((1, 1), (2, 2), (3, 4))]
    assert breakdown["values"]["bpr"] == pytest.approx(by_hand)
    assert "## By user train degree" in markdown


def test_report_recomputes_comparisons_from_the_per_user_file(tmp_path: Path, tiny_dataset: Dataset) -> None:
    result = run(make_config(tmp_path), ScriptedRunner(), tiny_dataset)
    folder = result.folder
    original = json.loads((folder / "results.json").read_text())
    data = json.loads((folder / "results.json").read_text())
    assert "Holm correction over the 4 comparisons" in original["header"]["significance"]  # 2 pairs x 2 metrics
    data["comparisons"] = []
    # a breakdown that does not come from the per-user file (the cold-only floors) is kept
    floors = {"split": "test", "n_users": 3, "random": {"recall@20": 0.5}, "item_order": {"recall@20": 0.25}}
    original["breakdowns"]["cold_only_floors"] = data["breakdowns"]["cold_only_floors"] = floors
    # a header written when the family was counted differently is brought to the family compared
    data["header"]["significance"] = original["header"]["significance"].replace("over the 4 ", "over the 6 ")
    (folder / "results.json").write_text(json.dumps(data))
    rebuild(folder, plots=False, recompute=True)
    assert json.loads((folder / "results.json").read_text()) == original
    (folder / "per_user.npz").unlink()
    with pytest.raises(FileNotFoundError, match="per_user.npz"):
        rebuild(folder, plots=False, recompute=True)


def test_grid_selected_on_validation_without_any_test_evaluation(tmp_path: Path, tiny_dataset: Dataset) -> None:
    config = make_config(tmp_path, models=("mmgcn", "bpr"),
                         grids={"bpr": {"params": {"dim": [4, 32, 16]}, "seeds": [0, 1]}})
    runner = ScriptedRunner()
    result = run(config, runner, tiny_dataset)
    trials = [c for c in runner.calls if c[2] is not None]
    assert [(json.loads(c[2])["dim"], c[1]) for c in trials] == [(4, 0), (4, 1), (32, 0), (32, 1), (16, 0), (16, 1)]
    bpr = next(s for s in result.results.summaries if s.model == "bpr")
    assert bpr.selected == {"dim": 32}  # best mean validation value over the grid seeds
    report = result.results.grids["bpr"]
    assert [p["selected"] for p in report] == [False, True, False]
    assert report[1]["valid"] == pytest.approx((0.32 + 0.321) / 2)
    assert report[1]["valid_by_seed"] == {"0": pytest.approx(0.32), "1": pytest.approx(0.321)}
    # no grid trial computed or wrote a test metric
    for trial_dir in (result.folder / "grid" / "bpr").glob("point-*/seed-*"):
        assert not (trial_dir / "per_user.npz").exists()
        assert json.loads((trial_dir / "cell.json").read_text())["test"] == {}
        assert not (trial_dir / "run" / "checkpoints").exists()  # dropped after reuse
    # both benchmark seeds reuse the selected trials: resumed, only tested
    finals = [c for c in runner.calls if c[0] == "bpr" and c[2] is None]
    assert finals == [("bpr", 0, None), ("bpr", 1, None)]
    assert runner.resumed == ["bpr seed 0", "bpr seed 1"]
    cells = [c for c in result.results.cells if c.model == "bpr"]
    assert all(c.model_config == {"dim": 32} and c.test for c in cells)
    markdown = (result.folder / "results.md").read_text()
    assert "bpr: dim in [4, 32, 16], seeds [0, 1]" in markdown and "without any test evaluation" in markdown


def test_grid_train_keys_and_variants(tmp_path: Path, tiny_dataset: Dataset) -> None:
    config = make_config(tmp_path, models=("bpr",), grids={"bpr": {
        "params": {"train.lr": [0.01, 0.1]}, "variants": [{"dim": 4}, {"dim": 64}]}})
    runner = ScriptedRunner()
    result = run(config, runner, tiny_dataset)
    points = [json.loads(c[2]) for c in runner.calls if c[2] is not None]
    assert points == [{"dim": 4, "train.lr": 0.01}, {"dim": 4, "train.lr": 0.1},
                      {"dim": 64, "train.lr": 0.01}, {"dim": 64, "train.lr": 0.1}]
    assert result.results.summaries[0].selected == {"dim": 64, "train.lr": 0.01}


def test_a_grid_point_a_finished_cell_already_ran_is_not_trained_again(tmp_path: Path, tiny_dataset: Dataset) -> None:
    import shutil

    from mmgcn.bench.cells import is_finished, load_cell
    from mmgcn.bench.harness import plan_benchmark

    # a variant spec: its results name (bpr:wide) and folder name (bpr@wide) differ
    spec = "bpr:wide"
    before = make_config(tmp_path, models=(spec,), model_configs={spec: {"dim": 16}})
    first = run(before, ScriptedRunner(), tiny_dataset)
    cell_hash = {c.seed: c.config_hash for c in first.results.cells}
    # a rate-like grid added later: its point dim=16 is the configuration the cells ran
    gridded = make_config(tmp_path, models=(spec,), model_configs={spec: {"dim": 16}},
                          grids={"bpr": {"params": {"dim": [4, 16]}}})
    plan = plan_benchmark(gridded, ScriptedRunner(), tiny_dataset)
    assert [s for _, s in plan] == ["runs", "finished", "after grid", "after grid"]
    runner = ScriptedRunner()
    result = run(gridded, runner, tiny_dataset)
    assert runner.calls == [(spec, 0, json.dumps({"dim": 4}))]  # only the new point trained
    assert result.ran == 1 and result.skipped == 3
    rows = result.results.grids[spec]
    assert rows[1]["valid_by_seed"] == {"0": pytest.approx(0.16)} and rows[1]["selected"]
    assert rows[1]["config_hash_by_seed"] == {"0": cell_hash[0]}
    assert result.results.summaries[0].selected == {"dim": 16}
    assert [c.test for c in result.results.cells] == [c.test for c in first.results.cells]
    # the answered trial is written as a finished trial: its validation record, no test metric
    trial = result.folder / "grid" / "bpr@wide" / "point-1" / "seed-0"
    assert is_finished(trial, cell_hash[0], per_user=False) and not (trial / "per_user.npz").exists()
    assert load_cell(trial).test == {} and load_cell(trial).best_valid == pytest.approx(0.16)
    # a fresh clone (only the committed files): the point comes from the committed cell
    clone = tmp_path / "clone"
    folder = clone / "results" / result.folder.name
    folder.mkdir(parents=True)
    for name in ("results.json", "per_user.npz"):
        shutil.copy(result.folder / name, folder / name)
    cloned = make_config(clone, models=(spec,), model_configs={spec: {"dim": 16}},
                         grids={"bpr": {"params": {"dim": [4, 16]}}})
    assert [s for _, s in plan_benchmark(cloned, ScriptedRunner(), tiny_dataset)] == ["restores"] * 4
    again = ScriptedRunner()
    restored = run(cloned, again, tiny_dataset)
    assert again.calls == [] and restored.restored == 4
    # with the committed grid row gone too, the trial still comes from the committed cell
    data = json.loads((folder / "results.json").read_text())
    shutil.rmtree(folder / "grid")
    shutil.rmtree(folder / "cells")
    data["grids"] = {}
    (folder / "results.json").write_text(json.dumps(data))
    third = ScriptedRunner()
    run(cloned, third, tiny_dataset)
    assert third.calls == [(spec, 0, json.dumps({"dim": 4}))]
    # a committed cell of another configuration answers nothing: its hash differs
    data["grids"], data["cells"] = {}, [{**c, "config_hash": "0" * 64} for c in data["cells"]]
    (folder / "results.json").write_text(json.dumps(data))
    shutil.rmtree(folder / "grid")
    shutil.rmtree(folder / "cells")
    stale = ScriptedRunner()
    run(cloned, stale, tiny_dataset)
    assert [c[2] for c in stale.calls] == [json.dumps({"dim": 4}), json.dumps({"dim": 16}), None, None]
    # nor does a finished cell on disk of another configuration (dim 32): the point dim=16 trains
    other = tmp_path / "other"
    run(make_config(other, models=(spec,), model_configs={spec: {"dim": 32}}), ScriptedRunner(), tiny_dataset)
    fourth = ScriptedRunner()
    run(make_config(other, models=(spec,), model_configs={spec: {"dim": 32}},
                    grids={"bpr": {"params": {"dim": [16, 32]}, "seeds": [0, 1]}}), fourth, tiny_dataset)
    # with two grid seeds, each seed's cell answers its own trial
    assert fourth.calls == [(spec, 0, json.dumps({"dim": 16})), (spec, 1, json.dumps({"dim": 16}))]
    # force trains every trial and cell
    forced = ScriptedRunner()
    run(gridded, forced, tiny_dataset, force=True)
    assert [c[2] for c in forced.calls] == [json.dumps({"dim": 4}), json.dumps({"dim": 16}), None, None]


def test_header_is_generated_from_the_resolved_configs(tmp_path: Path, tiny_dataset: Dataset) -> None:
    runner = TrainerRunner(progress=False)
    plain = header_lines(build_header(make_config(tmp_path), tiny_dataset, runner))
    assert any("masking: validation ranks with train items masked; test ranks with train + valid items masked" in line
               for line in plain)
    config = make_config(tmp_path, train={"epochs": 7, "patience": 3, "test_mask": ["train"]},
                         model_train={"bpr": {"lr": 0.05}})
    header = build_header(config, tiny_dataset, runner)
    assert header["masking"] == "validation ranks with train items masked; test ranks with train items masked (-inf)"
    assert "patience 3 evaluations, at most 7 epochs" in header["selection"]
    assert "early stopping on validation recall@20" in header["selection"]
    assert "per model: mmgcn lr=0.001; bpr lr=0.05; popular lr=0.001" in header["selection"]
    # one model masking differently is named
    mixed = make_config(tmp_path, model_train={"bpr": {"test_mask": ["train"]}})
    masking = build_header(mixed, tiny_dataset, runner)["masking"]
    assert masking.startswith("mmgcn, popular: validation ranks") and "bpr: validation ranks with train items masked; test ranks with train items masked" in masking
    cold = build_header(make_config(tmp_path, protocol="cold-start"), tiny_dataset, runner)
    assert "bpr, popular: each model's own embedding" in cold["protocol"]
    assert "mmgcn: from content alone, as new items" in cold["protocol"]


def test_modality_spec_checked_against_dataset(tmp_path: Path, tiny_dataset: Dataset) -> None:
    ok = make_config(tmp_path, models=("mmgcn", "mmgcn[visual]"))
    result = run(ok, ScriptedRunner(), tiny_dataset)
    assert (result.folder / "cells" / "mmgcn[visual]" / "seed-0" / MARKER).is_file()
    with pytest.raises(ConfigError, match="no modality"):
        run(make_config(tmp_path, models=("mmgcn[image]",)), ScriptedRunner(), tiny_dataset)


def test_results_round_trip_and_report_rebuild(tmp_path: Path, tiny_dataset: Dataset) -> None:
    result = run(make_config(tmp_path), ScriptedRunner(fail={"popular"}), tiny_dataset, plots=True)
    assert (result.folder / "per_user.npz").is_file()
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
    assert "patience 1 evaluations" in markdown and "validation recall@20" in markdown
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
    with pytest.raises(DataError, match="not valid JSON"):
        rebuild(tmp_path)
    (bad / "results.json").write_text(json.dumps({"schema_version": 1, "header": {}, "summaries": []}))
    with pytest.raises(DataError, match="schema_version 1 is not 2; re-run the benchmark"):
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


def test_dry_run_plan_lists_what_would_run(tmp_path: Path, tiny_dataset: Dataset) -> None:
    from mmgcn.bench.harness import plan_benchmark

    config = make_config(tmp_path, models=("mmgcn", "bpr"), grids={"bpr": {"params": {"dim": [4, 32]}}})
    runner = ScriptedRunner()
    before = plan_benchmark(config, runner, tiny_dataset)
    assert [s for _, s in before] == ["runs", "runs", "runs", "runs", "after grid", "after grid"]
    assert runner.calls == []  # nothing trained
    run(config, runner, tiny_dataset)
    assert {s for _, s in plan_benchmark(config, ScriptedRunner(), tiny_dataset)} == {"finished"}
    # a changed model config shows which cells it invalidates
    changed = make_config(tmp_path, models=("mmgcn", "bpr"), grids={"bpr": {"params": {"dim": [4, 32]}}},
                          model_configs={"mmgcn": {"dim": 16}})
    plan = dict(plan_benchmark(changed, ScriptedRunner(), tiny_dataset))
    assert plan["mmgcn seed 0"] == plan["mmgcn seed 1"] == "runs" and plan["bpr seed 1"] == "finished"


def test_readme_blocks_are_generated_from_the_json(tmp_path: Path, tiny_dataset: Dataset) -> None:
    from mmgcn.bench.readme import check_readme, update_readme

    result = run(make_config(tmp_path), ScriptedRunner(), tiny_dataset)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- mmgcn:results tiny-quick -->\nstale numbers\n<!-- /mmgcn:results -->\nend\n")
    published = tmp_path / "published.yaml"
    published.write_text("tiny-quick:\n  bpr: '0.1 / 0.05 [x]'\n")
    assert check_readme(readme, tmp_path / "results", published) == ["tiny-quick"]
    assert update_readme(readme, tmp_path / "results", published)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("end\n") and "stale numbers" not in text
    bpr = next(s for s in result.results.summaries if s.model == "bpr")
    row = next(line for line in text.splitlines() if line.startswith("| `bpr`"))
    assert f"{bpr.mean['recall@20']:.4f} ± {bpr.std['recall@20']:.4f}" in row and row.endswith("| 0.1 / 0.05 [x] |")
    c = result.results.comparison("bpr", "recall@20")
    assert f"{c.diff:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}]" in row
    assert check_readme(readme, tmp_path / "results", published) == []
    assert not update_readme(readme, tmp_path / "results", published)  # idempotent


def test_best_on_validation_selectors_in_comparisons(tmp_path: Path, tiny_dataset: Dataset, monkeypatch) -> None:
    # the scripted validation value is dim / 100 (+ 0.001 x seed): bpr (dim 32) beats popular (8)
    monkeypatch.setattr("mmgcn.bench.aggregate.MIN_BUCKET_USERS", 10)  # the tiny buckets have 10-20 users
    config = make_config(tmp_path, model_configs={"bpr": {"dim": 32}},
                         comparisons=[["best:bpr,popular", "mmgcn"], ["popular", "best:mmgcn,bpr"]])
    result = run(config, ScriptedRunner(), tiny_dataset)
    res = result.results
    assert res.header["selected_for_comparison"] == {
        "best:bpr,popular": "bpr (best mean validation recall@20)",
        "best:mmgcn,bpr": "bpr (best mean validation recall@20)",
    }
    # bpr vs mmgcn is already in the family; popular vs bpr is added
    assert res.comparison("popular", "recall@20", reference="bpr") is not None
    assert len(res.comparisons) == (2 + 1) * 2
    assert "selected for comparison: best:bpr,popular -> bpr" in (result.folder / "results.md").read_text()
    # the configured comparisons (selectors resolved) within each degree bucket, by the same test
    rows = res.breakdowns["user_degree_comparisons"]["rows"]
    assert [(r["model"], r["reference"], r["bucket"]) for r in rows] == [
        (m, ref, b) for m, ref in (("bpr", "mmgcn"), ("popular", "bpr")) for b in ("1", "2", "3-4")]
    degree = np.arange(N_USERS) % 4 + 1
    keep = np.flatnonzero(degree == 2)
    runs = {m: [(keep, fake_metrics(m, s)[keep]) for s in (0, 1)] for m in ("popular", "bpr")}
    expected = compare("popular", "bpr", "recall@20", runs["popular"], runs["bpr"])
    assert (rows[4]["diff"], rows[4]["ci_low"], rows[4]["ci_high"]) == (expected.diff, expected.ci_low, expected.ci_high)
    assert "### Comparisons by user train degree" in (result.folder / "results.md").read_text()

    # the README blocks of the further comparisons and of the degree breakdown
    from mmgcn.bench.readme import render_blocks, verdict
    text = render_blocks("<!-- mmgcn:comparisons tiny-quick -->\n<!-- /mmgcn:comparisons -->\n"
                         "<!-- mmgcn:degrees tiny-quick -->\n<!-- /mmgcn:degrees -->\n"
                         "<!-- mmgcn:degree-comparisons tiny-quick -->\n<!-- /mmgcn:degree-comparisons -->\n",
                         tmp_path / "results", {})
    assert "| `popular` | `bpr` | 2 | 10 |" in text.split("<!-- mmgcn:degree-comparisons tiny-quick -->")[1]
    c = res.comparison("popular", "recall@20", reference="bpr")
    row = next(line for line in text.splitlines() if line.startswith("| `popular` | `bpr` | Recall@20"))
    assert f"{c.diff:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}]" in row and row.endswith(f"| {verdict(c)} |")
    block = text.split("<!-- mmgcn:degrees")[0]
    pairs = [line.split(" | ")[:2] for line in block.splitlines() if line.startswith("| `")]
    assert pairs and all(ref != "`mmgcn`" for _, ref in pairs)  # the reference column is in the main table
    assert "`best:bpr,popular` -> bpr (best mean validation recall@20)" in text
    degrees = text.split("<!-- mmgcn:degrees tiny-quick -->")[1].split("<!-- /mmgcn:degrees -->")[0]
    degree_lines = [line for line in degrees.splitlines() if line.startswith("| `")]
    assert [line.split(" | ")[0] for line in degree_lines] == ["| `" + s.model + "`" for s in res.summaries]
    with pytest.raises(ConfigError, match="not in models"):
        make_config(tmp_path, comparisons=[["best:bpr,lightgcn", "mmgcn"]])


def test_a_selector_that_repeats_a_listed_pair_is_compared_once(tmp_path: Path, tiny_dataset: Dataset,
                                                                 monkeypatch) -> None:
    # bpr (dim 32) is the validation pick of both selectors: the second pair repeats the first,
    # the third is bpr against itself. Each enters the Holm families once, or not at all
    monkeypatch.setattr("mmgcn.bench.aggregate.MIN_BUCKET_USERS", 10)
    config = make_config(tmp_path, model_configs={"bpr": {"dim": 32}},
                         comparisons=[["bpr", "popular"], ["best:bpr,mmgcn", "popular"],
                                      ["best:popular,bpr", "best:mmgcn,bpr"]])
    res = run(config, ScriptedRunner(), tiny_dataset).results
    # mmgcn is the reference: bpr and popular against it, then bpr against popular
    assert [(c.model, c.reference) for c in res.comparisons if c.metric == "recall@20"] == [
        ("bpr", "mmgcn"), ("popular", "mmgcn"), ("bpr", "popular")]
    assert len(res.comparisons) == 3 * 2
    assert "Holm correction over the 6 comparisons of this table" in res.header["significance"]
    rows = res.breakdowns["user_degree_comparisons"]["rows"]
    assert [(r["model"], r["reference"], r["bucket"]) for r in rows] == [("bpr", "popular", b) for b in ("1", "2", "3-4")]
    # the degree family is Holm-adjusted over its 3 rows, not 6 or 9
    assert [r["p_holm"] for r in rows] == pytest.approx(holm([r["p"] for r in rows]))


def test_readme_output_blocks_quote_a_scripts_committed_output(tmp_path: Path) -> None:
    from mmgcn.bench.readme import check_readme, render_blocks, update_readme

    (tmp_path / "scale").mkdir()
    (tmp_path / "scale" / "output.txt").write_text("size  s/epoch\ntiktok  10\n\n", encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text("text\n<!-- mmgcn:output scale/output.txt -->\nstale 99\n<!-- /mmgcn:output -->\nmore\n")
    assert check_readme(readme, tmp_path) == ["scale/output.txt"]
    assert update_readme(readme, tmp_path)
    assert readme.read_text() == ("text\n<!-- mmgcn:output scale/output.txt -->\n```text\nsize  s/epoch\n"
                                  "tiktok  10\n```\n<!-- /mmgcn:output -->\nmore\n")
    assert check_readme(readme, tmp_path) == []
    # a re-measured table makes the README stale again
    (tmp_path / "scale" / "output.txt").write_text("size  s/epoch\ntiktok  11\n", encoding="utf-8")
    assert check_readme(readme, tmp_path) == ["scale/output.txt"]
    # only files inside a results folder
    for bad in ("../secret.txt", "output.txt"):
        with pytest.raises(ValueError, match="inside a results folder"):
            render_blocks(f"<!-- mmgcn:output {bad} -->\n<!-- /mmgcn:output -->", tmp_path, {})
