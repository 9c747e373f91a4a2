"""Batched, resumable extraction of item content into the feature cache.

:func:`extract_features` encodes one modality of a dataset's item content (posters, texts,
audio) with one encoder and writes ``<modality>_feat.npy`` + ``<modality>_mask.npy`` +
the manifest ``<modality>_feat.json`` (see :mod:`mmgcn.features.manifest`) into the
writable ``feature_cache_dir(dataset)`` -- never into the raw data directory.

Resumability: items are processed in fixed chunks of ``chunk_size`` rows. Rows go into a
preallocated ``.npy`` memory map in a work folder next to the outputs; after each chunk
the map is flushed and a progress record (chunks done, failures, timings) is replaced
atomically. A killed run therefore loses at most the chunk in flight, and a new run with
the same inputs, encoder and chunk size continues from the record. Because chunk
boundaries and the encoder's batching within a chunk are the same either way, the final
file is bitwise identical to an uninterrupted run. A record made for other inputs or
another encoder is discarded.

Missing content -- no file / empty text, or a file the encoder could not read (logged and
counted, the run goes on) -- is filled with zeros (``missing="zeros"``; the mask file
tells which rows) or with the mean of the encoded rows (``missing="mean"``), and listed
in the manifest.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mmgcn.data.dataset import DataError, Dataset, ItemContent
from mmgcn.data.paths import feature_cache_dir
from mmgcn.errors import ConfigError
from mmgcn.features.base import DEFAULT_ENCODERS, MODALITIES, Encoder, get_encoder
from mmgcn.features.manifest import (
    feature_path,
    manifest_path,
    mask_path,
    read_manifest,
    save_npy,
    write_manifest,
)
from mmgcn.utils.io import atomic_write_json, sha256_file

log = logging.getLogger(__name__)

DTYPES = {"float32": np.float32, "float16": np.float16}
FILLS = ("zeros", "mean")


def extract_features(
    source: str | Dataset | ItemContent,
    modality: str,
    encoder: str | Encoder | None = None,
    *,
    name: str | None = None,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
    chunk_size: int | None = None,
    dtype: str = "float32",
    missing: str = "zeros",
    resume: bool = True,
    limit: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Encode one modality of a dataset's item content into the feature cache.

    Args:
        source: a dataset name (loaded with ``mmgcn.data.registry.load_dataset``), a
            :class:`Dataset` with ``content``, or an :class:`ItemContent` (then ``name``
            is required).
        modality: ``"image"``, ``"text"`` or ``"audio"``.
        encoder: an encoder name, an :class:`Encoder`, or ``None`` for the offline
            default of the modality (:data:`DEFAULT_ENCODERS`).
        name: dataset name for the cache folder (default: the dataset's / ``source``).
        data_dir: raw data root when ``source`` is a name.
        cache_dir: cache root (default ``$MMGCN_CACHE`` / the user cache).
        batch_size: inputs per forward pass.
        chunk_size: rows per resumable chunk (default ``8 * batch_size``).
        dtype: ``"float32"`` or ``"float16"`` for the feature file.
        missing: fill of items without readable content: ``"zeros"`` or ``"mean"``.
        resume: continue an interrupted run / reuse an up-to-date result.
        limit: encode only the first ``limit`` items (for trials); the result goes to
            ``<features>/limit-<N>/`` so dataset loaders never pick it up.
        device: torch device for the encoder.
        progress: show a tqdm bar.

    Returns:
        Path of the written ``<modality>_feat.npy``.

    Raises:
        DataError: the dataset has no content of this modality, or none is readable.
        ValueError: bad ``modality`` / ``dtype`` / ``missing`` / sizes.
    """
    if modality not in MODALITIES:
        raise ConfigError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    if missing not in FILLS:
        raise ConfigError(f"missing must be one of {FILLS}, got {missing!r}")
    if batch_size < 1 or (chunk_size is not None and chunk_size < 1) or (limit is not None and limit < 1):
        raise ConfigError(f"batch_size, chunk_size and limit must be positive, got {batch_size}, {chunk_size}, {limit}")
    content, dataset_name, dataset_fingerprint = _resolve_content(source, name, data_dir, cache_dir)
    sources = content.modality_sources()
    if modality not in sources:
        raise DataError(
            f"{dataset_name}: the dataset has no {modality} content (has: {sorted(sources) or 'none'}); "
            f"datasets that ship precomputed {modality} features need no extraction"
        )
    inputs = list(sources[modality])[:limit] if limit else list(sources[modality])
    n_items = len(inputs)
    if isinstance(encoder, Encoder):
        if encoder.modality != modality:
            raise ConfigError(f"encoder {encoder.name!r} encodes {encoder.modality}, not {modality}")
    else:
        encoder = get_encoder(encoder or DEFAULT_ENCODERS[modality], device=device, modality=modality)
    encoder.batch_size = int(batch_size)
    chunk_size = int(chunk_size or 8 * batch_size)

    out_dir = feature_cache_dir(dataset_name, cache_dir)
    if limit:
        out_dir = out_dir / f"limit-{limit}"
    present = np.array([_has_content(x) for x in inputs], dtype=bool)
    identity = encoder.describe()
    fingerprint = {
        "dataset": dataset_name,
        "modality": modality,
        "n_items": n_items,
        "limit": limit,
        "chunk_size": chunk_size,
        "encoder": identity,
        "inputs_sha256": _inputs_digest(inputs),
    }
    out_file, manifest_file = feature_path(out_dir, modality), manifest_path(out_dir, modality)
    if resume and _up_to_date(manifest_file, fingerprint, dtype, missing):
        log.info("%s: %s is up to date (%s)", dataset_name, out_file, identity["encoder"])
        return out_file

    work = out_dir / f".{modality}_feat.partial"
    state = _open_work(work, fingerprint, n_items, encoder.dim, resume)
    rows = np.load(work / "rows.npy", mmap_mode="r+")
    n_chunks = (n_items + chunk_size - 1) // chunk_size
    done_items = int(present[: state["done_chunks"] * chunk_size].sum())
    if state["done_chunks"]:
        log.info("%s: resuming %s extraction at chunk %d/%d", dataset_name, modality, state["done_chunks"], n_chunks)
    bar = tqdm(total=int(present.sum()), initial=done_items, disable=not progress, unit="item", desc=f"{modality} ({encoder.name})")
    try:
        for chunk in range(state["done_chunks"], n_chunks):
            positions = [i for i in range(chunk * chunk_size, min((chunk + 1) * chunk_size, n_items)) if present[i]]
            if positions:
                started = time.perf_counter()
                result = encoder.encode_batch([inputs[i] for i in positions])
                state["encode_seconds"] += time.perf_counter() - started
                rows[positions] = result.features
                for pos, reason in result.errors.items():
                    state["failed"][str(positions[pos])] = reason
                state["truncated"] += int(result.truncated)
                state["encoded"] += len(positions)
            rows.flush()
            state["done_chunks"] = chunk + 1
            atomic_write_json(work / "progress.json", state)  # the chunk is durable from here on
            bar.update(len(positions))
    finally:
        bar.close()
        del rows

    manifest_extra = {"dataset_fingerprint": dataset_fingerprint}
    return _finalise(work, out_dir, modality, dataset_name, present, state, identity, fingerprint, dtype, missing, manifest_extra)


