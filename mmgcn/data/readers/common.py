"""Helpers shared by the readers: SHA-256 pins, feature files, modality names.

Modality naming (project-wide): a feature file ``<modality>_feat.npy`` holds modality
``<modality>`` -- TikTok's ``image_feat.npy`` / ``audio_feat.npy`` are ``image`` and
``audio``, MMRec's ``text_feat.npy`` is ``text``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from mmgcn.data.dataset import DataError
from mmgcn.utils.io import sha256_file

logger = logging.getLogger(__name__)

FEATURE_SUFFIX = "_feat.npy"
# MMGCN's order (visual, acoustic, textual); other modalities follow alphabetically
_MODALITY_ORDER = ("image", "audio", "text")


def modality_order(names: Iterable[str]) -> list[str]:
    """Modalities in a stable order: ``image``, ``audio``, ``text``, then the rest sorted."""
    names = set(names)
    known = [m for m in _MODALITY_ORDER if m in names]
    return known + sorted(names - set(known))


def feature_files(directory: Path) -> dict[str, Path]:
    """``{modality: path}`` for every ``<modality>_feat.npy`` in ``directory`` (ordered)."""
    found = {
        p.name[: -len(FEATURE_SUFFIX)]: p
        for p in directory.glob(f"*{FEATURE_SUFFIX}")
        if p.is_file() and len(p.name) > len(FEATURE_SUFFIX)
    }
    return {m: found[m] for m in modality_order(found)}


def load_feature_file(path: str | os.PathLike, n_items: int | None = None) -> np.ndarray:
    """Load ``<modality>_feat.npy`` as a float32 array of shape ``(n_items, d)``.

    float16 files (TikTok) are widened to float32 (exactly). Pickled (object) arrays are
    refused. Rows must equal ``n_items`` when given, and every value must be finite.

    Raises:
        DataError: unreadable / truncated file, wrong dimensionality or dtype, a row count
            other than ``n_items``, NaN or inf values -- the message names the file.
    """
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: feature file not found") from None
    except Exception as exc:  # truncated header/body, pickled arrays, not an .npy file
        raise DataError(
            f"{path}: not a readable .npy feature array ({type(exc).__name__}: {exc}); the file is "
            f"truncated or corrupt -- re-download or re-extract it"
        ) from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: expected one array, got {type(array).__name__}")
    if array.ndim != 2:
        raise DataError(f"{path}: features must be 2-D (n_items, d), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{path}: features have dtype {array.dtype}; expected real numbers")
    if n_items is not None and array.shape[0] != n_items:
        raise DataError(
            f"{path}: features have {array.shape[0]} rows but the dataset has {n_items} items; "
            f"row i must be item i -- the file belongs to another item set (re-extract it)"
        )
    if array.shape[1] == 0:
        raise DataError(f"{path}: features have zero columns")
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array)
    if not finite.all():
        rows = np.flatnonzero(~finite.all(axis=1))
        raise DataError(
            f"{path}: features contain NaN/inf in {rows.size} row(s) (first item ids: "
            f"{rows[:5].tolist()}); fill missing content explicitly (zeros + mask, or the mean)"
        )
    return array


def file_hashes(directory: Path, names: Iterable[str]) -> dict[str, str]:
    """``{name: sha256}`` of the named files under ``directory`` that exist."""
    return {name: sha256_file(directory / name) for name in names if (directory / name).is_file()}


def verify_pins(
    directory: Path,
    hashes: Mapping[str, str],
    pins: Mapping[str, str] | None,
    verify: bool = True,
    dataset: str | None = None,
) -> list[str]:
    """Compare actual file hashes with the card's SHA-256 pins.

    Args:
        directory: the dataset folder (for messages).
        hashes: ``{file: actual sha256}`` of the files read.
        pins: ``{file: expected sha256}``; files without a pin are not checked.
        verify: a mismatch raises when ``True`` (default); when ``False`` it is logged as
            a warning and returned, so a user can load a deliberately modified copy.
        dataset: the dataset name, for the fix in the message.

    Returns:
        the files whose hash differs from their pin (empty when all match).

    Raises:
        DataError: a mismatch while ``verify`` is ``True``.
    """
    mismatched = [name for name, digest in hashes.items() if pins and pins.get(name) not in (None, digest)]
    for name in mismatched:
        expected, actual = pins[name], hashes[name]
        redo = f"mmgcn datasets download {dataset} --force" if dataset else "re-download it"
        message = (
            f"{directory / name}: sha256 {actual} does not match the pinned upstream file "
            f"({expected}); the file was modified or is corrupt -- {redo}, or load with "
            f"verify=False (CLI: --no-verify) to use this copy anyway"
        )
        if verify:
            raise DataError(message)
        logger.warning("%s", message)
    return mismatched


def fingerprint(hashes: Mapping[str, str]) -> str:
    """One SHA-256 over ``name:sha256`` lines (sorted): identifies the exact input files."""
    digest = hashlib.sha256()
    for name in sorted(hashes):
        digest.update(f"{name}:{hashes[name]}\n".encode())
    return digest.hexdigest()
