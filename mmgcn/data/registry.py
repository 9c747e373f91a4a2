"""Datasets by name: :func:`load_dataset` turns a card (:mod:`mmgcn.data.catalog`) into one validated :class:`Dataset`.

A card is a YAML file ``<name>.yaml`` holding the dataset's format, its files (with
upstream URLs and SHA-256 pins where it has them), and optionally licence, citation,
expected statistics, default split, modalities and item content. The schema is documented
in ``docs/cards.md``; the built-in cards (``datasets/``, shipped as ``mmgcn/data/cards/``)
are the examples.

Where cards are found, first match wins:

1. an explicit card file (``load_dataset(..., card=FILE)``, CLI ``--card FILE``);
2. ``$MMGCN_CARDS``: card files or folders of cards, separated by ``os.pathsep``;
3. ``<data root>/cards/`` (``$MMGCN_DATA/cards/``), where ``mmgcn datasets import`` writes;
4. the built-in cards.

:func:`load_dataset` resolves the raw folder (the card's ``path``, relative to the card
file, else explicit ``data_dir`` > ``$MMGCN_DATA`` > the user data dir, see
:mod:`mmgcn.data.paths`), verifies the pinned hashes of the files it reads, reads them with
the format's reader (file names from the card), splits where the format has no split, adds
the item content the card names, and adds cached extracted features from
``<cache>/<name>/features/<modality>_feat.npy`` (written by ``mmgcn extract`` with a
``<modality>_feat.json`` manifest). The raw folder is only read: nothing is written there
except by the explicit download and import steps.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmgcn.data import paths
from mmgcn.data.catalog import (  # noqa: F401 -- re-exported: the registry is where callers look for cards
    CARD_FILE_KEY,
    CARDS_DIRNAME,
    CARDS_ENV,
    FORMATS,
    card_paths,
    card_sources,
    cards_dir,
    dataset_card,
    dataset_root,
    is_builtin,
    list_datasets,
    read_card,
)
from mmgcn.data.dataset import DataError, Dataset
from mmgcn.data.log import InteractionLog
from mmgcn.data.prepare import make_dataset
from mmgcn.data.readers.common import (
    feature_files,
    file_hashes,
    fingerprint,
    load_feature_file,
    verify_pins,
)
from mmgcn.data.readers.content import read_content
from mmgcn.data.readers.mmrec import read_mmrec
from mmgcn.data.readers.mmssl import CONVENTIONS, TRAIN_FILE, read_mmssl
from mmgcn.data.readers.movielens import read_movielens100k
from mmgcn.data.splits import METHODS
from mmgcn.errors import ConfigError
from mmgcn.utils.io import sha256_file

logger = logging.getLogger(__name__)

def pins(card: dict[str, Any]) -> dict[str, str]:
    """``{file: sha256}`` for every pinned file of a card."""
    return {f: e["sha256"] for f, e in card["files"].items() if e.get("sha256")}


def missing_files(
    name: str, data_dir: str | os.PathLike | None = None, card: str | os.PathLike | None = None
) -> list[str]:
    """Required files of ``name`` (card entries not marked ``optional``) absent from its folder."""
    spec = dataset_card(name, data_dir, card)
    return _missing(spec, dataset_root(spec, data_dir))


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
    card: str | os.PathLike | None = None,
) -> Dataset:
    """Load a dataset by name, split and with its features and content.

    Args:
        name: a name from :func:`list_datasets` (``tiktok``, ``amazon-baby``, ``ml-100k``,
            or one of your own cards, e.g. made by ``mmgcn datasets import``).
        data_dir: raw data root (default: ``$MMGCN_DATA``, else the user data dir); the
            files are read from ``<data_dir>/<name>/`` (or the card's ``path``) and never
            written there; its ``cards/`` folder is searched for the card.
        cache_dir: writable cache root (default ``$MMGCN_CACHE``, else the user cache dir);
            extracted features are read from ``<cache_dir>/<name>/features/``.
        convention: for pre-split data, which file is valid and which test (a name from the
            card's ``split.conventions``; default: its ``split.default_convention``).
        split: ``None`` (default): the files' split, or the card's default split for
            unsplit data (ml-100k: per-user temporal 8:1:1). A method name
            (``"random"``, ``"temporal"``, ``"global_temporal"``, ``"loo"``,
            ``"cold_items"``) re-splits all interactions with it (8:1:1; the temporal
            methods need event times, which MMSSL pickles do not have).
        seed: seed of the split (default ``0``).
        modalities: feature modalities to keep, in order (default ``None``: all available,
            from the files and the feature cache).
        download: fetch missing files from the card's URLs first (default ``False``).
        verify: pinned SHA-256 mismatches raise (default ``True``); ``False`` warns.
        cached_features: add the features of the feature cache (default ``True``);
            ``False`` gives the raw files' features only (what ``mmgcn extract`` reads, so
            a stale cache cannot block its own re-extraction).
        card: an explicit card file instead of the card search (default ``None``).

    Raises:
        ValueError: unknown dataset, convention or split method.
        DataError: missing files (with the download command), corrupt files, a pin
            mismatch, stale or missing cached features (with the extract command).
    """
    card_spec = dataset_card(name, data_dir, card)
    root = dataset_root(card_spec, data_dir)
    missing = _missing(card_spec, root)
    if missing and download:
        from mmgcn.data.download import download_dataset  # download needs the cards: import late

        download_dataset(name, data_dir)
        missing = _missing(card_spec, root)
    if missing:
        how = (
            f"run `mmgcn datasets download {name}`"
            if any(card_spec["files"][f].get("url") or card_spec["files"][f].get("archive") for f in missing)
            else "the card gives no download URL for them: re-import or copy the files there"
        )
        raise DataError(
            f"{root}: dataset {name!r} is missing {', '.join(missing)}; {how} (or point --data-dir / "
            f"${paths.DATA_ENV} at a folder holding {name}/)"
        )
    fmt = card_spec["format"]
    split_spec = card_spec.get("split") or {}
    if fmt != "mmssl" and convention is not None:
        raise ConfigError(f"{name}: split conventions apply to pre-split datasets only; use split= instead")
    if fmt == "mmssl":
        conventions = split_spec.get("conventions") or {"files": "built-in"}
        convention = convention or split_spec.get("default_convention") or next(iter(conventions))
        if convention not in conventions:
            raise ConfigError(f"{name}: unknown split convention {convention!r}; available: {sorted(conventions)}")
        files, note = _convention_files(conventions[convention], convention)
        dataset = read_mmssl(
            root, name=name, convention=convention, files=files, note=note,
            feature_names=_feature_file_names(card_spec), pins=pins(card_spec), verify=verify,
        )
        if split is not None:
            dataset = _resplit(dataset, split, seed)
    elif fmt == "movielens":
        raw = read_movielens100k(root, pins=pins(card_spec), verify=verify)
        default = {"method": "temporal", "ratios": [0.8, 0.1, 0.1], **(split_spec.get("default") or {})}
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
        dataset = read_mmrec(root, card_spec.get("inter_name", name), pins=pins(card_spec), verify=verify)
        if card_spec.get("content"):
            dataset = _with_content(dataset, card_spec, root, verify)
        if split is not None:
            dataset = _resplit(dataset, split, seed)
    return _with_cached_features(dataset, card_spec, cache_dir, modalities, cached_features)


def _convention_files(spec: Any, convention: str) -> tuple[dict[str, str], str]:
    """``({"train", "valid", "test"} -> file, note)`` of a card's convention entry."""
    if isinstance(spec, dict):
        files = {"train": spec.get("train", TRAIN_FILE), "valid": spec["valid"], "test": spec["test"]}
        return files, str(spec.get("note", ""))
    valid_file, test_file, why = CONVENTIONS[convention]
    return {"train": TRAIN_FILE, "valid": valid_file, "test": test_file}, why


def _feature_file_names(card: Mapping[str, Any]) -> dict[str, str] | None:
    """``{modality: file}`` for the modalities whose card entry names a ``file`` (else ``None``:
    the reader takes every ``<modality>_feat.npy``)."""
    named = {m: spec["file"] for m, spec in (card.get("modalities") or {}).items() if isinstance(spec, dict) and spec.get("file")}
    return named or None


def _with_content(dataset: Dataset, card: Mapping[str, Any], root: Path, verify: bool) -> Dataset:
    """Attach the item content and id maps named by the card's ``content`` section."""
    spec = card["content"]
    names = [spec[k] for k in ("items", "users") if spec.get(k)]
    hashes = file_hashes(root, names)
    verify_pins(root, hashes, pins(card), verify, dataset.name)
    content, item_ids, user_ids, item_meta = read_content(
        root, dataset.n_users, dataset.n_items, items=spec.get("items"), users=spec.get("users")
    )
    info = dict(dataset.info)
    files = {**info.get("files", {}), **hashes}
    info.update(files=files, fingerprint=fingerprint(files))
    if item_ids is not None or user_ids is not None:
        info["id_maps"] = {
            "user_ids": user_ids if user_ids is not None else np.arange(dataset.n_users).astype(str),
            "item_ids": item_ids if item_ids is not None else np.arange(dataset.n_items).astype(str),
        }
    if card.get("source"):
        info["imported_from"] = dict(card["source"])
    made = card.get("split") or {}
    if made.get("method") in METHODS:
        # the split the importer made, stored in x_label
        info["split"] = {k: made[k] for k in ("method", "ratios", "seed") if k in made}
        info["split"]["stored"] = "x_label of the .inter file"
    return dataclasses.replace(dataset, content=content, item_meta={**dataset.item_meta, **item_meta}, info=info)


def _resplit(dataset: Dataset, method: str, seed: int) -> Dataset:
    """All interactions of a pre-split dataset, split again with ``method`` (8:1:1)."""
    parts = [dataset.split(s) for s in ("train", "valid", "test")]
    users = np.concatenate([np.repeat(np.arange(dataset.n_users, dtype=np.int64), np.diff(p.indptr)) for p in parts])
    items = np.concatenate([p.indices.astype(np.int64) for p in parts])
    times = None
    if dataset.timestamps is not None:
        times = np.concatenate([dataset.timestamps[s] for s in ("train", "valid", "test")])
    log = InteractionLog(users, items, dataset.n_users, dataset.n_items, timestamps=times, source=dataset.source)
    info = {k: v for k, v in dataset.info.items() if k not in ("split", "split_convention", "convention")}
    info["split_convention"] = (
        f"re-split: the {len(log):,} interactions of all three files, split again with method "
        f"{method!r} (8:1:1, seed {seed}); the files' own valid/test split is not used"
    )
    return make_dataset(
        log, name=dataset.name, method=method, seed=seed, features=dataset.features.stored(),
        content_masks=dict(dataset.content_masks), info=info,
        source=dataset.source, content=dataset.content, item_meta=dict(dataset.item_meta),
        user_meta=dict(dataset.user_meta),
    )


def _extract_hint(card: dict[str, Any], modality: str) -> str:
    spec = (card.get("modalities") or {}).get(modality) or {}
    return spec.get("extract") or f"mmgcn extract {card['name']} --modality {modality}"


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
    features = dataset.features.stored()
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
