"""The benchmark harness: models x seeds on one dataset, trained, selected on validation, tested once.

For every model spec of a :class:`~mmgcn.bench.config.BenchConfig` the harness

1. runs the model's grid, if it has one: each point is a cell trained with the grid seed
   and early-stopped on validation; the point with the best validation metric wins (test
   metrics of grid points are never read);
2. runs one cell per seed with the model's config (and the chosen grid point); a cell
   trains with early stopping on the validation metric and evaluates once on test;
3. aggregates the seeds (mean, sample std), tests every model against the reference model
   on per-user test metrics, and writes ``results.{json,md,csv}`` and the PNG figures to
   ``<out>/<dataset>/`` (``<dataset>-cold-start`` under that protocol).

The cold-start protocol loads the dataset with the ``"cold_items"`` split unless the
config's ``dataset_kwargs`` name a split (a seeded 10% of the items are held out entirely,
half to valid and half to test; ``dataset_kwargs: {split: null}`` keeps the files' own
split), and ranks the test split over all items (warm / cold breakdown) and, for content
models, among the cold test items only (:mod:`mmgcn.bench.runner`).

Cells live in ``<folder>/cells/<model>/seed-<k>/`` and grid points in
``<folder>/grid/<model>/point-<i>/`` (see :mod:`mmgcn.bench.cells`). A re-run skips every
cell whose completion marker carries the same config hash, unless ``force``; a cell that
raises is recorded as failed (traceback in its ``error.txt``) and the run goes on.

One tqdm bar counts cells across the whole run; the trainer draws per-epoch bars beneath.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mmgcn import __version__
from mmgcn.bench.aggregate import add_significance, summarise_model
from mmgcn.bench.cells import (
    ERROR_TXT,
    CellRunner,
    CellTask,
    PeakMemory,
    cell_problem,
    clear_cell,
    copy_cell,
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
from mmgcn.bench.lock import BenchLock
from mmgcn.bench.plots import write_plots
from mmgcn.bench.results import BenchResults, CellResult, write_results
from mmgcn.bench.tables import header_lines
from mmgcn.config import ConfigError
from mmgcn.data.dataset import Dataset

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


def describe_split(split: Any) -> str:
    """One line for a loader's ``info["split"]`` record (a dict of method, ratios, seed ...)."""
    if not split:
        return "as provided by the dataset loader"
    if not isinstance(split, dict):
        return str(split)
    parts = []
    for key in ("method", "warm_method", "ratios", "seed", "cold_item_fraction", "train", "valid", "test"):
        value = split.get(key)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ":".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        parts.append(f"{key} {value}")
    return ", ".join(parts) or str(split)


