"""Dataset <-> PyG HeteroData round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmgcn.data.dataset import DataError, Dataset
from mmgcn.data.log import InteractionLog
from mmgcn.data.prepare import make_dataset

pyg = pytest.importorskip("torch_geometric")


def _dataset():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 12, 90), rng.integers(0, 9, 90)
    log = InteractionLog(users, items, 12, 9, timestamps=rng.integers(0, 1000, 90))
    features = {"image": rng.normal(size=(9, 4)).astype(np.float32), "text": rng.normal(size=(9, 3)).astype(np.float32)}
    return make_dataset(log, name="small", method="temporal", features=features)


def test_to_pyg_layout(tiny_dataset):
    data = tiny_dataset.to_pyg()
    assert data["user"].num_nodes == 4 and data["item"].num_nodes == 5
    assert data["user", "train", "item"].edge_index.tolist() == [[0, 0, 1, 1, 2, 2, 3], [0, 1, 1, 2, 2, 3, 0]]
    assert data["user", "test", "item"].edge_index.tolist() == [[0, 2], [3, 4]]
    assert torch.equal(data["item"].x_visual, tiny_dataset.features["visual"])
    assert data.name == "tiny" and "time" not in data["user", "train", "item"]


def test_round_trip():
    dataset = _dataset()
    data = dataset.to_pyg()
    assert data["user", "valid", "item"].time.shape == (dataset.valid.nnz,)
    back = Dataset.from_pyg(data)
    assert (back.n_users, back.n_items, back.name) == (dataset.n_users, dataset.n_items, "small")
    for split in ("train", "valid", "test"):
        assert (back.split(split) != dataset.split(split)).nnz == 0
        np.testing.assert_array_equal(back.split_times(split), dataset.split_times(split))
    assert back.modalities == ("image", "text")
    for m in back.modalities:
        np.testing.assert_array_equal(back.features.array(m), dataset.features.array(m))
    # shuffled edges come back in CSR order
    edges = data["user", "train", "item"]
    perm = torch.randperm(edges.edge_index.shape[1], generator=torch.Generator().manual_seed(0))
    edges.edge_index, edges.time = edges.edge_index[:, perm], edges.time[perm]
    np.testing.assert_array_equal(Dataset.from_pyg(data).split_times("train"), dataset.split_times("train"))


def test_from_pyg_refuses_bad_graphs():
    data = _dataset().to_pyg()
    data["user", "train", "item"].edge_index = torch.tensor([[0], [99]])
    with pytest.raises(DataError, match="ids outside 12 users x 9 items"):
        Dataset.from_pyg(data)
    del data["user", "valid", "item"].time
    data["user", "train", "item"].edge_index = torch.tensor([[0], [1]])
    data["user", "train", "item"].time = torch.tensor([5])
    with pytest.raises(DataError, match="'time' on"):
        Dataset.from_pyg(data)
