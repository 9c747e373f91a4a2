"""Rebuild the Markdown / CSV tables and the figures of benchmark folders from their JSON.

``mmgcn report benchmarks/results/`` finds every folder holding a ``results.json`` (the
given folder itself, or its direct sub-folders: one per dataset and protocol), reads it,
and rewrites ``results.md``, ``results.csv`` and the PNG figures next to it. Nothing is
re-trained and no per-cell file is needed. With ``recompute=True`` (``mmgcn report
--recompute``) the seed-aware comparisons are computed again from the folder's committed
``per_user.npz`` (e.g. after a change of method) and ``results.json`` is rewritten.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from mmgcn.bench.aggregate import (
    compare_table,
    read_per_user,
)
from mmgcn.bench.plots import write_plots
from mmgcn.bench.results import (
    PER_USER_NPZ,
    RESULTS_JSON,
    BenchResults,
    read_results,
    render_tables,
    write_results,
)

log = logging.getLogger(__name__)


@dataclass
class Report:
    """One rebuilt folder."""

    folder: Path
    results: BenchResults
    files: dict[str, Path]


def find_result_folders(root: str | Path) -> list[Path]:
    """Folders under ``root`` (``root`` itself or its direct children) that hold ``results.json``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such results directory")
    if (root / RESULTS_JSON).is_file():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / RESULTS_JSON).is_file())


def recompute_comparisons(results: BenchResults, folder: Path) -> BenchResults:
    """``results`` with its comparisons computed again from ``folder/per_user.npz``."""
    path = folder / PER_USER_NPZ
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no per-user metrics to recompute the comparisons from; re-run the benchmark")
    header = results.header
    models = [s.model for s in results.summaries]
    results.comparisons, breakdowns, _ = compare_table(
        read_per_user(path), models, header["baseline"], [tuple(p) for p in header.get("comparisons", [])],
        results.cells, header["significance_metrics"])
    # the per-user breakdowns are recomputed; the others (the cold-only floors, from the split) kept
    results.breakdowns = {**results.breakdowns, **breakdowns}
    if "significance" in header:  # the family as compared now (the header was written with the cells)
        header["significance"] = re.sub(r"Holm correction over the \d+ comparisons",
                                        f"Holm correction over the {len(results.comparisons)} comparisons",
                                        header["significance"])
    return results


def rebuild(root: str | Path, plots: bool = True, recompute: bool = False) -> list[Report]:
    """Re-render every results folder under ``root``.

    Args:
        root: a results folder, or a folder of them.
        plots: redraw the PNG figures.
        recompute: recompute the comparisons from ``per_user.npz`` and rewrite ``results.json``.

    Raises:
        FileNotFoundError: ``root`` is missing or holds no ``results.json`` at all.
        ValueError: a ``results.json`` is malformed (the message names the file).
    """
    folders = find_result_folders(root)
    if not folders:
        raise FileNotFoundError(
            f"{root}: no results.json here or in its sub-folders; run `mmgcn bench` first"
        )
    reports = []
    for folder in folders:
        results = read_results(folder / RESULTS_JSON)
        if recompute:
            write_results(recompute_comparisons(results, folder), folder)
        else:
            render_tables(results, folder)
        files = {"md": folder / "results.md", "csv": folder / "results.csv"}
        if plots:
            files.update(write_plots(results, folder))
        log.debug("rebuilt %s", folder)
        reports.append(Report(folder, results, files))
    return reports
