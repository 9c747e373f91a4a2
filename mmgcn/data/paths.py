"""Where raw data is read from and where derived files are written.

Raw data directory (may be read-only), in order of precedence:
explicit argument > ``$MMGCN_DATA`` > ``<user data dir>/mmgcn/datasets``.
A dataset ``NAME`` lives in ``<data dir>/NAME/``.

Writable cache for everything derived (processed arrays, extracted features, converted
formats): explicit argument > ``$MMGCN_CACHE`` > ``<user cache dir>/mmgcn``. A dataset's
derived files live in ``<cache>/NAME/``; extracted features in ``<cache>/NAME/features/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DATA_ENV = "MMGCN_DATA"
CACHE_ENV = "MMGCN_CACHE"


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The raw data root directory (not created)."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path(platformdirs.user_data_dir("mmgcn")) / "datasets"


def dataset_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """``<data root>/<name>``: where dataset ``name``'s raw files live."""
    return data_root(data_dir) / name


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The writable cache root (not created)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(platformdirs.user_cache_dir("mmgcn"))


def dataset_cache_dir(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """``<cache root>/<name>``: derived files of dataset ``name`` (not created)."""
    return cache_root(cache_dir) / name


def feature_cache_dir(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """``<cache root>/<name>/features``: extracted ``<modality>_feat.npy`` + manifests."""
    return dataset_cache_dir(name, cache_dir) / "features"
