"""A new item embedded through the dataset's own encoders (``--new-item`` / ``--text``), on an
ML-100K-like tiny setup: 8 real movies whose features come from the real encoders."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import mmgcn.train.loading as loading
from mmgcn.cli import main
from mmgcn.data.dataset import DataError, Dataset, ItemContent
from mmgcn.data.paths import feature_cache_dir
from mmgcn.features import extract_features, load_cached_features
from mmgcn.features.new_items import ForeignFeaturesError, encode_new_item
from mmgcn.models import build_model
from mmgcn.train.trainer import TrainConfig, Trainer

N_ITEMS, N_USERS = 8, 12
NAME = "ml-tiny"


@pytest.fixture(scope="module")
def ml_tiny(ml100k: Path, lite0, minilm, tmp_path_factory) -> tuple[Dataset, Path]:
    """8 real ML-100K movies (posters + title/genre texts), features extracted into a cache."""
    cache = tmp_path_factory.mktemp("ml-tiny-cache")
    genres = [line.split("|")[0] for line in (ml100k / "u.genre").read_text().splitlines() if line]
    titles, texts = [], []
    for line in (ml100k / "u.item").read_text(encoding="latin-1").splitlines()[:N_ITEMS]:
        fields = line.split("|")
        titles.append(fields[1])
        texts.append(f"{fields[1]}. Genres: {', '.join(g for g, f in zip(genres, fields[5:]) if f == '1')}.")
    posters = tuple(ml100k / "posters" / f"{i}.jpg" for i in range(1, N_ITEMS + 1))
    content = ItemContent(titles=tuple(titles), texts=tuple(texts), image_paths=posters)
    features = {}
    for modality, encoder in (("image", lite0), ("text", minilm)):
        extract_features(content, modality, encoder, name=NAME, cache_dir=cache, progress=False)
        features[modality] = load_cached_features(feature_cache_dir(NAME, cache), modality)[0]
    rng = np.random.default_rng(0)
    pairs = {(u, int(i)) for u in range(N_USERS) for i in rng.choice(N_ITEMS, size=4, replace=False)}
    pairs = sorted(pairs)
    splits = {"train": [], "valid": [], "test": []}
    for k, pair in enumerate(pairs):
        splits["train" if k % 4 < 2 else ("valid" if k % 4 == 2 else "test")].append(pair)

    def csr(items):
        rows, cols = zip(*items)
        return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(N_USERS, N_ITEMS))

    dataset = Dataset(name=NAME, n_users=N_USERS, n_items=N_ITEMS, features=features, content=content,
                      **{s: csr(v) for s, v in splits.items()})
    return dataset, cache


@pytest.fixture
def run_dir(ml_tiny, tmp_path, monkeypatch) -> Path:
    dataset, cache = ml_tiny
    monkeypatch.setenv("MMGCN_CACHE", str(cache))
    monkeypatch.setattr(loading, "load_dataset", lambda name, data_dir=None, **kwargs: dataset)
    torch.manual_seed(0)
    model = build_model("mmgcn", dataset, {"dim": 16, "latent_dim": 16})
    Trainer(model, dataset, TrainConfig(epochs=2, batch_size=16, progress=False), tmp_path / "run",
            run_config={"run": {"model": "mmgcn", "dataset": NAME}}).fit()
    return tmp_path / "run"


@pytest.mark.slow
def test_new_item_is_embedded_like_the_datasets_items(ml_tiny, run_dir, ml100k, capsys):
    dataset, _ = ml_tiny
    poster, text = ml100k / "posters" / "1.jpg", dataset.content.texts[0]
    # the same poster and text as item 0: the same features, so the new item's scores are item 0's
    # content-only scores (its cold representation without the ID embedding)
    encoded = encode_new_item(dataset, {"image": poster, "text": text})
    for modality in ("image", "text"):
        np.testing.assert_allclose(encoded.features[modality][0].numpy(), dataset.features[modality][0].numpy(),
                                   atol=1e-5)
    assert encoded.sources["image"] == f"encoded {poster} with efficientnet-lite0"
    assert encoded.sources["text"].endswith("with all-minilm-l6-v2")

    assert main(["recommend", str(run_dir), "--new-item", str(poster), "--text", text, "-k", "4"]) == 0
    printed = capsys.readouterr().out
    assert "image: encoded" in printed and "text: encoded" in printed
    lines = [line.strip() for line in printed.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("rank"))
    header = re.split(r"\s{2,}", lines[start])
    rows = [re.split(r"\s{2,}", line) for line in lines[start + 1 : start + 5]]
    assert header[:5] == ["rank", "user", "score", "image", "text"]

    model = loading.load_run(run_dir, dataset=dataset).model
    with torch.no_grad():
        item0 = model.represent_new_items({m: f[:1] for m, f in dataset.features.items()})
        expected = model.score(torch.arange(N_USERS), emb=item0)[:, 0]
    order = sorted(range(N_USERS), key=lambda u: (-float(expected[u]), u))[:4]
    assert [int(r[1]) for r in rows] == order
    assert [float(r[2]) for r in rows] == pytest.approx([float(expected[u]) for u in order], abs=1e-3)
    for row in rows:
        contributions = [float(cell.split()[0]) for cell in row[3:5]]
        assert sum(contributions) == pytest.approx(float(row[2]), abs=2e-3)


@pytest.mark.slow
def test_missing_content_is_filled_as_at_extraction(ml_tiny, monkeypatch):
    dataset, cache = ml_tiny
    monkeypatch.setenv("MMGCN_CACHE", str(cache))
    encoded = encode_new_item(dataset, {"text": "A new animated film about toys. Genres: Animation."})
    assert torch.count_nonzero(encoded.features["image"]) == 0  # the manifests' fill is zeros
    assert encoded.sources["image"] == "no image given: filled with zeros, as items without image were at extraction"
    with pytest.raises(ValueError, match="at least one of"):
        encode_new_item(dataset, {"text": "  "})
    with pytest.raises(ValueError, match="none of the given content"):
        encode_new_item(dataset, {"audio": "x.wav"}, modalities=("image",))


@pytest.mark.slow
def test_a_different_encoder_is_refused(ml_tiny, tmp_path, monkeypatch):
    dataset, cache = ml_tiny
    copy = tmp_path / "cache"
    folder = feature_cache_dir(NAME, copy)
    folder.mkdir(parents=True)
    for path in feature_cache_dir(NAME, cache).iterdir():
        if path.is_file():
            (folder / path.name).write_bytes(path.read_bytes())
    manifest = json.loads((folder / "text_feat.json").read_text())
    manifest["weights_sha256"] = {"model.safetensors": "0" * 64}
    (folder / "text_feat.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="'weights_sha256' records"):
        encode_new_item(dataset, {"text": "a film"}, ("text",), cache_dir=copy)


def test_features_that_ship_with_the_dataset_are_refused(tiny_dataset, tmp_path):
    with pytest.raises(ForeignFeaturesError, match="'visual' features were not produced by mmgcn's encoders"):
        encode_new_item(tiny_dataset, {"image": "poster.jpg"}, cache_dir=tmp_path)
    # a cache manifest the loader did not use (the dataset ships its own features) does not count
    folder = feature_cache_dir(tiny_dataset.name, tmp_path)
    folder.mkdir(parents=True)
    (folder / "visual_feat.json").write_text("{}")
    shipped = dataclasses.replace(tiny_dataset, info={"cached_features": {}})
    with pytest.raises(ForeignFeaturesError, match="in use"):
        encode_new_item(shipped, {"image": "poster.jpg"}, ("visual",), cache_dir=tmp_path)
