"""Cells restored from a results folder's committed files (a fresh clone has results.json and
per_user.npz but no cells/ or grid/): same config hash -> restored, not re-trained; any
difference -> trained; the tables come out identical."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_bench_harness import ScriptedRunner, make_config, run

from mmgcn.bench.aggregate import read_per_user
from mmgcn.bench.cells import MARKER, is_finished
from mmgcn.bench.harness import plan_benchmark
from mmgcn.bench.tables import to_markdown
from mmgcn.data.dataset import Dataset

GRID = {"bpr": {"params": {"dim": [4, 32, 16]}}}


def fresh_clone(folder: Path) -> None:
    """What a clone of the repository holds of a results folder: the committed files only."""
    shutil.rmtree(folder / "cells")
    shutil.rmtree(folder / "grid", ignore_errors=True)


def tables(markdown: str) -> str:
    """The result tables (the header's creation time differs between runs)."""
    return markdown.split("## Main results", 1)[1]


def test_fresh_clone_restores_every_cell_and_reproduces_the_tables(tmp_path: Path, tiny_dataset: Dataset) -> None:
    config = make_config(tmp_path, grids=GRID)
    first = run(config, ScriptedRunner(), tiny_dataset)
    committed = read_per_user(first.folder / "per_user.npz")
    fresh_clone(first.folder)
    runner = ScriptedRunner()
    again = run(config, runner, tiny_dataset)
    assert runner.calls == []
    assert again.restored == 3 * 1 + 3 * 2 and again.ran == 0  # 3 grid trials + 3 models x 2 seeds
    assert tables(to_markdown(again.results)) == tables(to_markdown(first.results))
    assert [c.to_dict() for c in again.results.comparisons] == [c.to_dict() for c in first.results.comparisons]
    assert again.results.summaries[1].selected == {"dim": 32}
    # restored cells are finished cells like any other, and say where they came from
    cell = again.folder / "cells" / "bpr" / "seed-1"
    marker = json.loads((cell / MARKER).read_text())
    assert marker["restored_from"].endswith("results.json")
    assert is_finished(cell, marker["config_hash"])
    restored = read_per_user(again.folder / "per_user.npz")
    for model, seeds in committed.items():
        for seed, arrays in seeds.items():
            for name, values in arrays.items():
                np.testing.assert_array_equal(restored[model][seed][name], values)
    # a third run finds them on disk
    third = run(config, ScriptedRunner(), tiny_dataset)
    assert third.skipped == 9 and third.restored == 0


def test_only_changed_or_new_models_train(tmp_path: Path, tiny_dataset: Dataset) -> None:
    run(make_config(tmp_path, models=("mmgcn", "bpr"), grids=GRID), ScriptedRunner(), tiny_dataset)
    fresh_clone(tmp_path / "results" / "tiny-quick")
    # a new model, and a changed config for mmgcn
    config = make_config(tmp_path, models=("mmgcn", "bpr", "popular"), grids=GRID, model_configs={"mmgcn": {"dim": 16}})
    runner = ScriptedRunner()
    result = run(config, runner, tiny_dataset)
    assert sorted(runner.calls) == [("mmgcn", 0, None), ("mmgcn", 1, None), ("popular", 0, None), ("popular", 1, None)]
    assert result.restored == 3 + 2


def test_grid_rows_without_hashes_restore_only_when_the_selected_point_verifies(
        tmp_path: Path, tiny_dataset: Dataset) -> None:
    config = make_config(tmp_path, models=("bpr",), grids=GRID)
    first = run(config, ScriptedRunner(), tiny_dataset)
    path = first.folder / "results.json"
    data = json.loads(path.read_text())
    for row in data["grids"]["bpr"]:
        assert set(row["config_hash_by_seed"]) == {"0"}
        del row["config_hash_by_seed"]  # results written before trials recorded their hashes
    path.write_text(json.dumps(data))
    fresh_clone(first.folder)
    runner = ScriptedRunner()
    assert run(config, runner, tiny_dataset).restored == 5 and runner.calls == []

    # the stored cells no longer hash as today's selected point would (a changed default):
    # neither the cells nor the unverifiable grid rows are trusted
    for row in data["cells"]:
        row["config_hash"] = "0" * 64
    path.write_text(json.dumps(data))
    fresh_clone(first.folder)
    runner = ScriptedRunner()
    result = run(config, runner, tiny_dataset)
    assert result.restored == 0 and len(runner.calls) == 3 + 2


def test_force_and_a_damaged_results_file_train_everything(tmp_path: Path, tiny_dataset: Dataset,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(tmp_path, models=("bpr", "popular"))
    first = run(config, ScriptedRunner(), tiny_dataset)
    fresh_clone(first.folder)
    runner = ScriptedRunner()
    assert run(config, runner, tiny_dataset, force=True).restored == 0 and len(runner.calls) == 4
    fresh_clone(first.folder)
    runner = ScriptedRunner()  # the same fresh clone without --force restores every cell
    assert run(config, runner, tiny_dataset).restored == 4 and runner.calls == []
    fresh_clone(first.folder)
    (first.folder / "results.json").write_text('{"cells": [')  # truncated
    runner = ScriptedRunner()
    with caplog.at_level("WARNING"):
        result = run(config, runner, tiny_dataset)
    assert result.restored == 0 and len(runner.calls) == 4
    assert "committed results do not load" in caplog.text and "nothing will be restored" in caplog.text


def test_a_cell_missing_from_the_per_user_file_trains(tmp_path: Path, tiny_dataset: Dataset) -> None:
    config = make_config(tmp_path, models=("bpr",))
    first = run(config, ScriptedRunner(), tiny_dataset)
    arrays = dict(np.load(first.folder / "per_user.npz"))
    np.savez_compressed(first.folder / "per_user.npz", **{k: v for k, v in arrays.items() if "seed-1" not in k})
    fresh_clone(first.folder)
    runner = ScriptedRunner()
    result = run(config, runner, tiny_dataset)
    assert runner.calls == [("bpr", 1, None)] and result.restored == 1


def test_dry_run_shows_cells_that_would_be_restored(tmp_path: Path, tiny_dataset: Dataset) -> None:
    config = make_config(tmp_path, models=("mmgcn", "bpr"), grids=GRID)
    run(config, ScriptedRunner(), tiny_dataset)
    fresh_clone(tmp_path / "results" / "tiny-quick")
    plan = plan_benchmark(config, ScriptedRunner(), tiny_dataset)
    assert {s for _, s in plan} == {"restores"} and len(plan) == 2 + 3 + 2


def test_calibration_record_by_hand() -> None:
    """What a cell keeps of the trainer's calibration: the chosen values and validation value,
    the neutral first candidate's value, the count, and with a tolerance the cold value."""
    from mmgcn.bench.results import calibration_record

    trainer = {"metric": "valid recall@20",
               "chosen": {"values": {"new_item_scale": 3.0, "new_item_offset": -0.5}, "valid": 0.12, "valid_cold": 0.4},
               "tried": [{"values": {"new_item_scale": 1.0, "new_item_offset": 0.0}, "valid": 0.1, "valid_cold": 0.0},
                         {"values": {"new_item_scale": 3.0, "new_item_offset": -0.5}, "valid": 0.12, "valid_cold": 0.4}],
               "tolerance": 0.02}
    assert calibration_record(trainer) == {
        "metric": "valid recall@20", "values": {"new_item_scale": 3.0, "new_item_offset": -0.5}, "valid": 0.12,
        "valid_uncalibrated": 0.1, "candidates": 2, "tolerance": 0.02, "valid_cold": 0.4}
    del trainer["tolerance"]
    assert "tolerance" not in calibration_record(trainer) and "valid_cold" not in calibration_record(trainer)
    assert calibration_record(None) is None and calibration_record({}) is None


def test_best_on_validation_reads_the_tested_models_validation() -> None:
    """A `best:` selector compares the validation of the models that were tested: after the
    calibration a model chose (its record), else at the best epoch. By hand: a (mean 0.100)
    beats b (mean 0.099) before calibration; b's calibration lifts it to 0.1015 and it wins."""
    from mmgcn.bench.aggregate import best_on_validation, tested_valid
    from mmgcn.bench.results import CellResult

    def cell(model, seed, valid, calibrated=None):
        record = None if calibrated is None else {"values": {"new_item_scale": 2.0}, "valid": calibrated,
                                                  "valid_uncalibrated": valid, "candidates": 4}
        return CellResult(model, seed, best_valid=valid, calibration=record)

    plain = [cell("a", 0, 0.100), cell("a", 1, 0.100), cell("b", 0, 0.098), cell("b", 1, 0.100)]
    assert best_on_validation(["a", "b"], plain) == "a"
    calibrated = plain[:2] + [cell("b", 0, 0.098, 0.101), cell("b", 1, 0.100, 0.102)]
    assert [tested_valid(c) for c in calibrated] == [0.100, 0.100, 0.101, 0.102]
    assert best_on_validation(["a", "b"], calibrated) == "b"
    assert best_on_validation(["c"], calibrated) is None
