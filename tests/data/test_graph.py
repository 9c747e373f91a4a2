"""Graph building: normalisation against hand-computed values, isolated nodes, no leakage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgcn.data.graph import (
    bipartite_operators,
    connected_components,
    degree_summary,
    edge_index,
    modality_graphs,
    normalized_adjacency,
    to_networkx,
)


def _train(pairs, shape):
    rows, cols = zip(*pairs)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)


# 2 users x 3 items: u0-{i0, i1}, u1-{i1}; item 2 has no edge (isolated).
# node ids: u0=0, u1=1, i0=2, i1=3, i2=4; degrees: u0 2, u1 1, i0 1, i1 2, i2 0.
SMALL = _train([(0, 0), (0, 1), (1, 1)], (2, 3))


def test_sym_normalisation_matches_hand_computed_values():
    adj = normalized_adjacency(SMALL, "sym").to_dense()
    expected = torch.zeros(5, 5)
    # entry (a, b) = 1 / sqrt(deg a * deg b) for each edge
    expected[0, 2] = expected[2, 0] = 1 / math.sqrt(2 * 1)
    expected[0, 3] = expected[3, 0] = 1 / math.sqrt(2 * 2)
    expected[1, 3] = expected[3, 1] = 1 / math.sqrt(1 * 2)
    torch.testing.assert_close(adj, expected)
    assert adj.dtype == torch.float32


def test_left_and_mean_normalisation_are_row_stochastic_on_hand_case():
    for norm in ("left", "mean"):
        adj = normalized_adjacency(SMALL, norm).to_dense()
        expected = torch.zeros(5, 5)
        expected[0, 2] = expected[0, 3] = 0.5  # u0 averages its two items
        expected[1, 3] = 1.0
        expected[2, 0] = 1.0
        expected[3, 0] = expected[3, 1] = 0.5  # i1 averages its two users
        torch.testing.assert_close(adj, expected)


def test_none_norm_and_self_loops():
    plain = normalized_adjacency(SMALL, "none").to_dense()
    assert plain.sum() == 6 and plain.max() == 1
    looped = normalized_adjacency(SMALL, "sym", self_loops=True).to_dense()
    # with self-loops degrees become u0 3, u1 2, i0 2, i1 3, i2 1
    assert looped[0, 0] == pytest.approx(1 / 3)
    assert looped[4, 4] == pytest.approx(1.0)  # the isolated item only sees itself
    assert looped[0, 3] == pytest.approx(1 / math.sqrt(3 * 3))
    assert looped[1, 3] == pytest.approx(1 / math.sqrt(2 * 3))


def test_zero_degree_nodes_give_zero_rows_not_nan():
    train = _train([(0, 0)], (3, 2))  # user 1, 2 and item 1 isolated
    for norm in ("sym", "left", "none"):
        adj = normalized_adjacency(train, norm)
        dense = adj.to_dense()
        assert torch.isfinite(dense).all()
        for node in (1, 2, 4):
            assert dense[node].abs().sum() == 0 and dense[:, node].abs().sum() == 0
        for block in bipartite_operators(train, norm):
            assert torch.isfinite(block.values()).all()


def test_output_is_square_sparse_csr_users_first():
    adj = normalized_adjacency(SMALL)
    assert adj.layout == torch.sparse_csr
    assert adj.shape == (5, 5)
    dense = adj.to_dense()
    assert torch.equal(dense, dense.T)
    assert dense[:2, :2].abs().sum() == 0 and dense[2:, 2:].abs().sum() == 0


@pytest.mark.parametrize("norm", ["sym", "left", "none"])
def test_bipartite_operators_equal_the_off_diagonal_blocks(norm):
    rng = np.random.default_rng(0)
    train = sp.random(7, 5, density=0.4, format="csr", random_state=rng)
    full = normalized_adjacency(train, norm).to_dense()
    user_to_item, item_to_user = bipartite_operators(train, norm)
    assert user_to_item.layout == torch.sparse_csr and user_to_item.shape == (7, 5)
    assert item_to_user.layout == torch.sparse_csr and item_to_user.shape == (5, 7)
    torch.testing.assert_close(user_to_item.to_dense(), full[:7, 7:])
    torch.testing.assert_close(item_to_user.to_dense(), full[7:, :7])


def test_stored_values_are_ignored_edges_are_binary():
    weighted = SMALL.copy()
    weighted.data = np.array([5.0, 2.0, 3.0], np.float32)
    torch.testing.assert_close(normalized_adjacency(weighted).to_dense(), normalized_adjacency(SMALL).to_dense())


def test_edge_index_both_directions_items_offset():
    ei = edge_index(SMALL)
    assert ei.dtype == torch.long and ei.shape == (2, 6)
    forward = {tuple(p) for p in ei[:, :3].T.tolist()}
    assert forward == {(0, 2), (0, 3), (1, 3)}
    assert torch.equal(ei[:, 3:], ei[:, :3].flip(0))


def test_valid_and_test_edges_never_enter_the_graphs(tiny_dataset):
    n_users = tiny_dataset.n_users
    adj = normalized_adjacency(tiny_dataset.train, "none").to_dense()
    user_to_item, item_to_user = bipartite_operators(tiny_dataset.train)
    for split in ("valid", "test"):
        matrix = tiny_dataset.split(split)
        rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        for u, i in zip(rows, matrix.indices):
            assert adj[u, n_users + i] == 0 and adj[n_users + i, u] == 0
            assert user_to_item.to_dense()[u, i] == 0 and item_to_user.to_dense()[i, u] == 0
    assert adj.sum() == 2 * tiny_dataset.train.nnz
    pairs = {tuple(p) for p in edge_index(tiny_dataset.train).T.tolist()}
    assert len(pairs) == 2 * tiny_dataset.train.nnz
    # item 4 is cold (test only): no edge at all
    assert not any(n_users + 4 in p for p in pairs)


def test_modality_graphs_share_one_structure(tiny_dataset):
    views = modality_graphs(tiny_dataset)
    assert set(views) == {"visual", "acoustic"}
    visual, acoustic = views["visual"], views["acoustic"]
    assert visual.user_to_item is acoustic.user_to_item  # built once, shared
    assert torch.equal(visual.features, tiny_dataset.features["visual"])
    assert visual.user_to_item.shape == (4, 5) and visual.item_to_user.shape == (5, 4)


def test_degree_summary_and_components(tiny_dataset):
    summary = degree_summary(tiny_dataset.train)
    assert summary["edges"] == 7
    assert summary["user"]["max"] == 2 and summary["user"]["isolated"] == 0
    assert summary["item"]["isolated"] == 1  # item 4
    assert summary["item"]["max"] == 2
    # u3-i0-u0-i1-u1-i2-u2-i3 is one chain of 8 nodes; item 4 alone
    assert connected_components(tiny_dataset.train).tolist() == [8, 1]


def test_to_networkx_and_its_size_guard(tiny_dataset):
    graph = to_networkx(tiny_dataset.train)
    assert graph.number_of_nodes() == 9 and graph.number_of_edges() == 7
    assert graph.nodes[4]["kind"] == "item" and graph.nodes[4]["index"] == 0
    assert graph.has_edge(3, 4)  # u3 - item 0
    with pytest.raises(ValueError, match="max_nodes"):
        to_networkx(tiny_dataset.train, max_nodes=8)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TypeError, match="scipy.sparse"):
        normalized_adjacency(np.ones((2, 2)))
    with pytest.raises(ValueError, match="unknown norm"):
        normalized_adjacency(SMALL, "row")
    bad = SMALL.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        bipartite_operators(bad)
