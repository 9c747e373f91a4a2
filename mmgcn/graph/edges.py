r"""Edge lists in torch: conversion from scipy and differentiable mixing of graphs.

Edge lists use the operator orientation of :mod:`mmgcn.graph.normalize`:
``edge_index = (row, col)``, ``out[row] += w * x[col]``. Mixing is differentiable in the
edge values and in the mixing weights, so a model can learn how much each modality's graph
counts (LATTICE's softmax-weighted modality graphs).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor
from torch_geometric.utils import coalesce


def csr_to_edges(matrix: sp.spmatrix, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """A scipy sparse matrix as ``(edge_index (2, nnz) long, values (nnz,))``, row-major sorted."""
    csr = sp.csr_matrix(matrix)
    csr.sum_duplicates()
    csr.sort_indices()
    rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
    edge_index = torch.from_numpy(np.stack([rows, csr.indices.astype(np.int64)]))
    return edge_index, torch.from_numpy(csr.data).to(dtype)


def mix_edges(
    graphs: Sequence[tuple[Tensor, Tensor]], weights: Tensor | Sequence[float], num_nodes: int
) -> tuple[Tensor, Tensor]:
    r"""The weighted sum :math:`\sum_m w_m A_m` of graphs given as edge lists.

    Args:
        graphs: ``[(edge_index (2, E_m), values (E_m,)), ...]`` on one device.
        weights: ``(M,)`` one weight per graph (a tensor: gradients flow to it, e.g. a
            softmax over learned modality logits).
        num_nodes: the graphs are ``(num_nodes, num_nodes)``.

    Returns:
        Coalesced ``(edge_index (2, E), values (E,))`` sorted by row then column (duplicate
        edges summed; PyG's ``coalesce``), ready for :func:`mmgcn.nn.sparse.csr_from_edges`.
    """
    if not graphs:
        raise ValueError("mix_edges needs at least one graph")
    weights = torch.as_tensor(weights, dtype=graphs[0][1].dtype, device=graphs[0][1].device)
    if weights.shape != (len(graphs),):
        raise ValueError(f"need one weight per graph: {len(graphs)} graphs, weights of shape {tuple(weights.shape)}")
    edge_index = torch.cat([e for e, _ in graphs], dim=1)
    values = torch.cat([weights[m] * v for m, (_, v) in enumerate(graphs)])
    return coalesce(edge_index, values, num_nodes=num_nodes, reduce="sum")


__all__ = ["csr_to_edges", "mix_edges"]
