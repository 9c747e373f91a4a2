"""Sparse propagation: values and gradients against dense products, transposes, buffers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgcn.data.graph import bipartite_blocks_scipy, normalized_adjacency, scipy_to_torch_csr
from mmgcn.nn.propagation import BipartitePropagation, GraphPropagation, sparse_mm, transpose_csr


def _random_train(n_users=7, n_items=5, density=0.4, seed=0):
    rng = np.random.default_rng(seed)
    train = sp.random(n_users, n_items, density=density, format="csr", random_state=rng)
    train.data[:] = 1.0
    return train


def _asymmetric_operator(seed=1):
    rng = np.random.default_rng(seed)
    matrix = sp.random(6, 4, density=0.5, format="csr", random_state=rng, dtype=np.float64)
    return scipy_to_torch_csr(matrix), torch.from_numpy(matrix.toarray()).float()


def test_transpose_csr_matches_dense_transpose():
    operator, dense = _asymmetric_operator()
    transposed = transpose_csr(operator)
    assert transposed.layout == torch.sparse_csr and transposed.shape == (4, 6)
    torch.testing.assert_close(transposed.to_dense(), dense.T)
    with pytest.raises(ValueError, match="CSR"):
        transpose_csr(dense)


@pytest.mark.parametrize("pass_transpose", [True, False])
def test_sparse_mm_forward_and_backward_match_dense(pass_transpose):
    operator, dense_op = _asymmetric_operator()
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    upstream = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    out = sparse_mm(operator, x, transpose_csr(operator) if pass_transpose else None)
    ref = dense_op @ x_ref
    torch.testing.assert_close(out, ref)
    out.backward(upstream)
    ref.backward(upstream)
    torch.testing.assert_close(x.grad, x_ref.grad)
    # the gradient is A^T g, not A g: checks the transpose is really used
    torch.testing.assert_close(x.grad, dense_op.T @ upstream)


def test_sparse_mm_without_grad_and_shape_error():
    operator, dense_op = _asymmetric_operator()
    x = torch.randn(4, 2)
    torch.testing.assert_close(sparse_mm(operator, x), dense_op @ x)
    with pytest.raises(ValueError, match="cannot multiply"):
        sparse_mm(operator, torch.randn(5, 2))


@pytest.mark.parametrize("norm", ["sym", "left", "mean", "none"])
def test_bipartite_propagation_matches_dense_blocks_with_gradients(norm):
    train = _random_train()
    user_to_item, item_to_user = (torch.from_numpy(b.toarray()).float() for b in bipartite_blocks_scipy(train, norm))
    prop = BipartitePropagation(train, norm)
    gen = torch.Generator().manual_seed(0)
    users = torch.randn(7, 4, generator=gen, requires_grad=True)
    items = torch.randn(5, 4, generator=gen, requires_grad=True)
    users_ref = users.detach().clone().requires_grad_(True)
    items_ref = items.detach().clone().requires_grad_(True)
    new_users, new_items = prop(users, items)
    ref_users, ref_items = user_to_item @ items_ref, item_to_user @ users_ref
    torch.testing.assert_close(new_users, ref_users)
    torch.testing.assert_close(new_items, ref_items)
    weights_u, weights_i = torch.randn(7, 4, generator=gen), torch.randn(5, 4, generator=gen)
    ((new_users * weights_u).sum() + (new_items * weights_i).sum()).backward()
    ((ref_users * weights_u).sum() + (ref_items * weights_i).sum()).backward()
    torch.testing.assert_close(users.grad, users_ref.grad)
    torch.testing.assert_close(items.grad, items_ref.grad)


def test_bipartite_propagation_two_hops_equal_square_adjacency_squared():
    train = _random_train(seed=3)
    adj = normalized_adjacency(train, "sym").to_dense()
    prop = BipartitePropagation(train, "sym")
    x = torch.randn(12, 3, generator=torch.Generator().manual_seed(0))
    users, items = x[:7], x[7:]
    for _ in range(2):
        users, items = prop(users, items)
    torch.testing.assert_close(torch.cat([users, items]), adj @ (adj @ x))


def test_graph_propagation_square_with_and_without_symmetry():
    train = _random_train(seed=4)
    for norm, symmetric in (("sym", True), ("left", False)):
        adj = normalized_adjacency(train, norm)
        prop = GraphPropagation(adj, symmetric=symmetric)
        x = torch.randn(12, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
        out = prop(x)
        torch.testing.assert_close(out, adj.to_dense() @ x.detach())
        out.sum().backward()
        torch.testing.assert_close(x.grad, adj.to_dense().T @ torch.ones(12, 3))
    with pytest.raises(ValueError, match="square"):
        GraphPropagation(scipy_to_torch_csr(sp.random(3, 4, density=0.5, format="csr")))
    with pytest.raises(ValueError, match="CSR"):
        GraphPropagation(torch.eye(3))


def test_operators_are_non_persistent_buffers_and_deterministic():
    train = _random_train()
    prop = BipartitePropagation(train, "left")
    assert prop.state_dict() == {}  # derived from the train split: never checkpointed
    assert {name for name, _ in prop.named_buffers()} == {
        "user_to_item", "item_to_user", "user_to_item_t", "item_to_user_t"
    }
    x_users, x_items = torch.randn(7, 16), torch.randn(5, 16)
    first = prop(x_users, x_items)
    second = prop(x_users, x_items)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_unknown_norm_is_an_error():
    with pytest.raises(ValueError, match="unknown norm"):
        BipartitePropagation(_random_train(), "row")
