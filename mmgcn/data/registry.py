"""Dataset cards and :func:`load_dataset`: one name -> one validated :class:`Dataset`.

A card is a YAML file ``datasets/<name>.yaml`` (shipped in the package as
``mmgcn/data/cards/``) holding the dataset's format, its files with upstream URLs and
SHA-256 pins, licence, citation, expected statistics and default split.

:func:`load_dataset` resolves the raw folder (explicit ``data_dir`` > ``$MMGCN_DATA`` >
the user data dir, see :mod:`mmgcn.data.paths`), verifies the pinned hashes of the files
it reads, reads them with the format's reader, splits where the format has no split, and
adds cached extracted features from ``<cache>/<name>/features/<modality>_feat.npy``
(written by ``mmgcn extract`` with a ``<modality>_feat.json`` manifest). The raw folder is
only read: nothing is written there except by the explicit download step.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mmgcn.data import paths
from mmgcn.data.dataset import DataError, Dataset
from mmgcn.data.log import InteractionLog
from mmgcn.data.prepare import make_dataset
from mmgcn.data.readers.common import feature_files, load_feature_file
from mmgcn.data.readers.mmrec import read_mmrec
from mmgcn.data.readers.mmssl import CONVENTIONS, read_mmssl
from mmgcn.data.readers.movielens import read_movielens100k
from mmgcn.utils.io import sha256_file

logger = logging.getLogger(__name__)

FORMATS = ("mmssl", "movielens", "mmrec")
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_REQUIRED_KEYS = ("name", "title", "description", "format", "files", "licence", "citation", "statistics", "split")


def cards_dir() -> Path:
    """The folder of the dataset cards (``mmgcn/data/cards`` -> top-level ``datasets/``)."""
    import mmgcn.data

    return Path(mmgcn.data.__file__).parent / "cards"


def list_datasets() -> list[str]:
    """Names of the datasets that have a card, sorted."""
    return sorted(p.stem for p in cards_dir().glob("*.yaml"))


def _load_card(name: str) -> dict[str, Any]:
    path = cards_dir() / f"{name}.yaml"
    try:
        # the C build of the *safe* loader when available (5x faster); same semantics as safe_load
        card = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(card, dict):
        raise DataError(f"{path}: a dataset card must be a YAML mapping")
    missing = [k for k in _REQUIRED_KEYS if k not in card]
    if missing:
        raise DataError(f"{path}: missing fields {missing}")
    if card["name"] != name:
        raise DataError(f"{path}: field 'name' is {card['name']!r}; it must equal the file name {name!r}")
    if card["format"] not in FORMATS:
        raise DataError(f"{path}: field 'format' is {card['format']!r}; expected one of {FORMATS}")
    if not isinstance(card["files"], dict) or not card["files"]:
        raise DataError(f"{path}: field 'files' must map file names to their url / sha256")
    for fname, entry in card["files"].items():
        if not isinstance(entry, dict) or not (entry.get("url") or entry.get("archive")):
            raise DataError(f"{path}: files.{fname} needs a 'url' or an 'archive' + 'member'")
        if entry.get("archive") and entry["archive"] not in card.get("archives", {}):
            raise DataError(f"{path}: files.{fname} names archive {entry['archive']!r}, not listed under 'archives'")
    return card


def dataset_card(name: str) -> dict[str, Any]:
    """The card of dataset ``name`` as a dict (a copy; see ``datasets/<name>.yaml``).

    Raises:
        ValueError: no card of that name (the message lists the known datasets).
        DataError: the card is malformed.
    """
    if name not in list_datasets():
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(list_datasets())}")
    return _load_card(name)


def pins(card: dict[str, Any]) -> dict[str, str]:
    """``{file: sha256}`` for every pinned file of a card."""
    return {f: e["sha256"] for f, e in card["files"].items() if e.get("sha256")}


def missing_files(name: str, data_dir: str | os.PathLike | None = None) -> list[str]:
    """Required files of ``name`` (card entries not marked ``optional``) absent from its folder."""
    return _missing(dataset_card(name), paths.dataset_dir(name, data_dir))


def _missing(card: dict[str, Any], root: Path) -> list[str]:
    return [f for f, e in card["files"].items() if not e.get("optional") and not (root / f).is_file()]


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    convention: str | None = None,
    split: str | None = None,
    seed: int = 0,
    modalities: Sequence[str] | None = None,
    download: bool = False,
    verify: bool = True,
    cached_features: bool = True,
) -> Dataset:
    """Load a registered dataset, split and with its features.

    Args:
        name: a name from :func:`list_datasets` (``tiktok``, ``amazon-baby``, ``ml-100k``).
        data_dir: raw data root (default: ``$MMGCN_DATA``, else the user data dir); the
            files are read from ``<data_dir>/<name>/`` and never written there.
        cache_dir: writable cache root (default ``$MMGCN_CACHE``, else the user cache dir);
            extracted features are read from ``<cache_dir>/<name>/features/``.
        convention: for pre-split data, which file is valid and which test (``"files"`` or
            ``"mmrec"``; default: the card's ``split.default_convention``). See
            :mod:`mmgcn.data.readers.mmssl`.
        split: ``None`` (default): the files' split, or the card's default split for
            unsplit data (ml-100k: per-user temporal 8:1:1). A method name
            (``"random"``, ``"temporal"``, ``"global_temporal"``, ``"loo"``,
            ``"cold_items"``) re-splits all interactions with it (8:1:1).
        seed: seed of the split (default ``0``).
        modalities: feature modalities to keep, in order (default ``None``: all available,
            from the files and the feature cache).
        download: fetch missing files from the card's URLs first (default ``False``).
        verify: pinned SHA-256 mismatches raise (default ``True``); ``False`` warns.
        cached_features: add the features of the feature cache (default ``True``);
            ``False`` gives the raw files' features only (what ``mmgcn extract`` reads, so
            a stale cache cannot block its own re-extraction).

    Raises:
        ValueError: unknown dataset, convention or split method.
        DataError: missing files (with the download command), corrupt files, a pin
            mismatch, stale or missing cached features (with the extract command).
    """
    card = dataset_card(name)
    root = paths.dataset_dir(name, data_dir)
    missing = _missing(card, root)
    if missing and download:
        from mmgcn.data.download import download_dataset  # download needs the cards: import late

        download_dataset(name, data_dir)
        missing = _missing(card, root)
    if missing:
        raise DataError(
            f"{root}: dataset {name!r} is missing {', '.join(missing)}; run `mmgcn datasets download "
            f"{name}` (or point --data-dir / ${paths.DATA_ENV} at a folder holding {name}/)"
        )
    fmt = card["format"]
    if fmt != "mmssl" and convention is not None:
        raise ValueError(f"{name}: split conventions apply to pre-split datasets only; use split= instead")
    if fmt == "mmssl":
        conventions = card["split"].get("conventions", {})
        convention = convention or card["split"]["default_convention"]
        if convention not in conventions or convention not in CONVENTIONS:
            raise ValueError(f"{name}: unknown split convention {convention!r}; available: {sorted(conventions)}")
        dataset = read_mmssl(root, name=name, convention=convention, pins=pins(card), verify=verify)
        if split is not None:
            dataset = _resplit(dataset, split, seed)
    elif fmt == "movielens":
        raw = read_movielens100k(root, pins=pins(card), verify=verify)
        default = card["split"]["default"]
        dataset = make_dataset(
            raw.log,
            name=name,
            method=split or default["method"],
            ratios=tuple(default["ratios"]),
            seed=seed,
            content=raw.content,
            item_meta=raw.item_meta,
            user_meta=raw.user_meta,
            info=raw.info,
            source=str(root),
        )
    else:
        dataset = read_mmrec(root, card.get("inter_name", name), pins=pins(card), verify=verify)
        if split is not None:
            dataset = _resplit(dataset, split, seed)
    return _with_cached_features(dataset, card, cache_dir, modalities, cached_features)


def _resplit(dataset: Dataset, method: str, seed: int) -> Dataset:
    """All interactions of a pre-split dataset, split again with ``method`` (8:1:1)."""
    union = (dataset.train + dataset.valid + dataset.test).tocsr()
    users = np.repeat(np.arange(dataset.n_users, dtype=np.int64), np.diff(union.indptr))
    log = InteractionLog(users, union.indices.astype(np.int64), dataset.n_users, dataset.n_items, source=dataset.source)
    info = {k: v for k, v in dataset.info.items() if k not in ("split", "split_convention", "convention")}
    info["split_convention"] = (
        f"re-split: the {len(log):,} interactions of all three files, split again with method "
        f"{method!r} (8:1:1, seed {seed}); the files' own valid/test split is not used"
    )
    return make_dataset(
        log, name=dataset.name, method=method, seed=seed, features=dict(dataset.features),
        content_masks=dict(dataset.content_masks), info=info,
        source=dataset.source,
    )


def _extract_hint(card: dict[str, Any], modality: str) -> str:
    spec = card.get("modalities", {}).get(modality, {})
    return spec.get("extract") or f"mmgcn extract --dataset {card['name']} --modality {modality}"


def _with_cached_features(
    dataset: Dataset,
    card: dict[str, Any],
    cache_dir: str | os.PathLike | None,
    modalities: Sequence[str] | None,
    use_cache: bool = True,
) -> Dataset:
    """Add ``<cache>/<name>/features/<modality>_feat.npy`` and keep ``modalities``."""
    feature_dir = paths.feature_cache_dir(dataset.name, cache_dir)
    cached = feature_files(feature_dir) if use_cache and feature_dir.is_dir() else {}
    features = dict(dataset.features)
    masks = dict(dataset.content_masks)
    added = {}
    for modality, path in cached.items():
        if modality in features:
            logger.warning("%s: ignored; %s ships its own %r features", path, dataset.name, modality)
            continue
        if modalities is not None and modality not in modalities:
            continue
        features[modality], masks[modality] = _load_cached(path, dataset, card, modality)
        added[modality] = str(path)
    if modalities is not None:
        absent = [m for m in modalities if m not in features]
        if absent:
            hints = "; ".join(f"`{_extract_hint(card, m)}`" for m in absent)
            raise DataError(
                f"{dataset.name}: no features for modalities {absent} (available: {list(features)}; "
                f"looked in the data folder and {feature_dir}); extract them with {hints}"
            )
        features = {m: features[m] for m in modalities}
    if list(features) == list(dataset.features):
        return dataset
    info = dict(dataset.info, cached_features=added) if added else dict(dataset.info)
    masks = {m: mask for m, mask in masks.items() if m in features and mask is not None}
    return dataclasses.replace(dataset, features=features, content_masks=masks, info=info)


def _load_cached(
    path: Path, dataset: Dataset, card: dict[str, Any], modality: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(features (n_items, d), has_content (n_items,) bool or None)`` of one cached modality."""
    redo = f"re-run `{_extract_hint(card, modality)}`"
    manifest_path = path.with_suffix(".json")
    if not manifest_path.is_file():
        raise DataError(f"{path}: no manifest {manifest_path.name} beside it; the extraction did not finish -- {redo}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{manifest_path}: unreadable manifest ({exc}); {redo}") from None
    if manifest.get("n_items") != dataset.n_items:
        raise DataError(
            f"{manifest_path}: field 'n_items' is {manifest.get('n_items')!r} but {dataset.name} has "
            f"{dataset.n_items} items; the cached features are stale -- {redo}"
        )
    stamp = manifest.get("dataset_fingerprint")
    if stamp and dataset.info.get("fingerprint") and stamp != dataset.info["fingerprint"]:
        raise DataError(
            f"{manifest_path}: field 'dataset_fingerprint' does not match the raw files now read "
            f"({dataset.info['fingerprint'][:12]}...); the data changed since extraction -- {redo}"
        )
    if manifest.get("feature_sha256") and sha256_file(path) != manifest["feature_sha256"]:
        raise DataError(
            f"{path}: sha256 differs from field 'feature_sha256' of {manifest_path.name} (changed or "
            f"half-written); {redo}"
        )
    try:
        array = load_feature_file(path, dataset.n_items)
    except DataError as exc:
        raise DataError(f"{exc}; {redo}") from None
    if manifest.get("dim") not in (None, array.shape[1]):
        raise DataError(f"{manifest_path}: field 'dim' is {manifest['dim']} but {path.name} has {array.shape[1]} columns; {redo}")
    return array, _load_mask(path.parent, manifest, manifest_path, dataset.n_items, redo)


def _load_mask(directory: Path, manifest: dict[str, Any], manifest_path: Path, n_items: int, redo: str) -> np.ndarray | None:
    """The manifest's ``mask_file``: which items had content (``None`` when the manifest names none)."""
    name = manifest.get("mask_file")
    if not name:
        return None
    mask_file = directory / str(name)
    if mask_file.parent != directory:
        raise DataError(f"{manifest_path}: field 'mask_file' must name a file beside the manifest, got {name!r}")
    try:
        mask = np.load(mask_file, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{mask_file}: the mask file named by field 'mask_file' of {manifest_path.name} is missing; {redo}") from None
    except Exception as exc:
        raise DataError(f"{mask_file}: not a readable .npy mask ({type(exc).__name__}: {exc}); {redo}") from None
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (n_items,):
        raise DataError(
            f"{mask_file}: expected a bool array of {n_items} entries (one per item), got "
            f"{getattr(mask, 'dtype', type(mask).__name__)} {getattr(mask, 'shape', '')}; {redo}"
        )
    return mask
