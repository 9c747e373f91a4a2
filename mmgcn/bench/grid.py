"""The one grid engine: hyper-parameters selected on the validation split, test never touched.

Used by ``mmgcn bench`` (a model's ``grids:`` entry) and by ``benchmarks/tune.py`` (which
runs grids only). For one model spec and one :class:`~mmgcn.bench.config.GridConfig`:

1. every point (a dict of model-config keys, and trainer keys prefixed ``train.``) is
   trained with every grid seed as a *trial*: a benchmark cell whose trainer early-stops
   on the validation metric and never evaluates the test split (``Trainer.fit(
   evaluate_test=False)``): no test metric of any grid point is computed or written;
2. the point with the best validation value, averaged over the grid seeds, is selected
   (ties go to the earlier point);
3. the selected point's trials keep their checkpoints, so that the benchmark cell of the
   same configuration and seed reuses the trained model and only evaluates test once
   (:func:`reuse_trial`); the other trials' checkpoints are deleted.

Trials live in ``<folder>/grid/<model>/point-<i>/seed-<k>/``. The benchmark harness's
``step`` answers a trial that duplicates a finished benchmark cell (same config hash) from
that cell's validation record instead of training it
(:func:`mmgcn.bench.harness.cell_as_trial`).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmgcn.bench.cells import CellTask, clear_cell, mark_started
from mmgcn.bench.config import GridConfig, ModelSpec
from mmgcn.bench.results import CellResult

log = logging.getLogger(__name__)

TRAIN_PREFIX = "train."

#: ``make_task(spec, seed, directory, point, model_overrides, train_overrides)``
TaskFactory = Callable[[ModelSpec, int, Path, dict[str, Any], dict[str, Any], dict[str, Any]], CellTask]


def split_point(point: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``{"num_layers": 2, "train.lr": 0.01}`` -> ``({"num_layers": 2}, {"lr": 0.01})``."""
    model = {k: v for k, v in point.items() if not k.startswith(TRAIN_PREFIX)}
    train = {k[len(TRAIN_PREFIX):]: v for k, v in point.items() if k.startswith(TRAIN_PREFIX)}
    return model, train


@dataclass
class GridTrial:
    """One point trained with one seed."""

    index: int
    point: dict[str, Any]
    seed: int
    task: CellTask
    result: CellResult


@dataclass
class GridOutcome:
    """A grid's trials and the validation-selected point (``None`` if no trial finished)."""

    spec: ModelSpec
    grid: GridConfig
    seeds: tuple[int, ...]
    trials: list[GridTrial] = field(default_factory=list)
    chosen: dict[str, Any] | None = None
    chosen_index: int | None = None

    def mean_valid(self, index: int) -> float | None:
        """Mean best validation value of point ``index`` over its finished seeds (``None`` if
        any seed of it failed: a point is compared on all grid seeds or not at all).

        The best-epoch value, before any post-training calibration: committed grid rows keep
        that value only, so a fresh clone restoring them selects as the run that made them
        (``best:`` selectors, over finished cells, read the calibrated value instead)."""
        values = [t.result.best_valid for t in self.trials if t.index == index]
        if not values or any(t.result.status != "ok" or v is None
                             for t, v in zip([t for t in self.trials if t.index == index], values)):
            return None
        return float(np.mean(values))

    def report(self) -> list[dict[str, Any]]:
        """One row per point: params, mean and per-seed validation value, epochs, time."""
        rows = []
        for index, point in enumerate(self.grid.points()):
            trials = [t for t in self.trials if t.index == index]
            rows.append({
                "params": point,
                "valid": self.mean_valid(index),
                "valid_by_seed": {str(t.seed): t.result.best_valid for t in trials},
                "valid_metrics_by_seed": {str(t.seed): dict(t.result.best_valid_metrics) for t in trials},
                "best_epoch_by_seed": {str(t.seed): t.result.best_epoch for t in trials},
                "epochs_by_seed": {str(t.seed): t.result.epochs for t in trials},
                "train_s_per_epoch": (float(np.mean([t.result.train_s_per_epoch for t in trials
                                                     if t.result.train_s_per_epoch is not None]))
                                      if any(t.result.train_s_per_epoch is not None for t in trials) else None),
                "failed": {str(t.seed): t.result.error for t in trials if t.result.status != "ok"},
                "selected": index == self.chosen_index,
                # a trial's identity: lets a fresh clone restore it from the committed results
                "config_hash_by_seed": {str(t.seed): t.task.config_hash for t in trials},
            })
        return rows


