"""From finished cells to :class:`~mmgcn.bench.results.ModelSummary` rows with significance.

Aggregation over seeds: the mean and the sample standard deviation (``ddof=1``; ``None``
with a single seed) of every test metric and resource column over the seeds that
finished. Significance: each model's per-user test metric is averaged over its seeds
(:func:`mmgcn.bench.stats.pool_seeds`), paired by user id with the reference model's
seed-averaged metric (:func:`mmgcn.bench.stats.pair_by_user`), and tested with the
Wilcoxon signed-rank test and the paired t-test (:func:`mmgcn.bench.stats.paired_tests`);
Holm's correction is applied over the family of models compared to the reference.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mmgcn.bench.cells import metric_vector
from mmgcn.bench.results import CellResult, ModelSummary
from mmgcn.bench.stats import holm, pair_by_user, paired_tests, pool_seeds

log = logging.getLogger(__name__)

# CellResult attribute -> summary column
RESOURCE_FIELDS = {
    "epochs": "epochs",
    "train_s_per_epoch": "train_s_per_epoch",
    "eval_s": "eval_s",
    "params": "params",
    "peak_mem_mb": "peak_mem_mb",
}

PerUserLoader = Callable[[CellResult], Mapping[str, np.ndarray]]


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    std = float(array.std(ddof=1)) if array.size > 1 else None
    return mean, std


def summarise_model(model: str, cells: Sequence[CellResult], selected: dict[str, Any] | None = None) -> ModelSummary:
    """Mean / std over the finished cells of one model (significance filled in later)."""
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


def add_significance(
    summaries: Sequence[ModelSummary],
    cells_by_model: Mapping[str, Sequence[CellResult]],
    baseline: str,
    metrics: Sequence[str],
    load_per_user: PerUserLoader,
) -> None:
    """Fill ``significance`` and ``wilcoxon_p_holm`` of every summary against ``baseline``.

    Models (or the baseline) without finished cells, and metrics missing from the per-user
    files, are skipped with a log line. Modifies ``summaries`` in place.
    """
    pooled: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}

    def pooled_metric(model: str, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
        if metric in pooled.get(model, {}):
            return pooled[model][metric]
        runs = []
        for cell in cells_by_model.get(model, ()):
            if cell.status != "ok":
                continue
            try:
                runs.append(metric_vector(load_per_user(cell), metric))
            except (KeyError, OSError, ValueError) as exc:
                log.warning("%s seed %d: no per-user %s (%s)", model, cell.seed, metric, exc)
        value = pool_seeds(runs) if runs else None
        pooled.setdefault(model, {})[metric] = value
        return value

    if not any(s.model == baseline and s.seeds for s in summaries):
        log.warning("reference model %r has no finished cell: no significance tests", baseline)
        return
    for metric in metrics:
        reference = pooled_metric(baseline, metric)
        if reference is None:
            continue
        tested: list[ModelSummary] = []
        for summary in summaries:
            if summary.model == baseline or not summary.seeds:
                continue
            other = pooled_metric(summary.model, metric)
            if other is None:
                continue
            _, a, b = pair_by_user(other[0], other[1], reference[0], reference[1])
            if a.size < 2:
                log.warning("%s vs %s: fewer than 2 common users for %s", summary.model, baseline, metric)
                continue
            summary.significance[metric] = paired_tests(a, b)
            tested.append(summary)
        adjusted = holm([s.significance[metric].wilcoxon_p for s in tested])
        for summary, p in zip(tested, adjusted):
            summary.wilcoxon_p_holm[metric] = p
