"""BipartiteEdges: learned per-edge values on the user-item graph against dense products, by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgcn.nn.bipartite_edges import BipartiteEdges

# u0 {0, 2}, u1 {1}, u2 {0, 1, 2}; item 3 has no edge
PAIRS = [(0, 0), (0, 2), (1, 1), (2, 0), (2, 1), (2, 2)]


def _train() -> sp.csr_matrix:
    rows, cols = zip(*PAIRS)
    return sp.csr_matrix((np.ones(len(PAIRS), np.float32), (rows, cols)), shape=(3, 4))


def test_edge_order_is_the_train_csr_order_and_hops_match_the_hand_sums():
    edges = BipartiteEdges(_train())
    assert edges.num_edges == 6
    assert edges.users.tolist() == [0, 0, 1, 2, 2, 2] and edges.items.tolist() == [0, 2, 1, 0, 1, 2]
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    items = torch.tensor([[1.0], [10.0], [100.0], [1000.0]])
    users = torch.tensor([[1.0], [10.0], [100.0]])
    # u0 = 1*i0 + 2*i2 = 201; u1 = 3*i1 = 30; u2 = 4*i0 + 5*i1 + 6*i2 = 654
    assert edges.to_users(w, items).squeeze(1).tolist() == [201.0, 30.0, 654.0]
    # i0 = 1*u0 + 4*u2 = 401; i1 = 3*u1 + 5*u2 = 530; i2 = 2*u0 + 6*u2 = 602; i3 has no edge
    assert edges.to_items(w, users).squeeze(1).tolist() == [401.0, 530.0, 602.0, 0.0]
    # <u, i> per edge: u0.i0, u0.i2, u1.i1, u2.i0, u2.i1, u2.i2
    assert edges.dot(users, items[:, :1]).tolist() == [1.0, 100.0, 100.0, 100.0, 1000.0, 10000.0]


def test_gradients_equal_the_dense_products():
    gen = torch.Generator().manual_seed(0)
    edges = BipartiteEdges(_train())
    w = torch.rand(6, generator=gen, requires_grad=True)
    v = torch.rand(6, generator=gen, requires_grad=True)
    items = torch.randn(4, 3, generator=gen, requires_grad=True)
    users = torch.randn(3, 3, generator=gen, requires_grad=True)
    up_u, up_i = torch.randn(3, 3, generator=gen), torch.randn(4, 3, generator=gen)
    ((edges.to_users(w, items) * up_u).sum() + (edges.to_items(v, users) * up_i).sum()
     + edges.dot(users, items).pow(2).sum()).backward()

    refs = [t.detach().clone().requires_grad_(True) for t in (w, v, items, users)]
    w_r, v_r, items_r, users_r = refs
    index = (edges.users, edges.items)
    dense_w = torch.zeros(3, 4).index_put(index, w_r)
    dense_v = torch.zeros(3, 4).index_put(index, v_r)
    dots = (users_r @ items_r.T)[index]
    ((dense_w @ items_r * up_u).sum() + (dense_v.T @ users_r * up_i).sum() + dots.pow(2).sum()).backward()
    for ours, ref in zip((w, v, items, users), refs):
        torch.testing.assert_close(ours.grad, ref.grad)


def test_bad_values_are_refused():
    edges = BipartiteEdges(_train())
    with pytest.raises(ValueError, match=r"\(6,\), one per train edge"):
        edges.to_users(torch.ones(5), torch.ones(4, 2))
    with pytest.raises(ValueError, match="differ in width"):
        edges.dot(torch.ones(3, 2), torch.ones(4, 3))
