"""PNG figures of a benchmark folder, drawn from :class:`~mmgcn.bench.results.BenchResults` only.

* ``bar_chart.png``: the main test metrics per model, mean over seeds with std error bars;
* ``validation_curves.png``: the validation selection metric per epoch, one line per model
  (mean over seeds at each epoch; every seed thin behind it);
* ``time_vs_quality.png``: training time per epoch against test quality, one point per model.

Every figure carries the run description (dataset, split, protocol, masking, selection,
seeds) under its title. Drawing uses matplotlib's object API on an Agg canvas, so no
display and no global backend switch are needed.
"""

from __future__ import annotations

import io
import textwrap
from collections import defaultdict
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mmgcn.bench.results import BenchResults
from mmgcn.bench.tables import header_lines, metric_label
from mmgcn.utils.io import atomic_write_bytes

BAR_CHART = "bar_chart.png"
VALIDATION_CURVES = "validation_curves.png"
TIME_VS_QUALITY = "time_vs_quality.png"


def _colour(index: int, count: int) -> str | tuple[float, ...]:
    """Distinct colours: matplotlib's 10-colour cycle, or tab20 when there are more models."""
    if count <= 10:
        return f"C{index}"
    return tuple(matplotlib.colormaps["tab20"](index % 20))


def _name(results: BenchResults) -> str:
    return str(results.header.get("dataset_name") or results.header.get("dataset", ""))


def _caption(results: BenchResults, width: int = 130) -> str:
    keep = ("dataset", "split", "protocol", "masking", "selection", "seeds")
    lines = [line for line in header_lines(results.header) if line.split(":", 1)[0] in keep]
    # wrapped here, once: matplotlib's own text wrapping re-measures the text at every draw
    return "\n".join(textwrap.fill(line, width, subsequent_indent="    ") for line in lines)


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _figure(results: BenchResults, title: str, width: float = 10.0) -> tuple[Figure, object]:
    caption = _caption(results)
    n_lines = caption.count("\n") + 1
    caption_in = 0.14 * n_lines + 0.2
    plot_in = 4.6
    height = plot_in + caption_in + 0.9  # title and x tick labels
    fig = Figure(figsize=(width, height))
    # the caption sits in a band reserved at the bottom, under the x labels
    fig.subplots_adjust(left=0.08, right=0.98, top=1 - 0.45 / height, bottom=(caption_in + 0.9) / height)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(title, fontsize=11)
    fig.text(0.01, caption_in / height, caption, fontsize=7, va="top", ha="left", family="monospace")
    return fig, ax


def bar_chart(results: BenchResults, path: str | Path) -> Path:
    """Grouped bars of the main metrics (mean over seeds, std error bars) per model."""
    metrics = results.primary_metrics
    summaries = [s for s in results.summaries if s.seeds]
    fig, ax = _figure(results, f"{_name(results)}: test metrics (mean ± std over seeds)")
    x = np.arange(len(summaries))
    width = 0.8 / max(len(metrics), 1)
    for j, metric in enumerate(metrics):
        means = [s.mean.get(metric, np.nan) for s in summaries]
        stds = [s.std.get(metric) for s in summaries]
        # no error bar where a model has a single seed (no spread to show)
        yerr = [np.nan if v is None else v for v in stds] if any(v is not None for v in stds) else None
        offset = (j - (len(metrics) - 1) / 2) * width
        ax.bar(x + offset, means, width, yerr=yerr, capsize=3, label=metric_label(metric))
    ax.set_xticks(x)
    ax.set_xticklabels([s.model for s in summaries], rotation=30, ha="right")
    ax.set_ylabel("test metric")
    ax.grid(axis="y", alpha=0.3)
    if metrics:
        ax.legend(fontsize=8)
    return _save(fig, Path(path))


def validation_curves(results: BenchResults, path: str | Path) -> Path:
    """Validation selection metric against epoch, one coloured line per model."""
    metric = results.header.get("metric", "")
    fig, ax = _figure(results, f"{_name(results)}: validation {metric_label(metric)} per epoch")
    by_model: dict[str, list[list[list[float]]]] = defaultdict(list)
    for cell in results.cells:
        if cell.status == "ok" and cell.valid_curve:
            by_model[cell.model].append(cell.valid_curve)
    colours = {s.model: _colour(i, len(results.summaries)) for i, s in enumerate(results.summaries)}
    drawn = 0
    for model, curves in by_model.items():
        colour = colours.get(model, "k")
        if all(len(c) == 1 and c[0][0] == 0 for c in curves):
            # an untrained model (popular) has one validation point: draw it as a floor line
            value = float(np.mean([c[0][1] for c in curves]))
            ax.axhline(value, color=colour, linestyle="--", linewidth=1.2, label=f"{model} (no training)")
            drawn += 1
            continue
        per_epoch: dict[float, list[float]] = defaultdict(list)
        for curve in curves:
            epochs, values = zip(*curve)
            ax.plot(epochs, values, color=colour, alpha=0.25, linewidth=0.8)
            for e, v in curve:
                per_epoch[e].append(v)
        epochs = sorted(per_epoch)
        ax.plot(epochs, [np.mean(per_epoch[e]) for e in epochs], color=colour, linewidth=1.8, label=model,
                marker="o" if len(epochs) <= 15 else None, markersize=3)
        drawn += 1
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric_label(metric)}")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8, ncol=2)
    else:
        ax.text(0.5, 0.5, "no model recorded a validation curve", ha="center", va="center", transform=ax.transAxes)
    return _save(fig, Path(path))


def time_vs_quality(results: BenchResults, path: str | Path) -> Path:
    """Training seconds per epoch (log x) against the first main test metric, per model."""
    metric = results.primary_metrics[0] if results.primary_metrics else ""
    fig, ax = _figure(results, f"{_name(results)}: training time vs test {metric_label(metric)}")
    for i, s in enumerate(results.summaries):
        t = s.mean.get("train_s_per_epoch")
        q = s.mean.get(metric)
        if t is None or q is None:
            continue
        # models without training epochs (popular) sit at a small positive time on the log axis
        t_plot = max(t, 1e-3)
        ax.errorbar(t_plot, q, xerr=s.std.get("train_s_per_epoch") or 0.0, yerr=s.std.get(metric) or 0.0,
                    fmt="o", color=_colour(i, len(results.summaries)), capsize=3)
        ax.annotate(s.model, (t_plot, q), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("training seconds per epoch (log scale)")
    ax.set_ylabel(f"test {metric_label(metric)}")
    ax.grid(alpha=0.3)
    return _save(fig, Path(path))


def write_plots(results: BenchResults, folder: str | Path) -> dict[str, Path]:
    """Draw the three figures into ``folder``; returns their paths by kind."""
    folder = Path(folder)
    return {
        "bar_chart": bar_chart(results, folder / BAR_CHART),
        "validation_curves": validation_curves(results, folder / VALIDATION_CURVES),
        "time_vs_quality": time_vs_quality(results, folder / TIME_VS_QUALITY),
    }
