r"""Item-item kNN graphs from content features, computed blockwise (never items x items).

The semantic item graphs of LATTICE (Zhang et al., MM'21, arXiv 2104.09036), FREEDOM (Zhou
& Shen, MM'23, arXiv 2211.06924), DRAGON and LGMRec connect each item to the ``k`` items
whose features are most similar by cosine:

.. math::
    S_{ij} = \frac{\mathbf{f}_i^\top \mathbf{f}_j}{\lVert\mathbf{f}_i\rVert\,\lVert\mathbf{f}_j\rVert},
    \qquad
    A_{ij} = \begin{cases} S_{ij} \text{ (weighted) or } 1 & j \in \operatorname{top-}k_j(S_{i\cdot})\\
    0 & \text{otherwise}\end{cases}

then normalised (:mod:`mmgcn.graph.normalize`; ``"sym"`` is
:math:`D^{-1/2} A D^{-1/2}` with row sums, as both papers). The originals build the dense
:math:`S` (``n_items^2`` floats: 160 GB at 200k items); :func:`knn_edges` computes the top
``k`` of each row over tiles of ``block_size x column_block`` similarities and keeps a
running top ``k``, so the working memory is that tile plus ``O(n_items k)`` output,
whatever the catalogue size.

Items without content (a ``False`` in ``mask``, e.g. ``Dataset.content_masks[m]``, or an
all-zero feature row) get no neighbours and are nobody's neighbour. By default an item is
its own nearest neighbour (``include_self=True``), as in the original code. Negative cosine
weights are clipped to zero (the edge dropped) in weighted graphs (a negative row sum has
no square root).
Ties between equal similarities (duplicate feature rows) are broken by ``torch.topk``.

Frozen graphs are cached on disk (:func:`knn_adjacency` / :func:`knn_graph`, key: the
features' fingerprint and the parameters), and :func:`knn_query_graph` gives the rows new
items (cold start) would have in a frozen graph; learned graphs (LATTICE) recompute the neighbour indices with
:func:`knn_edges` from projected features and weight the edges differentiably with
:func:`mmgcn.nn.sparse.edge_dot`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from mmgcn.graph.cache import cached_csr, fingerprint
from mmgcn.graph.normalize import GraphNorm, _check_norm, _inverse_power, normalize_csr

#: similarities per tile (block_size x column_block): 4M floats = 16 MB by default
DEFAULT_BLOCK_SIZE = 1024
DEFAULT_COLUMN_BLOCK = 4096


def _unit_rows(features: Tensor, mask: Tensor | np.ndarray | None) -> tuple[Tensor, Tensor]:
    """L2-normalised float32 rows ``(n, d)`` (one copy) and bool ``(n,)``: rows with content
    (``mask`` True and a non-zero feature vector)."""
    features = features.detach().float()
    norms = torch.linalg.vector_norm(features, dim=1)
    has = norms > 0
    if mask is not None:
        mask = torch.as_tensor(np.asarray(mask) if not isinstance(mask, Tensor) else mask).to(features.device)
        if mask.shape != (features.shape[0],) or mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool ({features.shape[0]},) array, got {mask.dtype} {tuple(mask.shape)}")
        has = has & mask
    unit = features / norms.clamp_min(torch.finfo(torch.float32).tiny).unsqueeze(1)
    return unit, has


@torch.no_grad()
def knn_edges(
    features: Tensor,
    k: int,
    *,
    mask: Tensor | np.ndarray | None = None,
    include_self: bool = True,
    block_size: int = DEFAULT_BLOCK_SIZE,
    column_block: int = DEFAULT_COLUMN_BLOCK,
    rows: Tensor | np.ndarray | None = None,
    queries: Tensor | None = None,
    query_mask: Tensor | np.ndarray | None = None,
) -> tuple[Tensor, Tensor]:
    """The ``k`` most cosine-similar catalogue items of every item (or query), as an edge list.

    No gradients flow (the search is a selection; weight the edges differentiably with
    :func:`mmgcn.nn.sparse.edge_dot` where a model learns them).

    Args:
        features: ``(n_items, d)`` catalogue features (any float dtype; rows need not be
            normalised). The candidates are always all catalogue items with content.
        k: neighbours per item (fewer where fewer items have content).
        mask: optional bool ``(n_items,)``, ``True`` where a catalogue item has content.
        include_self: whether an item may be its own neighbour (default ``True``, as LATTICE
            and FREEDOM); only for catalogue rows.
        block_size: query rows per tile.
        column_block: candidate columns per tile (the tile is ``block_size x column_block``).
        rows: optional ``(n_query,)`` catalogue item ids whose neighbours to find (default:
            all items).
        queries: optional ``(n_query, d)`` features of items outside the catalogue (new
            items) whose neighbours to find among the catalogue; excludes ``rows``.
        query_mask: optional bool ``(n_query,)``: queries with content.

    Returns:
        ``edge_index (2, E)`` long ``(query, neighbour)``, where ``query`` is the catalogue
        item id (or the row of ``queries``), sorted by query (in the order of ``rows``) then
        by decreasing similarity, and ``similarity (E,)`` float32 cosines; on ``features``'
        device.
    """
    if features.dim() != 2:
        raise ValueError(f"features must be 2-D (n_items, d), got shape {tuple(features.shape)}")
    if k <= 0 or block_size <= 0 or column_block <= 0:
        raise ValueError(f"k, block_size and column_block must be positive, got {k}, {block_size}, {column_block}")
    n, device = features.shape[0], features.device
    unit, has = _unit_rows(features, mask)
    if queries is not None:
        if rows is not None:
            raise ValueError("pass either rows (catalogue items) or queries (new items), not both")
        if queries.dim() != 2 or queries.shape[1] != features.shape[1]:
            raise ValueError(f"queries must be (n_query, {features.shape[1]}), got {tuple(queries.shape)}")
        query_unit, query_has = _unit_rows(queries.to(device), query_mask)
        query_ids, self_ids = torch.arange(queries.shape[0], device=device), None
    else:
        query_ids = torch.arange(n, device=device) if rows is None else torch.as_tensor(rows, device=device).long()
        if query_ids.dim() != 1 or (query_ids.numel() and (query_ids.min() < 0 or query_ids.max() >= n)):
            raise ValueError(f"rows must be a 1-D array of item ids in [0, {n})")
        query_unit, query_has = unit, has
        self_ids = None if include_self else query_ids
    # columns without content can never be chosen: -inf added to their similarities
    column_penalty = torch.zeros(n, device=device).masked_fill_(~has, float("-inf"))
    any_missing = bool((~has).any())
    k_eff = min(k, n)
    rows_out, cols_out, sims_out = [], [], []
    for start in range(0, query_ids.numel(), block_size):
        ids = query_ids[start : start + block_size]
        query = query_unit[ids]
        best_sim = torch.full((ids.numel(), k_eff), float("-inf"), device=device)
        best_idx = torch.zeros((ids.numel(), k_eff), dtype=torch.long, device=device)
        for col_start in range(0, n, column_block):
            col_stop = min(col_start + column_block, n)
            tile = query @ unit[col_start:col_stop].T
            if any_missing:
                tile += column_penalty[col_start:col_stop]
            if self_ids is not None:
                own = self_ids[start : start + block_size]
                inside = (own >= col_start) & (own < col_stop)
                if inside.any():
                    local = torch.nonzero(inside).squeeze(1)
                    tile[local, own[local] - col_start] = float("-inf")
            top_sim, top_idx = tile.topk(min(k_eff, col_stop - col_start), dim=1)
            merged_sim = torch.cat([best_sim, top_sim], dim=1)
            merged_idx = torch.cat([best_idx, top_idx + col_start], dim=1)
            best_sim, order = merged_sim.topk(k_eff, dim=1)
            best_idx = merged_idx.gather(1, order)
            del tile
        keep = torch.isfinite(best_sim) & query_has[ids].unsqueeze(1)
        rows_out.append(ids.unsqueeze(1).expand_as(best_idx)[keep])
        cols_out.append(best_idx[keep])
        sims_out.append(best_sim[keep])
    if not rows_out:
        return torch.zeros((2, 0), dtype=torch.long, device=device), torch.zeros(0, device=device)
    edge_index = torch.stack([torch.cat(rows_out), torch.cat(cols_out)])
    return edge_index, torch.cat(sims_out)


def _edges_to_csr(edge_index: Tensor, sims: Tensor, shape: tuple[int, int], weighted: bool) -> sp.csr_matrix:
    rows, cols = edge_index.cpu().numpy()
    values = sims.clamp_min(0).double().cpu().numpy() if weighted else np.ones(rows.size)
    out = sp.csr_matrix((values, (rows, cols)), shape=shape)
    out.sum_duplicates()
    out.eliminate_zeros()
    out.sort_indices()
    return out


def knn_adjacency(
    features: Tensor,
    k: int,
    *,
    weighted: bool = False,
    mask: Tensor | np.ndarray | None = None,
    include_self: bool = True,
    block_size: int = DEFAULT_BLOCK_SIZE,
    column_block: int = DEFAULT_COLUMN_BLOCK,
    cache: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> sp.csr_matrix:
    """The unnormalised ``(n_items, n_items)`` kNN adjacency (row ``i``: ``i``'s neighbours), float64 CSR.

    Entries are ``1`` or, with ``weighted``, the cosine clipped at zero (see :func:`knn_edges`).
    With ``cache``, read / written under ``<cache root>/graphs/knn-<fingerprint>.npz``, keyed
    by the features' and mask's bytes and the parameters (not by the block sizes, which do
    not change the result up to ties).
    """
    n = features.shape[0]

    def build() -> sp.csr_matrix:
        edge_index, sims = knn_edges(features, k, mask=mask, include_self=include_self,
                                     block_size=block_size, column_block=column_block)
        return _edges_to_csr(edge_index, sims, (n, n), weighted)

    if not cache:
        return build()
    params = {"k": k, "weighted": weighted, "include_self": include_self}
    arrays = [features] + ([np.asarray(mask, dtype=bool)] if mask is not None else [])
    return cached_csr("knn", fingerprint(*arrays, params=params), build, (n, n), cache_dir=cache_dir)


def knn_graph(
    features: Tensor,
    k: int,
    *,
    norm: GraphNorm = "sym",
    weighted: bool = False,
    mask: Tensor | np.ndarray | None = None,
    include_self: bool = True,
    block_size: int = DEFAULT_BLOCK_SIZE,
    column_block: int = DEFAULT_COLUMN_BLOCK,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> sp.csr_matrix:
    """A normalised item-item kNN graph ``(n_items, n_items)`` (float64 CSR), cached on disk.

    Args:
        features: ``(n_items, d)`` item features of one modality.
        k: neighbours per item.
        norm: ``"sym"`` (default), ``"row"`` or ``"none"`` (:func:`mmgcn.graph.normalize_csr`).
        weighted: cosine-weighted edges (LATTICE) instead of binary ones (FREEDOM).
        mask: optional bool ``(n_items,)``: items with content.
        include_self: an item may be its own neighbour (default ``True``).
        block_size, column_block: tile of the blockwise search (see :func:`knn_edges`).
        cache: read / write the unnormalised adjacency in the graph cache (default ``True``;
            see :func:`knn_adjacency`).
        cache_dir: cache root (default ``$MMGCN_CACHE`` / the user cache).
    """
    adjacency = knn_adjacency(features, k, weighted=weighted, mask=mask, include_self=include_self,
                              block_size=block_size, column_block=column_block, cache=cache, cache_dir=cache_dir)
    return normalize_csr(adjacency, norm)


def knn_query_graph(
    queries: Tensor,
    features: Tensor,
    k: int,
    *,
    adjacency: sp.spmatrix,
    norm: GraphNorm = "sym",
    weighted: bool = False,
    mask: Tensor | np.ndarray | None = None,
    query_mask: Tensor | np.ndarray | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    column_block: int = DEFAULT_COLUMN_BLOCK,
) -> sp.csr_matrix:
    r"""The rows new items would have in a frozen kNN graph: ``(n_query, n_items)`` float64 CSR.

    Each query (a new item's features) links to its ``k`` most similar catalogue items,
    weighted as in :func:`knn_adjacency`; the catalogue's own rows are left as they are (the
    graph is frozen), so normalisation uses the query's row sum :math:`d_q` and the
    catalogue's row sums :math:`d_j` of ``adjacency``: :math:`A_{qj}/\sqrt{d_q d_j}`
    (``"sym"``), :math:`A_{qj}/d_q` (``"row"``) or :math:`A_{qj}` (``"none"``). Multiplying
    the result by the catalogue's item states gives the new items' aggregated states.

    Args:
        queries: ``(n_query, d)`` features of the new items.
        features: ``(n_items, d)`` catalogue features the graph was built from.
        k: neighbours per query (as the graph's ``k``).
        adjacency: the catalogue's unnormalised adjacency (:func:`knn_adjacency`).
        norm, weighted, mask: as the catalogue graph was built.
        query_mask: optional bool ``(n_query,)``: queries with content (others get no row).
    """
    n = features.shape[0]
    if adjacency.shape != (n, n):
        raise ValueError(f"adjacency has shape {adjacency.shape}, expected ({n}, {n})")
    edge_index, sims = knn_edges(features, k, mask=mask, queries=queries, query_mask=query_mask,
                                 block_size=block_size, column_block=column_block)
    rows = _edges_to_csr(edge_index, sims, (queries.shape[0], n), weighted)
    _check_norm(norm)
    if norm == "none":
        return rows
    query_degree = np.asarray(rows.sum(axis=1)).ravel()
    if norm == "row":
        return sp.csr_matrix(sp.diags(_inverse_power(query_degree, 1.0)) @ rows)
    catalogue_degree = np.asarray(sp.csr_matrix(adjacency).sum(axis=1)).ravel()
    out = sp.diags(_inverse_power(query_degree, 0.5)) @ rows @ sp.diags(_inverse_power(catalogue_degree, 0.5))
    out = sp.csr_matrix(out)
    out.sort_indices()
    return out


def modality_weights(weights: Mapping[str, float] | None, modalities: Sequence[str]) -> dict[str, float]:
    """Mixing weights ``{modality: w_m}`` for ``modalities``, normalised to sum to 1.

    Args:
        weights: ``{modality: weight}`` (non-negative; names of modalities not in
            ``modalities`` are ignored, so a config still applies after a modality ablation)
            or ``None`` for equal weights.
        modalities: the modalities the model uses.

    Raises:
        ValueError: a used modality has no weight, a weight is negative, or all are zero.
    """
    modalities = list(modalities)
    if weights is None:
        return {m: 1.0 / len(modalities) for m in modalities}
    missing = [m for m in modalities if m not in weights]
    if missing:
        raise ValueError(f"modality_weights {dict(weights)} give no weight for {missing} (modalities: {modalities})")
    chosen = {m: float(weights[m]) for m in modalities}
    if any(w < 0 or not np.isfinite(w) for w in chosen.values()) or sum(chosen.values()) <= 0:
        raise ValueError(f"modality_weights must be non-negative with a positive sum, got {chosen}")
    total = sum(chosen.values())
    return {m: w / total for m, w in chosen.items()}


def mix_graphs(graphs: Sequence[sp.spmatrix] | Mapping[str, sp.spmatrix], weights: Sequence[float] | Mapping[str, float]) -> sp.csr_matrix:
    r"""Weighted sum :math:`\sum_m w_m A_m` of same-shape graphs (e.g. one kNN graph per modality).

    Args:
        graphs: a sequence, or a mapping ``{modality: graph}``.
        weights: one non-negative weight per graph (same order / keys); not renormalised.
    """
    if isinstance(graphs, Mapping):
        if not isinstance(weights, Mapping) or set(weights) != set(graphs):
            raise ValueError(f"weights must name the same modalities as graphs: {sorted(graphs)}")
        keys = list(graphs)
        graphs, weights = [graphs[m] for m in keys], [weights[m] for m in keys]
    graphs, weights = list(graphs), [float(w) for w in weights]
    if not graphs or len(graphs) != len(weights):
        raise ValueError(f"need one weight per graph, got {len(graphs)} graphs and {len(weights)} weights")
    if any(w < 0 or not np.isfinite(w) for w in weights):
        raise ValueError(f"graph weights must be finite and non-negative, got {weights}")
    shape = graphs[0].shape
    if any(g.shape != shape for g in graphs):
        raise ValueError(f"graphs differ in shape: {[g.shape for g in graphs]}")
    out = sp.csr_matrix(shape, dtype=np.float64)
    for graph, weight in zip(graphs, weights):
        out = out + weight * sp.csr_matrix(graph, dtype=np.float64)
    out = sp.csr_matrix(out)
    out.sort_indices()
    return out


__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_COLUMN_BLOCK",
    "knn_adjacency",
    "knn_edges",
    "knn_graph",
    "knn_query_graph",
    "mix_graphs",
    "modality_weights",
]