# ---------------------------------------------------------------------- helpers
def _resolve_content(
    source: str | Dataset | ItemContent,
    name: str | None,
    data_dir: str | os.PathLike | None,
    cache_dir: str | os.PathLike | None,
) -> tuple[ItemContent, str, str | None]:
    """``(content, dataset name, the raw files' fingerprint from dataset.info or None)``."""
    if isinstance(source, ItemContent):
        if not name:
            raise ValueError("extracting from an ItemContent needs name= (the dataset name for the cache folder)")
        return source, name, None
    if isinstance(source, Dataset):
        if source.content is None:
            raise DataError(f"{source.source}: dataset {source.name!r} holds no raw item content to encode")
        return source.content, name or source.name, source.info.get("fingerprint")
    if isinstance(source, str):
        try:
            from mmgcn.data.registry import load_dataset
        except ImportError as exc:  # pragma: no cover - the registry is part of mmgcn.data
            raise DataError(f"cannot load dataset {source!r}: mmgcn.data.registry is unavailable ({exc})") from exc
        # cached features are what we are about to (re)write: do not read them
        dataset = load_dataset(source, data_dir=data_dir, cache_dir=cache_dir, cached_features=False)
        return _resolve_content(dataset, name or source, None, None)
    raise TypeError(f"source must be a dataset name, Dataset or ItemContent, got {type(source).__name__}")


def _has_content(item: Any) -> bool:
    if item is None:
        return False
    if isinstance(item, str):
        return bool(item.strip())
    if isinstance(item, os.PathLike):
        return Path(item).is_file()
    return True  # in-memory content (PIL image, waveform tuple)


