"""From finished cells to table rows: mean / std over seeds, and seed-aware comparisons.

Aggregation over seeds: the mean and the sample standard deviation (``ddof=1``; ``None``
with a single seed) of every test metric and resource column over the seeds that
finished (:func:`summarise_model`).

Comparisons (:func:`compare_models`): for every pair the table shows (each model against
the reference, plus the config's extra pairs) and every significance metric, the
hierarchical bootstrap over seeds then users of :mod:`mmgcn.eval.significance`; Holm's
correction runs over that whole family (pairs x metrics), so "significant" in a table means
"significant among everything this table claims".

The per-user metrics behind the comparisons travel with the results as one
``per_user.npz`` (:func:`write_per_user`, :func:`read_per_user`): arrays named
``<model>/seed-<k>/<name>`` (``users``, ``recall@20``, ``cold/users``, ``cold/recall@20``...).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmgcn.bench.cells import metric_vector
from mmgcn.bench.results import CellResult, ModelSummary
from mmgcn.eval.significance import BOOT_SEED, N_BOOT, SeedComparison, compare, holm
from mmgcn.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)

# CellResult attribute -> summary column
RESOURCE_FIELDS = {
    "epochs": "epochs",
    "train_s_per_epoch": "train_s_per_epoch",
    "eval_s": "eval_s",
    "params": "params",
    "peak_mem_mb": "peak_mem_mb",
}

#: ``{model: {seed: {array name: (n,) array}}}``
PerUser = dict[str, dict[int, dict[str, np.ndarray]]]
#: reserved entry of a per-user file for dataset-level arrays (no model name starts with "_")
DATASET_KEY = "_dataset"
#: lower edges of the user train-degree buckets of the breakdown table
DEGREE_EDGES = (0, 1, 2, 3, 5, 10, 20, 50, 100, 200)
#: the per-user group of the cold-start protocol's ranking among the cold test items only
COLD_ONLY = "cold-only"
#: buckets with fewer test users are left out of the per-bucket comparisons (no usable interval)
MIN_BUCKET_USERS = 30
_KEY = re.compile(r"^(?P<model>[^/]+)/seed-(?P<seed>-?\d+)/(?P<name>.+)$")


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    std = float(array.std(ddof=1)) if array.size > 1 else None
    return mean, std


def summarise_model(model: str, cells: Sequence[CellResult], selected: dict[str, Any] | None = None) -> ModelSummary:
    """Mean / std over the finished cells of one model."""
    ok = [c for c in cells if c.status == "ok"]
    summary = ModelSummary(
        model=model,
        seeds=sorted(c.seed for c in ok),
        failed_seeds=sorted(c.seed for c in cells if c.status != "ok"),
        selected=selected,
    )
    if not ok:
        return summary
    metric_names = sorted({name for c in ok for name in c.test})
    for name in metric_names:
        values = [c.test[name] for c in ok if c.test.get(name) is not None]
        if values:
            summary.mean[name], summary.std[name] = _mean_std(values)
    for attr, column in RESOURCE_FIELDS.items():
        values = [getattr(c, attr) for c in ok if getattr(c, attr) is not None]
        if values:
            summary.mean[column], summary.std[column] = _mean_std(values)
    return summary


# ---------------------------------------------------------------- per-user file
def keep_arrays(per_user: Mapping[str, np.ndarray], metrics: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays of ``metrics`` (in every group present: overall, warm, cold, cold-only) and
    their user ids, out of one cell's per-user file."""
    out = {}
    for name, values in per_user.items():
        group, _, base = name.rpartition("/")
        if base in metrics or base == "users":
            out[name] = np.asarray(values)
    return out


def write_per_user(path: str | Path, per_user: PerUser) -> None:
    """Write ``{model: {seed: arrays}}`` as one compressed ``.npz`` (numeric arrays only)."""
    arrays = {}
    for model, seeds in per_user.items():
        for seed, named in seeds.items():
            for name, values in named.items():
                values = np.asarray(values)
                if values.dtype == object or values.ndim != 1:
                    raise ValueError(f"per-user array {model}/{seed}/{name} must be a 1-D numeric array")
                arrays[f"{model}/seed-{seed}/{name}"] = values
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(Path(path), buffer.getvalue())


