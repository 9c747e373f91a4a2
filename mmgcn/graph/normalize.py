r"""Normalisation of general sparse graphs: scipy CSR (fixed graphs) and edge lists (learned ones).

Conventions. A graph operator :math:`A` ``(n_out, n_in)`` acts as :math:`X' = A X`: row
``r`` of :math:`A` lists the nodes whose states flow into node ``r``. Edge lists in torch
follow the same orientation: ``edge_index = (row, col)`` with ``out[row] += w * x[col]``
(PyG's ``adj_t``; PyG's ``edge_index`` is the flipped ``(col, row)``).

Normalisations, with :math:`d_r = \sum_c A_{rc}` the row sums (for a kNN graph, the sum
of a node's neighbour weights):

* ``"sym"``: :math:`d_r^{-1/2} A_{rc} d_c^{-1/2}` (GCN; for a non-symmetric kNN graph
  this uses the row sums on both sides, as LATTICE and FREEDOM do),
* ``"row"``: :math:`A_{rc} / d_r` (row-stochastic: a weighted mean of the neighbours),
* ``"none"``: :math:`A`.

Rows with zero sum stay zero: never NaN or inf.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import scatter

GraphNorm = Literal["sym", "row", "none"]
_NORMS = ("sym", "row", "none")


def _check_norm(norm: str) -> str:
    if norm not in _NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of {list(_NORMS)}")
    return norm


def _inverse_power(values: np.ndarray, power: float) -> np.ndarray:
    out = np.zeros_like(values, dtype=np.float64)
    positive = values > 0
    out[positive] = values[positive] ** -power
    return out


def normalize_csr(matrix: sp.spmatrix, norm: GraphNorm = "sym") -> sp.csr_matrix:
    """Normalise a square sparse graph by its row sums (see the module doc); float64 CSR."""
    _check_norm(norm)
    csr = sp.csr_matrix(matrix, dtype=np.float64)
    if csr.shape[0] != csr.shape[1]:
        raise ValueError(f"expected a square graph, got shape {csr.shape}")
    if norm == "none":
        out = csr.copy()
    else:
        degree = np.asarray(csr.sum(axis=1)).ravel()
        if norm == "sym":
            scale = sp.diags(_inverse_power(degree, 0.5))
            out = sp.csr_matrix(scale @ csr @ scale)
        else:
            out = sp.csr_matrix(sp.diags(_inverse_power(degree, 1.0)) @ csr)
    out.sort_indices()
    return out


def symmetrize(matrix: sp.spmatrix, how: Literal["max", "sum", "mean"] = "max") -> sp.csr_matrix:
    """A symmetric graph from a directed one: ``max(A, A^T)``, ``A + A^T`` or ``(A + A^T) / 2``."""
    csr = sp.csr_matrix(matrix)
    if how == "max":
        out = csr.maximum(csr.T)
    elif how == "sum":
        out = csr + csr.T
    elif how == "mean":
        out = (csr + csr.T) * 0.5
    else:
        raise ValueError(f"unknown how={how!r}; expected 'max', 'sum' or 'mean'")
    out = sp.csr_matrix(out)
    out.sort_indices()
    return out


def row_softmax(matrix: sp.spmatrix) -> sp.csr_matrix:
    """Softmax over each row's stored entries (empty rows stay empty): DRAGON's user-user weights."""
    csr = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    if csr.nnz == 0:
        return csr
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    row_max = np.full(csr.shape[0], -np.inf)
    np.maximum.at(row_max, rows, csr.data)
    csr.data = np.exp(csr.data - row_max[rows])
    row_sum = np.bincount(rows, weights=csr.data, minlength=csr.shape[0])
    csr.data /= row_sum[rows]
    return csr


def normalize_edges(edge_index: Tensor, weight: Tensor | None, num_nodes: int, norm: GraphNorm = "sym") -> Tensor:
    """Normalised weights ``(E,)`` of an edge list ``(row, col)`` (differentiable in ``weight``).

    Args:
        edge_index: ``(2, E)`` long, ``(row, col)`` in the operator orientation (see the module doc).
        weight: ``(E,)`` edge weights (``None``: all ones); gradients flow through.
        num_nodes: number of nodes (the graph is ``(num_nodes, num_nodes)``).
        norm: ``"sym"`` (PyG's ``gcn_norm`` with the row sums as degrees), ``"row"`` or ``"none"``.
    """
    _check_norm(norm)
    if weight is None:
        weight = torch.ones(edge_index.shape[1], device=edge_index.device)
    if norm == "none":
        return weight
    row = edge_index[0]
    if norm == "sym":
        # gcn_norm takes PyG's (source, target) order and sums degrees at the target: our row
        _, out = gcn_norm(edge_index.flip(0), weight, num_nodes, improved=False, add_self_loops=False)
        return out
    degree = scatter(weight, row, dim=0, dim_size=num_nodes, reduce="sum")
    inverse = torch.where(degree > 0, 1.0 / degree.clamp_min(torch.finfo(degree.dtype).tiny), torch.zeros_like(degree))
    return weight * inverse[row]


__all__ = ["GraphNorm", "normalize_csr", "normalize_edges", "row_softmax", "symmetrize"]