def run_grid(
    spec: ModelSpec,
    grid: GridConfig,
    default_seed: int,
    folder: Path,
    make_task: TaskFactory,
    step: Callable[[CellTask], CellResult],
) -> GridOutcome:
    """Train every point with every grid seed (test never evaluated) and select on validation.

    Args:
        spec: the model spec.
        grid: its grid.
        default_seed: the seed used when the grid names none (the benchmark's first).
        folder: the benchmark folder (trials go to ``grid/<model>/point-<i>/seed-<k>``).
        make_task: builds a trial's :class:`CellTask` (``grid_point`` set: the runner then
            trains without test evaluation and keeps the checkpoints).
        step: runs (or skips, when finished) one task and returns its result.
    """
    seeds = tuple(grid.seeds) or (default_seed,)
    outcome = GridOutcome(spec, grid, seeds)
    for index, point in enumerate(grid.points()):
        model_overrides, train_overrides = split_point(point)
        for seed in seeds:
            directory = folder / "grid" / spec.dirname / f"point-{index}" / f"seed-{seed}"
            task = make_task(spec, seed, directory, point, model_overrides, train_overrides)
            outcome.trials.append(GridTrial(index, point, seed, task, step(task)))
    scored = [(index, outcome.mean_valid(index)) for index in range(len(grid.points()))]
    finished = [(index, value) for index, value in scored if value is not None]
    if finished:
        # the best mean validation value; max() keeps the first of equal values
        outcome.chosen_index = max(finished, key=lambda iv: iv[1])[0]
        outcome.chosen = grid.points()[outcome.chosen_index]
        log.info("%s: grid point %s selected on validation (mean %.4f over seeds %s)",
                 spec.name, outcome.chosen, dict(finished)[outcome.chosen_index], list(seeds))
    else:
        log.error("%s: no grid point finished on every grid seed; nothing to select", spec.name)
    return outcome


def reuse_trial(outcome: GridOutcome, task: CellTask) -> bool:
    """Prepare benchmark cell ``task`` from the selected point's trial of the same seed and
    configuration, if there is one with its checkpoints: the trial's run directory is copied
    into the cell and the cell marked as an interrupted attempt, so that the runner resumes
    it -- the trainer finds the run finished and only evaluates test, once.

    Returns whether the cell was prepared (``False``: train it from scratch).
    """
    for trial in outcome.trials:
        if (trial.index == outcome.chosen_index and trial.seed == task.seed
                and trial.task.config_hash == task.config_hash and trial.result.status == "ok"):
            run = trial.task.directory / "run"
            if not (run / "checkpoints" / "last.pt").is_file():
                return False
            clear_cell(task.directory)
            shutil.copytree(run, task.directory / "run")
            mark_started(task.directory, task.config_hash)
            return True
    return False


def drop_checkpoints(outcomes: Sequence[GridOutcome]) -> None:
    """Delete the checkpoints of every trial (after the benchmark cells have reused theirs)."""
    for outcome in outcomes:
        for trial in outcome.trials:
            shutil.rmtree(trial.task.directory / "run" / "checkpoints", ignore_errors=True)




# ---------------------------------------------------------------- tuning logs
def _format_point(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "(defaults)"


def _number(value: Any, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render_tuning_log(dataset: str, records: Sequence[dict[str, Any]]) -> str:
    """The Markdown tuning log of ``dataset`` from its tuning records (``benchmarks/tune.py``
    writes one JSON record per grid run): one section per record, oldest first, with the
    command, the fixed settings and one row per point and seed (validation only)."""
    lines = [
        f"# {dataset} tuning log (validation only; generated from the JSON records beside it)",
        "",
        "Every row is one grid point trained with one seed by the benchmark's grid engine "
        "(`mmgcn.bench.grid`): early stopping on the validation metric, the test split never "
        "evaluated. Selection: the best mean over the grid seeds. Do not edit: rerun "
        "`python benchmarks/tune.py --render DATASET` after adding records.",
        "",
    ]
    for record in sorted(records, key=lambda r: (r.get("created", ""), r.get("name", ""))):
        metric = record.get("metric", "recall@20")
        k = metric.split("@")[1]
        lines += [f"## {record['model']}: {record.get('note') or record.get('name')} ({record.get('created', '?')})", ""]
        lines += [f"`{record['command']}`", ""] if record.get("command") else []
        fixed = ", ".join(f"{key}={value}" for key, value in record.get("fixed", {}).items()) or "defaults"
        train = ", ".join(f"{key}={value}" for key, value in record.get("train", {}).items()) or "bench defaults"
        lines += [f"Fixed: {fixed}; trainer: {train}; seeds {record.get('seeds')}.", ""]
        lines += [f"| point | seed | valid {metric} | valid ndcg@{k} | best epoch | epochs run | s/epoch | selected |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in record["rows"]:
            for seed, value in row["valid_by_seed"].items():
                metrics = row.get("valid_metrics_by_seed", {}).get(seed, {})
                failed = row.get("failed", {}).get(seed)
                lines.append(
                    f"| {_format_point(row['params'])} | {seed} | "
                    f"{'failed: ' + failed if failed else _number(value)} | {_number(metrics.get(f'ndcg@{k}'))} | "
                    f"{row['best_epoch_by_seed'].get(seed, '–')} | {row['epochs_by_seed'].get(seed, '–')} | "
                    f"{_number(row.get('train_s_per_epoch'), 2)} | {'**yes**' if row['selected'] else ''} |"
                )
        lines.append("")
    return "\n".join(lines)


__all__ = ["GridOutcome", "GridTrial", "drop_checkpoints", "render_tuning_log", "reuse_trial", "run_grid", "split_point"]