def read_per_user(path: str | Path) -> PerUser:
    """Read a file of :func:`write_per_user` (``allow_pickle=False``)."""
    out: PerUser = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            match = _KEY.match(key)
            if match is None:
                raise ValueError(f"{path}: unexpected array name {key!r} (expected <model>/seed-<k>/<name>)")
            out.setdefault(match["model"], {}).setdefault(int(match["seed"]), {})[match["name"]] = data[key]
    return out


def degree_breakdown(per_user: PerUser, metric: str, edges: Sequence[int] = DEGREE_EDGES) -> dict[str, Any]:
    """Test ``metric`` by user train-degree bucket: per model, the mean over seeds of each
    bucket's mean over its users.

    Needs ``per_user[DATASET_KEY][0]["train_degree"]`` (``(n_users,)``, written by the bench).
    Returns ``{"metric", "buckets": ["1", "2", "3-4", ...], "n_users": [...], "values":
    {model: [...]}}`` over the non-empty buckets (``{}`` without degrees).
    """
    degree = _train_degree(per_user)
    if degree is None:
        return {}
    bounds, labels = _buckets(edges)
    values: dict[str, list[float | None]] = {}  # None: no user of the bucket in any seed
    counts: list[int] | None = None
    for model, seeds in per_user.items():
        if model == DATASET_KEY:
            continue
        per_seed = []
        for arrays in seeds.values():
            if metric not in arrays:
                continue
            users, vals = np.asarray(arrays["users"]), np.asarray(arrays[metric])
            bucket = _bucket_of(degree, users, bounds)
            per_seed.append([float(vals[bucket == b].mean()) if (bucket == b).any() else np.nan
                             for b in range(len(labels))])
            if counts is None:
                counts = [int((bucket == b).sum()) for b in range(len(labels))]
        if per_seed:
            table = np.asarray(per_seed)
            values[model] = [float(col[np.isfinite(col)].mean()) if np.isfinite(col).any() else None
                             for col in table.T]
    if counts is None:
        return {}
    keep = [b for b, n in enumerate(counts) if n > 0]
    return {
        "metric": metric,
        "buckets": [labels[b] for b in keep],
        "n_users": [counts[b] for b in keep],
        "values": {m: [v[b] for b in keep] for m, v in values.items()},
    }


def _train_degree(per_user: PerUser) -> np.ndarray | None:
    dataset = per_user.get(DATASET_KEY, {}).get(0, {})
    return np.asarray(dataset["train_degree"]) if "train_degree" in dataset else None


def _buckets(edges: Sequence[int]) -> tuple[list[float], list[str]]:
    """``(bounds, labels)``: bucket ``b`` holds degrees in ``[bounds[b], bounds[b + 1])``."""
    bounds = [*edges, np.inf]
    labels = [f"{lo}" if hi - lo == 1 else (f"{lo}+" if hi == np.inf else f"{lo}-{int(hi) - 1}")
              for lo, hi in zip(bounds[:-1], bounds[1:])]
    return bounds, labels


def _bucket_of(degree: np.ndarray, users: np.ndarray, bounds: Sequence[float]) -> np.ndarray:
    """The degree bucket (index into :func:`_buckets`' labels) of each of ``users``."""
    return np.searchsorted(bounds, degree[users], side="right") - 1


