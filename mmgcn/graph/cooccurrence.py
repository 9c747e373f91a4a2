r"""User-user co-interaction graphs (DRAGON-style), computed in blocks of users.

DRAGON (Zhou et al., "Enhancing Dyadic Relations with Homogeneous Graphs for Multimodal
Recommendation", ECAI 2023, arXiv 2301.12097) and DualGNN link each user to the users who
share the most train items with them:

.. math:: C = R R^\top, \qquad C_{uv} = |\mathcal{I}_u \cap \mathcal{I}_v| \quad (u \ne v)

keeping each user's top ``k`` co-users by count (ties broken by the smaller user id). The
authors' preprocessing compares all user pairs in Python; here :math:`C` is formed one
block of users at a time as a sparse product, so the memory is one block's co-count rows,
never ``n_users^2``. Weight the kept edges with :func:`mmgcn.graph.row_softmax` (DRAGON's
softmax over co-counts), :func:`mmgcn.graph.normalize_csr` (``"row"``: the mean), or keep
the counts.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mmgcn.graph.bipartite import _check_train


def _top_k_per_row(block: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row (ties: smaller column first)."""
    block = sp.csr_matrix(block)
    block.sort_indices()
    rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
    # order within each row: decreasing value, then increasing column (lexsort: last key first)
    order = np.lexsort((block.indices, -block.data, rows))
    rank = np.arange(order.size) - np.repeat(block.indptr[:-1], np.diff(block.indptr))
    keep = order[rank < k]
    out = sp.csr_matrix((block.data[keep], (rows[keep], block.indices[keep])), shape=block.shape)
    out.sort_indices()
    return out


def user_cooccurrence_graph(train: sp.spmatrix, k: int, block_size: int = 4096) -> sp.csr_matrix:
    """Each user's top-``k`` co-users by number of shared train items, ``(n_users, n_users)`` float64 CSR.

    Args:
        train: ``(n_users, n_items)`` train interactions.
        k: co-users kept per user (fewer where a user shares items with fewer users).
        block_size: users per block of the sparse product.

    Returns:
        Row ``u`` holds ``C_{uv}`` (shared items) for ``u``'s top-``k`` users ``v != u``; not
        symmetric in general (``v`` may be in ``u``'s top ``k`` but not the reverse).
    """
    if k <= 0 or block_size <= 0:
        raise ValueError(f"k and block_size must be positive, got {k}, {block_size}")
    r = _check_train(train)
    rt = sp.csr_matrix(r.T)
    n_users = r.shape[0]
    blocks = []
    for start in range(0, n_users, block_size):
        stop = min(start + block_size, n_users)
        counts = sp.csr_matrix(r[start:stop] @ rt)
        rows = np.repeat(np.arange(stop - start), np.diff(counts.indptr))
        counts.data[counts.indices == rows + start] = 0  # a user is not their own co-user
        counts.eliminate_zeros()
        blocks.append(_top_k_per_row(counts, k))
    out = sp.csr_matrix(sp.vstack(blocks, format="csr"))
    out.sort_indices()
    return out


__all__ = ["user_cooccurrence_graph"]
