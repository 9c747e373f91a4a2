r"""PyG message-passing layers over a sparse adjacency, fused into one sparse product.

PyTorch Geometric's :class:`~torch_geometric.nn.conv.MessagePassing` runs
``message -> aggregate`` per edge when given an ``edge_index``, and calls
:meth:`~torch_geometric.nn.conv.MessagePassing.message_and_aggregate` instead when given a
sparse adjacency ``adj_t`` (row = target node, column = source node). The layers here take
``adj_t`` as a torch sparse CSR tensor and implement ``message_and_aggregate`` as one CSR
product (:mod:`mmgcn.nn.sparse`), so no ``(n_edges, d)`` message tensor is ever built,
while hooks, ``explain`` and the rest of PyG's layer protocol still apply.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn import MessagePassing

from mmgcn.nn.sparse import learned_sparse_mm, sparse_mm


class SparseConv(MessagePassing):
    r"""Linear propagation :math:`X' = \hat A X` (LightGCN's ``LGConv`` without the normalisation).

    .. math:: \mathbf{x}'_r = \sum_{c} \hat A_{rc}\, \mathbf{x}_c

    The operator is used as given (normalise it when building it, e.g.
    :func:`mmgcn.graph.bipartite_operators`); it may be rectangular (a bipartite block:
    ``(n_users, n_items)`` aggregates items into users). For a fixed graph the product is
    :func:`~mmgcn.nn.sparse.sparse_mm`, whose backward uses the prebuilt transpose ``adj``.
    For a learned graph pass its entries as ``edge_weight`` (in the CSR order of ``adj_t``,
    whose own values are then ignored): gradients reach them through
    :func:`~mmgcn.nn.sparse.learned_sparse_mm`.

    Shapes: ``x`` ``(n_in, d)``, ``adj_t`` ``(n_out, n_in)`` sparse CSR, ``adj``
    ``(n_in, n_out)`` sparse CSR or ``None``, ``edge_weight`` ``(nnz,)`` or ``None`` ->
    ``(n_out, d)``.
    """

    def __init__(self) -> None:
        super().__init__(aggr="add")

    def reset_parameters(self) -> None:
        """No parameters."""

    def forward(
        self, x: Tensor, adj_t: Tensor, adj: Tensor | None = None, edge_weight: Tensor | None = None
    ) -> Tensor:
        if adj_t.layout != torch.sparse_csr:
            raise ValueError(f"{type(self).__name__} takes adj_t as a torch sparse CSR tensor, got {adj_t.layout}")
        return self.propagate(adj_t, x=x, adj=adj, edge_weight=edge_weight)

    def message_and_aggregate(  # type: ignore[override]
        self, adj_t: Tensor, x: Tensor, adj: Tensor | None, edge_weight: Tensor | None
    ) -> Tensor:
        if edge_weight is not None:
            return learned_sparse_mm(adj_t, edge_weight, x)
        return sparse_mm(adj_t, x, adj)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


__all__ = ["SparseConv"]
