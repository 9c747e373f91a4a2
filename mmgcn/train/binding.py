"""Bind a run directory to the data and config it was made with.

A new run writes ``RUN/dataset.json``: the fingerprint of its dataset
(:func:`mmgcn.data.fingerprint.dataset_fingerprint`) and, later, every explicit override.
Checkpoints carry the same fingerprint and the resolved config. Before a run is resumed,
evaluated or asked for recommendations, :func:`check_data` compares the fingerprint of
the data now loaded with the recorded one and refuses (:class:`RunMismatchError`, naming
each differing field) unless the caller passes ``allow_change`` -- the CLI's
``--allow-data-change`` -- in which case the differences are appended to
``dataset.json`` under ``"overrides"`` and returned so that the result can record them.
:func:`config_differences` does the same for the resolved config sections of a resume.

Runs written before this file existed have no fingerprint: they are used with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mmgcn.data.fingerprint import differences
from mmgcn.errors import RunMismatchError
from mmgcn.utils.io import atomic_write_json

log = logging.getLogger(__name__)

DATASET_FILE = "dataset.json"
OVERRIDE_FLAG = "--allow-data-change"


def record(run_dir: str | os.PathLike, fingerprint: Mapping[str, Any]) -> None:
    """Write ``RUN/dataset.json`` for a new run (an existing file is kept: it is the binding)."""
    path = Path(run_dir) / DATASET_FILE
    if not path.exists():
        atomic_write_json(path, {"fingerprint": dict(fingerprint), "overrides": []})


def _read(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / DATASET_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunMismatchError(f"{path}: unreadable ({exc}); the run's data binding is damaged") from None
    if not isinstance(data, dict) or not isinstance(data.get("fingerprint"), dict):
        raise RunMismatchError(f"{path}: field 'fingerprint' is missing; the run's data binding is damaged")
    return data


def recorded_fingerprint(run_dir: str | os.PathLike, checkpoint: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The fingerprint the run is bound to: the last accepted override, else the original
    (``dataset.json``), else the checkpoint's; ``None`` for runs that predate binding."""
    data = _read(Path(run_dir))
    if data is not None:
        overrides = data.get("overrides") or []
        return dict(overrides[-1]["fingerprint"]) if overrides else dict(data["fingerprint"])
    if checkpoint is not None and isinstance(checkpoint.get("dataset_fingerprint"), dict):
        return dict(checkpoint["dataset_fingerprint"])
    return None


def check_data(
    run_dir: str | os.PathLike,
    current: Mapping[str, Any],
    *,
    action: str,
    allow_change: bool = False,
    checkpoint: Mapping[str, Any] | None = None,
) -> list[str]:
    """Compare the data now loaded with the run's; returns the accepted differences.

    Args:
        run_dir: the run directory.
        current: fingerprint of the data now loaded.
        action: what is about to happen (``"resume"``, ``"evaluate"``, ``"recommend"``),
            for the message and the override record.
        allow_change: accept differing data; the differences are appended to
            ``dataset.json`` (with the time and the command line) and returned.
        checkpoint: a loaded checkpoint, consulted when ``dataset.json`` is absent.

    Raises:
        RunMismatchError: the data differ and ``allow_change`` is false.
    """
    run_dir = Path(run_dir)
    recorded = recorded_fingerprint(run_dir, checkpoint)
    if recorded is None:
        log.warning("%s: the run records no dataset fingerprint (made before data binding); cannot check "
                    "that %s uses the same data", run_dir, action)
        return []
    diff = differences(recorded, current)
    if not diff:
        return []
    if not allow_change:
        raise RunMismatchError(
            f"{run_dir}: refusing to {action}: the data differ from the run's -- " + "; ".join(diff)
            + f". Load the run's data (its config.yaml names it), or pass {OVERRIDE_FLAG} to {action} "
            f"anyway (recorded in {DATASET_FILE})"
        )
    data = _read(run_dir) or {"fingerprint": recorded, "overrides": []}
    entry = {
        "action": action,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "argv": list(sys.argv),
        "differences": diff,
        "fingerprint": dict(current),
    }
    # a resume re-binds the run to the new data ("overrides"); evaluate / recommend only note it ("uses")
    data.setdefault("overrides" if action == "resume" else "uses", []).append(entry)
    try:
        atomic_write_json(run_dir / DATASET_FILE, data)
    except OSError as exc:
        if action == "resume":
            raise
        log.warning("%s: could not record the override (%s)", run_dir / DATASET_FILE, exc)
    log.warning("%s: %s on data that differ from the run's (%s): %s", run_dir, action, OVERRIDE_FLAG, "; ".join(diff))
    return diff


def config_differences(
    recorded: Mapping[str, Any], current: Mapping[str, Any], sections: Iterable[str] = ("run", "model", "dataset"),
    ignore: Iterable[str] = ("run.data_dir",),
) -> list[str]:
    """``section.key: old -> new`` for every differing key of the named config sections."""
    skip = set(ignore)
    lines = []
    for section in sections:
        old, new = dict(recorded.get(section) or {}), dict(current.get(section) or {})
        for key in sorted(set(old) | set(new)):
            name = f"{section}.{key}"
            if name in skip or old.get(key) == new.get(key):
                continue
            lines.append(f"{name}: {old.get(key, '(unset)')!r} in the run, {new.get(key, '(unset)')!r} now")
    return lines


__all__ = ["DATASET_FILE", "OVERRIDE_FLAG", "check_data", "config_differences", "record", "recorded_fingerprint"]
