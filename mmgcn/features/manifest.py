"""Feature-cache files and their manifest.

An extraction writes, into ``mmgcn.data.paths.feature_cache_dir(dataset)``:

* ``<modality>_feat.npy`` -- ``(n_items, dim)`` float32 or float16, row i = item i of the
  dataset reader's order (ML-100K: item i is movie_id i + 1);
* ``<modality>_mask.npy`` -- ``(n_items,)`` bool, ``True`` where the item had content
  (the rows where it is ``False`` hold the fill: zeros or the mean of the others);
* ``<modality>_feat.json`` -- the manifest, written last, so its presence means the
  other two are complete. Its fields:

  ``modality``, ``dataset``, ``n_items``, ``dim``, ``dtype``, ``encoder`` (registry name),
  ``encoder_class``, ``package_versions``, ``weights_sha256`` (``{file: sha256}`` of the
  weights actually loaded), ``preprocessing``, ``missing`` (``count``, ``item_ids``,
  ``fill``, ``failed``: ``{item id: reason}`` for content that could not be read),
  ``mask_file``, ``feature_file``, ``feature_sha256``, ``truncated_count`` (text),
  ``created`` (UTC ISO time), ``items_per_second``, ``encode_seconds``, ``limit``,
  ``fingerprint`` (what the cache is valid for: encoder identity + input listing),
  ``dataset_fingerprint`` (the raw files' fingerprint from ``dataset.info``, checked by
  the dataset loader; ``null`` when extracted from bare content).

The modality name is the file stem before ``_feat.npy`` (project-wide convention).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from mmgcn.data.dataset import DataError
from mmgcn.utils.io import atomic_write, atomic_write_json, sha256_file

MANIFEST_KEYS = (
    "modality",
    "dataset",
    "n_items",
    "dim",
    "dtype",
    "encoder",
    "weights_sha256",
    "preprocessing",
    "missing",
    "mask_file",
    "feature_file",
    "feature_sha256",
    "created",
)


def feature_path(directory: str | os.PathLike, modality: str) -> Path:
    """``<directory>/<modality>_feat.npy``."""
    return Path(directory) / f"{modality}_feat.npy"


def mask_path(directory: str | os.PathLike, modality: str) -> Path:
    """``<directory>/<modality>_mask.npy``: which items had content."""
    return Path(directory) / f"{modality}_mask.npy"


def manifest_path(directory: str | os.PathLike, modality: str) -> Path:
    """``<directory>/<modality>_feat.json``."""
    return Path(directory) / f"{modality}_feat.json"


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` to ``path`` atomically (no pickled objects)."""
    with atomic_write(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def write_manifest(path: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Validate and write ``manifest`` atomically."""
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    if missing:
        raise ValueError(f"{path}: manifest lacks fields {missing}")
    atomic_write_json(path, manifest)


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Read a feature manifest, checking that the required fields are present.

    Raises:
        DataError: unreadable JSON or a missing field (the message names both).
    """
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the feature manifest ({exc}); re-run `mmgcn extract`") from exc
    if not isinstance(manifest, dict):
        raise DataError(f"{path}: a feature manifest must be a JSON object")
    absent = [k for k in MANIFEST_KEYS if k not in manifest]
    if absent:
        raise DataError(f"{path}: feature manifest lacks fields {absent}; re-run `mmgcn extract`")
    return manifest


def load_cached_features(
    directory: str | os.PathLike, modality: str, verify: bool = True
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(features (n_items, dim) float32, has_content (n_items,) bool, manifest)``.

    Args:
        directory: a feature cache folder (``feature_cache_dir(dataset)``).
        modality: the modality name (file stem before ``_feat.npy``).
        verify: check the feature file's SHA-256 against the manifest.

    Raises:
        DataError: manifest, feature or mask file missing, inconsistent or corrupt.
    """
    directory = Path(directory)
    manifest = read_manifest(manifest_path(directory, modality))
    feats_file = directory / manifest["feature_file"]
    if not feats_file.is_file():
        raise DataError(f"{feats_file}: feature file named by {manifest_path(directory, modality)} is missing; re-run `mmgcn extract`")
    if verify and sha256_file(feats_file) != manifest["feature_sha256"]:
        raise DataError(
            f"{feats_file}: SHA-256 differs from field 'feature_sha256' of its manifest (file changed or "
            f"half-written); re-run `mmgcn extract`"
        )
    features = np.load(feats_file, allow_pickle=False)
    expected = (int(manifest["n_items"]), int(manifest["dim"]))
    if features.shape != expected:
        raise DataError(f"{feats_file}: shape {features.shape} but its manifest says {expected}")
    mask = np.load(directory / manifest["mask_file"], allow_pickle=False)
    if mask.shape != (expected[0],) or mask.dtype != np.bool_:
        raise DataError(f"{directory / manifest['mask_file']}: expected a bool array of {expected[0]} entries, got {mask.dtype} {mask.shape}")
    return features.astype(np.float32), mask, manifest
