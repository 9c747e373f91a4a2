"""Missing content is missing: ML-100K movies without a poster.

The feature cache records which items had content (``<modality>_mask.npy``); the loader
carries it into ``Dataset.content_masks``, and models leave an absent modality out of an
item's representation instead of treating the fill row (zeros) as content.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmgcn.data import paths
from mmgcn.data.dataset import DataError
from mmgcn.data.registry import load_dataset
from mmgcn.models import build_model


def _write_cache(name: str, modality: str, features: np.ndarray, mask: np.ndarray) -> None:
    directory = paths.feature_cache_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / f"{modality}_feat.npy", features)
    np.save(directory / f"{modality}_mask.npy", mask)
    manifest = {"modality": modality, "n_items": features.shape[0], "dim": features.shape[1],
                "dtype": str(features.dtype), "encoder": "test", "mask_file": f"{modality}_mask.npy"}
    (directory / f"{modality}_feat.json").write_text(json.dumps(manifest))


@pytest.fixture
def ml100k_with_masks(data_root):
    """Real ML-100K; image features present only for movies with a poster file (as `mmgcn
    extract` writes them: zero rows plus a mask), text for every movie."""
    raw = load_dataset("ml-100k", data_root, cached_features=False)
    has_poster = np.array([p is not None for p in raw.content.image_paths])
    rng = np.random.default_rng(0)
    image = rng.normal(size=(raw.n_items, 8)).astype(np.float32)
    image[~has_poster] = 0.0
    _write_cache("ml-100k", "image", image, has_poster)
    _write_cache("ml-100k", "text", rng.normal(size=(raw.n_items, 4)).astype(np.float32),
                 np.ones(raw.n_items, dtype=bool))
    return load_dataset("ml-100k", data_root), has_poster


def test_the_loader_carries_the_mask(ml100k_with_masks):
    dataset, has_poster = ml100k_with_masks
    assert int((~has_poster).sum()) == 64  # the 64 movies without a poster
    np.testing.assert_array_equal(dataset.has_content("image"), has_poster)
    assert dataset.has_content("text").all()
    assert dataset.stats()["items_without_content"] == {"image": 64, "text": 0}
    # kept through modality selection, dropped with the modality
    assert set(dataset.select_modalities(["image"]).content_masks) == {"image"}
    text_only = dataset.select_modalities(["text"]).content_masks
    assert list(text_only) == ["text"] and text_only["text"].all()


def test_a_bad_mask_file_is_a_clear_error(data_root):
    n_items = 1682
    _write_cache("ml-100k", "image", np.zeros((n_items, 4), np.float32), np.ones(n_items - 1, dtype=bool))
    with pytest.raises(DataError, match=r"image_mask\.npy: expected a bool array of 1682 entries"):
        load_dataset("ml-100k", data_root)


@pytest.mark.parametrize("name,config", [
    ("mmgcn", {}),
    ("mmgcn", {"fusion": "attention"}),
    ("attention", {}),
])
def test_models_leave_the_missing_modality_out(ml100k_with_masks, name, config):
    dataset, has_poster = ml100k_with_masks
    torch.manual_seed(0)
    model = build_model(name, dataset, config)
    model.eval()
    with torch.no_grad():
        emb = model.embed()
    no_poster = torch.from_numpy(np.flatnonzero(~has_poster))
    # the image part of a movie without a poster contributes nothing to its representation
    image_part = emb.parts["image"][1]
    assert image_part[no_poster].abs().max().item() == 0.0
    with_poster = torch.from_numpy(np.flatnonzero(has_poster)[:50])
    assert image_part[with_poster].abs().amax(dim=1).min().item() > 0.0


def test_vbpr_and_concat_zero_the_absent_block(ml100k_with_masks):
    dataset, has_poster = ml100k_with_masks
    vbpr = build_model("vbpr", dataset)
    image_block = vbpr.content[:, :8]
    assert image_block[torch.from_numpy(~has_poster)].abs().max().item() == 0.0
    # the L2 transform of a zero fill would otherwise be zero too: check a z-scored VBPR, where
    # a fill row would become -mean/std, not zero
    zscored = build_model("vbpr", dataset, {"standardize_features": True})
    assert zscored.content[torch.from_numpy(~has_poster), :8].abs().max().item() == 0.0
    concat = build_model("concat", dataset, {"hidden_dims": []})
    with torch.no_grad():
        parts = concat.embed().parts
    assert parts["image"][1][torch.from_numpy(~has_poster)].abs().max().item() == 0.0


def test_new_items_without_a_modality_are_treated_alike(ml100k_with_masks):
    """represent_new_items(present=...) leaves an absent modality out whatever its fill row
    holds, as the catalogue's poster-less movies are represented."""
    dataset, has_poster = ml100k_with_masks
    item = int(np.flatnonzero(~has_poster)[0])
    for name in ("mmgcn", "vbpr", "attention"):
        model = build_model(name, dataset, {"edgeless_items": "content"})
        feats = {m: dataset.features[m][[item]] for m in model.modalities}
        mask = {"image": torch.tensor([False]), "text": torch.tensor([True])}
        absent = model.represent_new_items(feats, present=mask)
        # whatever the fill row holds, an absent modality is ignored ...
        other = {**feats, "image": torch.full_like(feats["image"], 3.0)}
        torch.testing.assert_close(model.represent_new_items(other, present=mask).items, absent.items)
        # ... while the same row marked present is content
        assert not torch.allclose(model.represent_new_items(other).items, absent.items), name
