"""The header of a benchmark's tables and figures, generated from what the cells actually ran.

Every protocol line -- masking at validation and at test, selection metric, patience,
epochs, trainer settings, item representation, candidate items, seeds, the comparison
method -- is derived from the *resolved* configuration of the cells (the same resolution
that identifies a cell, :meth:`mmgcn.bench.cells.CellRunner.resolve`), never hand-written:
a config that masks only train items at test time gets a header that says so.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmgcn import __version__
from mmgcn.bench.aggregate import comparison_pairs
from mmgcn.bench.cells import CellRunner
from mmgcn.bench.config import BenchConfig
from mmgcn.data.dataset import Dataset
from mmgcn.eval.significance import BOOT_SEED, N_BOOT

# trainer settings shown in the selection line rather than among "other settings"
_SELECTION_KEYS = ("metric", "patience", "epochs", "eval_every", "min_delta")
# not protocol: where and how verbosely it ran
_NOT_SHOWN = ("progress", "device", "eval_block_size", "seed", "ks", "valid_mask", "test_mask",
              "warm_cold", "deterministic")


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


def _splits(mask: Sequence[str]) -> str:
    return " + ".join(mask) + " items masked" if mask else "nothing masked"


def _grouped(values: Mapping[str, Any]) -> list[tuple[Any, list[str]]]:
    """``{model: value}`` -> ``[(value, [models with it]), ...]`` in first-seen order."""
    groups: list[tuple[Any, list[str]]] = []
    for model, value in values.items():
        for known, models in groups:
            if known == value:
                models.append(model)
                break
        else:
            groups.append((value, [model]))
    return groups


def _per_model(values: Mapping[str, Any], render) -> str:
    """One rendering if every model has the same value, else one per group of models."""
    groups = _grouped(values)
    if len(groups) == 1:
        return render(groups[0][0])
    return "; ".join(f"{', '.join(models)}: {render(value)}" for value, models in groups)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def resolved_configs(config: BenchConfig, runner: CellRunner) -> dict[str, dict[str, Any]]:
    """``{spec: {"model": {...}, "train": {...}}}``: what every model's cells run with (grid
    models with their base config; their grid is described separately)."""
    out = {}
    for spec in config.specs:
        resolved = runner.resolve(spec, config.model_config_for(spec), config.train_config_for(spec), config)
        train = runner.describe(config.train_config_for(spec), config)
        out[spec.name] = {"model": resolved.get("model", {}), "train": train}
    return out


def describe_masking(trains: Mapping[str, Mapping[str, Any]]) -> str:
    """From each model's resolved ``valid_mask`` / ``test_mask``."""
    masks = {m: (tuple(t.get("valid_mask", ("train",))), tuple(t.get("test_mask", ("train", "valid"))))
             for m, t in trains.items()}
    return _per_model(masks, lambda vm: f"validation ranks with {_splits(vm[0])}; test ranks with {_splits(vm[1])} (-inf)")


def describe_selection(config: BenchConfig, trains: Mapping[str, Mapping[str, Any]]) -> str:
    """Early stopping, the trainer settings (common ones, then per-model differences), grids."""
    keys = {m: tuple(t.get(k) for k in _SELECTION_KEYS) for m, t in trains.items()}
    line = _per_model(keys, lambda v: (
        f"early stopping on validation {v[0]}" + (f", evaluated every {v[3]} epoch(s)" if v[3] else "")
        + f" (patience {v[1]} evaluations, at most {v[2]} epochs); test evaluated once, with the "
        f"best-validation checkpoint"))
    shown = [k for k in next(iter(trains.values())) if k not in _SELECTION_KEYS and k not in _NOT_SHOWN]
    common = {k: v for k, v in next(iter(trains.values())).items() if k in shown
              and all(t.get(k) == v for t in trains.values())}
    if common:
        line += "; trainer " + ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(common.items()))
    differing = {
        m: {k: t.get(k) for k in shown if k not in common}
        for m, t in trains.items()
    }
    if any(differing.values()):
        line += "; per model: " + "; ".join(
            f"{m} " + ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(d.items())) for m, d in differing.items() if d)
    gridded = {spec.name: config.grid_for(spec) for spec in config.specs if config.grid_for(spec) is not None}
    if gridded:
        line += "; hyper-parameter grids selected on validation only (" + "; ".join(
            f"{name}: " + ", ".join(f"{k} in {_fmt(list(v))}" for k, v in grid.params.items())
            + (f", seeds {list(grid.seeds)}" if grid.seeds else "")
            for name, grid in gridded.items()
        ) + "), grid points trained without any test evaluation"
    return line


