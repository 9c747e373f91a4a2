"""Checkpoints: atomic saves, restricted loads, and the random states a resume needs.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads
with ``torch.load(..., weights_only=True)``: loading a checkpoint never runs code from the
file. Saves serialise to memory first and then go through :func:`mmgcn.utils.io.atomic_write_bytes`,
so a crash or a full disk leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmgcn.errors import CheckpointError
from mmgcn.utils.io import atomic_write_bytes

CHECKPOINT_FORMAT = 1


def state_digest(state: Any) -> str:
    """SHA-256 over a checkpoint's content: every tensor's dtype, shape and bytes, every
    number and string, dict keys in sorted order. A flipped bit in a stored weight loads
    without any error from ``torch.load``; this digest catches it."""
    digest = hashlib.sha256()

    def walk(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            flat = value.detach().to("cpu").contiguous().reshape(-1)
            digest.update(f"T{value.dtype}{tuple(value.shape)}".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
        elif isinstance(value, dict):
            digest.update(b"{")
            for key in sorted(value, key=repr):
                digest.update(repr(key).encode())
                walk(value[key])
            digest.update(b"}")
        elif isinstance(value, (list, tuple)):
            digest.update(b"[" if isinstance(value, list) else b"(")
            for item in value:
                walk(item)
            digest.update(b"]")
        else:
            digest.update(f"{type(value).__name__}:{value!r};".encode())

    walk(state)
    return digest.hexdigest()


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Serialise ``state`` with ``torch.save`` and write it to ``path`` atomically, with the
    content digest (:func:`state_digest`) under ``"sha256"``."""
    content = {"format": CHECKPOINT_FORMAT, **{k: v for k, v in state.items() if k != "sha256"}}
    buffer = io.BytesIO()
    torch.save({**content, "sha256": state_digest(content)}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is not a checkpoint of a known format (a ``ValueError``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt bytes, or objects outside the weights_only allow-list
        reason = " ".join(str(exc).split())[:300]
        raise CheckpointError(
            f"{path}: not a readable mmgcn checkpoint ({type(exc).__name__}: {reason}); it is truncated, "
            f"corrupt or not written by mmgcn -- retrain, or resume from the other checkpoint"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: unknown checkpoint format {found!r}; expected {CHECKPOINT_FORMAT}")
    recorded = state.pop("sha256", None)
    if recorded is not None and recorded != state_digest(state):  # checkpoints before digests have none
        raise CheckpointError(
            f"{path}: content does not match its SHA-256 (corrupted on disk); resume from / use the other "
            f"checkpoint, or retrain"
        )
    return state


def require(state: dict[str, Any], keys: tuple[str, ...], path: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` unless ``state`` has every key in ``keys``."""
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}; it was not written by this version's trainer")


def load_model_state(model: torch.nn.Module, weights: Any, path: str | os.PathLike, built_on: str = "") -> None:
    """``model.load_state_dict(weights)``, with shape / key mismatches as one :class:`CheckpointError`.

    The message lists up to three differing tensors with their shapes in the file and in
    the model (e.g. a different dataset gives another number of users or items).
    """
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path}: field 'model' is {type(weights).__name__}, not a state dict")
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shapes = [
        f"{k} {tuple(weights[k].shape)} in the file vs {tuple(own[k].shape)} in the model"
        for k in own if k in weights and isinstance(weights[k], torch.Tensor) and weights[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        detail = "; ".join(
            ([f"missing {missing[:3]}"] if missing else [])
            + ([f"unexpected {unexpected[:3]}"] if unexpected else [])
            + shapes[:3]
        )
        raise CheckpointError(
            f"{path}: the weights do not fit the model{f' built on {built_on}' if built_on else ''} ({detail}); "
            f"the checkpoint belongs to another model config or dataset"
        )
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the weights do not load ({' '.join(str(exc).split())[:300]})") from None


def capture_rng_state() -> dict[str, Any]:
    """Python, legacy numpy and torch (CPU + CUDA) random states, as weights_only-safe values."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()  # noqa: NPY002
    state: dict[str, Any] = {
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["gauss"])
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


__all__ = [
    "CHECKPOINT_FORMAT",
    "capture_rng_state",
    "load_checkpoint",
    "load_model_state",
    "require",
    "restore_rng_state",
    "save_checkpoint",
    "state_digest",
]
