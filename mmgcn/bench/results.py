"""Benchmark results as plain objects, written and read as JSON (tables: :mod:`mmgcn.bench.tables`).

``results.json`` is the source of truth of a benchmark folder: the header (dataset, split
convention, protocol, selection, seeds -- generated from the cells' resolved configs), one
:class:`ModelSummary` per model (mean and standard deviation over seeds), the seed-aware
comparisons (:class:`~mmgcn.eval.significance.SeedComparison`: difference, 95% interval,
Holm-adjusted p over the family shown) and every :class:`CellResult` (one trained model
and seed, with its validation curve). ``per_user.npz`` beside it keeps the per-user test
metrics of every cell that the comparisons were computed from, so they can be recomputed
without re-training (``mmgcn report --recompute``). ``results.md`` and ``results.csv`` are
rendered from those objects only, so ``mmgcn report`` rebuilds them identically from the
JSON (:func:`read_results`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmgcn.errors import DataError
from mmgcn.eval.significance import SeedComparison
from mmgcn.utils.io import atomic_write, atomic_write_json

SCHEMA_VERSION = 2
RESULTS_JSON = "results.json"
PER_USER_NPZ = "per_user.npz"
RESULTS_MD = "results.md"
RESULTS_CSV = "results.csv"

# resource columns, in table order: (key in ModelSummary.mean, table heading, format)
RESOURCE_COLUMNS = (
    ("epochs", "epochs", "{:.1f}"),
    ("train_s_per_epoch", "train s/epoch", "{:.2f}"),
    ("eval_s", "test eval s", "{:.2f}"),
    ("params", "parameters", "{:,.0f}"),
    ("peak_mem_mb", "peak mem MB", "{:,.0f}"),
)
METRIC_ORDER = ("recall", "ndcg", "precision", "hit_rate", "map", "mrr", "coverage")


@dataclass
class CellResult:
    """One (model, seed) cell: a trained model evaluated once on test.

    Attributes:
        model: model spec (``"mmgcn"``, ``"mmgcn[visual]"`` ...).
        seed: the seed.
        status: ``"ok"`` or ``"failed"``.
        test: test metrics by name (``"recall@20"``; ``"cold/recall@20"`` under cold-start).
        valid_curve: ``[[epoch, value], ...]`` of the validation selection metric.
        best_epoch: epoch whose checkpoint was evaluated on test.
        best_valid: validation metric at ``best_epoch``.
        best_valid_metrics: every validation metric at ``best_epoch``.
        epochs: epochs trained (early stopping included).
        train_s_per_epoch: mean wall-clock seconds per training epoch.
        eval_s: seconds of the single test evaluation.
        params: trainable parameters.
        peak_mem_mb: peak memory of the cell in MiB (see ``harness`` for how it is measured).
        model_config: the resolved model config the cell trained with.
        config_hash: the cell's identity (see :func:`mmgcn.bench.config.config_hash`).
        error: the error message of a failed cell.
        uses_content: whether the model reads item features (ID-only models cannot rank
            cold items above chance).
        n_test_users: evaluated test users, overall (``"all"``) and per warm / cold group.
        calibration: the model's post-training calibration chosen on validation (see
            :func:`calibration_record`), ``None`` for models without one.
    """

    model: str
    seed: int
    status: str = "ok"
    test: dict[str, float] = field(default_factory=dict)
    valid_curve: list[list[float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_valid: float | None = None
    best_valid_metrics: dict[str, float] = field(default_factory=dict)
    epochs: int | None = None
    train_s_per_epoch: float | None = None
    eval_s: float | None = None
    params: int | None = None
    peak_mem_mb: float | None = None
    model_config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    error: str | None = None
    uses_content: bool | None = None
    n_test_users: dict[str, int] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellResult:
        return cls(**_known_fields(cls, data))


def calibration_record(calibration: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What a cell keeps of the trainer's calibration (``Trainer.calibration``, also the
    run's ``calibration.json``): the chosen values, the validation value before (the neutral
    first candidate) and after, the number of candidates, and the exploration tolerance
    with the chosen candidate's cold-item value when one was set. ``None`` passes through."""
    if not calibration:
        return None
    chosen, tried = calibration["chosen"], calibration.get("tried") or []
    record: dict[str, Any] = {
        "metric": calibration.get("metric"),
        "values": dict(chosen["values"]),
        "valid": float(chosen["valid"]),
        "valid_uncalibrated": float(tried[0]["valid"]) if tried else None,
        "candidates": len(tried),
    }
    if calibration.get("tolerance"):
        record["tolerance"] = float(calibration["tolerance"])
        record["valid_cold"] = float(chosen.get("valid_cold", 0.0))
    return record