def describe_representation(models: Mapping[str, Mapping[str, Any]]) -> str:
    """How items without a train edge are represented, from each model's resolved config."""
    policy = {m: c.get("edgeless_items", "own") for m, c in models.items()}
    return "items without a train edge: " + _per_model(
        policy, lambda p: "from content alone, as new items" if p == "content" else "each model's own embedding")


def describe_significance(config: BenchConfig, family: int | None = None) -> str:
    """The header's significance line. ``family``: the number of comparisons in the Holm
    family as run (default: the config's pairs x metrics, counted before the cells finish,
    when a ``best:`` side's pick is unknown; the harness passes the family it compared,
    where a pick that repeats a listed pair counts once and a pair without data is left out)."""
    if family is None:
        family = len(comparison_pairs(config.models, config.reference, config.comparisons)) * len(
            config.significance_metrics)
    extra = "".join(f", {m} vs {r}" for m, r in config.comparisons)
    return (
        f"each model vs {config.reference}{extra} on per-user test {', '.join(config.significance_metrics)}: "
        f"seed-aware hierarchical bootstrap ({N_BOOT:,} replicates, generator seed {BOOT_SEED}; each model's "
        f"training runs resampled, then users, paired), difference of means with its 95% interval and "
        f"two-sided p; Holm correction over the {family} comparisons of this table (pairs x metrics); "
        f"significant = Holm-adjusted p < 0.05. Per-seed Wilcoxon tests over users (one pair of runs "
        f"each, user sampling only) are a detail in the CSV"
    )


def build_header(config: BenchConfig, dataset: Dataset, runner: CellRunner) -> dict[str, Any]:
    """The run description shown above every table and under every figure."""
    import scipy
    import torch

    nnz = (dataset.train.nnz, dataset.valid.nnz, dataset.test.nnz)
    resolved = resolved_configs(config, runner)
    trains = {m: r["train"] for m, r in resolved.items()}
    split = dataset.info.get("split_convention") or describe_split(dataset.info.get("split"))
    protocol = f"full ranking over all {dataset.n_items:,} items; " + describe_representation(
        {m: r["model"] for m, r in resolved.items()})
    if config.protocol == "cold-start":
        n_cold = int(dataset.cold_items("test").size)
        k = int(config.metric.split("@")[1])
        negatives = _per_model({m: t.get("negatives", "all") for m, t in trains.items()}, str)
        protocol += (
            "; metrics also reported over warm and cold (no train edge) test items separately, "
            f"and for a second ranking among the {n_cold:,} cold test items only (content models; "
            "ID-only models cannot represent items without interactions and are marked unable); "
            f"BPR negatives drawn from: {negatives}; a random ranking's expected cold-only "
            f"Recall@{k} is about {k} / {n_cold:,} = {min(1.0, k / max(n_cold, 1)):.3f}"
        )
    modalities = ", ".join(f"{m} {t.shape[1]}-d" for m, t in dataset.features.items()) or "none (interactions only)"
    if dataset.content_masks:
        missing = {m: int((~mask).sum()) for m, mask in dataset.content_masks.items() if (~mask).any()}
        if missing:
            modalities += "; items without content (left out of that modality): " + ", ".join(
                f"{m} {n:,}" for m, n in missing.items())
    per_model_seeds = {spec.name: config.seeds_for(spec) for spec in config.specs}
    seeds_line = _per_model(per_model_seeds, lambda s: f"{', '.join(map(str, s))} ({len(s)} per model)")
    common_train = next(iter(trains.values()))
    return {
        "dataset": f"{dataset.name} ({dataset.n_users:,} users x {dataset.n_items:,} items; "
        f"train/valid/test {nnz[0]:,}/{nnz[1]:,}/{nnz[2]:,} interactions)",
        "dataset_name": dataset.name,
        "split": str(split),
        "protocol": protocol,
        "protocol_name": config.protocol,
        "masking": describe_masking(trains),
        "selection": describe_selection(config, trains),
        "seeds": seeds_line,
        "modalities": modalities,
        "significance": describe_significance(config),
        "memory": (
            "peak torch.cuda.max_memory_allocated per cell" if config.device.startswith("cuda")
            else "peak resident memory of the process during each cell (Linux VmHWM, reset per cell; "
            "includes the interpreter and the loaded dataset)"
        ),
        "significance_metrics": list(config.significance_metrics),
        "baseline": config.reference,
        "comparisons": [list(p) for p in config.comparisons],
        "metric": config.metric,
        "ks": list(config.ks),
        "mode": "full protocol (--full)" if config.mode == "full" else "quick default run (see --full for the complete protocol)",
        "budget_note": config.budget_note,
        "models": list(config.models),
        "train": common_train,
        "resolved": resolved,
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


__all__ = ["build_header", "describe_masking", "describe_selection", "describe_split", "resolved_configs"]
