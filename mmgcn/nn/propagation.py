r"""Graph propagation modules: the user-item graph, square graphs and LightGCN's layer mean.

Every hop is a :class:`~mmgcn.nn.conv.SparseConv` (a PyG ``MessagePassing`` layer whose
``message_and_aggregate`` is one CSR product, see :mod:`mmgcn.nn.sparse`) over an operator
built once from the train split (:mod:`mmgcn.graph`):

* :class:`BipartitePropagation`: one hop over the user-item graph as two half-size
  products (users <- items, items <- users), optionally with self-loops;
* :class:`GraphPropagation`: one hop :math:`X' = \hat A X` over any square operator (an
  item-item kNN graph, the square user-item adjacency);
* :class:`LayerMean` / :func:`layer_mean_propagation`: LightGCN's combination
  :math:`\frac{1}{K+1}\sum_{k=0}^{K} \hat A^k E` over any such hop.

Operators are non-persistent buffers: they follow ``.to(device)`` but are not written to
checkpoints, since they are derived from the train split. Models that redraw their graph
(e.g. degree-sensitive pruning every epoch) call :meth:`BipartitePropagation.set_graph`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from mmgcn.graph.bipartite import bipartite_blocks_scipy, scipy_to_torch_csr, self_loop_weights
from mmgcn.nn.conv import SparseConv
from mmgcn.nn.sparse import sparse_mm, transpose_csr


class BipartitePropagation(nn.Module):
    r"""One hop over the user-item train graph, as two sparse CSR products.

    .. math::
        U' = \hat A_{UI}\, I + s_U \odot U, \qquad I' = \hat A_{IU}\, U + s_I \odot I

    where :math:`\hat A_{UI}` ``(n_users, n_items)`` and :math:`\hat A_{IU}`
    ``(n_items, n_users)`` are the off-diagonal blocks of the normalised adjacency
    (:func:`mmgcn.graph.bipartite_operators`) and :math:`s` its diagonal, zero unless
    ``self_loops`` (then :math:`\hat A` normalises :math:`A + I`, as LATTICE's
    :math:`D^{-1}(A+I)`; :func:`mmgcn.graph.self_loop_weights`). The operators (and, where
    they differ, their transposes for the backward pass) are built once.

    Args:
        train: ``(n_users, n_items)`` train interactions (``dataset.train``).
        norm: ``"sym"`` (default), ``"left"``/``"mean"`` (average of neighbours) or
            ``"none"`` (sum of neighbours).
        self_loops: normalise :math:`A + I` and keep each node's own state with its weight
            (default ``False``).
    """

    def __init__(self, train: sp.spmatrix, norm: str = "sym", self_loops: bool = False) -> None:
        super().__init__()
        self.conv = SparseConv()
        self.norm = "left" if norm == "mean" else norm
        self.self_loops = bool(self_loops)
        self.set_graph(train)

    def set_graph(self, train: sp.spmatrix) -> None:
        """Rebuild the operators from ``train`` (same shape; e.g. a re-drawn pruned graph).

        The new operators go to the device of the current ones.
        """
        user_to_item, item_to_user = bipartite_blocks_scipy(train, self.norm, self.self_loops)
        previous = getattr(self, "user_to_item", None)
        if previous is not None and tuple(previous.shape) != user_to_item.shape:
            raise ValueError(f"set_graph: shape {user_to_item.shape} differs from the graph's {tuple(previous.shape)}")
        device = previous.device if previous is not None else torch.device("cpu")
        self.n_users, self.n_items = user_to_item.shape
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
            buffers = {"user_to_item": scipy_to_torch_csr(user_to_item), "item_to_user": scipy_to_torch_csr(item_to_user)}
            if self.norm == "left":
                # D_u^-1 R is not the transpose of D_i^-1 R^T: the backward needs its own pair
                buffers["user_to_item_t"] = scipy_to_torch_csr(user_to_item.T)
                buffers["item_to_user_t"] = scipy_to_torch_csr(item_to_user.T)
            else:
                # sym and none: each block is exactly the other's transpose
                buffers["user_to_item_t"] = buffers["item_to_user_t"] = None
            if self.self_loops:
                user_self, item_self = self_loop_weights(train, self.norm)
                buffers["user_self"] = torch.from_numpy(user_self.astype(np.float32)).unsqueeze(1)
                buffers["item_self"] = torch.from_numpy(item_self.astype(np.float32)).unsqueeze(1)
            else:
                buffers["user_self"] = buffers["item_self"] = None
            for name, value in buffers.items():
                self.register_buffer(name, None if value is None else value.to(device), persistent=False)

    def _t(self, name: str) -> Tensor:
        pair = {"user_to_item": "item_to_user", "item_to_user": "user_to_item"}[name]
        explicit = getattr(self, f"{name}_t")
        return explicit if explicit is not None else getattr(self, pair)

    def to_users(self, item_states: Tensor) -> Tensor:
        """Aggregate item states into their users: ``(n_items, d) -> (n_users, d)`` (no self-loop term)."""
        return self.conv(item_states, self.user_to_item, self._t("user_to_item"))

    def to_items(self, user_states: Tensor) -> Tensor:
        """Aggregate user states into their items: ``(n_users, d) -> (n_items, d)`` (no self-loop term)."""
        return self.conv(user_states, self.item_to_user, self._t("item_to_user"))

    def forward(self, user_states: Tensor, item_states: Tensor) -> tuple[Tensor, Tensor]:
        """One hop: ``(users (n_users, d), items (n_items, d))`` -> same shapes."""
        users, items = self.to_users(item_states), self.to_items(user_states)
        if self.self_loops:
            users = users + self.user_self * user_states
            items = items + self.item_self * item_states
        return users, items

    def extra_repr(self) -> str:
        nnz = self.user_to_item.values().numel()
        return (f"n_users={self.n_users}, n_items={self.n_items}, edges={nnz}, norm={self.norm!r}"
                + (", self_loops=True" if self.self_loops else ""))


class GraphPropagation(nn.Module):
    r"""One hop :math:`X' = \hat A X` over a square sparse operator.

    Equivalent to :class:`BipartitePropagation` on the stacked states for the square
    user-item adjacency; use this form for operators that are not bipartite (item-item kNN
    graphs, self-loops).

    Args:
        adjacency: ``(n, n)`` sparse CSR operator (e.g.
            :func:`mmgcn.graph.normalized_adjacency` or a scipy kNN graph converted with
            :func:`mmgcn.graph.scipy_to_torch_csr`).
        symmetric: whether ``adjacency`` equals its transpose (default ``False``: the
            transpose is built once for the backward pass; pass ``True`` to reuse it).
    """

    def __init__(self, adjacency: Tensor, symmetric: bool = False) -> None:
        super().__init__()
        if adjacency.layout != torch.sparse_csr or adjacency.dim() != 2:
            raise ValueError(f"adjacency must be a 2-D sparse CSR tensor, got layout {adjacency.layout}")
        if adjacency.shape[0] != adjacency.shape[1]:
            raise ValueError(f"adjacency must be square, got {tuple(adjacency.shape)}")
        self.conv = SparseConv()
        self.register_buffer("adjacency", adjacency, persistent=False)
        if symmetric:
            self.adjacency_t = None
        else:
            self.register_buffer("adjacency_t", transpose_csr(adjacency), persistent=False)

    def forward(self, states: Tensor) -> Tensor:
        """``(n, d) -> (n, d)``."""
        transposed = self.adjacency if self.adjacency_t is None else self.adjacency_t
        return self.conv(states, self.adjacency, transposed)

    def extra_repr(self) -> str:
        return f"nodes={self.adjacency.shape[0]}, edges={self.adjacency.values().numel()}"


def layer_mean_propagation(
    graph: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]], users: Tensor, items: Tensor, num_layers: int
) -> tuple[Tensor, Tensor]:
    r"""LightGCN's propagation: :math:`\frac{1}{K+1}\sum_{k=0}^{K} \hat A^k E`, users and items apart.

    Args:
        graph: one hop ``(users, items) -> (users', items')``, e.g. a
            :class:`BipartitePropagation` (symmetric-normalised for LightGCN).
        users: ``(n_users, d)`` layer-0 user states.
        items: ``(n_items, d)`` layer-0 item states.
        num_layers: :math:`K` (``0`` returns the inputs).

    Returns:
        ``(users (n_users, d), items (n_items, d))``.
    """
    if num_layers < 0:
        raise ValueError(f"num_layers must be >= 0, got {num_layers}")
    user_sum, item_sum = users, items
    for _ in range(num_layers):
        users, items = graph(users, items)
        user_sum, item_sum = user_sum + users, item_sum + items
    scale = 1.0 / (num_layers + 1)
    return user_sum * scale, item_sum * scale


class LayerMean(nn.Module):
    r"""LightGCN's layer combination as a layer (He et al., SIGIR 2020, arXiv 2002.02126).

    .. math:: E = \frac{1}{K+1}\sum_{k=0}^{K} E^{(k)}, \qquad E^{(k+1)} = \hat A E^{(k)}

    Args:
        num_layers: :math:`K` (``0``: the identity).

    ``forward(graph, users, items)`` takes the hop ``graph`` (a :class:`BipartitePropagation`)
    and layer-0 ``users (n_users, d)``, ``items (n_items, d)``; returns the means, same shapes.
    """

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        if num_layers < 0:
            raise ValueError(f"num_layers must be >= 0, got {num_layers}")
        self.num_layers = num_layers

    def forward(
        self, graph: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]], users: Tensor, items: Tensor
    ) -> tuple[Tensor, Tensor]:
        return layer_mean_propagation(graph, users, items, self.num_layers)

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}"


__all__ = [
    "BipartitePropagation",
    "GraphPropagation",
    "LayerMean",
    "layer_mean_propagation",
    "sparse_mm",
    "transpose_csr",
]