@dataclass
class ModelSummary:
    """Seeds of one model aggregated.

    Attributes:
        model: model spec.
        seeds: seeds that finished.
        failed_seeds: seeds whose cell crashed.
        mean: mean over finished seeds, per test metric and per resource column.
        std: sample standard deviation (``ddof=1``) over seeds; ``None`` with one seed.
        selected: the grid point chosen on validation, if the model had a grid.
    """

    model: str
    seeds: list[int] = field(default_factory=list)
    failed_seeds: list[int] = field(default_factory=list)
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float | None] = field(default_factory=dict)
    selected: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSummary:
        return cls(**_known_fields(cls, data))


@dataclass
class BenchResults:
    """Everything one benchmark folder reports.

    Attributes:
        header: run description (``dataset``, ``split``, ``protocol``, ``masking``,
            ``selection``, ``seeds``, ``ks``, ``baseline``, ``significance``, ``mode``,
            ``budget_note``, ``versions`` ...) printed above every table.
        summaries: one per model, in table order.
        cells: every cell, finished or failed.
        grids: ``{model: [{"params": {...}, "valid": value, "selected": bool}, ...]}``.
        comparisons: the seed-aware comparisons of the table (every model against the
            reference, plus the config's extra pairs), Holm-adjusted over all of them.
        breakdowns: descriptive breakdowns, e.g. ``{"user_degree": {...}}`` (test metric by
            user train-degree bucket, :func:`mmgcn.bench.aggregate.degree_breakdown`) and,
            under the cold-start protocol, ``"cold_only_floors"`` (the random and item-id
            order rankings of the cold test items, :func:`mmgcn.eval.floors.cold_only_floors`).
    """

    header: dict[str, Any]
    summaries: list[ModelSummary]
    cells: list[CellResult] = field(default_factory=list)
    grids: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    comparisons: list[SeedComparison] = field(default_factory=list)
    breakdowns: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "header": _json_safe(self.header),
            "summaries": [s.to_dict() for s in self.summaries],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "breakdowns": _json_safe(self.breakdowns),
            "cells": [c.to_dict() for c in self.cells],
            "grids": _json_safe(self.grids),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResults:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"results schema_version {version!r} is not {SCHEMA_VERSION}; re-run the benchmark")
        return cls(
            header=dict(data["header"]),
            summaries=[ModelSummary.from_dict(s) for s in data["summaries"]],
            cells=[CellResult.from_dict(c) for c in data.get("cells", [])],
            grids=dict(data.get("grids", {})),
            comparisons=[SeedComparison.from_dict(c) for c in data.get("comparisons", [])],
            breakdowns=dict(data.get("breakdowns", {})),
        )

    def comparison(self, model: str, metric: str, reference: str | None = None) -> SeedComparison | None:
        """The comparison of ``model`` against ``reference`` (default: the header's) on ``metric``."""
        reference = reference or self.header.get("baseline")
        return next((c for c in self.comparisons
                     if c.model == model and c.reference == reference and c.metric == metric), None)

    # ------------------------------------------------------------ table views
    @property
    def metric_names(self) -> list[str]:
        """Test metric names present in any summary, ordered by group, family and K."""
        names = {m for s in self.summaries for m in s.mean if "@" in m}
        return sorted(names, key=metric_sort_key)

    @property
    def primary_metrics(self) -> list[str]:
        """The columns of the main table: the significance metrics (default R@20, N@20)."""
        wanted = list(self.header.get("significance_metrics") or [])
        present = set(self.metric_names)
        return [m for m in wanted if m in present] or self.metric_names[:2]


def metric_sort_key(name: str) -> tuple:
    group, _, base = name.rpartition("/")
    family, _, k = base.partition("@")
    family_rank = METRIC_ORDER.index(family) if family in METRIC_ORDER else len(METRIC_ORDER)
    return (group, family_rank, family, int(k) if k.isdigit() else 0)


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {unknown} in results JSON")
    return {k: v for k, v in data.items() if k in names}


def _json_safe(value: Any) -> Any:
    """Replace NaN / inf floats by ``None`` (JSON has no NaN), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# ---------------------------------------------------------------- files
def write_results(results: BenchResults, folder: str | Path) -> dict[str, Path]:
    """Write ``results.json``, ``results.md`` and ``results.csv`` into ``folder`` atomically."""
    folder = Path(folder)
    paths = {"json": folder / RESULTS_JSON, "md": folder / RESULTS_MD, "csv": folder / RESULTS_CSV}
    atomic_write_json(paths["json"], results.to_dict())
    render_tables(results, folder)
    return paths


def render_tables(results: BenchResults, folder: str | Path) -> None:
    """(Re)write ``results.md`` and ``results.csv`` from ``results``."""
    from mmgcn.bench.tables import to_csv, to_markdown

    folder = Path(folder)
    with atomic_write(folder / RESULTS_MD, "w", encoding="utf-8") as handle:
        handle.write(to_markdown(results))
    with atomic_write(folder / RESULTS_CSV, "w", encoding="utf-8", newline="") as handle:
        handle.write(to_csv(results))


def read_results(path: str | Path) -> BenchResults:
    """Load a ``results.json`` (or the folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_JSON
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); re-run the benchmark to rewrite it") from exc
    try:
        return BenchResults.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: malformed results ({exc})") from exc
