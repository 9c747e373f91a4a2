"""The benchmark harness: models x seeds on one dataset, trained, selected on validation, tested once.

For every model spec of a :class:`~mmgcn.bench.config.BenchConfig` the harness

1. runs the model's grid, if it has one (:mod:`mmgcn.bench.grid`): each point is trained
   with the grid seeds and early-stopped on validation, without any test evaluation; the
   point with the best mean validation metric wins;
2. runs one cell per seed with the model's config (and the chosen grid point); a cell
   trains with early stopping on the validation metric and evaluates once on test (the
   selected point's trial of the same seed is reused: only its test is evaluated);
3. aggregates the seeds (mean, sample std), compares every model with the reference model
   (and the config's extra pairs) with the seed-aware bootstrap of
   :mod:`mmgcn.eval.significance` (Holm over the table's family), and writes
   ``results.{json,md,csv}``, ``per_user.npz`` (the per-user metrics the comparisons used)
   and the PNG figures to ``<out>/<dataset>/`` (``<dataset>-cold-start`` under that
   protocol). The header of every table is generated from the cells' resolved configs.

The cold-start protocol loads the dataset with the ``"cold_items"`` split unless the
config's ``dataset_kwargs`` name a split (a seeded 10% of the items are held out entirely,
half to valid and half to test; ``dataset_kwargs: {split: null}`` keeps the files' own
split), and ranks the test split over all items (warm / cold breakdown) and, for content
models, among the cold test items only (:mod:`mmgcn.bench.runner`).

Cells live in ``<folder>/cells/<model>/seed-<k>/`` and grid trials in
``<folder>/grid/<model>/point-<i>/seed-<k>/`` (see :mod:`mmgcn.bench.cells`); each is built
in a staging directory beside it and renamed into place when finished. A re-run skips every
cell whose completion marker carries the same config hash and whose files match their
checksums, unless ``force``; a damaged cell is named and re-run; a cell that raises is
recorded as failed (traceback in its staging directory's ``error.txt``) and the run goes on.
A cell absent on disk whose identical configuration is recorded in the folder's committed
``results.json`` (a fresh clone: cells are not committed) is restored from it instead of
re-trained (:mod:`mmgcn.bench.restore`). A grid trial hashes like a cell (its point is part
of the resolved config, not of the hash), so a trial whose configuration a finished or
committed cell of the same seed ran is answered by that cell's validation record
(:func:`cell_as_trial`) and written as a finished trial, not trained again.
The whole run holds the folder's lock (:mod:`mmgcn.bench.lock`) and rebuilds
``results.json`` from the cells on disk.

One tqdm bar counts cells across the whole run; the trainer draws per-epoch bars beneath.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mmgcn.bench.aggregate import (
    DATASET_KEY,
    PerUser,
    compare_table,
    keep_arrays,
    summarise_model,
    write_per_user,
)
from mmgcn.bench.cells import (
    ERROR_TXT,
    CellOutput,
    CellRunner,
    CellTask,
    PeakMemory,
    cell_problem,
    clear_cell,
    is_finished,
    load_cell,
    load_per_user,
    mark_started,
    publish_cell,
    read_back,
    save_cell,
    staging_dir,
    started_hash,
)
from mmgcn.bench.config import BenchConfig, ModelSpec, config_hash
from mmgcn.bench.grid import GridOutcome, drop_checkpoints, reuse_trial, run_grid, split_point
from mmgcn.bench.header import build_header, describe_significance
from mmgcn.bench.lock import BenchLock
from mmgcn.bench.plots import write_plots
from mmgcn.bench.restore import CommittedResults
from mmgcn.bench.results import PER_USER_NPZ, BenchResults, CellResult, write_results
from mmgcn.bench.tables import header_lines
from mmgcn.config import ConfigError, merge
from mmgcn.data.dataset import Dataset
from mmgcn.eval.floors import cold_only_floors
from mmgcn.train.config import TrainConfig
from mmgcn.utils.io import atomic_write_json

GRIDS_JSON = "grids.json"

log = logging.getLogger(__name__)


@dataclass
class BenchRun:
    """What :func:`run_benchmark` returns: the results, where they are, and what happened."""

    results: BenchResults
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    ran: int = 0
    skipped: int = 0
    failed: int = 0
    restored: int = 0


def cell_dir(folder: Path, spec: ModelSpec, seed: int) -> Path:
    """Where the benchmark cell of ``spec`` and ``seed`` lives in the results ``folder``."""
    return folder / "cells" / spec.dirname / f"seed-{seed}"


def dataset_fingerprint(dataset: Dataset) -> dict[str, Any]:
    """Sizes that change when the data changes (part of every cell's config hash)."""
    return {
        "name": dataset.name,
        "n_users": dataset.n_users,
        "n_items": dataset.n_items,
        "nnz": [int(dataset.train.nnz), int(dataset.valid.nnz), int(dataset.test.nnz)],
        "modalities": {m: int(t.shape[1]) for m, t in dataset.features.items()},
        # the loaders' sha256-based fingerprint of the files read, where they record one
        "files": dataset.info.get("fingerprint"),
    }


def dataset_arguments(config: BenchConfig) -> dict[str, Any]:
    """Keyword arguments of ``load_dataset``: the config's, plus ``split="cold_items"`` under the
    cold-start protocol when the config names no split (items held out entirely)."""
    kwargs = dict(config.dataset_kwargs)
    if config.protocol == "cold-start":
        kwargs.setdefault("split", "cold_items")
    return kwargs


def check_specs(config: BenchConfig, dataset: Dataset) -> None:
    """Every modality subset names modalities the dataset has (a :class:`ConfigError` otherwise)."""
    for spec in config.specs:
        if spec.modalities is None:
            continue
        missing = [m for m in spec.modalities if m not in dataset.features]
        if missing:
            raise ConfigError(
                f"model spec {spec.name!r}: dataset {dataset.name!r} has no modality {missing}; "
                f"available: {list(dataset.modalities) or 'none (interactions only)'}"
            )


def _task(config: BenchConfig, runner: CellRunner, fingerprint: dict[str, Any], spec: ModelSpec, seed: int,
          directory: Path, point: dict[str, Any] | None, model_config: dict[str, Any],
          train_overrides: dict[str, Any] | None = None) -> CellTask:
    train_config = merge(config.train_config_for(spec), dict(train_overrides or {}))
    payload = {
        "dataset": fingerprint,
        "dataset_kwargs": dataset_arguments(config),
        "protocol": config.protocol,
        "ks": list(config.ks),
        "metric": config.metric,
        "spec": spec.name,
        "seed": seed,
        "device": config.device,
        **runner.resolve(spec, model_config, train_config, config),
    }
    return CellTask(spec, seed, model_config, train_config, directory, config_hash(payload), point)


def run_cell(task: CellTask, dataset: Dataset, config: BenchConfig, runner: CellRunner, force: bool) -> tuple[CellResult, str]:
    """Run (or skip) one cell; returns its result and ``"skipped"`` / ``"ran"`` / ``"failed"``.

    The attempt works in the cell's staging directory and is renamed into place only when
    finished (:mod:`mmgcn.bench.cells`); a damaged finished cell is reported and re-run.
    """
    per_user = task.grid_point is None
    problem = cell_problem(task.directory, task.config_hash, per_user)
    if not force and problem is None:
        try:
            return load_cell(task.directory), "skipped"
        except (OSError, ValueError, TypeError) as exc:
            problem = f"cell.json does not load ({exc})"
    if problem not in (None, "absent", "unfinished", "another config"):
        log.warning("%s: the finished cell %s is damaged (%s); running it again", task.label, task.directory, problem)
    staging = staging_dir(task.directory)
    if not force and cell_problem(staging, task.config_hash, per_user) is None:
        # finished, but the process stopped before renaming it into place
        publish_cell(staging, task.directory)
        return load_cell(task.directory), "skipped"
    staged = dataclasses.replace(task, directory=staging)
    resume = (
        not force
        and started_hash(staging) == task.config_hash
        and not (staging / ERROR_TXT).exists()
        and runner.can_resume(staged)
    )
    if resume:
        log.info("%s: resuming an interrupted attempt", task.label)
    else:
        clear_cell(staging)
        mark_started(staging, task.config_hash)
    try:
        with PeakMemory(config.device) as memory:
            output = runner.run(staged, dataset, config, resume=resume)
        if output.result.peak_mem_mb is None:
            output.result.peak_mem_mb = memory.peak_mb()
        save_cell(staging, output, task.config_hash)
        publish_cell(staging, task.directory)
        return output.result, "ran"
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a crashing cell is reported and the benchmark goes on
        (staging / ERROR_TXT).write_text(traceback.format_exc(), encoding="utf-8")
        message = f"{type(exc).__name__}: {exc}"
        log.error("%s failed: %s (traceback in %s)", task.label, message, staging / ERROR_TXT)
        return CellResult(task.spec.name, task.seed, status="failed", error=message, config_hash=task.config_hash), "failed"


def restorable(committed: CommittedResults | None, task: CellTask) -> bool:
    """Whether ``task`` is absent on disk (no finished cell, no attempt started) and its
    identical configuration is recorded in the committed results."""
    if committed is None or cell_problem(task.directory, task.config_hash, task.grid_point is None) != "absent":
        return False
    if started_hash(staging_dir(task.directory)) is not None:
        return False
    found = committed.cell(task) if task.grid_point is None else committed.trial(task)
    return found is not None


def cell_as_trial(task: CellTask, folder: Path, committed: CommittedResults | None) -> tuple[CellResult, str] | None:
    """The grid trial ``task`` answered by the benchmark cell it duplicates, when there is one.

    A trial's config hash is computed like a benchmark cell's (the grid point is not part
    of it), so a trial whose point is the configuration a finished cell of the same model
    and seed already ran -- e.g. a rate grid added after a run without grids -- would train
    the very same model again. Its validation record is taken from that cell instead: the
    cell finished on disk (``"skipped"``), else the folder's committed ``results.json``
    (``"restored"``). Only the validation side is kept (the test metrics stay with the
    cell): the grid selects on validation alone. ``None`` when no cell matches the hash.
    """
    if task.grid_point is None:
        return None
    directory = cell_dir(folder, task.spec, task.seed)
    result, how = None, "skipped"
    if is_finished(directory, task.config_hash):
        try:
            result = load_cell(directory)
        except (OSError, ValueError, TypeError):
            result = None
    if result is None and committed is not None:
        stored = committed.cells.get((task.spec.name, task.seed))
        if stored is not None and stored.config_hash == task.config_hash:
            result, how = stored, "restored"
    if result is None or result.status != "ok" or result.config_hash != task.config_hash:
        return None
    trial = dataclasses.replace(result, test={}, eval_s=None, n_test_users={}, peak_mem_mb=None)
    return trial, how


def write_trial_record(task: CellTask, result: CellResult) -> None:
    """Write a trial answered by a benchmark cell (:func:`cell_as_trial`) into place as a
    finished trial (its validation record only), so that it outlives a later re-run of
    that cell with another configuration."""
    staging = staging_dir(task.directory)
    clear_cell(staging)
    save_cell(staging, CellOutput(result), task.config_hash)
    publish_cell(staging, task.directory)


def verify_committed(committed: CommittedResults | None, config: BenchConfig, runner: CellRunner,
                     fingerprint: dict[str, Any], folder: Path) -> None:
    """Mark the models whose committed selected grid point hashes as their committed cells
    (see :mod:`mmgcn.bench.restore`): their older grid rows can then be restored."""
    if committed is None:
        return
    for spec in config.specs:
        grid = config.grid_for(spec)
        point = committed.selected_point(spec.name)
        if grid is None or point is None or point not in grid.points():
            continue
        model_overrides, train_overrides = split_point(point)
        tasks = [_task(config, runner, fingerprint, spec, seed, folder / "grid" / spec.dirname / "verify", point,
                       {**config.model_config_for(spec), **model_overrides}, train_overrides)
                 for seed in (tuple(grid.seeds) or (config.seed_list[0],))]
        committed.verify(spec.name, tasks)


def plan_benchmark(config: BenchConfig, runner: CellRunner, dataset: Dataset) -> list[tuple[str, str]]:
    """What :func:`run_benchmark` would do, without training: ``[(cell label, status)]`` with
    status ``"finished"`` (kept), ``"resumes"`` (an interrupted attempt of the same config),
    ``"runs"`` or, for the cells of a model whose grid has unfinished trials, ``"after grid"``.

    A finished cell whose config changed (a changed default, another split) shows as
    ``"runs"``: the way to see which cells a code or config change invalidates. A cell the
    committed ``results.json`` holds (:mod:`mmgcn.bench.restore`) shows as ``"restores"``.
    """
    fingerprint = dataset_fingerprint(dataset)
    folder = Path(config.out) / config.results_name
    seeds = config.seed_list
    plan: list[tuple[str, str]] = []
    committed = CommittedResults.load(folder)
    verify_committed(committed, config, runner, fingerprint, folder)
    answered: dict[Path, CellResult] = {}  # trials a benchmark cell answers (cell_as_trial)

    def status(task: CellTask) -> str:
        if is_finished(task.directory, task.config_hash, per_user=task.grid_point is None):
            return "finished"
        reused = cell_as_trial(task, folder, committed)
        if reused is not None:
            answered[task.directory] = reused[0]
            return "finished" if reused[1] == "skipped" else "restores"
        if restorable(committed, task):
            return "restores"
        staged = dataclasses.replace(task, directory=staging_dir(task.directory))
        if started_hash(staged.directory) == task.config_hash and runner.can_resume(staged):
            return "resumes"
        return "runs"

    for spec in config.specs:
        base_config = config.model_config_for(spec)
        grid = config.grid_for(spec)
        chosen: dict[str, Any] | None = {}
        if grid is not None:
            best: tuple[float, int] | None = None
            grid_seeds = tuple(grid.seeds) or (seeds[0],)
            trial_states = []
            for index, point in enumerate(grid.points()):
                model_overrides, train_overrides = split_point(point)
                values = []
                for seed in grid_seeds:
                    directory = folder / "grid" / spec.dirname / f"point-{index}" / f"seed-{seed}"
                    task = _task(config, runner, fingerprint, spec, seed, directory, point,
                                 {**base_config, **model_overrides}, train_overrides)
                    state = status(task)
                    trial_states.append(state)
                    plan.append((task.label, state))
                    if directory in answered:
                        values.append(answered[directory].best_valid)
                    elif state == "finished":
                        values.append(load_cell(directory).best_valid)
                    elif state == "restores":
                        values.append(committed.trial(task).best_valid)  # type: ignore[union-attr]
                    else:
                        values.append(None)
                if all(v is not None for v in values):
                    mean = sum(values) / len(values)
                    if best is None or mean > best[0]:
                        best = (mean, index)
            all_done = all(state in ("finished", "restores") for state in trial_states)
            chosen = grid.points()[best[1]] if best is not None and all_done else None
        for seed in config.seeds_for(spec):
            if chosen is None:
                plan.append((f"{spec.name} seed {seed}", "after grid"))
                continue
            model_overrides, train_overrides = split_point(chosen)
            directory = cell_dir(folder, spec, seed)
            task = _task(config, runner, fingerprint, spec, seed, directory, None,
                         {**base_config, **model_overrides}, train_overrides)
            plan.append((task.label, status(task)))
    return plan


def run_benchmark(config: BenchConfig, **kwargs: Any) -> BenchRun:
    """Run every cell of ``config`` (skipping finished ones), then write tables and figures,
    holding the results folder's lock throughout (:class:`mmgcn.bench.lock.BenchLock`: a
    second benchmark on the same folder fails at once, naming the holder).

    Keyword arguments are those of :func:`_run_benchmark_locked`.

    Raises:
        BenchLockedError: another process is writing the same results folder.
    """
    with BenchLock(Path(config.out) / config.results_name):
        return _run_benchmark_locked(config, **kwargs)


def _run_benchmark_locked(
    config: BenchConfig,
    *,
    runner: CellRunner | None = None,
    dataset: Dataset | None = None,
    force: bool = False,
    progress: bool = True,
    plots: bool = True,
    echo: Callable[[str], None] | None = None,
    grids_only: bool = False,
    restore: bool = True,
) -> BenchRun:
    """Run every cell of ``config`` (skipping finished ones), then write tables and figures.

    Args:
        config: the benchmark settings.
        runner: trains and tests one cell (default: :class:`mmgcn.bench.runner.TrainerRunner`).
        dataset: the dataset (default: ``load_dataset(config.dataset, ...)``).
        force: re-run finished cells too.
        progress: draw the tqdm bars.
        plots: draw the PNG figures (``mmgcn report`` can draw them later from the JSON).
        echo: called with each header line before the run starts (the CLI prints them).
        grids_only: run the models' grids only (validation; what ``benchmarks/tune.py``
            does) and write ``grids.json`` instead of the result tables.
        restore: restore cells absent on disk from the folder's committed ``results.json``
            and ``per_user.npz`` when their config hash matches (:mod:`mmgcn.bench.restore`;
            never with ``force``).

    Returns:
        a :class:`BenchRun`; failed cells are in ``results.cells`` with ``status="failed"``.
    """
    if runner is None:
        from mmgcn.bench.runner import TrainerRunner

        runner = TrainerRunner(progress=progress)
    if dataset is None:
        from mmgcn.data.registry import load_dataset

        dataset = load_dataset(config.dataset, data_dir=config.data_dir, **dataset_arguments(config))
    check_specs(config, dataset)
    grids = {spec.name: config.grid_for(spec) for spec in config.specs}
    for spec in config.specs:
        # resolve every model's config (and grid point) now: a bad key fails before any training
        base_config = config.model_config_for(spec)
        for point in grids[spec.name].points() if grids[spec.name] else [{}]:
            model_overrides, train_overrides = split_point(point)
            runner.resolve(spec, {**base_config, **model_overrides},
                           merge(config.train_config_for(spec), train_overrides), config)
    folder = Path(config.out) / config.results_name
    header = build_header(config, dataset, runner)
    if echo is not None:
        for line in header_lines(header):
            echo(line)
    fingerprint = dataset_fingerprint(dataset)
    seeds = config.seed_list
    folder.mkdir(parents=True, exist_ok=True)
    # read before this run rewrites them
    committed = CommittedResults.load(folder) if restore and not force else None
    verify_committed(committed, config, runner, fingerprint, folder)
    if committed is not None:
        log.info("%s: %d finished cells recorded in the committed results; absent ones with the same "
                 "config hash are restored, not re-trained", folder, len(committed))
    ignore = folder / ".gitignore"
    if not ignore.exists():
        # tables, figures and the per-user file are the results to commit; cells hold bulky per-run files
        ignore.write_text("cells/\ngrid/\n", encoding="utf-8")
    total = sum((0 if grids_only else len(config.seeds_for(spec))) + (len(g.points()) * (len(g.seeds) or 1) if g else 0)
                for spec, g in ((spec, grids[spec.name]) for spec in config.specs))
    bar = tqdm(total=total, desc=f"bench {config.results_name}", unit="cell", position=0, disable=not progress)
    run = BenchRun(results=BenchResults(header=header, summaries=[]), folder=folder)
    cells_by_model: dict[str, list[CellResult]] = {}
    grid_report: dict[str, list[dict[str, Any]]] = {}
    selected_points: dict[str, dict[str, Any] | None] = {}
    outcomes: list[GridOutcome] = []

    def step(task: CellTask, force_task: bool = force) -> CellResult:
        bar.set_postfix_str(task.label, refresh=True)
        if (not force_task and task.grid_point is not None
                and not is_finished(task.directory, task.config_hash, per_user=False)):
            reused = cell_as_trial(task, folder, committed)
            if reused is not None:
                log.info("%s: the benchmark cell of seed %d ran this very configuration (same config hash); "
                         "its validation record answers the trial", task.label, task.seed)
                write_trial_record(task, reused[0])
                setattr(run, reused[1], getattr(run, reused[1]) + 1)
                bar.update(1)
                return reused[0]
        if not force_task and restorable(committed, task):
            restored = committed.restore(task)  # type: ignore[union-attr]
            if restored is not None:
                run.restored += 1
                bar.update(1)
                return restored
        result, what = run_cell(task, dataset, config, runner, force_task)
        setattr(run, what, getattr(run, what) + 1)
        bar.update(1)
        return result

    def make_trial(spec: ModelSpec, seed: int, directory: Path, point: dict[str, Any],
                   model_overrides: dict[str, Any], train_overrides: dict[str, Any]) -> CellTask:
        return _task(config, runner, fingerprint, spec, seed, directory, point,
                     {**config.model_config_for(spec), **model_overrides}, train_overrides)

    try:
        for spec in config.specs:
            base_config = config.model_config_for(spec)
            grid = grids[spec.name]
            outcome: GridOutcome | None = None
            if grid is not None:
                outcome = run_grid(spec, grid, seeds[0], folder, make_trial, step)
                outcomes.append(outcome)
                grid_report[spec.name] = outcome.report()
                selected_points[spec.name] = outcome.chosen
            cells = []
            for seed in () if grids_only else config.seeds_for(spec):
                directory = cell_dir(folder, spec, seed)
                if outcome is not None and outcome.chosen is None:
                    bar.update(1)
                    run.failed += 1
                    cells.append(CellResult(spec.name, seed, status="failed", error="no grid point finished"))
                    continue
                model_overrides, train_overrides = split_point(outcome.chosen if outcome is not None else {})
                task = _task(config, runner, fingerprint, spec, seed, directory, None,
                             {**base_config, **model_overrides}, train_overrides)
                staging = staging_dir(directory)
                if (outcome is not None and not is_finished(directory, task.config_hash)
                        and started_hash(staging) != task.config_hash and not restorable(committed, task)):
                    # the selected point trained with this seed is this very cell: test it only
                    reuse_trial(outcome, dataclasses.replace(task, directory=staging))
                cells.append(step(task))
            cells_by_model[spec.name] = cells
    finally:
        bar.close()
    if not getattr(runner, "keep_checkpoints", False):
        drop_checkpoints(outcomes)
    if grids_only:
        run.results = BenchResults(header=header, summaries=[], grids=grid_report)
        run.files = {"grids": folder / GRIDS_JSON}
        atomic_write_json(folder / GRIDS_JSON, {"header": header, "grids": grid_report})
        return run

    # results.json is rebuilt from the cells as they are on disk, under the folder's lock
    cells_by_model = {name: [read_back(c, cell_dir(folder, ModelSpec.parse(name), c.seed))
                             for c in cells] for name, cells in cells_by_model.items()}
    summaries = [summarise_model(s.name, cells_by_model.get(s.name, []), selected_points.get(s.name)) for s in config.specs]
    per_user: PerUser = {}
    for spec in config.specs:
        for cell in cells_by_model.get(spec.name, []):
            if cell.status != "ok":
                continue
            path = cell_dir(folder, spec, cell.seed) / "per_user.npz"
            per_user.setdefault(spec.name, {})[cell.seed] = keep_arrays(load_per_user(path), config.significance_metrics)
    per_user[DATASET_KEY] = {0: {"train_degree": np.diff(dataset.train.indptr).astype(np.int32)}}
    write_per_user(folder / PER_USER_NPZ, per_user)
    all_cells = [c for s in config.specs for c in cells_by_model.get(s.name, [])]
    comparisons, breakdowns, chosen = compare_table(per_user, config.models, config.reference, config.comparisons,
                                                    all_cells, config.significance_metrics)
    if config.protocol == "cold-start":
        # the rankings a cold-only column is read against, from the split alone, under the
        # table's test mask (a model_train override of test_mask would rank other users)
        mask = config.train.get("test_mask", TrainConfig.test_mask)
        floors = cold_only_floors(dataset, "test", config.ks, mask)
        if floors is not None:
            breakdowns["cold_only_floors"] = floors
    if chosen:
        header["selected_for_comparison"] = {k: f"{v} (best mean validation {config.metric})" for k, v in chosen.items()}
    header["significance"] = describe_significance(config, family=len(comparisons))
    results = BenchResults(header=header, summaries=summaries, cells=all_cells, grids=grid_report,
                           comparisons=comparisons, breakdowns=breakdowns)
    run.results = results
    run.files = write_results(results, folder)
    if plots:
        run.files.update(write_plots(results, folder))
    return run
