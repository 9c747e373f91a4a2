"""Ranking primitives shared by every path that ranks items: the evaluator, ``recommend()``
and the explanations. One implementation, so that all of them mask and break ties alike.

* :func:`top_k_items`: the best ``k`` columns per row, ties broken by the lower column
  index (deterministic, whatever ``torch.topk`` does with ties);
* :func:`mask_rows_`: set ``out[r, c] = value`` for the stored entries of chosen rows of a
  CSR matrix (e.g. ``-inf`` on the items a user has already seen);
* :func:`binary_union`: the union of several ``(n_users, n_items)`` interaction matrices.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor


def top_k_items(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` best columns per row, ties broken by the lower column index.

    Args:
        scores: ``(n_users, n_candidates)``; masked entries hold ``-inf``. NaN sorts
            first (as in ``torch.topk``), so callers can detect it in the returned values.
        k: list length; clipped to ``n_candidates``.

    Returns:
        ``(values, indices)``, each ``(n_users, min(k, n_candidates))``, best first.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be 2-D, got shape {tuple(scores.shape)}")
    k = min(k, scores.shape[1])
    if k == 0 or scores.shape[0] == 0:
        return torch.topk(scores, k, dim=1)
    # one extra place tells whether a tie straddles the cut-off: then topk may have picked
    # any of the tied items, and those rows are redone with a full stable sort
    extra = int(k < scores.shape[1])
    values, indices = torch.topk(scores, k + extra, dim=1)
    straddling = values[:, k - 1] == values[:, k] if extra else None
    values, indices = values[:, :k], indices[:, :k]
    # within the list: order by (score desc, index asc); a stable sort by score of the
    # index-sorted list does exactly that
    indices, perm = indices.sort(dim=1)
    values = values.gather(1, perm)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices
    values, indices = values.gather(1, order), indices.gather(1, order)
    if straddling is not None:
        rows = torch.nonzero(straddling).flatten()
        if rows.numel():
            full = torch.sort(scores[rows], dim=1, descending=True, stable=True)
            values[rows] = full.values[:, :k]
            indices[rows] = full.indices[:, :k]
    return values, indices


def mask_rows_(out: Tensor, matrix: sp.csr_matrix, rows: np.ndarray | Tensor, value: Any) -> Tensor:
    """``out[r, c] = value`` for each stored entry ``(rows[r], c)`` of ``matrix``, in place.

    Args:
        out: ``(len(rows), n_cols)`` tensor to modify.
        matrix: ``(n_rows_total, n_cols)`` CSR matrix.
        rows: row ids of ``matrix``, one per row of ``out``.
    """
    rows = rows.cpu().numpy() if isinstance(rows, Tensor) else np.asarray(rows)
    sub = matrix[rows]
    if sub.nnz:
        r = torch.from_numpy(np.repeat(np.arange(len(rows)), np.diff(sub.indptr))).to(out.device)
        c = torch.from_numpy(sub.indices.astype(np.int64)).to(out.device)
        out[r, c] = value
    return out


def binary_union(matrices: Iterable[sp.spmatrix], shape: tuple[int, int]) -> sp.csr_matrix:
    """The entry-wise union of binary matrices of ``shape``, as a sorted binary CSR."""
    total = sp.csr_matrix(shape, dtype=np.float32)
    for matrix in matrices:
        total = total + matrix
    total = sp.csr_matrix(total)
    total.data[:] = 1.0
    total.sort_indices()
    return total


__all__ = ["binary_union", "mask_rows_", "top_k_items"]