def build_header(config: BenchConfig, dataset: Dataset, runner: CellRunner) -> dict[str, Any]:
    """The run description shown above every table and under every figure."""
    import scipy
    import torch

    nnz = (dataset.train.nnz, dataset.valid.nnz, dataset.test.nnz)
    train = runner.describe(dict(config.train), config)
    epochs, patience = train.get("epochs", "?"), train.get("patience", "?")
    per_model = {name: dict(v) for name, v in config.model_train.items() if name in {s.base for s in config.specs} | set(config.models)}
    selection = (
        f"early stopping on validation {config.metric} (patience {patience}, at most {epochs} epochs); "
        f"test evaluated once with the best-validation checkpoint"
    )
    if per_model:
        selection += "; per-model trainer settings: " + "; ".join(
            f"{name} " + ", ".join(f"{k}={v}" for k, v in sorted(values.items())) for name, values in sorted(per_model.items())
        )
    gridded = [spec.name for spec in config.specs if config.grid_for(spec) is not None]
    if gridded:
        selection += f"; hyper-parameter grids ({', '.join(gridded)}) selected on validation only"
    split = dataset.info.get("split_convention") or describe_split(dataset.info.get("split"))
    protocol = f"full ranking over all {dataset.n_items:,} items"
    if config.protocol == "cold-start":
        n_cold = int(dataset.cold_items("test").size)
        k = int(config.metric.split("@")[1])
        protocol += (
            "; metrics also reported over warm and cold (no train edge) test items separately, "
            f"and for a second ranking among the {n_cold:,} cold test items only (content models; "
            "ID-only models cannot represent items without interactions and are marked unable); "
            "items without a train edge never enter training (BPR negatives are drawn among train "
            "items only) and content models represent them from content alone, as new items "
            "(ID part zero; train.negatives=train-items, model edgeless_items=content); a random "
            f"ranking's expected cold-only Recall@{k} is about {k} / {n_cold:,} = {min(1.0, k / max(n_cold, 1)):.3f}"
        )
    modalities = ", ".join(f"{m} {t.shape[1]}-d" for m, t in dataset.features.items()) or "none (interactions only)"
    seeds = config.seed_list
    significance = (
        f"each model vs {config.reference} on per-user test {', '.join(config.significance_metrics)}: "
        f"Wilcoxon signed-rank (zeros dropped) and paired t-test, two-sided; users paired by id, "
        f"each user's metric averaged over seeds first; Holm correction over models"
    )
    return {
        "dataset": f"{dataset.name} ({dataset.n_users:,} users x {dataset.n_items:,} items; "
        f"train/valid/test {nnz[0]:,}/{nnz[1]:,}/{nnz[2]:,} interactions)",
        "dataset_name": dataset.name,
        "split": str(split),
        "protocol": protocol,
        "protocol_name": config.protocol,
        "masking": "validation ranks with train items masked; test ranks with train + valid items masked (-inf)",
        "selection": selection,
        "seeds": f"{', '.join(map(str, seeds))} ({len(seeds)} per model)",
        "modalities": modalities,
        "significance": significance,
        "memory": (
            "peak torch.cuda.max_memory_allocated per cell" if config.device.startswith("cuda")
            else "peak resident memory of the process during each cell (Linux VmHWM, reset per cell; "
            "includes the interpreter and the loaded dataset)"
        ),
        "significance_metrics": list(config.significance_metrics),
        "baseline": config.reference,
        "metric": config.metric,
        "ks": list(config.ks),
        "mode": "full protocol (--full)" if config.mode == "full" else "quick default run (see --full for the complete protocol)",
        "budget_note": config.budget_note,
        "models": list(config.models),
        "train": train,
        "versions": {
            "mmgcn": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        "device": config.device,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _task(config: BenchConfig, runner: CellRunner, fingerprint: dict[str, Any], spec: ModelSpec, seed: int,
          directory: Path, point: dict[str, Any] | None, model_config: dict[str, Any]) -> CellTask:
    train_config = config.train_config_for(spec)
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
    problem = cell_problem(task.directory, task.config_hash)
    if not force and problem is None:
        try:
            return load_cell(task.directory), "skipped"
        except (OSError, ValueError, TypeError) as exc:
            problem = f"cell.json does not load ({exc})"
    if problem not in (None, "absent", "unfinished", "another config"):
        log.warning("%s: the finished cell %s is damaged (%s); running it again", task.label, task.directory, problem)
    staging = staging_dir(task.directory)
    if not force and cell_problem(staging, task.config_hash) is None:
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
            runner.resolve(spec, {**base_config, **point}, config.train_config_for(spec), config)
    folder = Path(config.out) / config.results_name
    header = build_header(config, dataset, runner)
    if echo is not None:
        for line in header_lines(header):
            echo(line)
    fingerprint = dataset_fingerprint(dataset)
    seeds = config.seed_list
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        # tables and figures are the results to commit; cells hold bulky per-run files
        ignore.write_text("cells/\ngrid/\n", encoding="utf-8")
    total = sum(len(seeds) + (len(g.points()) if g else 0) for g in grids.values())
    bar = tqdm(total=total, desc=f"bench {config.results_name}", unit="cell", position=0, disable=not progress)
    run = BenchRun(results=BenchResults(header=header, summaries=[]), folder=folder)
    cells_by_model: dict[str, list[CellResult]] = {}
    grid_report: dict[str, list[dict[str, Any]]] = {}
    selected_points: dict[str, dict[str, Any] | None] = {}

    def step(task: CellTask, force_task: bool = force) -> CellResult:
        bar.set_postfix_str(task.label, refresh=True)
        result, what = run_cell(task, dataset, config, runner, force_task)
        setattr(run, what, getattr(run, what) + 1)
        bar.update(1)
        return result

    try:
        for spec in config.specs:
            base_config = config.model_config_for(spec)
            grid = grids[spec.name]
            model_dir = spec.dirname
            chosen: dict[str, Any] | None = None
            trial_tasks: list[CellTask] = []
            if grid is not None:
                grid_seed = grid.seed if grid.seed is not None else seeds[0]
                trials = []
                for index, point in enumerate(grid.points()):
                    task = _task(config, runner, fingerprint, spec, grid_seed,
                                 folder / "grid" / model_dir / f"point-{index}", point, {**base_config, **point})
                    trial_tasks.append(task)
                    trials.append((point, step(task)))
                finished = [(p, r) for p, r in trials if r.status == "ok" and r.best_valid is not None]
                if finished:
                    # best validation value; ties go to the earlier grid point
                    chosen = max(finished, key=lambda pr: pr[1].best_valid)[0]
                grid_report[spec.name] = [
                    {"params": p, "valid": r.best_valid if r.status == "ok" else None, "selected": p is chosen}
                    for p, r in trials
                ]
                selected_points[spec.name] = chosen
            cells = []
            for seed in seeds:
                directory = folder / "cells" / model_dir / f"seed-{seed}"
                if grid is not None and chosen is None:
                    bar.update(1)
                    run.failed += 1
                    cells.append(CellResult(spec.name, seed, status="failed", error="no grid point finished"))
                    continue
                model_config = {**base_config, **(chosen or {})}
                task = _task(config, runner, fingerprint, spec, seed, directory, None, model_config)
                reusable = [t for t in trial_tasks if t.config_hash == task.config_hash and is_finished(t.directory, t.config_hash)]
                if reusable and (force or not is_finished(directory, task.config_hash)):
                    # the selected grid point at the grid seed is this very cell: reuse it
                    copy_cell(reusable[0].directory, directory, task.config_hash)
                    cells.append(step(task, force_task=False))
                else:
                    cells.append(step(task))
            cells_by_model[spec.name] = cells
    finally:
        bar.close()

    cell_dirs = {(s.name, seed): folder / "cells" / s.dirname / f"seed-{seed}" for s in config.specs for seed in seeds}
    # results.json is rebuilt from the cells as they are on disk, under the folder's lock
    cells_by_model = {name: [read_back(c, cell_dirs[(name, c.seed)]) for c in cells] for name, cells in cells_by_model.items()}
    summaries = [summarise_model(s.name, cells_by_model.get(s.name, []), selected_points.get(s.name)) for s in config.specs]
    add_significance(
        summaries,
        cells_by_model,
        config.reference,
        config.significance_metrics,
        lambda cell: load_per_user(cell_dirs[(cell.model, cell.seed)] / "per_user.npz"),
    )
    results = BenchResults(
        header=header,
        summaries=summaries,
        cells=[c for s in config.specs for c in cells_by_model.get(s.name, [])],
        grids=grid_report,
    )
    run.results = results
    run.files = write_results(results, folder)
    if plots:
        run.files.update(write_plots(results, folder))
    return run