def _inputs_digest(inputs: list[Any]) -> str:
    digest = hashlib.sha256()
    for item in inputs:
        text = os.fspath(item) if isinstance(item, os.PathLike) else item if isinstance(item, str) else repr(item) if item is None else f"<{type(item).__name__} id={id(item)}>"
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def _up_to_date(manifest_file: Path, fingerprint: dict, dtype: str, missing: str) -> bool:
    if not manifest_file.is_file():
        return False
    try:
        manifest = read_manifest(manifest_file)
    except DataError:
        return False
    feats = manifest_file.parent / manifest["feature_file"]
    return (
        manifest.get("fingerprint") == json.loads(json.dumps(fingerprint, default=str))
        and manifest["dtype"] == dtype
        and manifest["missing"].get("fill") == missing
        and feats.is_file()
        and sha256_file(feats) == manifest["feature_sha256"]
    )


def _open_work(work: Path, fingerprint: dict, n_items: int, dim: int, resume: bool) -> dict:
    progress_file = work / "progress.json"
    fingerprint = json.loads(json.dumps(fingerprint, default=str))
    if resume and progress_file.is_file() and (work / "rows.npy").is_file():
        try:
            state = json.loads(progress_file.read_text())
            rows = np.load(work / "rows.npy", mmap_mode="r")
            if state.get("fingerprint") == fingerprint and rows.shape == (n_items, dim):
                return state
        except (OSError, ValueError):  # unreadable leftovers: start over
            pass
        log.warning("%s: discarding a partial extraction made for other inputs or another encoder", work)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    rows = np.lib.format.open_memmap(work / "rows.npy", mode="w+", dtype=np.float32, shape=(n_items, dim))
    rows[:] = 0.0
    rows.flush()
    del rows
    state = {"fingerprint": fingerprint, "done_chunks": 0, "failed": {}, "truncated": 0, "encoded": 0, "encode_seconds": 0.0}
    atomic_write_json(progress_file, state)
    return state


def _finalise(
    work: Path,
    out_dir: Path,
    modality: str,
    dataset_name: str,
    present: np.ndarray,
    state: dict,
    identity: dict,
    fingerprint: dict,
    dtype: str,
    missing: str,
    manifest_extra: dict[str, Any],
) -> Path:
    features = np.array(np.load(work / "rows.npy", mmap_mode="r"), dtype=np.float32)
    failed = {int(k): v for k, v in state["failed"].items()}
    has_content = present.copy()
    has_content[list(failed)] = False
    if not has_content.any():
        raise DataError(f"{dataset_name}: no item has readable {modality} content ({len(failed)} failed); nothing to extract")
    if not np.all(np.isfinite(features[has_content])):
        raise DataError(f"{dataset_name}: the encoder produced NaN/inf {modality} features")
    fill = np.zeros(features.shape[1], np.float32) if missing == "zeros" else features[has_content].mean(axis=0)
    features[~has_content] = fill
    stored = features.astype(DTYPES[dtype])
    if not np.all(np.isfinite(stored)):
        raise DataError(f"{dataset_name}: {modality} features overflow {dtype} (max |x| = {np.abs(features).max():.3g}); use float32")
    missing_ids = np.flatnonzero(~has_content)
    seconds = float(state["encode_seconds"])
    rate = state["encoded"] / seconds if seconds > 0 else None
    out_file, mask_file = feature_path(out_dir, modality), mask_path(out_dir, modality)
    save_npy(out_file, stored)
    save_npy(mask_file, has_content)
    manifest = {
        "modality": modality,
        "dataset": dataset_name,
        "n_items": int(features.shape[0]),
        "dim": int(features.shape[1]),
        "dtype": dtype,
        **{k: identity[k] for k in ("encoder", "encoder_class", "package_versions", "weights_sha256", "preprocessing")},
        "missing": {
            "count": int(missing_ids.size),
            "item_ids": missing_ids.tolist(),
            "fill": missing,
            "no_content": int((~present).sum()),
            "failed": {str(k): v for k, v in sorted(failed.items())},
        },
        "mask_file": mask_file.name,
        "has_content_count": int(has_content.sum()),
        "feature_file": out_file.name,
        "feature_sha256": sha256_file(out_file),
        "truncated_count": int(state["truncated"]),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "items_per_second": rate,
        "encode_seconds": seconds,
        "limit": fingerprint["limit"],
        "fingerprint": json.loads(json.dumps(fingerprint, default=str)),
        **manifest_extra,
    }
    write_manifest(manifest_path(out_dir, modality), manifest)
    with contextlib.suppress(OSError):
        shutil.rmtree(work)
    log.info(
        "%s: wrote %s (%d x %d %s) with %s: %d encoded, %d missing (%d failed), %s items/s%s",
        dataset_name, out_file, features.shape[0], features.shape[1], dtype, identity["encoder"],
        state["encoded"] - len(failed), missing_ids.size, len(failed),
        f"{rate:.1f}" if rate else "n/a",
        f", {state['truncated']} truncated" if state["truncated"] else "",
    )
    return out_file
