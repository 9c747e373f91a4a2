r"""Sampled L-hop neighbourhoods of a BPR batch, and propagation over them.

Full-graph models propagate over every edge at every step; on a large graph that is the
cost of a step, whatever the batch. Sampled-subgraph training (GraphSAGE, Hamilton et al.,
NeurIPS 2017; PyG's ``NeighborLoader`` / ``LinkNeighborLoader``) propagates only over the
neighbourhood the batch's scores depend on: for an ``L``-layer model, the batch's users
and items (the *seeds*), up to ``k_1`` neighbours of each seed, up to ``k_2`` neighbours of
each of those, and so on for ``L`` hops. Every node's neighbours are drawn once, when the
node is first reached, and reused by every layer, as PyG's ``NeighborLoader`` does.

Unbiased aggregation: the full graph's normalised operator :math:`\hat A` (``"sym"``,
``"left"`` or ``"none"``, whatever the model uses) gives each edge its weight
:math:`\hat a_{vu}`. A node with :math:`d_v \le k` neighbours keeps all of them with their
weights (exact); a node with :math:`d_v > k` gets :math:`k` neighbours drawn uniformly
*with* replacement, each with weight :math:`\hat a_{vu}\, d_v / k`, so that

.. math:: \mathbb{E}\Big[\sum_{s=1}^{k} \tfrac{d_v}{k}\,\hat a_{v u_s} x_{u_s}\Big] = \sum_{u \in \mathcal N(v)} \hat a_{vu} x_u,

(a mean aggregation stays the mean of the drawn neighbours). Drawing with replacement costs
:math:`O(k)` per node, never :math:`O(d_v)`: a popular item with a million users costs the
same as any other.

The subgraph's nodes are numbered locally, seeds first: the batch's distinct users in
ascending id order are local users ``0 .. n_seed_users - 1``, its distinct items
(positives and negatives) local items ``0 .. n_seed_items - 1``; ``user_index`` /
``item_index`` map the batch's triples onto them. Everything here is vectorised torch
(indices, ``repeat_interleave``, one coalesce per operator) and runs on the graph's device.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mmgcn.nn.sparse import sparse_mm


def check_fanouts(num_neighbors: Sequence[int], name: str = "num_neighbors") -> tuple[int, ...]:
    """``num_neighbors`` as a tuple of ints: positive, or ``-1`` for every neighbour.

    Raises:
        ValueError: empty, or a value that is neither positive nor ``-1`` (``name`` in the message).
    """
    fanouts = tuple(int(k) for k in num_neighbors)
    if not fanouts or any(k == 0 or k < -1 for k in fanouts):
        raise ValueError(f"{name} must be positive integers or -1 (every neighbour), one per hop or one for all, "
                         f"got {list(fanouts)}")
    return fanouts


class SubgraphPropagation(nn.Module):
    r"""One hop over a sampled bipartite subgraph: :math:`U' = S_{UI} I,\; I' = S_{IU} U`.

    The drop-in of :class:`~mmgcn.nn.propagation.BipartitePropagation` for the subgraph's
    local nodes (same ``forward(users, items)``), with the sampled, rescaled operators built
    by :class:`NeighborSampler`; their transposes (for the backward pass) are built on first
    use.

    Trimming (PyG's ``trim_to_layer``): the nodes are numbered by the hop that reached them,
    so for layer ``k`` (from 0) of an ``L``-layer model only the nodes within ``L - 1 - k``
    hops of the seeds need an output, and they read only nodes within ``L - k`` hops.
    :meth:`layer` returns that trimmed hop: its outputs are the first rows of its inputs.

    Args:
        user_to_item: ``(n_users, n_items)`` sparse CSR, rows aggregate items into users.
        item_to_user: ``(n_items, n_users)`` sparse CSR, rows aggregate users into items.
        hop_users: ``hop_users[h]`` = users within ``h`` hops (cumulative, ``L + 1`` entries;
            default: none, no trimming).
        hop_items: the same for items.
    """

    def __init__(self, user_to_item: Tensor, item_to_user: Tensor, hop_users: Sequence[int] = (),
                 hop_items: Sequence[int] = ()) -> None:
        super().__init__()
        self.n_users, self.n_items = item_to_user.shape[1], user_to_item.shape[1]
        self.user_to_item, self.item_to_user = user_to_item, item_to_user
        self.hop_users, self.hop_items = tuple(hop_users), tuple(hop_items)
        self._transposes: dict[str, Tensor] = {}
        self._layers: dict[tuple[int, int], SubgraphPropagation] = {}

    def _t(self, name: str) -> Tensor:
        # the sampled blocks are not each other's transposes: the backward needs both
        if name not in self._transposes:
            self._transposes[name] = _transpose(getattr(self, name))
        return self._transposes[name]

    def to_users(self, item_states: Tensor) -> Tensor:
        """``(n_items, d) -> (rows of user_to_item, d)``."""
        return sparse_mm(self.user_to_item, item_states, self._t("user_to_item") if item_states.requires_grad else None)

    def to_items(self, user_states: Tensor) -> Tensor:
        """``(n_users, d) -> (rows of item_to_user, d)``."""
        return sparse_mm(self.item_to_user, user_states, self._t("item_to_user") if user_states.requires_grad else None)

    def forward(self, user_states: Tensor, item_states: Tensor) -> tuple[Tensor, Tensor]:
        return self.to_users(item_states), self.to_items(user_states)

    def layer(self, k: int, num_layers: int) -> SubgraphPropagation:
        """Layer ``k``'s trimmed hop (outputs: the nodes within ``num_layers - 1 - k`` hops)."""
        if len(self.hop_users) != num_layers + 1:
            return self
        key = (k, num_layers)
        if key not in self._layers:
            out_users, out_items = self.hop_users[num_layers - 1 - k], self.hop_items[num_layers - 1 - k]
            in_users, in_items = self.hop_users[num_layers - k], self.hop_items[num_layers - k]
            self._layers[key] = SubgraphPropagation(
                _first_rows(self.user_to_item, out_users, in_items), _first_rows(self.item_to_user, out_items, in_users))
        return self._layers[key]

    @property
    def n_edges(self) -> int:
        """Sampled directed edges (both blocks)."""
        return int(self.user_to_item.values().numel() + self.item_to_user.values().numel())

    def extra_repr(self) -> str:
        return f"n_users={self.n_users}, n_items={self.n_items}, edges={self.n_edges}"


def for_layer(graph: nn.Module, k: int, num_layers: int) -> nn.Module:
    """The hop layer ``k`` of ``num_layers`` propagates over: trimmed on a sampled subgraph,
    ``graph`` itself otherwise."""
    return graph.layer(k, num_layers) if isinstance(graph, SubgraphPropagation) else graph


def _first_rows(matrix: Tensor, n_rows: int, n_cols: int) -> Tensor:
    """The first ``n_rows`` rows of a CSR matrix whose entries there lie in the first ``n_cols`` columns."""
    crow = matrix.crow_indices()[: n_rows + 1]
    nnz = int(crow[-1])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        return torch.sparse_csr_tensor(crow, matrix.col_indices()[:nnz], matrix.values()[:nnz], (n_rows, n_cols))


def _transpose(matrix: Tensor) -> Tensor:
    crow, col = matrix.crow_indices(), matrix.col_indices()
    rows = torch.repeat_interleave(torch.arange(matrix.shape[0], device=col.device), crow.diff())
    return _csr(torch.stack([col, rows]), matrix.values(), (matrix.shape[1], matrix.shape[0]))


def _csr(index: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    """Sparse CSR from COO ``index (2, nnz)`` and ``values``: entries sorted by row only
    (a repeated entry stays repeated; the product sums it, which is what it stands for)."""
    rows, order = torch.sort(index[0], stable=True)
    crow = torch.zeros(shape[0] + 1, dtype=torch.long, device=rows.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=shape[0]), 0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        return torch.sparse_csr_tensor(crow, index[1][order], values[order], shape)


@dataclass
class Subgraph:
    """The sampled neighbourhood of one batch (see the module docstring).

    Attributes:
        users: ``(n_sub_users,)`` global user ids, the batch's distinct users first (ascending).
        items: ``(n_sub_items,)`` global item ids, the batch's distinct items first (ascending).
        graph: the propagation over the subgraph's local nodes.
        user_index: ``(B,)`` local position of each batch user.
        item_index: ``(2B,)`` local positions of the batch's positives, then negatives.
        n_seed_users, n_seed_items: how many of ``users`` / ``items`` are seeds.
    """

    users: Tensor
    items: Tensor
    graph: SubgraphPropagation
    user_index: Tensor
    item_index: Tensor
    n_seed_users: int
    n_seed_items: int


class NeighborSampler:
    """Sample the L-hop neighbourhood of BPR batches over a model's user-item graph.

    Args:
        graph: the model's :class:`~mmgcn.nn.propagation.BipartitePropagation` (its
            normalised ``user_to_item`` / ``item_to_user`` operators give the edges and their
            weights); a graph with self-loops is refused.
        num_neighbors: neighbours drawn per node at each hop (``k_1, ..., k_L``; ``k_1``
            for the seeds), one per layer of the model; ``-1`` keeps every neighbour (exact
            at that hop, as PyG's ``-1``).
        generator: torch generator of the draws (default ``None``: the global one, whose
            state the trainer checkpoints).

    Raises:
        ValueError: an empty ``num_neighbors``, a value that is neither positive nor ``-1``,
            or a graph with self-loops.
    """

    def __init__(self, graph: nn.Module, num_neighbors: Sequence[int],
                 generator: torch.Generator | None = None) -> None:
        fanouts = check_fanouts(num_neighbors)
        if getattr(graph, "self_loops", False):
            raise ValueError("NeighborSampler: graphs with self-loops are not supported")
        self.graph = graph
        self.num_neighbors = fanouts
        self.generator = generator
        self._lookups: dict[str, Tensor] = {}  # global id -> local position, -1 outside the subgraph

    def _lookup(self, kind: str, size: int, device: torch.device) -> Tensor:
        lookup = self._lookups.get(kind)
        if lookup is None or lookup.numel() != size or lookup.device != device:
            lookup = self._lookups[kind] = torch.full((size,), -1, dtype=torch.long, device=device)
        return lookup

    def sample(self, users: Tensor, pos: Tensor, neg: Tensor) -> Subgraph:
        """The neighbourhood of the triples ``(users, pos, neg)`` (each ``(B,)`` int64 global ids)."""
        user_to_item, item_to_user = self.graph.user_to_item, self.graph.item_to_user
        device = user_to_item.device
        users, pos, neg = users.to(device), pos.to(device), neg.to(device)
        seed_users, user_index = torch.unique(users, return_inverse=True)
        seed_items, item_index = torch.unique(torch.cat([pos, neg]), return_inverse=True)
        user_nodes = _NodeSet(seed_users, self._lookup("users", user_to_item.shape[0], device))
        item_nodes = _NodeSet(seed_items, self._lookup("items", user_to_item.shape[1], device))
        frontier_users, frontier_items = seed_users, seed_items
        hop_users, hop_items = [user_nodes.size], [item_nodes.size]
        edges_ui, edges_iu = [], []  # (rows local, cols local, weights) per hop
        for k in self.num_neighbors:
            rows, cols, weights = self._draw(user_to_item, frontier_users, k)
            new_items = item_nodes.add(cols)
            edges_ui.append((user_nodes.local(rows), item_nodes.local(cols), weights))
            rows, cols, weights = self._draw(item_to_user, frontier_items, k)
            new_users = user_nodes.add(cols)
            edges_iu.append((item_nodes.local(rows), user_nodes.local(cols), weights))
            frontier_users, frontier_items = new_users, new_items
            hop_users.append(user_nodes.size)
            hop_items.append(item_nodes.size)
        n_users, n_items = user_nodes.size, item_nodes.size
        graph = SubgraphPropagation(
            _csr(*_stack(edges_ui), (n_users, n_items)),
            _csr(*_stack(edges_iu), (n_items, n_users)),
            hop_users, hop_items,
        )
        all_users, all_items = user_nodes.ids(), item_nodes.ids()
        user_nodes.release()
        item_nodes.release()
        return Subgraph(all_users, all_items, graph, user_index, item_index, seed_users.numel(), seed_items.numel())

    def _draw(self, operator: Tensor, nodes: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
        """Up to ``k`` neighbours of each of ``nodes`` in ``operator``'s rows (``k = -1``: all of
        them): ``(rows, cols, weights)``."""
        crow, col, values = operator.crow_indices(), operator.col_indices(), operator.values()
        start = crow[nodes]
        degree = crow[nodes + 1] - start
        if k < 0:
            k = max(int(degree.max()), 1) if degree.numel() else 1
        take = torch.clamp(degree, max=k)
        row_of = torch.repeat_interleave(torch.arange(nodes.numel(), device=nodes.device), take)
        first = torch.cumsum(take, 0) - take
        offset = torch.arange(row_of.numel(), device=nodes.device) - first[row_of]
        sampled = degree[row_of] > k
        if bool(sampled.any()):
            where = self.generator.device if self.generator is not None else nodes.device
            draws = torch.rand(int(sampled.sum()), generator=self.generator, device=where).to(nodes.device)
            offset[sampled] = (draws * degree[row_of][sampled]).long()
        position = start[row_of] + offset
        scale = torch.where(degree > k, degree.to(values.dtype) / k, torch.ones((), dtype=values.dtype,
                                                                                  device=values.device))
        return nodes[row_of], col[position], values[position] * scale[row_of]

    def __repr__(self) -> str:
        return f"NeighborSampler(num_neighbors={list(self.num_neighbors)}, graph={self.graph.extra_repr()})"


def trimmed_layer_mean(graph: nn.Module, users: Tensor, items: Tensor, num_layers: int) -> tuple[Tensor, Tensor]:
    r"""LightGCN's :math:`\frac{1}{K+1}\sum_{k=0}^{K} \hat A^k E` over a (sub)graph, trimmed per layer.

    On a :class:`SubgraphPropagation` layer ``k`` outputs only the nodes within
    ``K - 1 - k`` hops, so the sums keep the first rows; the seeds' means are exact
    functions of their sampled neighbourhoods. Returns ``(users, items)`` with the rows of
    the last layer's outputs (the seeds on a subgraph; every node otherwise).
    """
    user_sum, item_sum = users, items
    for k in range(num_layers):
        users, items = for_layer(graph, k, num_layers)(users, items)
        user_sum = user_sum[: users.shape[0]] + users
        item_sum = item_sum[: items.shape[0]] + items
    scale = 1.0 / (num_layers + 1)
    return user_sum * scale, item_sum * scale


def _stack(edges: list[tuple[Tensor, Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    rows = torch.cat([e[0] for e in edges])
    cols = torch.cat([e[1] for e in edges])
    return torch.stack([rows, cols]), torch.cat([e[2] for e in edges])


class _NodeSet:
    """Global ids -> local positions for one node type, in insertion order.

    ``lookup`` (``(n_total,)``, all -1) is filled for the set's members and cleared again by
    :meth:`release`: ``O(touched)`` work per batch, ``O(n_total)`` memory once.
    """

    def __init__(self, seeds: Tensor, lookup: Tensor) -> None:
        self.lookup = lookup
        self.parts = [seeds]
        self.size = seeds.numel()
        lookup[seeds] = torch.arange(self.size, device=seeds.device)

    def add(self, ids: Tensor) -> Tensor:
        """Add the new ids among ``ids``; return them (ascending)."""
        new = torch.unique(ids[self.lookup[ids] < 0])
        self.lookup[new] = torch.arange(self.size, self.size + new.numel(), device=ids.device)
        self.parts.append(new)
        self.size += new.numel()
        return new

    def local(self, ids: Tensor) -> Tensor:
        return self.lookup[ids]

    def ids(self) -> Tensor:
        return torch.cat(self.parts)

    def release(self) -> None:
        self.lookup[self.ids()] = -1


__all__ = ["NeighborSampler", "Subgraph", "SubgraphPropagation", "check_fanouts", "for_layer",
           "trimmed_layer_mean"]
