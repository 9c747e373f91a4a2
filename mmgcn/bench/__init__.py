"""Benchmark harness: models x seeds on one dataset, honest selection, tables, significance, plots.

* :mod:`~mmgcn.bench.config` -- :class:`BenchConfig` (YAML + ``full:`` section; grids that
  can only be selected on validation) and :class:`ModelSpec` (``mmgcn[image+audio]``);
* :mod:`~mmgcn.bench.harness` -- :func:`run_benchmark`: cells, grids, skip-finished, crashes;
* :mod:`~mmgcn.bench.cells` -- a cell on disk and its atomic completion marker;
* :mod:`~mmgcn.bench.runner` -- :class:`TrainerRunner`: the trainer and evaluator behind a cell;
* :mod:`~mmgcn.bench.grid` -- the one grid engine: validation-only selection, test untouched;
* :mod:`~mmgcn.bench.aggregate` -- mean / std over seeds and the seed-aware comparisons
  (:mod:`mmgcn.eval.significance`), Holm over the table's family;
* :mod:`~mmgcn.bench.header` -- the table header, generated from the cells' resolved configs;
* :mod:`~mmgcn.bench.results` / :mod:`~mmgcn.bench.tables` / :mod:`~mmgcn.bench.plots` --
  ``results.json`` and the Markdown, CSV and PNG renderings of it;
* :mod:`~mmgcn.bench.report` -- rebuild tables and figures from ``results.json``.
"""

from mmgcn.bench.config import BenchConfig, GridConfig, ModelSpec, load_bench_config
from mmgcn.bench.harness import BenchRun, run_benchmark
from mmgcn.bench.report import rebuild
from mmgcn.bench.results import BenchResults, CellResult, ModelSummary, read_results, write_results

__all__ = [
    "BenchConfig",
    "BenchResults",
    "BenchRun",
    "CellResult",
    "GridConfig",
    "ModelSpec",
    "ModelSummary",
    "load_bench_config",
    "read_results",
    "rebuild",
    "run_benchmark",
    "write_results",
]
