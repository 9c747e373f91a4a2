"""Item-item kNN graphs: blockwise top-k against brute force, hand-checked normalisation, cache."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import mmgcn.graph.knn as knn_module
from mmgcn.graph import (
    knn_adjacency,
    knn_edges,
    knn_graph,
    knn_query_graph,
    mix_graphs,
    normalize_csr,
)
from mmgcn.graph.cache import fingerprint, graph_cache_path


def _brute_force(features: np.ndarray, k: int, include_self: bool = True) -> list[set[int]]:
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    sims = unit @ unit.T
    if not include_self:
        np.fill_diagonal(sims, -np.inf)
    return [set(np.argsort(-row)[:k].tolist()) for row in sims]


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("block_size,column_block", [(3, 4), (1, 1), (64, 64), (5, 23)])
def test_blockwise_top_k_equals_brute_force(block_size, column_block, include_self):
    features = np.random.default_rng(0).normal(size=(23, 5)).astype(np.float32)
    edges, sims = knn_edges(torch.from_numpy(features), 4, include_self=include_self,
                            block_size=block_size, column_block=column_block)
    expected = _brute_force(features, 4, include_self)
    rows, cols = edges.numpy()
    assert np.all(np.diff(rows) >= 0)  # sorted by item
    for item in range(23):
        neighbours = cols[rows == item]
        assert set(neighbours.tolist()) == expected[item]
        item_sims = sims.numpy()[rows == item]
        assert np.all(np.diff(item_sims) <= 1e-7)  # decreasing similarity
        unit = features / np.linalg.norm(features, axis=1, keepdims=True)
        np.testing.assert_allclose(item_sims, unit[neighbours] @ unit[item], rtol=1e-5, atol=1e-6)


def test_items_without_content_have_no_edges_and_are_nobodys_neighbour():
    features = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 0.0], [0.0, 1.0], [0.8, 0.3]])
    mask = np.array([True, True, True, True, False])  # item 2: zero row; item 4: masked
    edges, _ = knn_edges(features, 3, mask=mask, block_size=2, column_block=2)
    rows, cols = edges.numpy()
    assert not set(rows.tolist()) & {2, 4} and not set(cols.tolist()) & {2, 4}
    # three items with content: each gets all three (itself included)
    assert sorted(rows.tolist()) == [0, 0, 0, 1, 1, 1, 3, 3, 3]
    with pytest.raises(ValueError, match="mask must be a bool"):
        knn_edges(features, 2, mask=np.ones(5))


def test_rows_subset_matches_the_full_search():
    features = torch.from_numpy(np.random.default_rng(1).normal(size=(40, 6)).astype(np.float32))
    full, full_sims = knn_edges(features, 5, block_size=7, column_block=9)
    some, some_sims = knn_edges(features, 5, rows=np.array([31, 2, 17]), block_size=2, column_block=9)
    for item in (31, 2, 17):
        assert set(some[1][some[0] == item].tolist()) == set(full[1][full[0] == item].tolist())
    assert some[0].tolist()[:5] == [31] * 5
    empty, _ = knn_edges(features, 5, rows=np.array([], dtype=np.int64))
    assert empty.shape == (2, 0)
    with pytest.raises(ValueError, match="rows must be"):
        knn_edges(features, 5, rows=np.array([40]))


def test_hand_checked_binary_and_weighted_graphs():
    # items 0,1 point along x; items 2,3 along y; cos(0,1) = 0.8, cos(2,3) = 0.6
    features = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.8, 0.6]])
    features[3] = torch.tensor([-0.8, 0.6])
    binary = knn_adjacency(features, 2)
    # each item: itself + its most similar other item
    # sims: 0-1 .8, 0-2 0, 0-3 -.8, 1-2 .6, 1-3 -.28, 2-3 .6
    expected = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=float)
    # item 2: 1 and 3 tie at .6 -> torch.topk picks one; accept either
    dense = binary.toarray()
    assert np.array_equal(dense[[0, 1, 3]], expected[[0, 1, 3]])
    assert dense[2, 2] == 1 and dense[2, [1, 3]].sum() == 1
    # binary sym normalisation with row sums 2 everywhere: every entry 1/2
    normalised = knn_graph(features, 2, cache=False).toarray()
    np.testing.assert_allclose(normalised, dense / 2)
    # weighted: row 0 = [1, .8]; row sums d = [1.8, 1.8, 1.6, 1.6]; entry / sqrt(d_r d_c)
    weighted = knn_graph(features, 2, weighted=True, norm="sym", cache=False).toarray()
    assert weighted[0, 1] == pytest.approx(0.8 / 1.8)
    assert weighted[0, 0] == pytest.approx(1 / 1.8)
    assert weighted[3, 2] == pytest.approx(0.6 / 1.6)
    row = knn_graph(features, 2, weighted=True, norm="row", cache=False).toarray()
    np.testing.assert_allclose(row.sum(1), 1.0)
    assert row[0, 1] == pytest.approx(0.8 / 1.8)


def test_negative_similarities_are_clipped_in_weighted_graphs():
    features = torch.tensor([[1.0, 0.0], [-1.0, 0.1]])
    graph = knn_adjacency(features, 2, weighted=True)
    assert graph[0, 0] == pytest.approx(1) and graph[1, 1] == pytest.approx(1)
    assert graph.nnz == 2  # the -0.995 edges are dropped, not stored as negative weights


def test_graph_is_cached_by_fingerprint(isolated_cache, monkeypatch):
    features = torch.from_numpy(np.random.default_rng(2).normal(size=(30, 4)).astype(np.float32))
    first = knn_graph(features, 3)
    path = graph_cache_path("knn", fingerprint(features, params={"k": 3, "weighted": False, "include_self": True}))
    assert path.is_file() and path.parent.parent == isolated_cache
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]

    def fail(*args, **kwargs):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr(knn_module, "knn_edges", fail)
    assert (knn_graph(features, 3) != first).nnz == 0
    with pytest.raises(AssertionError, match="rebuilt"):  # other parameters: another key
        knn_graph(features, 4)
    with pytest.raises(AssertionError, match="rebuilt"):  # other features: another key
        knn_graph(features + 1, 3)
    monkeypatch.undo()
    path.write_bytes(b"not an npz")  # a corrupt file is rebuilt and replaced
    assert (knn_graph(features, 3) != first).nnz == 0


def test_mix_graphs():
    a = sp.csr_matrix(np.array([[0.5, 0.5], [0.0, 1.0]]))
    b = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 0.0]]))
    mixed = mix_graphs({"image": a, "text": b}, {"image": 0.1, "text": 0.9}).toarray()
    np.testing.assert_allclose(mixed, [[0.95, 0.05], [0.9, 0.1]])
    np.testing.assert_allclose(mix_graphs([a, b], [1, 1]).toarray(), (a + b).toarray())
    with pytest.raises(ValueError, match="one weight per graph"):
        mix_graphs([a, b], [1.0])
    with pytest.raises(ValueError, match="non-negative"):
        mix_graphs([a, b], [1.0, -1.0])
    with pytest.raises(ValueError, match="same modalities"):
        mix_graphs({"image": a}, {"text": 1.0})


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("norm", ["sym", "row", "none"])
def test_query_rows_of_a_catalogue_item_equal_its_own_row(weighted, norm):
    # a new item with exactly the features of catalogue item i links to the same neighbours
    # with the same weights, so its normalised row equals row i of the frozen graph
    features = torch.from_numpy(np.random.default_rng(3).normal(size=(25, 4)).astype(np.float32))
    adjacency = knn_adjacency(features, 5, weighted=weighted)
    graph = normalize_csr(adjacency, norm)
    rows = knn_query_graph(features[[2, 11]], features, 5, adjacency=adjacency, norm=norm, weighted=weighted,
                           query_mask=np.array([True, True]), block_size=1, column_block=7)
    np.testing.assert_allclose(rows.toarray(), graph[[2, 11]].toarray(), rtol=1e-6, atol=1e-9)
    masked = knn_query_graph(features[[2, 11]], features, 5, adjacency=adjacency, norm=norm, weighted=weighted,
                             query_mask=np.array([False, True]))
    assert masked[0].nnz == 0 and masked[1].nnz == 5
    with pytest.raises(ValueError, match="either rows"):
        knn_edges(features, 2, rows=np.array([0]), queries=features[:1])
    with pytest.raises(ValueError, match="queries must be"):
        knn_edges(features, 2, queries=features[:1, :2])
