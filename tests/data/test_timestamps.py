"""Event times through make_dataset, the Dataset, .inter files and re-splits; lazy feature tensors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgcn.data.dataset import DataError, Dataset, FeatureMap
from mmgcn.data.log import InteractionLog
from mmgcn.data.prepare import make_dataset
from mmgcn.data.readers.mmrec import read_mmrec, write_mmrec
from mmgcn.data.registry import _resplit


def _log():
    # user 0: items 2 (t=30), 0 (t=10), 1 (t=20), 0 again (t=5, earlier: kept); user 1: 1 (t=7), 2 (t=8), 0 (t=9)
    users = np.array([0, 0, 0, 0, 1, 1, 1])
    items = np.array([2, 0, 1, 0, 1, 2, 0])
    times = np.array([30, 10, 20, 5, 7, 8, 9])
    return InteractionLog(users, items, 2, 3, timestamps=times)


def test_make_dataset_keeps_times_in_csr_order():
    dataset = make_dataset(_log(), name="t", method="loo")
    # loo by time: user 0 -> train {0 (t=5)}, valid {1 (t=20)}, test {2 (t=30)}; user 1 -> train {1}, valid {2}, test {0}
    assert dataset.train.toarray().tolist() == [[1, 0, 0], [0, 1, 0]]
    assert dataset.split_times("train").tolist() == [5, 7]
    assert dataset.split_times("valid").tolist() == [20, 8]
    assert dataset.split_times("test").tolist() == [30, 9]
    assert dataset.stats()["timestamps"] is True


def test_dataset_checks_times():
    dataset = make_dataset(_log(), name="t", method="loo")
    times = dict(dataset.timestamps)
    with pytest.raises(DataError, match=r"timestamps of split 'train' have shape \(3,\), expected \(2,\)"):
        Dataset("t", 2, 3, dataset.train, dataset.valid, dataset.test, timestamps={**times, "train": np.arange(3)})
    with pytest.raises(DataError, match="all of"):
        Dataset("t", 2, 3, dataset.train, dataset.valid, dataset.test, timestamps={"train": times["train"]})
    with pytest.raises(ValueError, match="read-only"):
        dataset.timestamps["train"][0] = 1


def test_times_survive_the_inter_file_and_a_temporal_resplit(tmp_path):
    dataset = make_dataset(_log(), name="t", method="random", seed=3)
    write_mmrec(dataset, tmp_path)
    back = read_mmrec(tmp_path)
    for split in ("train", "valid", "test"):
        assert (back.split(split) != dataset.split(split)).nnz == 0
        assert back.split_times(split).tolist() == dataset.split_times(split).tolist()
    again = _resplit(back, "temporal", seed=0)
    assert again.split_times("test").tolist() == [30, 9]  # each user's latest item


def test_placeholder_times_are_not_times(tmp_path):
    dataset = make_dataset(InteractionLog(np.array([0, 0, 1]), np.array([0, 1, 1]), 2, 2), name="t", method="random")
    assert dataset.timestamps is None
    write_mmrec(dataset, tmp_path)
    sidecar = json.loads((tmp_path / "t.json").read_text())
    assert sidecar["timestamps"] is False
    assert read_mmrec(tmp_path).timestamps is None
    # MMRec's own files (no sidecar) keep real times
    (tmp_path / "t.json").unlink()
    (tmp_path / "t.inter").write_text("userID\titemID\trating\ttimestamp\tx_label\n0\t0\t5\t100\t0\n1\t1\t4\t200\t2\n")
    assert read_mmrec(tmp_path).split_times("test").tolist() == [200]


def test_features_stay_numpy_until_read():
    features = np.arange(6, dtype=np.float32).reshape(3, 2)
    train = sp.csr_matrix(np.array([[1, 0, 1]], dtype=np.float32))
    empty = sp.csr_matrix((1, 3), dtype=np.float32)
    dataset = Dataset("f", 1, 3, train, empty, empty, features={"image": features})
    assert isinstance(dataset.features, FeatureMap)
    assert dataset.features.dims == {"image": 2} and dataset.stats()["modalities"] == {"image": 2}
    tensor = dataset.features["image"]
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32 and not tensor.requires_grad
    assert tensor.data_ptr() == dataset.features.array("image").ctypes.data  # shared, not copied
    assert dataset.features["image"] is tensor
    kept = dataset.select_modalities(["image"])
    assert kept.features.array("image") is dataset.features.array("image")
    with pytest.raises(DataError, match="NaN/inf in 1 row"):
        Dataset("f", 1, 3, train, empty, empty, features={"image": np.array([[0, 1], [np.nan, 0], [1, 1]], np.float32)})
