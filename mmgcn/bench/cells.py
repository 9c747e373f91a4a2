"""One benchmark cell on disk: a (model, seed) run, its files and its completion marker.

A cell directory holds::

    cell.json       CellResult (test metrics, validation curve, times, parameters, memory)
    per_user.npz    per-user test metrics: "users" (ids) and one array per metric, plus
                    "warm/..." and "cold/..." arrays under the cold-start protocol
    run/            the trainer's run directory (config, per-epoch JSON lines, checkpoint)
                    (a grid trial has no test metrics and no per_user.npz)
    STARTED.json    written when an attempt starts, with the config hash
    DONE.json       completion marker, written LAST, holding the cell's config hash and
                    the SHA-256 of every other file of the cell (checkpoints excepted:
                    they carry their own digest and are deleted once no longer needed)

A cell is never written in place. An attempt works in a staging directory beside it,
``.<name>.partial/`` (where ``error.txt`` holds the traceback of a crashed attempt); only
a finished cell -- files, checksums, marker -- is renamed into place, replacing any older
copy. So a finished cell is complete or absent, and a crash never leaves ``error.txt``
inside a finished cell. An interrupted attempt (Ctrl-C, a killed process) with the same
config hash resumes in its staging directory from the trainer's last checkpoint; one that
raised starts over.

A cell counts as finished only when ``DONE.json`` parses, carries the expected config
hash, and every file it lists has its recorded SHA-256 (:func:`cell_problem`): a cell
whose files are missing, truncated or corrupt is reported by name and run again, never
trusted. The harness holds the results folder's lock (:mod:`mmgcn.bench.lock`) while it
runs cells, so two benches never write one folder.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import logging
import os
import resource
import shutil
import sys
import time
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmgcn.bench.config import BenchConfig, ModelSpec
from mmgcn.bench.results import CellResult, calibration_record
from mmgcn.data.dataset import DataError, Dataset
from mmgcn.train.run_dir import CALIBRATION_FILE
from mmgcn.utils.io import atomic_write_bytes, atomic_write_json, sha256_file

log = logging.getLogger(__name__)

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
    """Whether the cell in ``directory`` completed with config hash ``expected_hash`` and its
    files are intact (``per_user=False`` for grid trials, which have no test metrics)."""
    return cell_problem(directory, expected_hash, per_user) is None


def cell_problem(directory: Path, expected_hash: str, per_user: bool = True) -> str | None:
    """Why the cell in ``directory`` cannot be reused, or ``None`` when it is finished and intact.

    ``"absent"``, ``"unfinished"`` (no marker), ``"another config"`` (marker of another
    hash), or the damage: an unreadable marker, a missing file, a file whose SHA-256 differs
    from the marker's record (truncated or corrupt), or -- for markers written before
    checksums -- a ``cell.json`` / ``per_user.npz`` that does not load.
    """
    if not directory.is_dir():
        return "absent"
    marker = directory / MARKER
    try:
        with open(marker, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return "unfinished"
    except (OSError, ValueError) as exc:
        return f"{MARKER} is unreadable ({type(exc).__name__})"
    if not isinstance(data, dict):
        return f"{MARKER} is not a JSON object"
    if data.get("config_hash") != expected_hash:
        return "another config"
    for name in (CELL_JSON, PER_USER) if per_user else (CELL_JSON,):
        if not (directory / name).is_file():
            return f"{name} is missing"
    recorded = data.get("files")
    if isinstance(recorded, dict):
        for name, digest in sorted(recorded.items()):
            path = directory / name
            if not path.is_file():
                return f"{name} is missing"
            if sha256_file(path) != digest:
                return f"{name} does not match its checksum (truncated or corrupt)"
        return None
    try:  # a marker from before checksums: the files must at least load
        load_cell(directory)
        if per_user:
            load_per_user(directory / PER_USER)
    except Exception as exc:  # noqa: BLE001 - any failure to load means damaged
        return f"{type(exc).__name__} reading the cell ({str(exc)[:120]})"
    return None


def checksums(directory: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``directory`` but the markers and the
    trainer's checkpoints (deleted once the benchmark no longer needs them)."""
    return {
        path.relative_to(directory).as_posix(): sha256_file(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name not in (MARKER, STARTED) and "checkpoints" not in path.relative_to(directory).parts
    }


def staging_dir(directory: Path) -> Path:
    """Where an attempt at the cell ``directory`` works until it is finished: ``.<name>.partial``."""
    return directory.parent / f".{directory.name}.partial"


def publish_cell(staging: Path, directory: Path) -> None:
    """Rename a finished staging directory into place, replacing an older copy of the cell."""
    for leftover in directory.parent.glob(f".{glob.escape(directory.name)}.old-*"):
        shutil.rmtree(leftover, ignore_errors=True)  # a process killed between the two renames
    old = None
    if directory.exists():
        old = directory.parent / f".{directory.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.rename(directory, old)
    os.rename(staging, directory)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_back(result: CellResult, directory: Path, per_user: bool = True) -> CellResult:
    """A finished cell's result as stored in ``directory`` (checked against its checksums);
    failed cells are returned as they are."""
    if result.status != "ok":
        return result
    problem = cell_problem(directory, result.config_hash, per_user)
    if problem is not None:
        raise DataError(f"{directory}: {problem}; the cell changed while the benchmark held its lock")
    return load_cell(directory)


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
    metrics), then the marker with every file's checksum (atomically, last)."""
    output.result.config_hash = config_hash
    atomic_write_json(directory / CELL_JSON, output.result.to_dict())
    if output.per_user:
        save_per_user(directory / PER_USER, output.per_user)
    write_marker(directory, config_hash)


def write_marker(directory: Path, config_hash: str, **extra: Any) -> None:
    """``DONE.json``: the config hash and the SHA-256 of every other file of the cell."""
    atomic_write_json(directory / MARKER, {"config_hash": config_hash, "finished": time.time(),
                                           "files": checksums(directory), **extra})


def load_cell(directory: Path) -> CellResult:
    """The finished cell's result; a cell finished before results kept the calibration
    (``CellResult.calibration``) gets it from its run's own ``calibration.json``."""
    with open(directory / CELL_JSON, encoding="utf-8") as handle:
        result = CellResult.from_dict(json.load(handle))
    path = directory / "run" / CALIBRATION_FILE
    if result.calibration is None and path.is_file():
        try:
            with open(path, encoding="utf-8") as handle:
                result.calibration = calibration_record(json.load(handle))
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            log.warning("%s: unreadable (%s: %s); the cell's calibration is not reported", path,
                        type(exc).__name__, exc)
    return result


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
    """Read ``per_user.npz`` with ``allow_pickle=False`` (object arrays are refused).

    Raises:
        DataError: the file is missing, truncated or corrupt (re-running the benchmark
            re-runs the cell).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise DataError(f"{path}: missing; re-run the benchmark to re-run this cell") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{path}: damaged per-user metrics ({type(exc).__name__}: {exc}); re-run the "
                        f"benchmark to re-run this cell") from None


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
