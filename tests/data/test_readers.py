"""Readers on the real files, and on broken copies of them (each broken in one place)."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgcn.data.dataset import DataError
from mmgcn.data.readers import read_mmssl, read_movielens100k
from mmgcn.data.readers.movielens import PLOT_PLACEHOLDER
from mmgcn.data.registry import dataset_card, pins


def _mirror(src: Path, dst: Path, **replace: bytes) -> Path:
    """``dst`` with symlinks to ``src``'s entries, except ``replace`` (name -> new bytes).

    Names use ``_`` for ``.`` (``trnMat_pkl``); a name prefixed ``drop_`` leaves the entry out.
    """
    dst.mkdir(parents=True, exist_ok=True)
    drop = {k[5:] for k in replace if k.startswith("drop_")}
    for path in src.iterdir():
        key = path.name.replace(".", "_")
        if key in drop:
            continue
        if key in replace:
            (dst / path.name).write_bytes(replace[key])
        else:
            (dst / path.name).symlink_to(path.resolve())
    return dst


def _npy_bytes(array: np.ndarray, tmp_path: Path) -> bytes:
    path = tmp_path / "scratch.npy"
    np.save(path, array)
    return path.read_bytes()


# ----------------------------------------------------------------------------- TikTok
def test_tiktok_reader(data_root):
    ds = read_mmssl(data_root / "tiktok", pins=pins(dataset_card("tiktok")))
    assert (ds.n_users, ds.n_items) == (9308, 6710)
    assert (ds.train.nnz, ds.valid.nnz, ds.test.nnz) == (59541, 3051, 6130)
    assert ds.modalities == ("image", "audio")
    for modality in ("image", "audio"):
        raw = np.load(data_root / "tiktok" / f"{modality}_feat.npy")
        assert raw.dtype == np.float16
        assert ds.features[modality].dtype == torch.float32
        assert torch.equal(ds.features[modality], torch.from_numpy(raw.astype(np.float32)))
    stats = ds.stats()
    assert stats["items_without_train"] == 465
    assert stats["users_without_train"] == 10
    assert stats["test"]["interactions_on_cold_items"] == 449
    assert "valid = valMat.pkl" in stats["split_convention"]
    assert "test = tstMat.pkl" in stats["split_convention"]
    # every valid / test user holds out exactly one item
    assert np.diff(ds.test.indptr).max() == 1 and np.diff(ds.valid.indptr).max() == 1


def test_tiktok_matches_the_pickles_entry_by_entry(data_root):
    ds = read_mmssl(data_root / "tiktok")
    with open(data_root / "tiktok" / "tstMat.pkl", "rb") as handle:
        head = handle.read(64)
    assert b"scipy.sparse.coo" in head  # old module path, mapped by the unpickler
    from mmgcn.data.safe_pickle import load_sparse_pickle

    expected = load_sparse_pickle(data_root / "tiktok" / "tstMat.pkl").tocsr()
    assert (ds.test != expected.astype(np.float32)).nnz == 0


@pytest.mark.parametrize(
    ("convention", "valid", "test"), [("mmrec", 20559, 21682), ("files", 21682, 20559)]
)
def test_amazon_baby_conventions(data_root, convention, valid, test):
    ds = read_mmssl(data_root / "amazon-baby", convention=convention)
    assert (ds.n_users, ds.n_items) == (19445, 7050)
    assert (ds.train.nnz, ds.valid.nnz, ds.test.nnz) == (118551, valid, test)
    assert ds.modalities == ()
    assert ds.stats()["split_convention"].startswith(f"{convention}: ")
    assert ds.info["convention"] == convention


def test_amazon_baby_conventions_swap_exactly(data_root):
    mmrec = read_mmssl(data_root / "amazon-baby", convention="mmrec")
    files = read_mmssl(data_root / "amazon-baby", convention="files")
    assert (mmrec.valid != files.test).nnz == 0
    assert (mmrec.test != files.valid).nnz == 0
    assert (mmrec.train != files.train).nnz == 0


def test_unknown_convention(data_root):
    with pytest.raises(ValueError, match="unknown split convention"):
        read_mmssl(data_root / "tiktok", convention="swapped")


def test_modality_selection(data_root):
    ds = read_mmssl(data_root / "tiktok", modalities=["audio"])
    assert ds.modalities == ("audio",)
    with pytest.raises(DataError, match="text_feat.npy"):
        read_mmssl(data_root / "tiktok", modalities=["text"])


# ----------------------------------------------------------------------------- broken MMSSL copies
def test_truncated_pickle(tmp_path, data_root):
    raw = (data_root / "tiktok" / "trnMat.pkl").read_bytes()
    broken = _mirror(data_root / "tiktok", tmp_path / "tiktok", trnMat_pkl=raw[:1000])
    with pytest.raises(DataError, match=r"trnMat\.pkl.*truncated"):
        read_mmssl(broken)


def test_truncated_npy(tmp_path, data_root):
    raw = (data_root / "tiktok" / "image_feat.npy").read_bytes()
    broken = _mirror(data_root / "tiktok", tmp_path / "tiktok", image_feat_npy=raw[: len(raw) // 3])
    with pytest.raises(DataError, match=r"image_feat\.npy.*truncated or corrupt"):
        read_mmssl(broken)


def test_feature_rows_must_match_items(tmp_path, data_root):
    short = np.load(data_root / "tiktok" / "image_feat.npy")[:-1]
    broken = _mirror(data_root / "tiktok", tmp_path / "tiktok", image_feat_npy=_npy_bytes(short, tmp_path))
    with pytest.raises(DataError, match=r"image_feat\.npy: features have 6709 rows but the dataset has 6710"):
        read_mmssl(broken)


def test_nan_features(tmp_path, data_root):
    audio = np.load(data_root / "tiktok" / "audio_feat.npy").copy()
    audio[17, 3] = np.nan
    broken = _mirror(data_root / "tiktok", tmp_path / "tiktok", audio_feat_npy=_npy_bytes(audio, tmp_path))
    with pytest.raises(DataError, match=r"audio_feat\.npy: features contain NaN/inf in 1 row.*\[17\]"):
        read_mmssl(broken)


def test_wrong_shape_split(tmp_path, data_root):
    wrong = sp.coo_matrix((np.ones(1), (np.array([0]), np.array([6710]))), shape=(9308, 6711))
    broken = _mirror(data_root / "tiktok", tmp_path / "tiktok", valMat_pkl=pickle.dumps(wrong, protocol=3))
    with pytest.raises(DataError, match="disagree in shape"):
        read_mmssl(broken)


def test_missing_split_file(tmp_path, data_root):
    broken = _mirror(data_root / "tiktok", tmp_path / "tiktok", drop_tstMat_pkl=b"")
    with pytest.raises(DataError, match=r"missing tstMat\.pkl.*mmgcn datasets download"):
        read_mmssl(broken)


def test_sha_mismatch_is_an_error_unless_verify_false(tmp_path, data_root, caplog):
    audio = np.load(data_root / "tiktok" / "audio_feat.npy").copy()
    audio[0, 0] += np.float16(1.0)  # still a valid array, but not the upstream bytes
    broken = _mirror(data_root / "tiktok", tmp_path / "tiktok", audio_feat_npy=_npy_bytes(audio, tmp_path))
    card_pins = pins(dataset_card("tiktok"))
    with pytest.raises(DataError, match=r"audio_feat\.npy: sha256 .* does not match the pinned"):
        read_mmssl(broken, pins=card_pins)
    with caplog.at_level(logging.WARNING):
        ds = read_mmssl(broken, pins=card_pins, verify=False)
    assert "does not match the pinned" in caplog.text
    assert ds.features["audio"][0, 0] == float(audio[0, 0])


# ----------------------------------------------------------------------------- MovieLens 100K
@pytest.fixture(scope="module")
def ml100k(data_root):
    return read_movielens100k(data_root / "ml-100k", pins=pins(dataset_card("ml-100k")))


def test_movielens_log(ml100k):
    log = ml100k.log
    assert (log.n_users, log.n_items, len(log)) == (943, 1682, 100000)
    # first line of u.data: 196	242	3	881250949 -> ids shifted to 0-based
    assert (log.users[0], log.items[0], log.ratings[0], log.timestamps[0]) == (195, 241, 3.0, 881250949)
    assert log.ratings.min() == 1 and log.ratings.max() == 5


def test_movielens_content(ml100k):
    content = ml100k.content
    assert len(content.texts) == 1682 and all(content.texts)
    assert content.texts[0].startswith("Toy Story (1995). Genres: Animation, Children's, Comedy. A cowboy doll")
    assert not any(PLOT_PLACEHOLDER in t for t in content.texts)
    # item 267 is MovieLens' placeholder movie "unknown": the details file matched it to
    # "Unknown" (2011), whose plot must not be used
    assert content.texts[266] == "unknown. Genres: unknown."
    # Conan the Barbarian (1981) was matched to the 2011 remake: plot skipped
    assert content.texts[678] == "Conan the Barbarian (1981). Genres: Action, Adventure."
    posters = [p for p in content.image_paths if p is not None]
    assert len(posters) == 1618
    assert content.image_paths[0].name == "1.jpg" and content.image_paths[0].is_file()
    assert ml100k.info["content"]["plots"] == 1526
    assert ml100k.info["content"]["plot_placeholders_skipped"] == 51
    assert ml100k.info["content"]["plots_of_another_film_skipped"] == 14


def test_movielens_meta(ml100k):
    assert ml100k.item_meta["genres"].shape == (1682, 19)
    assert ml100k.item_meta["genres"][0].tolist() == [0, 0, 0, 1, 1, 1] + [0] * 13
    assert ml100k.item_meta["year"][0] == 1995
    assert ml100k.item_meta["year"][266] == -1
    assert ml100k.info["genre_names"][:3] == ["unknown", "Action", "Adventure"]
    users = ml100k.user_meta
    assert (users["age"][0], users["gender"][0], users["occupation"][0]) == (24, "M", "technician")


def _ml_copy(data_root: Path, tmp_path: Path, **replace: bytes) -> Path:
    return _mirror(data_root / "ml-100k", tmp_path / "ml-100k", **replace)


def test_movielens_out_of_range_item(tmp_path, data_root):
    raw = (data_root / "ml-100k" / "u.data").read_bytes().replace(b"196\t242\t3", b"196\t1683\t3", 1)
    with pytest.raises(DataError, match=r"u\.data: field 'item id' on line 1 is 1683, outside 1\.\.1682"):
        read_movielens100k(_ml_copy(data_root, tmp_path, u_data=raw))


def test_movielens_truncated_ratings(tmp_path, data_root):
    raw = (data_root / "ml-100k" / "u.data").read_bytes()
    cut = raw[: raw.index(b"\n", 5000) + 4]  # stops inside a line
    with pytest.raises(DataError, match=r"u\.data: .*truncated or corrupt"):
        read_movielens100k(_ml_copy(data_root, tmp_path, u_data=cut))


def test_movielens_broken_item_line(tmp_path, data_root):
    raw = (data_root / "ml-100k" / "u.item").read_bytes()
    lines = raw.split(b"\n")
    lines[4] = lines[4].rsplit(b"|", 3)[0]
    with pytest.raises(DataError, match=r"u\.item: line 5 has 21 '\|'-separated fields, expected 24"):
        read_movielens100k(_ml_copy(data_root, tmp_path, u_item=b"\n".join(lines)))


def test_movielens_truncated_details(tmp_path, data_root):
    raw = (data_root / "ml-100k" / "movielens100k_details.json").read_bytes()
    broken = _ml_copy(data_root, tmp_path, movielens100k_details_json=raw[:5000])
    with pytest.raises(DataError, match=r"movielens100k_details\.json: not valid JSON"):
        read_movielens100k(broken)


def test_movielens_without_optional_content(tmp_path, data_root):
    copy = _ml_copy(data_root, tmp_path, drop_posters=b"", drop_movielens100k_details_json=b"")
    data = read_movielens100k(copy)
    assert all(p is None for p in data.content.image_paths)
    assert data.content.texts[0] == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    assert data.info["content"]["plots"] == 0
