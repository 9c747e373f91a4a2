"""One benchmark cell on disk: a (model, seed) run, its files and its completion marker.

A cell directory holds::

    cell.json       CellResult (test metrics, validation curve, times, parameters, memory)
    per_user.npz    per-user test metrics: "users" (ids) and one array per metric, plus
                    "warm/..." and "cold/..." arrays under the cold-start protocol
    run/            the trainer's run directory (config, per-epoch JSON lines, checkpoint)
                    (a grid trial has no test metrics and no per_user.npz)
    error.txt       traceback of a crashed attempt (no marker then)
    STARTED.json    written when an attempt starts, with the config hash: an attempt that
                    was interrupted (Ctrl-C, a killed process) with this hash resumes from
                    the trainer's last checkpoint instead of starting over
    DONE.json       completion marker, written atomically and LAST, holding the cell's
                    config hash

A cell counts as finished only when ``DONE.json`` exists, parses, carries the expected
config hash, and ``cell.json`` / ``per_user.npz`` are present: an interrupted or crashed
cell, or one whose config changed, runs again. The marker is removed *before* a cell is
re-run, so a crash can never leave a stale marker behind. A cell that raised starts over
(fresh directory); one that was merely interrupted resumes where the runner can.
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmgcn.bench.config import BenchConfig, ModelSpec
from mmgcn.bench.results import CellResult
from mmgcn.data.dataset import Dataset
from mmgcn.utils.io import atomic_write_bytes, atomic_write_json

MARKER = "DONE.json"
STARTED = "STARTED.json"
CELL_JSON = "cell.json"
PER_USER = "per_user.npz"
ERROR_TXT = "error.txt"


@dataclass(frozen=True)
class CellTask:
    """What to run for one cell.

    Attributes:
        spec: the model spec (registry name + optional modality subset).
        seed: the seed.
        model_config: model config overrides (grid point merged in).
        train_config: trainer settings (keys of ``TrainConfig``), seed not included.
        directory: the cell directory.
        config_hash: the cell's identity; a finished cell with another hash re-runs.
        grid_point: the grid point, when this cell is a grid trial.
    """

    spec: ModelSpec
    seed: int
    model_config: dict[str, Any]
    train_config: dict[str, Any]
    directory: Path
    config_hash: str
    grid_point: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        kind = f" grid {json.dumps(self.grid_point, sort_keys=True)}" if self.grid_point is not None else ""
        return f"{self.spec.name} seed {self.seed}{kind}"


@dataclass
class CellOutput:
    """What a cell runner returns: the result row and the per-user test metric vectors.

    ``per_user`` maps ``"users"`` to ``(n,)`` int64 user ids and each metric name
    (``"recall@20"``, ``"cold/recall@20"`` with its own ``"cold/users"``) to ``(n,)`` float64.
    """

    result: CellResult
    per_user: dict[str, np.ndarray] = field(default_factory=dict)


class CellRunner:
    """Trains and tests one cell. Subclasses implement :meth:`run`.

    :meth:`resolve` turns a cell's config overrides into the fully resolved configs that
    identify it (so that a changed default re-runs the cell too, and a bad key fails
    before anything trains); :meth:`describe` gives the trainer settings shown in the
    results header.
    """

    progress: bool = False

    def resolve(self, spec: ModelSpec, model_config: dict[str, Any], train_config: dict[str, Any],
                config: BenchConfig) -> dict[str, Any]:
        return {"model": dict(model_config), "train": dict(train_config)}

    def describe(self, train_config: dict[str, Any], config: BenchConfig) -> dict[str, Any]:
        """The trainer settings a cell runs with (the header is generated from them)."""
        return {"metric": config.metric, **train_config}

    def can_resume(self, task: CellTask) -> bool:
        """Whether an interrupted attempt in ``task.directory`` left state to resume from."""
        return False

    def run(self, task: CellTask, dataset: Dataset, config: BenchConfig, resume: bool = False) -> CellOutput:
        raise NotImplementedError


def is_finished(directory: Path, expected_hash: str, per_user: bool = True) -> bool:
    """Whether the cell in ``directory`` completed with config hash ``expected_hash``
    (``per_user=False`` for grid trials, which have no test metrics)."""
    marker = directory / MARKER
    try:
        with open(marker, encoding="utf-8") as handle:
            data = json.load(handle)
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    return (
        isinstance(data, dict)
        and data.get("config_hash") == expected_hash
        and (directory / CELL_JSON).is_file()
        and (not per_user or (directory / PER_USER).is_file())
    )


def started_hash(directory: Path) -> str | None:
    """The config hash of the last attempt started in ``directory`` (``None`` if none)."""
    try:
        with open(directory / STARTED, encoding="utf-8") as handle:
            data = json.load(handle)
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data.get("config_hash") if isinstance(data, dict) else None


def mark_started(directory: Path, config_hash: str) -> None:
    atomic_write_json(directory / STARTED, {"config_hash": config_hash, "started": time.time()})


def clear_cell(directory: Path) -> None:
    """Remove the marker first, then everything else of a previous attempt."""
    with contextlib.suppress(FileNotFoundError):
        (directory / MARKER).unlink()
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)


def save_cell(directory: Path, output: CellOutput, config_hash: str) -> None:
    """Write ``cell.json`` and ``per_user.npz`` (none for a grid trial, which has no test
    metrics), then the marker (atomically, last)."""
    output.result.config_hash = config_hash
    atomic_write_json(directory / CELL_JSON, output.result.to_dict())
    if output.per_user:
        save_per_user(directory / PER_USER, output.per_user)
    atomic_write_json(directory / MARKER, {"config_hash": config_hash, "finished": time.time()})


def load_cell(directory: Path) -> CellResult:
    with open(directory / CELL_JSON, encoding="utf-8") as handle:
        return CellResult.from_dict(json.load(handle))


def save_per_user(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """``np.savez_compressed`` of numeric arrays only (so loading never needs pickle)."""
    clean = {}
    for name, values in arrays.items():
        values = np.asarray(values)
        if values.dtype == object or values.ndim != 1:
            raise ValueError(f"per-user array {name!r} must be a 1-D numeric array, got {values.dtype} {values.shape}")
        clean[name] = values
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **clean)
    atomic_write_bytes(path, buffer.getvalue())


def load_per_user(path: Path) -> dict[str, np.ndarray]:
    """Read ``per_user.npz`` with ``allow_pickle=False`` (object arrays are refused)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def metric_vector(per_user: Mapping[str, np.ndarray], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(user_ids, values)`` of ``metric``; ``"cold/recall@20"`` reads ``"cold/users"``."""
    group, _, _ = metric.rpartition("/")
    ids_key = f"{group}/users" if group else "users"
    if metric not in per_user or ids_key not in per_user:
        raise KeyError(f"per-user metrics have no {metric!r} (have {sorted(per_user)})")
    return per_user[ids_key], per_user[metric]


# ---------------------------------------------------------------- memory
class PeakMemory:
    """Peak memory of a block of work, in MiB.

    On CUDA: ``torch.cuda.max_memory_allocated`` after resetting the peak. On Linux CPU:
    the process's peak resident set (``VmHWM``), reset at the start by writing ``5`` to
    ``/proc/self/clear_refs``; it includes the interpreter and the loaded dataset. Where
    that reset is not possible, the process-lifetime peak (``ru_maxrss``) is reported and
    ``scope`` says so.
    """

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.scope = "process peak RSS during the cell"

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
            self.scope = "torch.cuda.max_memory_allocated"
            return self
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            self.scope = "process lifetime peak RSS"
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def peak_mb(self) -> float | None:
        if self.device.startswith("cuda"):
            import torch

            return torch.cuda.max_memory_allocated(self.device) / 2**20
        try:
            with open("/proc/self/status", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # ru_maxrss is KiB on Linux, bytes on macOS
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024
