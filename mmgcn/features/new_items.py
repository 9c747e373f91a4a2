"""Features of an unseen item, made exactly like the dataset's: cold-start recommendation.

A model trained on a dataset's features can only represent a new item whose features come
from the *same* encoder with the *same* preprocessing and weights. The feature cache's
manifests (:mod:`mmgcn.features.manifest`) record both, so :func:`encode_new_item`

1. reads ``<modality>_feat.json`` of every modality the model uses from
   ``feature_cache_dir(dataset)``; a modality without one did not come from our encoders
   (e.g. TikTok's precomputed visual / acoustic features) and is refused with
   :class:`ForeignFeaturesError`;
2. builds the recorded encoder by name and checks that it loads the recorded weights
   (SHA-256) and applies the recorded preprocessing, refusing otherwise;
3. encodes the given content (an image file, a text, an audio file), or, for a modality
   with no content given, fills the row as the extraction filled items without content
   (zeros, or the mean of the items that had content), and says so.

The result feeds :meth:`mmgcn.models.base.Recommender.represent_new_items`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmgcn.data.dataset import DataError, Dataset
from mmgcn.data.paths import feature_cache_dir
from mmgcn.features.base import MODALITIES, get_encoder
from mmgcn.features.manifest import load_cached_features, manifest_path, read_manifest

log = logging.getLogger(__name__)


class ForeignFeaturesError(DataError):
    """The dataset's features of a modality were not produced by this toolkit's encoders."""


@dataclass
class NewItemFeatures:
    """What :func:`encode_new_item` returns.

    Attributes:
        features: ``{modality: (1, d_m) float32}``, ready for ``represent_new_items``.
        sources: ``{modality: how the row was made}``, e.g. ``"encoded poster.jpg with
            efficientnet-lite0"`` or ``"no image given: zeros, as at extraction"``.
        ignored: content kinds given but not used by the model (``["audio"]``).
    """

    features: dict[str, torch.Tensor]
    sources: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def _describe_input(kind: str, value: Any) -> str:
    if kind == "text":
        text = str(value)
        return repr(text if len(text) <= 60 else text[:57] + "...")
    return os.fspath(value) if isinstance(value, (str, os.PathLike)) else type(value).__name__


def _check_encoder(encoder: Any, manifest: dict[str, Any], manifest_file: Path) -> None:
    """Refuse an encoder whose weights or preprocessing differ from the extraction's."""
    identity = json.loads(json.dumps(encoder.describe(), default=str))
    for key in ("weights_sha256", "preprocessing"):
        if identity[key] != manifest[key]:
            raise DataError(
                f"{manifest_file}: field {key!r} records {manifest[key]!r}, but encoder "
                f"{manifest['encoder']!r} now gives {identity[key]!r}; a new item encoded now would not be "
                f"comparable with the dataset's items -- install the weights the features were extracted "
                f"with, or re-extract the features (mmgcn extract) and retrain"
            )
    versions = manifest.get("package_versions") or {}
    changed = {k: (v, identity["package_versions"].get(k)) for k, v in versions.items()
               if identity["package_versions"].get(k) != v}
    if changed:
        log.warning("%s: package versions differ from the extraction's (recorded, now): %s", manifest_file, changed)


def encode_new_item(
    dataset: Dataset,
    content: Mapping[str, Any],
    modalities: Sequence[str] | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    device: str = "cpu",
) -> NewItemFeatures:
    """Encode one unseen item's content like the dataset's items were encoded.

    Args:
        dataset: the dataset the model was trained on (its name locates the feature cache).
        content: ``{"image": path, "text": str, "audio": path}`` -- any subset, at least one.
        modalities: the feature modalities the model reads (default: all of ``dataset.features``).
        cache_dir: feature cache root (default ``$MMGCN_CACHE`` / the user cache).
        device: torch device of the encoders.

    Raises:
        ValueError: no content given, or an unknown content kind.
        ForeignFeaturesError: a modality's features have no manifest in the cache (they came
            with the dataset, not from ``mmgcn extract``).
        DataError: the encoder now differs from the one recorded, or the manifest does not
            match the dataset.
        ContentError: the given file cannot be read.
    """
    unknown = sorted(set(content) - set(MODALITIES))
    if unknown:
        raise ValueError(f"unknown content kind(s) {unknown}; expected some of {list(MODALITIES)}")
    given = {k: v for k, v in content.items() if v is not None and (not isinstance(v, str) or v.strip())}
    if not given:
        raise ValueError("describe the new item: give at least one of an image, a text or an audio file")
    modalities = tuple(dataset.features) if modalities is None else tuple(modalities)
    directory = feature_cache_dir(dataset.name, cache_dir)
    cached = dataset.info.get("cached_features")
    features: dict[str, torch.Tensor] = {}
    sources: dict[str, str] = {}
    used_kinds = set()
    for modality in modalities:
        manifest_file = manifest_path(directory, modality)
        foreign = (isinstance(cached, Mapping) and modality not in cached) or not manifest_file.is_file()
        if foreign:
            raise ForeignFeaturesError(
                f"dataset {dataset.name!r}: its {modality!r} features were not produced by mmgcn's encoders "
                f"(no manifest {manifest_file} {'in use' if manifest_file.is_file() else 'found'}; they ship "
                f"precomputed with the dataset), so an unseen item cannot be embedded the same way. New items "
                f"need a dataset whose features all come from `mmgcn extract` (e.g. ml-100k: image, text)"
            )
        manifest = read_manifest(manifest_file)
        kind, width = manifest["modality"], int(dataset.features[modality].shape[1])
        if manifest["n_items"] != dataset.n_items or manifest["dim"] != width or kind not in MODALITIES:
            raise DataError(
                f"{manifest_file}: records {manifest['n_items']} items x {manifest['dim']} ({kind}) but "
                f"{dataset.name} has {dataset.n_items} items x {width}; re-run `mmgcn extract`"
            )
        used_kinds.add(kind)
        if kind in given:
            options = {}
            if kind == "text" and manifest["preprocessing"].get("max_length"):
                options["max_length"] = int(manifest["preprocessing"]["max_length"])
            encoder = get_encoder(manifest["encoder"], device=device, modality=kind, **options)
            _check_encoder(encoder, manifest, manifest_file)
            row = encoder.encode([given[kind]])
            sources[modality] = f"encoded {_describe_input(kind, given[kind])} with {manifest['encoder']}"
        else:
            fill = manifest["missing"].get("fill", "zeros")
            if fill == "mean":
                rows, has_content, _ = load_cached_features(directory, modality)
                row = rows[has_content].mean(axis=0, keepdims=True)
            else:
                row = np.zeros((1, width), dtype=np.float32)
            sources[modality] = f"no {kind} given: filled with {fill}, as items without {kind} were at extraction"
        row = np.asarray(row, dtype=np.float32).reshape(1, -1)
        if row.shape[1] != width:
            raise DataError(f"{manifest_file}: encoder {manifest['encoder']!r} gives {row.shape[1]} columns, the dataset {width}")
        features[modality] = torch.from_numpy(row)
    ignored = sorted(set(given) - used_kinds)
    if ignored:
        log.warning("the model reads no %s features; the given %s ignored", ", ".join(ignored), " and ".join(ignored))
    if not used_kinds & set(given):
        raise ValueError(
            f"none of the given content ({', '.join(sorted(given))}) is read by the model, which uses "
            f"{list(modalities)}; describe the item with those"
        )
    return NewItemFeatures(features, sources, ignored)


__all__ = ["ForeignFeaturesError", "NewItemFeatures", "encode_new_item"]
