"""PyG SparseConv, learned-value products (SDDMM backward), self-loops, redrawn graphs, layer mean."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch_geometric.nn import MessagePassing

from mmgcn.graph import normalized_adjacency, scipy_to_torch_csr
from mmgcn.nn import (
    BipartitePropagation,
    LayerMean,
    SparseConv,
    csr_from_edges,
    edge_dot,
    layer_mean_propagation,
    learned_sparse_mm,
    transpose_csr,
)


def _train(n_users=6, n_items=5, seed=0):
    train = sp.random(n_users, n_items, density=0.5, format="csr", random_state=np.random.default_rng(seed))
    train.data[:] = 1.0
    return train


def test_sparse_conv_is_a_fused_message_passing_layer():
    conv = SparseConv()
    assert isinstance(conv, MessagePassing) and conv.fuse
    matrix = sp.random(4, 3, density=0.6, format="csr", random_state=np.random.default_rng(1))
    adj_t = scipy_to_torch_csr(matrix)
    x = torch.randn(3, 2, requires_grad=True)
    calls = []
    conv.register_message_and_aggregate_forward_hook(lambda module, inputs, out: calls.append(out.shape))
    out = conv(x, adj_t, transpose_csr(adj_t))
    torch.testing.assert_close(out, torch.from_numpy(matrix.toarray()).float() @ x)
    assert calls == [torch.Size([4, 2])]  # the fused path ran, no per-edge messages
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.from_numpy(matrix.toarray().T).float() @ torch.ones(4, 2))
    with pytest.raises(ValueError, match="sparse CSR"):
        conv(x, torch.eye(3))


def test_learned_values_get_the_gradients_of_a_dense_product():
    gen = torch.Generator().manual_seed(0)
    edge_index = torch.tensor([[0, 0, 1, 2, 2], [1, 3, 0, 2, 3]])
    values = torch.rand(5, generator=gen, requires_grad=True)
    x = torch.randn(4, 3, generator=gen, requires_grad=True)
    upstream = torch.randn(3, 3, generator=gen)
    out = learned_sparse_mm(csr_from_edges(edge_index, values, (3, 4)), values, x)
    out.backward(upstream)
    values_ref = values.detach().clone().requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    dense = torch.zeros(3, 4).index_put(tuple(edge_index), values_ref)
    ref = dense @ x_ref
    ref.backward(upstream)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(values.grad, values_ref.grad)
    torch.testing.assert_close(x.grad, x_ref.grad)
    # through SparseConv too: edge_weight takes the learned path
    values.grad = None
    SparseConv()(x, csr_from_edges(edge_index, values, (3, 4)), edge_weight=values).backward(upstream)
    torch.testing.assert_close(values.grad, values_ref.grad)
    with pytest.raises(ValueError, match="one per stored entry"):
        learned_sparse_mm(csr_from_edges(edge_index, values, (3, 4)), values[:4], x)


def test_edge_dot_is_the_per_edge_inner_product_with_gradients():
    gen = torch.Generator().manual_seed(2)
    left = torch.randn(3, 4, generator=gen, requires_grad=True)
    right = torch.randn(5, 4, generator=gen, requires_grad=True)
    edge_index = torch.tensor([[0, 0, 2], [1, 4, 0]])
    scores = edge_dot(edge_index, left, right)
    expected = (left[edge_index[0]] * right[edge_index[1]]).sum(1)
    torch.testing.assert_close(scores, expected)
    scores.sum().backward()
    grad_left = left.grad.clone()
    left.grad = None
    expected.sum().backward()
    torch.testing.assert_close(grad_left, left.grad)


@pytest.mark.parametrize("norm", ["sym", "left", "none"])
def test_self_loops_equal_the_square_adjacency_with_identity(norm):
    train = _train()
    prop = BipartitePropagation(train, norm, self_loops=True)
    square = normalized_adjacency(train, "left" if norm == "left" else norm, self_loops=True).to_dense()
    users, items = torch.randn(6, 3), torch.randn(5, 3)
    new_users, new_items = prop(users, items)
    expected = square @ torch.cat([users, items])
    torch.testing.assert_close(torch.cat([new_users, new_items]), expected)


def test_set_graph_replaces_the_operators_in_place():
    train, other = _train(seed=0), _train(seed=3)
    prop = BipartitePropagation(train, "sym")
    prop.set_graph(other)
    fresh = BipartitePropagation(other, "sym")
    users, items = torch.randn(6, 2), torch.randn(5, 2)
    for a, b in zip(prop(users, items), fresh(users, items)):
        torch.testing.assert_close(a, b)
    assert not any(name in prop.state_dict() for name in ("user_to_item", "item_to_user"))
    with pytest.raises(ValueError, match="shape"):
        prop.set_graph(_train(n_users=7))


def test_layer_mean_hand_checked():
    # one user, one item, linked: the sym-normalised hop swaps their states
    prop = BipartitePropagation(sp.csr_matrix(np.ones((1, 1))), "sym")
    users, items = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    mean_users, mean_items = LayerMean(2)(prop, users, items)
    # layers: u = [1,0], [0,2], [1,0] -> mean [2/3, 2/3]; i = [0,2], [1,0], [0,2] -> [1/3, 4/3]
    torch.testing.assert_close(mean_users, torch.tensor([[2 / 3, 2 / 3]]))
    torch.testing.assert_close(mean_items, torch.tensor([[1 / 3, 4 / 3]]))
    same = layer_mean_propagation(prop, users, items, 0)
    assert torch.equal(same[0], users) and torch.equal(same[1], items)
    with pytest.raises(ValueError, match="num_layers"):
        LayerMean(-1)
