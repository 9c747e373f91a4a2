r"""Degree-sensitive edge pruning of the user-item graph (FREEDOM's denoising).

Zhou & Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal
Recommendation", ACM MM 2023, arXiv 2211.06924, Sec. 3.2: at every training epoch a share
``keep`` of the train edges is sampled without replacement, edge :math:`(u, i)` with
probability proportional to

.. math:: p_{ui} \propto \frac{1}{\sqrt{d_u}\sqrt{d_i}}

(degrees of the full train graph), so edges between popular users and items are dropped
more often; the kept graph is re-normalised with its own degrees before propagation, and
evaluation uses the full graph.

Sampling without replacement by weight uses exponential keys (Efraimidis & Spirakis,
2006): draw :math:`u_e \sim U(0, 1)` and keep the ``m`` edges with the largest
:math:`\log(u_e) / p_e`; this has the distribution of ``m`` successive weighted draws
without replacement (``torch.multinomial(p, m)``, as the authors' code) in one vectorised
pass, with no limit on the number of edges.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mmgcn.graph.bipartite import _check_train


def degree_edge_weights(train: sp.spmatrix) -> np.ndarray:
    r""":math:`1/\sqrt{d_u d_i}` for every stored edge of ``train``, in CSR order ``(nnz,)`` float64."""
    r = _check_train(train)
    user_deg = np.diff(r.indptr).astype(np.float64)
    item_deg = np.bincount(r.indices, minlength=r.shape[1]).astype(np.float64)
    rows = np.repeat(np.arange(r.shape[0]), np.diff(r.indptr))
    return 1.0 / np.sqrt(user_deg[rows] * item_deg[r.indices])


def degree_sensitive_prune(train: sp.spmatrix, keep: float, rng: np.random.Generator) -> sp.csr_matrix:
    r"""A random subgraph of ``train`` with ``floor(keep * nnz)`` edges, drawn by :math:`1/\sqrt{d_u d_i}`.

    Args:
        train: ``(n_users, n_items)`` train interactions.
        keep: share of edges kept, in ``(0, 1]`` (FREEDOM's ``1 - dropout``); ``1`` returns
            every edge.
        rng: the source of randomness (the trainer's per-epoch generator, so that resumed
            runs redraw the same graphs).

    Returns:
        ``(n_users, n_items)`` binary float64 CSR with the kept edges (normalise it with
        :func:`mmgcn.graph.bipartite_operators`, which uses the kept graph's degrees).
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    r = _check_train(train)
    n_keep = int(r.nnz * keep)
    if n_keep >= r.nnz:
        return r
    weights = degree_edge_weights(r)
    # log(u) / w: the largest n_keep keys are a weighted sample without replacement
    keys = np.log(rng.random(r.nnz)) / weights
    chosen = np.argpartition(-keys, n_keep - 1)[:n_keep] if n_keep else np.empty(0, dtype=np.int64)
    mask = np.zeros(r.nnz, dtype=bool)
    mask[chosen] = True
    rows = np.repeat(np.arange(r.shape[0]), np.diff(r.indptr))
    out = sp.csr_matrix((np.ones(n_keep), (rows[mask], r.indices[mask])), shape=r.shape)
    out.sort_indices()
    return out


__all__ = ["degree_edge_weights", "degree_sensitive_prune"]
