"""Graph construction: normalisation, edge mixing, co-interaction graphs, degree-sensitive pruning."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgcn.graph import (
    csr_to_edges,
    degree_edge_weights,
    degree_sensitive_prune,
    mix_edges,
    normalize_csr,
    normalize_edges,
    row_softmax,
    symmetrize,
    user_cooccurrence_graph,
)


def _csr(rows, cols, shape, values=None):
    values = np.ones(len(rows)) if values is None else np.asarray(values, dtype=float)
    return sp.csr_matrix((values, (rows, cols)), shape=shape)


# ------------------------------------------------------------------ normalisation
def test_normalize_csr_hand_checked():
    # row sums: 3, 1, 0 (row 2 empty)
    a = sp.csr_matrix(np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    sym = normalize_csr(a, "sym").toarray()
    np.testing.assert_allclose(sym, [[1 / 3, 2 / np.sqrt(3), 0], [0, 0, 0], [0, 0, 0]])
    # entry (1, 2): d_1^-1/2 * 1 * d_2^-1/2 with d_2 = 0 -> 0, never inf
    row = normalize_csr(a, "row").toarray()
    np.testing.assert_allclose(row, [[1 / 3, 2 / 3, 0], [0, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(normalize_csr(a, "none").toarray(), a.toarray())
    with pytest.raises(ValueError, match="unknown norm"):
        normalize_csr(a, "left")
    with pytest.raises(ValueError, match="square"):
        normalize_csr(sp.csr_matrix((2, 3)), "sym")


@pytest.mark.parametrize("norm", ["sym", "row", "none"])
def test_normalize_edges_matches_csr_and_is_differentiable(norm):
    a = sp.random(6, 6, density=0.4, format="csr", random_state=np.random.default_rng(0))
    edge_index, values = csr_to_edges(a, torch.float64)
    weight = values.clone().requires_grad_(True)
    out = normalize_edges(edge_index, weight, 6, norm)
    dense = torch.zeros(6, 6, dtype=torch.float64).index_put_(tuple(edge_index), out.detach())
    np.testing.assert_allclose(dense.numpy(), normalize_csr(a, norm).toarray())
    out.sum().backward()
    assert weight.grad is not None and torch.isfinite(weight.grad).all()


def test_symmetrize_and_row_softmax():
    a = sp.csr_matrix(np.array([[0.0, 2.0], [1.0, 0.0]]))
    np.testing.assert_array_equal(symmetrize(a, "max").toarray(), [[0, 2], [2, 0]])
    np.testing.assert_array_equal(symmetrize(a, "sum").toarray(), [[0, 3], [3, 0]])
    np.testing.assert_array_equal(symmetrize(a, "mean").toarray(), [[0, 1.5], [1.5, 0]])
    counts = _csr([0, 0, 1], [1, 2, 0], (3, 3), [1.0, 3.0, 5.0])
    soft = row_softmax(counts).toarray()
    e = np.exp([1.0, 3.0])
    np.testing.assert_allclose(soft[0, 1:], e / e.sum())
    np.testing.assert_allclose(soft[1], [1, 0, 0])
    assert soft[2].sum() == 0  # empty row stays empty


def test_mix_edges_sums_duplicates_and_passes_gradients_to_weights():
    a = (torch.tensor([[0, 1], [1, 0]]), torch.tensor([1.0, 2.0]))
    b = (torch.tensor([[0, 2], [1, 2]]), torch.tensor([4.0, 8.0]))
    logits = torch.zeros(2, requires_grad=True)
    weights = torch.softmax(logits, 0)
    edge_index, values = mix_edges([a, b], weights, num_nodes=3)
    assert edge_index.tolist() == [[0, 1, 2], [1, 0, 2]]  # sorted by row, duplicates merged
    torch.testing.assert_close(values, torch.tensor([2.5, 1.0, 4.0]))
    values.sum().backward()
    # d/dw_a sum = 3, d/dw_b sum = 12; softmax at 0: grad_logits = w * (g - w.g) = [-2.25, 2.25]
    torch.testing.assert_close(logits.grad, torch.tensor([-2.25, 2.25]))
    with pytest.raises(ValueError, match="one weight per graph"):
        mix_edges([a, b], [1.0], 3)


# ------------------------------------------------------------------ co-interaction
def test_user_cooccurrence_hand_checked():
    # u0 {0,1,2}, u1 {0,1}, u2 {2}, u3 {0}, u4 {} ; shared: u0-u1 2, u0-u2 1, u0-u3 1, u1-u3 1
    train = _csr([0, 0, 0, 1, 1, 2, 3], [0, 1, 2, 0, 1, 2, 0], (5, 3))
    full = user_cooccurrence_graph(train, k=10).toarray()
    expected = np.array([
        [0, 2, 1, 1, 0],
        [2, 0, 0, 1, 0],
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ], dtype=float)
    np.testing.assert_array_equal(full, expected)
    top1 = user_cooccurrence_graph(train, k=1).toarray()
    # u0: u1 (2 shared); u3: u0 and u1 tie at 1 -> the smaller id
    np.testing.assert_array_equal(top1, [[0, 2, 0, 0, 0], [2, 0, 0, 0, 0], [1, 0, 0, 0, 0],
                                         [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    for block in (1, 2, 3):
        assert (user_cooccurrence_graph(train, k=2, block_size=block) != user_cooccurrence_graph(train, k=2)).nnz == 0
    with pytest.raises(ValueError, match="positive"):
        user_cooccurrence_graph(train, k=0)


# ------------------------------------------------------------------ pruning
def test_degree_edge_weights_hand_checked():
    # u0 {0, 1}, u1 {0}: d_u = [2, 1], d_i = [2, 1]
    train = _csr([0, 0, 1], [0, 1, 0], (2, 2))
    np.testing.assert_allclose(degree_edge_weights(train), [1 / 2, 1 / np.sqrt(2), 1 / np.sqrt(2)])


def test_pruning_keeps_a_share_of_train_edges_deterministically():
    rng = np.random.default_rng(0)
    train = sp.random(50, 40, density=0.2, format="csr", random_state=rng)
    train.data[:] = 1
    kept = degree_sensitive_prune(train, 0.3, np.random.default_rng(7))
    assert kept.nnz == int(train.nnz * 0.3)
    assert (kept - kept.multiply(train)).nnz == 0  # a subset of the train edges
    assert set(np.unique(kept.data)) == {1.0}
    again = degree_sensitive_prune(train, 0.3, np.random.default_rng(7))
    assert (again != kept).nnz == 0
    other = degree_sensitive_prune(train, 0.3, np.random.default_rng(8))
    assert (other != kept).nnz > 0
    assert degree_sensitive_prune(train, 1.0, np.random.default_rng(0)).nnz == train.nnz
    with pytest.raises(ValueError, match="keep"):
        degree_sensitive_prune(train, 0.0, rng)


def test_pruning_draws_edges_by_inverse_sqrt_degree():
    # u0 {0, 1, 2}, u1 {0}: weights 1/sqrt(3*2), 1/sqrt(3), 1/sqrt(3), 1/sqrt(1*2)
    train = _csr([0, 0, 0, 1], [0, 1, 2, 0], (2, 3))
    weights = degree_edge_weights(train)
    rng = np.random.default_rng(123)
    draws = 4_000
    counts = np.zeros(4)
    for _ in range(draws):
        kept = degree_sensitive_prune(train, 0.25, rng)  # one edge of four
        counts[np.flatnonzero(np.isin(np.arange(4), _edge_ids(train, kept)))] += 1
    expected = weights / weights.sum()
    # a single draw picks edge e with probability w_e / sum(w): within 4 binomial std devs
    std = np.sqrt(expected * (1 - expected) / draws)
    assert np.all(np.abs(counts / draws - expected) < 4 * std), (counts / draws, expected)


def _edge_ids(train: sp.csr_matrix, kept: sp.csr_matrix) -> np.ndarray:
    train_coo, kept_coo = train.tocoo(), kept.tocoo()
    pairs = list(zip(train_coo.row.tolist(), train_coo.col.tolist()))
    return np.array([pairs.index(p) for p in zip(kept_coo.row.tolist(), kept_coo.col.tolist())])
