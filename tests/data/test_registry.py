"""Dataset cards and load_dataset: pins, statistics, data-dir resolution, feature cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mmgcn.data import paths
from mmgcn.data.dataset import DataError
from mmgcn.data.registry import dataset_card, list_datasets, load_dataset, missing_files, pins
from mmgcn.utils.io import sha256_file

NAMES = ["amazon-baby", "ml-100k", "tiktok"]


def test_list_datasets():
    assert list_datasets() == NAMES


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'movielens'; known datasets: amazon-baby, ml-100k, tiktok"):
        dataset_card("movielens")


@pytest.mark.parametrize("name", NAMES)
def test_card_pins_match_the_shared_checksums(name, data_root):
    sums = {}
    for line in (data_root / "SHA256SUMS").read_text().splitlines():
        digest, rel = line.split(maxsplit=1)
        sums[rel.removeprefix("./")] = digest
    card = dataset_card(name)
    assert card["name"] == name
    for fname, digest in pins(card).items():
        assert sums[f"{name}/{fname}"] == digest, fname
    # every file of the shared copy that the checksum list covers is in the card
    assert {k.split("/", 1)[1] for k in sums if k.startswith(f"{name}/")} == set(pins(card))
    for entry in card["files"].values():
        assert entry.get("url", "").startswith("https://") or entry.get("archive")


def _stats_of(name, data_root, **kwargs):
    return load_dataset(name, data_root, **kwargs).stats()


def test_tiktok_statistics_match_the_card(data_root):
    card = dataset_card("tiktok")["statistics"]
    stats = _stats_of("tiktok", data_root)
    assert (stats["n_users"], stats["n_items"]) == (card["n_users"], card["n_items"]) == (9308, 6710)
    assert stats["interactions"] == card["interactions"] == {"train": 59541, "valid": 3051, "test": 6130}
    assert stats["modalities"] == card["modalities"] == {"image": 128, "audio": 128}
    assert stats["items_without_train"] == card["items_without_train"] == 465
    assert stats["users_without_train"] == card["users_without_train"]
    assert stats["test"]["interactions_on_cold_items"] == card["test_interactions_on_cold_items"]


@pytest.mark.parametrize("convention", [None, "mmrec", "files"])
def test_baby_statistics_match_the_card(data_root, convention):
    card = dataset_card("amazon-baby")
    stats = _stats_of("amazon-baby", data_root, convention=convention)
    used = convention or card["split"]["default_convention"]
    assert used == (convention or "mmrec")
    assert stats["interactions"] == card["statistics"]["interactions"][used]
    assert stats["split_convention"].startswith(f"{used}: ")


def test_tiktok_has_no_mmrec_convention(data_root):
    with pytest.raises(ValueError, match=r"unknown split convention 'mmrec'; available: \['files'\]"):
        load_dataset("tiktok", data_root, convention="mmrec")


def test_ml100k_default_split_is_per_user_temporal(data_root):
    ds = load_dataset("ml-100k", data_root)
    card = dataset_card("ml-100k")["statistics"]
    assert (ds.n_users, ds.n_items) == (card["n_users"], card["n_items"])
    assert sum(ds.split(s).nnz for s in ("train", "valid", "test")) == card["ratings"]
    assert ds.info["split"]["method"] == "temporal" and ds.info["split"]["seed"] == 0
    content = ds.stats()["content"]
    assert content["texts"] == card["items_with_text"] == 1682
    assert content["image_paths"] == card["items_with_poster"] == 1618
    assert ds.info["content"]["plots"] == card["items_with_plot"]
    # temporal: within a user, no test rating is earlier than a train rating
    raw = np.loadtxt(data_root / "ml-100k" / "u.data", dtype=np.int64)
    times = {(u - 1, i - 1): t for u, i, _, t in raw}
    for user in (0, 41, 942):
        train = [times[(user, i)] for i in ds.train[user].indices]
        test = [times[(user, i)] for i in ds.test[user].indices]
        assert max(train) <= min(test)


def test_ml100k_split_override(data_root):
    ds = load_dataset("ml-100k", data_root, split="loo")
    assert ds.info["split"]["method"] == "loo"
    assert np.diff(ds.test.indptr).tolist() == [1] * 943
    with pytest.raises(ValueError, match="split conventions apply to pre-split datasets only"):
        load_dataset("ml-100k", data_root, convention="files")


def test_resplit_of_presplit_data(data_root):
    ds = load_dataset("tiktok", data_root, split="random", seed=3)
    assert sum(ds.split(s).nnz for s in ("train", "valid", "test")) == 59541 + 3051 + 6130
    assert ds.info["split"]["method"] == "random" and ds.info["split"]["seed"] == 3
    assert ds.stats()["split_convention"].startswith("re-split")
    assert ds.modalities == ("image", "audio")


# ----------------------------------------------------------------------------- data dir resolution
def test_env_var_and_explicit_dir(data_root, monkeypatch, tmp_path):
    monkeypatch.setenv(paths.DATA_ENV, str(data_root))
    assert load_dataset("amazon-baby").n_users == 19445
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "nowhere"))
    assert load_dataset("amazon-baby", data_root).n_users == 19445  # explicit wins
    with pytest.raises(DataError, match=r"nowhere/amazon-baby: dataset 'amazon-baby' is missing trnMat.pkl.*mmgcn datasets download amazon-baby"):
        load_dataset("amazon-baby")
    assert missing_files("amazon-baby") == ["trnMat.pkl", "valMat.pkl", "tstMat.pkl"]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and "posters" not in p.parts
    } | {"<entries>": (len(list(root.rglob("*"))), 0)}


def test_loading_never_writes_into_the_data_dir(data_root, tmp_path):
    # a private copy (symlinks) so the check does not depend on the shared folder's mode
    root = tmp_path / "data"
    for name in NAMES:
        (root / name).mkdir(parents=True)
        for entry in (data_root / name).iterdir():
            (root / name / entry.name).symlink_to(entry.resolve())
    before = _snapshot(root)
    for name in NAMES:
        load_dataset(name, root)
    assert _snapshot(root) == before


def test_sha_mismatch_through_load_dataset(data_root, tmp_path):
    root = tmp_path / "data" / "tiktok"
    root.mkdir(parents=True)
    for entry in (data_root / "tiktok").iterdir():
        if entry.name != "valMat.pkl":
            (root / entry.name).symlink_to(entry.resolve())
    raw = bytearray((data_root / "tiktok" / "valMat.pkl").read_bytes())
    raw[-40] ^= 1  # one bit inside the data array: still a loadable pickle
    (root / "valMat.pkl").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"valMat\.pkl: sha256 .*mmgcn datasets download tiktok --force"):
        load_dataset("tiktok", tmp_path / "data")
    assert load_dataset("tiktok", tmp_path / "data", verify=False).valid.nnz == 3051


# ----------------------------------------------------------------------------- feature cache
def _write_cached(name, modality, array, **manifest):
    directory = paths.feature_cache_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / f"{modality}_feat.npy", array)
    body = {"modality": modality, "n_items": array.shape[0], "dim": array.shape[1], "dtype": str(array.dtype),
            "encoder": "test"} | manifest
    (directory / f"{modality}_feat.json").write_text(json.dumps(body))
    return directory


def test_cached_features_are_picked_up(data_root):
    text = np.random.default_rng(0).normal(size=(1682, 8)).astype(np.float32)
    image = np.random.default_rng(1).normal(size=(1682, 4)).astype(np.float16)
    _write_cached("ml-100k", "text", text)
    directory = _write_cached("ml-100k", "image", image)
    ds = load_dataset("ml-100k", data_root)
    assert ds.modalities == ("image", "text")
    assert torch.equal(ds.features["text"], torch.from_numpy(text))
    assert torch.equal(ds.features["image"], torch.from_numpy(image.astype(np.float32)))
    assert ds.info["cached_features"]["text"] == str(directory / "text_feat.npy")
    only = load_dataset("ml-100k", data_root, modalities=["text"])
    assert only.modalities == ("text",)
    assert load_dataset("ml-100k", data_root, cached_features=False).modalities == ()


def test_stale_cached_features(data_root):
    _write_cached("ml-100k", "text", np.zeros((1681, 8), dtype=np.float32))
    with pytest.raises(DataError, match=r"field 'n_items' is 1681 but ml-100k has 1682 items.*stale.*mmgcn extract ml-100k --modality text"):
        load_dataset("ml-100k", data_root)


def test_cached_rows_disagreeing_with_manifest(data_root):
    _write_cached("ml-100k", "text", np.zeros((1681, 8), dtype=np.float32), n_items=1682)
    with pytest.raises(DataError, match=r"1681 rows but the dataset has 1682 items.*re-run `mmgcn extract"):
        load_dataset("ml-100k", data_root)


def test_cached_features_changed_after_extraction(data_root):
    directory = _write_cached("ml-100k", "text", np.zeros((1682, 8), dtype=np.float32))
    manifest = json.loads((directory / "text_feat.json").read_text())
    manifest["feature_sha256"] = sha256_file(directory / "text_feat.npy")
    (directory / "text_feat.json").write_text(json.dumps(manifest))
    assert load_dataset("ml-100k", data_root).modalities == ("text",)
    np.save(directory / "text_feat.npy", np.ones((1682, 8), dtype=np.float32))
    with pytest.raises(DataError, match="feature_sha256"):
        load_dataset("ml-100k", data_root)


def test_cached_features_without_manifest(data_root):
    directory = _write_cached("ml-100k", "text", np.zeros((1682, 8), dtype=np.float32))
    os.unlink(directory / "text_feat.json")
    with pytest.raises(DataError, match=r"no manifest text_feat\.json"):
        load_dataset("ml-100k", data_root)


def test_missing_modality_names_the_extract_command(data_root):
    with pytest.raises(DataError, match=r"no features for modalities \['image'\].*`mmgcn extract ml-100k --modality image`"):
        load_dataset("ml-100k", data_root, modalities=["image"])


def test_tiktok_own_features_win_over_cache(data_root, caplog):
    _write_cached("tiktok", "image", np.zeros((6710, 3), dtype=np.float32))
    ds = load_dataset("tiktok", data_root)
    assert ds.features["image"].shape == (6710, 128)
    assert "ships its own 'image' features" in caplog.text
