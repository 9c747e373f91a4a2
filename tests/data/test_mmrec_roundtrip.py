"""MMRec atomic layout: write, read back identically, and refuse broken files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmgcn.data.dataset import SPLITS, DataError
from mmgcn.data.readers import read_inter, read_mmrec, read_mmssl, write_mmrec

HEADER = "userID\titemID\trating\ttimestamp\tx_label\n"


def _assert_same(a, b, modality_order=True):
    assert (a.n_users, a.n_items) == (b.n_users, b.n_items)
    for split in SPLITS:
        x, y = a.split(split), b.split(split)
        np.testing.assert_array_equal(x.indptr, y.indptr)
        np.testing.assert_array_equal(x.indices, y.indices)
        np.testing.assert_array_equal(x.data, y.data)
    if modality_order:
        assert list(a.features) == list(b.features)
    assert sorted(a.features) == sorted(b.features)
    for modality in a.features:
        fa, fb = a.features[modality].numpy(), b.features[modality].numpy()
        assert fa.dtype == fb.dtype == np.float32
        np.testing.assert_array_equal(fa.view(np.uint32), fb.view(np.uint32))  # bit-identical


def test_tiktok_round_trip(tmp_path, data_root):
    tiktok = read_mmssl(data_root / "tiktok")
    inter = write_mmrec(tiktok, tmp_path / "mmrec")
    assert inter.name == "tiktok.inter"
    assert inter.read_text().startswith(HEADER)
    assert sorted(p.name for p in inter.parent.iterdir()) == [
        "audio_feat.npy", "image_feat.npy", "tiktok.inter", "tiktok.json"
    ]
    back = read_mmrec(tmp_path / "mmrec")
    _assert_same(tiktok, back)
    assert back.name == "tiktok"
    assert "converted from tiktok" in back.stats()["split_convention"]


def test_baby_mmrec_convention_labels(tmp_path, data_root):
    baby = read_mmssl(data_root / "amazon-baby", convention="mmrec")
    write_mmrec(baby, tmp_path)
    users, items, labels = read_inter(tmp_path / "amazon-baby.inter")
    assert np.bincount(labels).tolist() == [118551, 20559, 21682]
    assert users.max() == 19444 and items.max() < 7050


def test_tiny_round_trip_without_sidecar(tmp_path, tiny_dataset):
    write_mmrec(tiny_dataset, tmp_path)
    (tmp_path / "tiny.json").unlink()
    # MMRec's own files have no sidecar: sizes come from the ids and feature rows, and
    # modalities come in the canonical order (image, audio, text, then alphabetical)
    back = read_mmrec(tmp_path)
    _assert_same(tiny_dataset, back, modality_order=False)
    assert back.modalities == ("acoustic", "visual")


def test_tiny_round_trip_keeps_modality_order(tmp_path, tiny_dataset):
    write_mmrec(tiny_dataset, tmp_path)
    assert read_mmrec(tmp_path).modalities == ("visual", "acoustic")


def test_hand_written_inter(tmp_path):
    (tmp_path / "toy.inter").write_text(
        HEADER + "0\t1\t5\t100\t0\n1\t0\t3\t101\t0\n0\t2\t4\t102\t1\n1\t2\t2\t103\t2\n"
    )
    ds = read_mmrec(tmp_path)
    assert (ds.n_users, ds.n_items) == (2, 3)
    assert ds.train.toarray().tolist() == [[0, 1, 0], [1, 0, 0]]
    assert ds.valid.toarray().tolist() == [[0, 0, 1], [0, 0, 0]]
    assert ds.test.toarray().tolist() == [[0, 0, 0], [0, 0, 1]]


def test_columns_in_other_order_and_without_rating(tmp_path):
    (tmp_path / "toy.inter").write_text("x_label\titemID\tuserID\n0\t1\t0\n2\t0\t0\n")
    ds = read_mmrec(tmp_path)
    assert ds.train.toarray().tolist() == [[0, 1]]
    assert ds.test.toarray().tolist() == [[1, 0]]


def test_refuses_to_overwrite(tmp_path, tiny_dataset):
    write_mmrec(tiny_dataset, tmp_path)
    with pytest.raises(FileExistsError, match="tiny.inter"):
        write_mmrec(tiny_dataset, tmp_path)
    write_mmrec(tiny_dataset, tmp_path, overwrite=True)


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ("user\titem\tx_label\n0\t1\t0\n", r"header is .*missing columns \['userID', 'itemID'\]"),
        (HEADER + "0\tabc\t1\t0\t0\n", r"field 'itemID' at line 2 is 'abc', not an integer id"),
        (HEADER + "0\t1\t1\t0\t0\n1.5\t1\t1\t0\t0\n", r"field 'userID' at line 3 is '1.5'"),
        (HEADER + "0\t1\t1\t0\t0\n0\t2\t1\t0\t3\n", r"field 'x_label' at line 3 is 3; x_label must be 0"),
        (HEADER + "0\t-1\t1\t0\t0\n", r"field 'itemID' has negative id -1"),
        (HEADER + "0\t1\t1\t0\t0\n0\t2\t1\t0\n", r"line 3 has 4 fields, the header has 5; the file is truncated"),
    ],
    ids=["header", "non-integer", "float-id", "x_label", "negative", "truncated"],
)
def test_corrupt_inter(tmp_path, body, pattern):
    (tmp_path / "bad.inter").write_text(body)
    with pytest.raises(DataError, match=pattern) as info:
        read_mmrec(tmp_path)
    assert "bad.inter" in str(info.value)


def test_truncated_at_a_line_boundary_is_caught_by_the_sidecar(tmp_path, tiny_dataset):
    inter = write_mmrec(tiny_dataset, tmp_path)
    lines = inter.read_text().splitlines(keepends=True)
    inter.write_text("".join(lines[:-1]))
    with pytest.raises(DataError, match=r"tiny\.inter: holds .* interactions but tiny\.json records"):
        read_mmrec(tmp_path)


def test_feature_rows_must_match(tmp_path, tiny_dataset):
    write_mmrec(tiny_dataset, tmp_path)
    np.save(tmp_path / "visual_feat.npy", np.zeros((4, 6), dtype=np.float32))
    with pytest.raises(DataError, match=r"visual_feat\.npy: features have 4 rows but the dataset has 5"):
        read_mmrec(tmp_path)


def test_nan_features(tmp_path, tiny_dataset):
    write_mmrec(tiny_dataset, tmp_path)
    bad = tiny_dataset.features["acoustic"].numpy().copy()
    bad[2, 1] = np.nan
    np.save(tmp_path / "acoustic_feat.npy", bad)
    with pytest.raises(DataError, match=r"acoustic_feat\.npy: features contain NaN"):
        read_mmrec(tmp_path)


def test_ids_beyond_the_sidecar_sizes(tmp_path, tiny_dataset):
    write_mmrec(tiny_dataset, tmp_path)
    meta = json.loads((tmp_path / "tiny.json").read_text())
    meta["n_items"] = 4
    (tmp_path / "tiny.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="do not belong together"):
        read_mmrec(tmp_path)


def test_features_survive_as_float32(tmp_path, tiny_dataset):
    write_mmrec(tiny_dataset, tmp_path)
    assert np.load(tmp_path / "visual_feat.npy").dtype == np.float32
    back = read_mmrec(tmp_path, modalities=["visual"])
    assert back.modalities == ("visual",)
    assert torch.equal(back.features["visual"], tiny_dataset.features["visual"])


def test_crlf_and_text_columns_take_the_checked_parser(tmp_path):
    plain = HEADER + "0\t1\t5\t100\t0\n1\t0\t3\t101\t2\n"
    (tmp_path / "a.inter").write_text(plain)
    (tmp_path / "b.inter").write_bytes(plain.replace("\n", "\r\n").encode())
    (tmp_path / "c.inter").write_text(plain.replace("\t100\t", "\t2014-01-01\t"))
    expected = [arr.tolist() for arr in read_inter(tmp_path / "a.inter")]
    assert expected == [[0, 1], [1, 0], [0, 2]]
    for name in ("b.inter", "c.inter"):
        assert [arr.tolist() for arr in read_inter(tmp_path / name)] == expected


def test_blank_line_in_the_middle_is_named(tmp_path):
    (tmp_path / "bad.inter").write_text(HEADER + "0\t1\t5\t100\t0\n\n1\t0\t3\t101\t2\n")
    with pytest.raises(DataError, match="line 3 has 1 fields"):
        read_mmrec(tmp_path)