def degree_comparisons(
    per_user: PerUser,
    pairs: Sequence[tuple[str, str]],
    metric: str,
    edges: Sequence[int] = DEGREE_EDGES,
    min_users: int | None = None,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> dict[str, Any]:
    """Each pair's seed-aware comparison (:func:`mmgcn.eval.significance.compare`) within
    each user train-degree bucket: where a model's gain over its reference comes from.

    A bucket enters when at least ``min_users`` (default :data:`MIN_BUCKET_USERS`) test
    users of the pair fall in it and some run of either model scores above zero there. The
    p-values are Holm-adjusted over this breakdown's own family (every pair x bucket), apart
    from the table's main family.

    Returns:
        ``{"metric", "min_users", "rows": [{"bucket", **SeedComparison.to_dict()}, ...]}``
        (``{}`` without degrees or pairs).
    """
    degree = _train_degree(per_user)
    if degree is None or not pairs:
        return {}
    bounds, labels = _buckets(edges)
    min_users = MIN_BUCKET_USERS if min_users is None else min_users
    found: list[tuple[str, SeedComparison]] = []
    for model, reference in pairs:
        tagged = {}  # per model, (users, values, the users' buckets) of each run
        for name in (model, reference):
            seeds = per_user.get(name, {})
            runs = [tuple(map(np.asarray, metric_vector(seeds[s], metric))) for s in sorted(seeds) if metric in seeds[s]]
            tagged[name] = [(u, v, _bucket_of(degree, u, bounds)) for u, v in runs]
        if not tagged[model] or not tagged[reference]:
            continue
        for b, label in enumerate(labels):
            model_runs = [(u[k == b], v[k == b]) for u, v, k in tagged[model]]
            reference_runs = [(u[k == b], v[k == b]) for u, v, k in tagged[reference]]
            shared = np.intersect1d(model_runs[0][0], reference_runs[0][0]).size
            if shared < max(min_users, 2):
                continue
            if not any(values.any() for _, values in (*model_runs, *reference_runs)):
                continue  # no hit for any user of the bucket in any run of either: nothing to compare
            found.append((label, compare(model, reference, metric, model_runs, reference_runs, n_boot, seed)))
    if not found:
        return {}
    adjusted = holm([c.p for _, c in found])
    rows = [{"bucket": label, **dataclasses.replace(c, p_holm=p).to_dict()} for (label, c), p in zip(found, adjusted)]
    return {"metric": metric, "min_users": min_users, "rows": rows}


# ---------------------------------------------------------------- comparisons
def tested_valid(cell: CellResult) -> float | None:
    """The validation value of the model the cell tested: after its post-training
    calibration where it chose one (``calibration["valid"]``), else at its best epoch."""
    if cell.calibration and cell.calibration.get("valid") is not None:
        return float(cell.calibration["valid"])
    return cell.best_valid


def best_on_validation(candidates: Sequence[str], cells: Sequence[CellResult]) -> str | None:
    """The candidate with the best mean validation value of the tested models
    (:func:`tested_valid`: calibrated where the model calibrates) over its finished seeds;
    ``None`` if none finished. Ties go to the earlier candidate."""
    best: tuple[float, str] | None = None
    for name in candidates:
        values = [v for c in cells if c.model == name and c.status == "ok" and (v := tested_valid(c)) is not None]
        if values and (best is None or float(np.mean(values)) > best[0]):
            best = (float(np.mean(values)), name)
    return None if best is None else best[1]


def resolve_selectors(extra: Sequence[Sequence[str]], cells: Sequence[CellResult]) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Replace every ``"best:a,b"`` side of ``extra`` by the validation-selected model.

    Returns the resolved pairs and ``{selector: chosen model}``. A pair whose selector has no
    finished candidate is dropped, and so is one that resolves to a pair already listed
    (e.g. ``[diffmm, simgcl]`` next to a ``best:`` pair whose picks are DiffMM and SimGCL)
    or to a model against itself: every pair enters each Holm family once.
    """
    from mmgcn.bench.config import BEST_PREFIX, selector_candidates

    chosen: dict[str, str] = {}
    pairs = []
    for pair in extra:
        resolved = []
        for side in pair:
            if side.startswith(BEST_PREFIX):
                pick = best_on_validation(selector_candidates(side), cells)
                if pick is None:
                    log.warning("%s: no candidate finished; comparison %s dropped", side, list(pair))
                    break
                chosen[side] = pick
                resolved.append(pick)
            else:
                resolved.append(side)
        else:
            pair_resolved = (resolved[0], resolved[1])
            if pair_resolved in pairs or pair_resolved[0] == pair_resolved[1]:
                log.info("comparison %s resolves to %s, %s: counted once", list(pair), *pair_resolved)
            else:
                pairs.append(pair_resolved)
    return pairs, chosen


def comparison_pairs(models: Sequence[str], reference: str, extra: Sequence[Sequence[str]] = ()) -> list[tuple[str, str]]:
    """Every model against ``reference``, then the extra ``(model, reference)`` pairs (already
    resolved, see :func:`resolve_selectors`), without repeats."""
    pairs: list[tuple[str, str]] = [(m, reference) for m in models if m != reference]
    for pair in extra:
        model, ref = pair
        if (model, ref) not in pairs and model != ref:
            pairs.append((model, ref))
    return pairs


def compare_table(
    per_user: PerUser,
    models: Sequence[str],
    reference: str,
    comparisons: Sequence[Sequence[str]],
    cells: Sequence[CellResult],
    metrics: Sequence[str],
) -> tuple[list[SeedComparison], dict[str, Any], dict[str, str]]:
    """A table's comparisons, from its per-user metrics: every model against ``reference``
    and the configured ``comparisons`` (``best:`` sides resolved on validation,
    :func:`resolve_selectors`), Holm over them (:func:`compare_models`); the user-degree
    breakdown of the first metric and the configured pairs within each bucket.

    Returns ``(comparisons, breakdowns, {selector: chosen model})``.
    """
    extra, chosen = resolve_selectors(comparisons, cells)
    pairs = comparison_pairs(models, reference, extra)
    breakdowns = {"user_degree": degree_breakdown(per_user, metrics[0]),
                  "user_degree_comparisons": degree_comparisons(per_user, extra, metrics[0])}
    cold_only = cold_only_comparisons(per_user, extra, metrics)
    if cold_only:
        breakdowns["cold_only_comparisons"] = cold_only
    return compare_models(per_user, pairs, metrics), breakdowns, chosen


def cold_only_comparisons(
    per_user: PerUser,
    pairs: Sequence[tuple[str, str]],
    metrics: Sequence[str],
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> dict[str, Any]:
    """The configured pairs on the cold-start protocol's second ranking, among the cold test
    items only (``cold-only/<metric>`` per-user arrays): seed-aware, Holm-adjusted over this
    family of its own (pairs x metrics). A pair with a model that has no such ranking (ID
    only) is left out.

    Returns ``{"rows": [SeedComparison.to_dict(), ...]}`` (``{}`` without a usable pair).
    """
    names = [f"{COLD_ONLY}/{m}" for m in metrics]

    def ranked(model: str) -> bool:
        return any(names[0] in arrays for arrays in per_user.get(model, {}).values())

    usable = [(model, reference) for model, reference in pairs if ranked(model) and ranked(reference)]
    rows = compare_models(per_user, usable, names, n_boot, seed) if usable else []
    return {"rows": [c.to_dict() for c in rows]} if rows else {}


def compare_models(
    per_user: PerUser,
    pairs: Sequence[tuple[str, str]],
    metrics: Sequence[str],
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> list[SeedComparison]:
    """Seed-aware comparisons of every pair on every metric, Holm-adjusted over all of them.

    Pairs whose models have no per-user data (failed or missing cells) or no common users
    are skipped with a log line.
    """
    results: list[SeedComparison] = []
    for metric in metrics:
        for model, reference in pairs:
            runs = {}
            for name in (model, reference):
                seeds = per_user.get(name, {})
                try:
                    runs[name] = [metric_vector(seeds[s], metric) for s in sorted(seeds)]
                except KeyError as exc:
                    log.warning("%s: no per-user %s (%s); not compared", name, metric, exc)
                    runs[name] = []
            if not runs[model] or not runs[reference]:
                continue
            try:
                results.append(compare(model, reference, metric, runs[model], runs[reference], n_boot, seed))
            except ValueError as exc:
                log.warning("%s vs %s on %s: %s", model, reference, metric, exc)
    adjusted = holm([c.p for c in results])
    return [dataclasses.replace(c, p_holm=p) for c, p in zip(results, adjusted)]


__all__ = [
    "DATASET_KEY",
    "PerUser",
    "degree_breakdown",
    "degree_comparisons",
    "compare_models",
    "compare_table",
    "cold_only_comparisons",
    "best_on_validation",
    "tested_valid",
    "comparison_pairs",
    "keep_arrays",
    "read_per_user",
    "resolve_selectors",
    "summarise_model",
    "write_per_user",
]
