"""A dataset's fingerprint: what a trained run is bound to.

:func:`dataset_fingerprint` summarises the data a model sees -- name, split convention,
sizes, a SHA-256 over the three interaction matrices and one per feature matrix, and the
loaders' hash of the raw files -- as a small JSON-friendly dict. Runs record it
(``RUN/dataset.json``, every checkpoint) and compare it with :func:`differences` before
resuming, evaluating or recommending, so that a run is never silently scored on other
data (another split, re-extracted features, edited files).

Hashing is over the in-memory arrays, not the files, so it covers re-splits and
modality subsets too; it costs a few milliseconds per million interactions or feature
values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from mmgcn.data.dataset import SPLITS, Dataset

#: fingerprint keys in the order differences are reported
KEYS = ("name", "split", "n_users", "n_items", "edges", "interactions_sha256", "features", "files")


def _split_description(dataset: Dataset) -> str:
    convention = dataset.info.get("split_convention")
    if convention:
        return str(convention)
    split = dataset.info.get("split")
    return json.dumps(split, sort_keys=True, default=str) if split else "as provided"


def dataset_fingerprint(dataset: Dataset) -> dict[str, Any]:
    """The fingerprint of ``dataset`` (see the module docs); equal data give equal dicts."""
    digest = hashlib.sha256()
    for split in SPLITS:
        csr = dataset.split(split)
        digest.update(split.encode())
        digest.update(np.ascontiguousarray(csr.indptr, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(csr.indices, dtype=np.int64).tobytes())
    features = {}
    for modality, tensor in dataset.features.items():
        array = np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.float32)
        features[modality] = {"dim": int(array.shape[1]), "sha256": hashlib.sha256(array.tobytes()).hexdigest()}
    return {
        "name": dataset.name,
        "split": _split_description(dataset),
        "n_users": int(dataset.n_users),
        "n_items": int(dataset.n_items),
        "edges": {split: int(dataset.split(split).nnz) for split in SPLITS},
        "interactions_sha256": digest.hexdigest(),
        "features": features,
        "files": dataset.info.get("fingerprint"),
    }


def differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Human lines naming every fingerprint field that differs (empty when the data match).

    ``files`` (the raw files' hash) is compared only when both sides recorded one, and is
    reported only when nothing else differs: other files with the same content (a copy)
    are the same data.
    """
    lines = []
    for key in KEYS:
        old, new = recorded.get(key), current.get(key)
        if key == "files":
            continue
        if key == "features":
            old, new = old or {}, new or {}
            for modality in sorted(set(old) | set(new)):
                if modality not in new:
                    lines.append(f"features: the run had modality {modality!r}, the data now has none")
                elif modality not in old:
                    lines.append(f"features: the data now has modality {modality!r}, the run had none")
                elif old[modality] != new[modality]:
                    lines.append(f"features.{modality}: {_short(old[modality])} in the run, {_short(new[modality])} now")
            continue
        if old != new:
            lines.append(f"{key}: {_short(old)} in the run, {_short(new)} now")
    if not lines and recorded.get("files") and current.get("files") and recorded["files"] != current["files"]:
        lines.append(f"files: raw files {_short(recorded['files'])} in the run, {_short(current['files'])} now")
    return lines


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "..."
    if isinstance(value, Mapping) and "sha256" in value:
        return f"{value.get('dim')}-d sha256 {str(value['sha256'])[:12]}..."
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


__all__ = ["KEYS", "dataset_fingerprint", "differences"]
