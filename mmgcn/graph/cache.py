"""On-disk cache of derived graphs, keyed by a fingerprint of their inputs.

A graph built from item features (an item-item kNN graph) depends only on the feature
values and the construction parameters, so it is stored once under
``<cache root>/graphs/<kind>-<key>.npz`` (cache root: ``$MMGCN_CACHE``, see
:func:`mmgcn.data.paths.cache_root`) and reused by every run, model and seed that asks for
the same graph. The key is the SHA-256 of the inputs' bytes, shapes and dtypes plus the
parameters, so changed features or parameters can never hit a stale file.

Files are plain ``.npz`` archives of the CSR arrays, written atomically
(:func:`mmgcn.utils.io.atomic_write_bytes`) and read with ``allow_pickle=False``; a file
that does not read back as a well-formed CSR matrix of the expected shape is rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from mmgcn.data.paths import cache_root
from mmgcn.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)

#: bump when the construction of a cached graph changes, so that old files are not reused
CACHE_VERSION = 1


def fingerprint(*arrays: np.ndarray | torch.Tensor, params: Mapping[str, Any] | None = None) -> str:
    """Hex SHA-256 of arrays (bytes, shape, dtype) and JSON-serialisable ``params``.

    Args:
        arrays: numpy arrays or tensors (moved to CPU, made contiguous; not modified).
        params: construction parameters, hashed as sorted JSON.
    """
    digest = hashlib.sha256()
    digest.update(f"mmgcn-graph-cache-v{CACHE_VERSION}".encode())
    for array in arrays:
        if isinstance(array, torch.Tensor):
            array = array.detach().cpu().contiguous().numpy()
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    digest.update(json.dumps(dict(params or {}), sort_keys=True, default=str).encode())
    return digest.hexdigest()


def graph_cache_path(kind: str, key: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """``<cache root>/graphs/<kind>-<key[:32]>.npz``."""
    return cache_root(cache_dir) / "graphs" / f"{kind}-{key[:32]}.npz"


def save_csr(path: str | os.PathLike, matrix: sp.csr_matrix) -> None:
    """Write a CSR matrix as an ``.npz`` of its arrays, atomically."""
    csr = sp.csr_matrix(matrix)
    buffer = io.BytesIO()
    np.savez(buffer, indptr=csr.indptr, indices=csr.indices, data=csr.data, shape=np.asarray(csr.shape, np.int64))
    atomic_write_bytes(path, buffer.getvalue())


def load_csr(path: str | os.PathLike, shape: tuple[int, int] | None = None) -> sp.csr_matrix:
    """Read a CSR matrix written by :func:`save_csr` (no pickles).

    Raises:
        ValueError: the file is not a well-formed CSR archive (or has another ``shape``).
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in ("indptr", "indices", "data", "shape")}
        matrix = sp.csr_matrix(
            (arrays["data"], arrays["indices"], arrays["indptr"]), shape=tuple(int(s) for s in arrays["shape"])
        )
        matrix.check_format(full_check=True)
    except Exception as exc:  # truncated / foreign files: rebuild rather than fail the run
        raise ValueError(f"{path}: not a readable cached graph ({type(exc).__name__}: {exc})") from exc
    if shape is not None and matrix.shape != tuple(shape):
        raise ValueError(f"{path}: cached graph has shape {matrix.shape}, expected {tuple(shape)}")
    return matrix


def cached_csr(
    kind: str,
    key: str,
    build: Callable[[], sp.csr_matrix],
    shape: tuple[int, int],
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> sp.csr_matrix:
    """``build()``'s CSR matrix, read from / written to the graph cache under ``key``.

    Args:
        kind: a short name for the file (``"knn"``).
        key: :func:`fingerprint` of everything the graph depends on.
        build: computes the matrix on a miss.
        shape: the expected shape (a cached file of another shape is rebuilt).
        cache_dir: cache root (default ``$MMGCN_CACHE`` / the user cache).
        use_cache: ``False`` always builds and writes nothing.
    """
    if not use_cache:
        return build()
    path = graph_cache_path(kind, key, cache_dir)
    if path.exists():
        try:
            matrix = load_csr(path, shape)
            log.debug("graph cache hit: %s", path)
            return matrix
        except ValueError as exc:
            log.warning("%s; rebuilding it", exc)
    matrix = build()
    try:
        save_csr(path, matrix)
    except OSError as exc:  # a read-only cache must not stop training
        log.warning("could not write the graph cache %s (%s); continuing without it", path, exc)
    return matrix


__all__ = ["CACHE_VERSION", "cached_csr", "fingerprint", "graph_cache_path", "load_csr", "save_csr"]
