"""The run directory: one folder per training run, every file written atomically.

Layout::

    RUN_DIR/
      config.yaml          resolved config (model, train, dataset, run sections)
      dataset.json         the dataset fingerprint the run is bound to, and explicit overrides
                           (mmgcn.train.binding)
      environment.json     python / torch / numpy versions, git commit, host, threads
      metrics.jsonl        one JSON object per epoch: loss, valid metrics, train / eval seconds,
                           peak_rss_mb (the process's peak so far), peak_gpu_mb (this epoch's)
      checkpoints/last.pt  state after the latest epoch (what --resume continues from)
      checkpoints/best.pt  state at the best validation epoch
      test_metrics.json    the final test evaluation of the best checkpoint (written once)
      test_per_user.npz    per-user test metrics aligned with user ids (significance tests)
      train.log            the run's log
"""

from __future__ import annotations

import io
import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from mmgcn.utils.io import atomic_write, atomic_write_bytes

CONFIG_FILE = "config.yaml"
ENVIRONMENT_FILE = "environment.json"
METRICS_FILE = "metrics.jsonl"
LAST_CHECKPOINT = "checkpoints/last.pt"
BEST_CHECKPOINT = "checkpoints/best.pt"
TEST_METRICS_FILE = "test_metrics.json"
TEST_PER_USER_FILE = "test_per_user.npz"
# the post-training calibration chosen on validation (models that have one)
CALIBRATION_FILE = "calibration.json"
LOG_FILE = "train.log"


def default_run_dir(model_name: str, dataset_name: str, root: str | os.PathLike = "runs") -> Path:
    """``runs/<dataset>-<model>-<YYYYmmdd-HHMMSS>``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{dataset_name}-{model_name}-{stamp}"


def check_run_dir(run_dir: str | os.PathLike, resume: bool) -> Path:
    """Validate ``run_dir`` for a new run (must not hold a run) or a resume (must hold one)."""
    run_dir = Path(run_dir)
    has_run = (run_dir / LAST_CHECKPOINT).exists()
    if resume and not has_run:
        raise FileNotFoundError(f"{run_dir}: no {LAST_CHECKPOINT} to resume from (start a new run without --resume)")
    if not resume and has_run:
        raise FileExistsError(f"{run_dir}: already holds a run; pass --resume to continue it or choose another run dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _git_commit() -> dict[str, Any] | None:
    repo = Path(__file__).resolve().parents[2]
    if not (repo / ".git").exists():
        return None  # an installed copy: a git repository around site-packages is not ours
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None  # not a git checkout (installed wheel) or git missing
    return {"commit": commit, "dirty": bool(dirty)}


def environment_info() -> dict[str, Any]:
    """Versions, git commit, host and thread counts of this process."""
    import scipy

    import mmgcn

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "mmgcn": mmgcn.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "git": _git_commit(),
        "argv": sys.argv,
        "started": datetime.now().isoformat(timespec="seconds"),
    }
    return info


def write_yaml(path: str | os.PathLike, data: Mapping[str, Any]) -> None:
    """Write ``data`` as block-style YAML atomically."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(dict(data), handle, sort_keys=False, default_flow_style=False)


def write_jsonl(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> None:
    """Rewrite ``path`` with one JSON object per line, atomically (small per-epoch logs)."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of a JSON-lines file."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """``np.savez_compressed`` to ``path`` atomically (load with ``allow_pickle=False``)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buffer.getvalue())


__all__ = [
    "BEST_CHECKPOINT",
    "CONFIG_FILE",
    "ENVIRONMENT_FILE",
    "LAST_CHECKPOINT",
    "LOG_FILE",
    "METRICS_FILE",
    "TEST_METRICS_FILE",
    "TEST_PER_USER_FILE",
    "check_run_dir",
    "default_run_dir",
    "environment_info",
    "read_jsonl",
    "write_jsonl",
    "write_npz",
    "write_yaml",
]
