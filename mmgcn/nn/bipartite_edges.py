r"""The user-item graph with per-edge values that carry gradients (attention, refined graphs).

Models that weight each train edge by a learned score (GRCN's routing attention and refined
graph) propagate over the user-item graph with one value per edge and direction:

.. math::
    U' = W_{UI}\, I, \qquad I' = W_{IU}\, U, \qquad
    (W_{UI})_{ui} = w^{i \to u}_e, \quad (W_{IU})_{iu} = w^{u \to i}_e

for the train edges :math:`e = (u, i)`. :class:`BipartiteEdges` holds the two CSR patterns
of the train graph (user rows and item rows), the edge order both share (the train CSR
order: by user, then item) and the permutation between them, so that

* values are given per edge in one order (``(E,)``, the order of :attr:`users` /
  :attr:`items`), whichever direction they weight;
* each hop is one CSR product, its backward one CSR product with the other pattern (the
  transpose is never rebuilt) and one SDDMM for the values' gradients
  (``torch.sparse.sampled_addmm``): no ``(E, d)`` per-edge message tensor, as
  :mod:`mmgcn.nn.sparse`.

Per-edge scores from node states are :meth:`BipartiteEdges.dot` (one SDDMM forward; its
backward is two CSR products with the patterns held here, not torch's generic
``sampled_addmm`` backward, which multiplies a dense matrix by the transposed sparse one
through format conversions and was ~2x slower), and a softmax over each node's edges is
PyG's :func:`torch_geometric.utils.softmax` over :attr:`users` or :attr:`items`.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from mmgcn.graph.bipartite import _check_train


def _csr(crow: Tensor, col: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        return torch.sparse_csr_tensor(crow, col, values, size=shape, check_invariants=False)


class _PatternProduct(torch.autograd.Function):
    """``csr(pattern, values) @ dense``; backward: SDDMM for ``values``, the transpose pattern
    (given, with its permutation) for ``dense``."""

    @staticmethod
    def forward(ctx, values: Tensor, dense: Tensor, crow: Tensor, col: Tensor,  # type: ignore[override]
                crow_t: Tensor, col_t: Tensor, perm_t: Tensor) -> Tensor:
        shape = (crow.numel() - 1, dense.shape[0])
        ctx.save_for_backward(values.detach(), dense.detach(), crow, col, crow_t, col_t, perm_t)
        ctx.shape = shape
        return torch.mm(_csr(crow, col, values.detach(), shape), dense.detach())

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        values, dense, crow, col, crow_t, col_t, perm_t = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_values = grad_dense = None
        if ctx.needs_input_grad[0]:
            pattern = _csr(crow, col, torch.zeros_like(values), ctx.shape)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
                grad_values = torch.sparse.sampled_addmm(pattern, grad_out, dense.T, beta=0.0).values()
        if ctx.needs_input_grad[1]:
            transposed = _csr(crow_t, col_t, values[perm_t], (ctx.shape[1], ctx.shape[0]))
            grad_dense = torch.mm(transposed, grad_out)
        return grad_values, grad_dense, None, None, None, None, None


class _EdgeDot(torch.autograd.Function):
    """Per-edge ``<U_u, I_i>`` (SDDMM); backward: ``dU = W_UI(g) I`` and ``dI = W_IU(g) U``,
    the two CSR products of the patterns (no transpose of a sparse matrix is built)."""

    @staticmethod
    def forward(ctx, user_states: Tensor, item_states: Tensor, edges: BipartiteEdges) -> Tensor:  # type: ignore[override]
        user_states, item_states = user_states.detach(), item_states.detach()
        ctx.save_for_backward(user_states, item_states)
        ctx.edges = edges
        pattern = _csr(edges.user_crow, edges.items, user_states.new_zeros(edges.num_edges),
                       (edges.n_users, edges.n_items))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
            return torch.sparse.sampled_addmm(pattern, user_states, item_states.T, beta=0.0).values()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        user_states, item_states = ctx.saved_tensors
        e, grad = ctx.edges, grad.contiguous()
        grad_users = grad_items = None
        if ctx.needs_input_grad[0]:
            grad_users = torch.mm(_csr(e.user_crow, e.items, grad, (e.n_users, e.n_items)), item_states)
        if ctx.needs_input_grad[1]:
            grad_items = torch.mm(_csr(e.item_crow, e.item_col, grad[e.to_item_order], (e.n_items, e.n_users)),
                                  user_states)
        return grad_users, grad_items, None


class BipartiteEdges(nn.Module):
    r"""The train edges of the user-item graph, for propagation with learned per-edge values.

    Args:
        train: ``(n_users, n_items)`` train interactions (binary; stored entries are edges).

    Attributes:
        users: ``(E,)`` long, the user of each edge (train CSR order: by user, then item).
        items: ``(E,)`` long, the item of each edge.
        num_edges: ``E``.

    Shapes: :meth:`to_users` ``values (E,)``, ``item_states (n_items, d)`` ->
    ``(n_users, d)``; :meth:`to_items` ``values (E,)``, ``user_states (n_users, d)`` ->
    ``(n_items, d)``. The patterns are non-persistent buffers (derived from the train split).
    """

    def __init__(self, train: sp.spmatrix) -> None:
        super().__init__()
        r = _check_train(train)
        self.n_users, self.n_items = r.shape
        by_user = sp.csr_matrix((np.arange(r.nnz, dtype=np.int64), r.indices, r.indptr), shape=r.shape)
        by_item = sp.csr_matrix(by_user.T)  # data: each item-ordered entry's index in user order
        by_item.sort_indices()
        to_item_order = by_item.data.astype(np.int64)
        to_user_order = np.empty_like(to_item_order)
        to_user_order[to_item_order] = np.arange(r.nnz)
        buffers = {
            "users": np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(r.indptr)),
            "items": r.indices.astype(np.int64),
            "user_crow": r.indptr.astype(np.int64),
            "item_crow": by_item.indptr.astype(np.int64),
            "item_col": by_item.indices.astype(np.int64),
            "to_item_order": to_item_order,
            "to_user_order": to_user_order,
        }
        for name, value in buffers.items():
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(value)), persistent=False)

    @property
    def num_edges(self) -> int:
        return int(self.items.numel())

    def _check(self, values: Tensor) -> None:
        if values.shape != (self.num_edges,):
            raise ValueError(f"edge values must be ({self.num_edges},), one per train edge, got {tuple(values.shape)}")

    def to_users(self, values: Tensor, item_states: Tensor) -> Tensor:
        r""":math:`U'_u = \sum_{i \in N(u)} w_e\, I_i`, ``values (E,)`` in edge order -> ``(n_users, d)``."""
        self._check(values)
        return _PatternProduct.apply(values, item_states, self.user_crow, self.items,
                                     self.item_crow, self.item_col, self.to_item_order)

    def to_items(self, values: Tensor, user_states: Tensor) -> Tensor:
        r""":math:`I'_i = \sum_{u \in N(i)} w_e\, U_u`, ``values (E,)`` in edge order -> ``(n_items, d)``."""
        self._check(values)
        return _PatternProduct.apply(values[self.to_item_order], user_states, self.item_crow, self.item_col,
                                     self.user_crow, self.items, self.to_user_order)

    def dot(self, user_states: Tensor, item_states: Tensor) -> Tensor:
        r"""Per-edge scores :math:`\langle U_u, I_i \rangle` ``(E,)`` in edge order (one SDDMM, differentiable)."""
        if user_states.shape[1] != item_states.shape[1]:
            raise ValueError(f"user states {tuple(user_states.shape)} and item states {tuple(item_states.shape)} "
                             f"differ in width")
        return _EdgeDot.apply(user_states, item_states, self)

    def extra_repr(self) -> str:
        return f"n_users={self.n_users}, n_items={self.n_items}, edges={self.num_edges}"


__all__ = ["BipartiteEdges"]
