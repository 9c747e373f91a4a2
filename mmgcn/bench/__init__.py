"""Benchmark harness: models x seeds on one dataset, honest selection, tables, significance, plots.

* :mod:`~mmgcn.bench.config` -- :class:`BenchConfig` (YAML + ``full:`` section; grids that
  can only be selected on validation) and :class:`ModelSpec` (``mmgcn[image+audio]``);
* :mod:`~mmgcn.bench.harness` -- :func:`run_benchmark`: cells, grids, skip-finished, crashes;
* :mod:`~mmgcn.bench.cells` -- a cell on disk and its atomic completion marker;
* :mod:`~mmgcn.bench.runner` -- :class:`TrainerRunner`: the trainer and evaluator behind a cell;
* :mod:`~mmgcn.bench.aggregate` / :mod:`~mmgcn.bench.stats` -- mean / std over seeds and
  paired Wilcoxon / t-tests on per-user metrics;
* :mod:`~mmgcn.bench.results` / :mod:`~mmgcn.bench.tables` / :mod:`~mmgcn.bench.plots` --
  ``results.json`` and the Markdown, CSV and PNG renderings of it;
* :mod:`~mmgcn.bench.report` -- rebuild tables and figures from ``results.json``.
"""

from mmgcn.bench.config import BenchConfig, GridConfig, ModelSpec, load_bench_config
from mmgcn.bench.harness import BenchRun, run_benchmark
from mmgcn.bench.report import rebuild
from mmgcn.bench.results import BenchResults, CellResult, ModelSummary, read_results, write_results
from mmgcn.bench.stats import PairedTest, paired_tests

__all__ = [
    "BenchConfig",
    "BenchResults",
    "BenchRun",
    "CellResult",
    "GridConfig",
    "ModelSpec",
    "ModelSummary",
    "PairedTest",
    "load_bench_config",
    "paired_tests",
    "read_results",
    "rebuild",
    "run_benchmark",
    "write_results",
]
