r"""Graph views of the TRAIN interactions: normalised sparse operators, ``edge_index``, networkx.

Node numbering, everywhere in the toolkit: users first, then items. User ``u`` is node
``u``; item ``i`` is node ``n_users + i``. Only the train split ever enters a graph: the
functions here take the train matrix itself (``dataset.train``), so valid/test edges
cannot leak into propagation.

Normalisations of the (square, symmetric) bipartite adjacency
:math:`A = \begin{pmatrix} 0 & R \\ R^\top & 0 \end{pmatrix}` with degree matrix
:math:`D`:

* ``"sym"``: :math:`D^{-1/2} A D^{-1/2}` (GCN / LightGCN),
* ``"left"`` (alias ``"mean"``): :math:`D^{-1} A` (row-stochastic: mean of neighbours),
* ``"none"``: :math:`A` (sum of neighbours).

Nodes of degree zero (users or items without train interactions) get all-zero rows and
columns: never NaN or inf.

Propagation over a bipartite graph only ever needs the two off-diagonal blocks, so
:func:`bipartite_operators` returns them directly (the user->item ``(n_users, n_items)``
block and the item->user ``(n_items, n_users)`` block); one bipartite layer is then two
sparse products of half the size instead of one over the square matrix.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components as _scipy_components

if TYPE_CHECKING:
    import networkx

    from mmgcn.data.dataset import Dataset

Norm = Literal["sym", "left", "mean", "none"]
_NORMS = ("sym", "left", "mean", "none")


# ---------------------------------------------------------------------- helpers
def _check_train(train: Any) -> sp.csr_matrix:
    """``train`` as a binary float64 CSR (values ignored: an edge is a stored entry)."""
    if not sp.issparse(train):
        raise TypeError(
            f"train must be a scipy.sparse matrix (users x items), got {type(train).__name__}; "
            f"pass dataset.train"
        )
    if train.ndim != 2 or train.shape[0] == 0 or train.shape[1] == 0:
        raise ValueError(f"train must be a non-empty 2-D (users x items) matrix, got shape {train.shape}")
    csr = sp.csr_matrix(train, dtype=np.float64, copy=True)
    # one index dtype for indptr and indices: scipy's tocoo()/T fail on mixed int32/int64
    csr.indptr = csr.indptr.astype(np.int64, copy=False)
    csr.indices = csr.indices.astype(np.int64, copy=False)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    if csr.nnz and not np.all(np.isfinite(csr.data)):
        raise ValueError("train holds NaN or inf values; interactions must be finite")
    csr.data[:] = 1.0
    csr.sort_indices()
    return csr


def _check_norm(norm: str) -> str:
    if norm not in _NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of {list(_NORMS)}")
    return "left" if norm == "mean" else norm


def _inverse_power(degree: np.ndarray, power: float) -> np.ndarray:
    """``degree ** -power`` with zero where the degree is zero (isolated nodes stay zero)."""
    out = np.zeros_like(degree, dtype=np.float64)
    nonzero = degree > 0
    out[nonzero] = degree[nonzero] ** -power
    return out


def scipy_to_torch_csr(matrix: sp.spmatrix, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A scipy sparse matrix as a torch sparse CSR tensor (int64 indices, sorted columns)."""
    csr = sp.csr_matrix(matrix)
    csr.sum_duplicates()
    csr.sort_indices()
    with warnings.catch_warnings():
        # torch warns that sparse CSR is "beta" on every construction; we rely on it knowingly
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(csr.indptr.astype(np.int64)),
            torch.from_numpy(csr.indices.astype(np.int64)),
            torch.from_numpy(csr.data).to(dtype),
            size=csr.shape,
            check_invariants=False,  # scipy already guarantees sorted, in-range indices
        )


def bipartite_adjacency(train: sp.spmatrix, self_loops: bool = False) -> sp.csr_matrix:
    """The unnormalised square adjacency ``(n_users + n_items,)*2`` as scipy CSR (float64)."""
    r = _check_train(train)
    adj = sp.bmat([[None, r], [r.T, None]], format="csr")
    if self_loops:
        adj = adj + sp.identity(adj.shape[0], format="csr")
    adj.sort_indices()
    return adj


def normalize_scipy(adj: sp.spmatrix, norm: str = "sym") -> sp.csr_matrix:
    """Normalise a square symmetric scipy adjacency by its row degrees (see module doc)."""
    norm = _check_norm(norm)
    adj = sp.csr_matrix(adj, dtype=np.float64)
    if norm == "none":
        return adj
    degree = np.asarray(adj.sum(axis=1)).ravel()
    if norm == "sym":
        scale = sp.diags(_inverse_power(degree, 0.5))
        out = scale @ adj @ scale
    else:
        out = sp.diags(_inverse_power(degree, 1.0)) @ adj
    out = sp.csr_matrix(out)
    out.sort_indices()
    return out


# ---------------------------------------------------------------------- public API
def normalized_adjacency(train: sp.spmatrix, norm: Norm = "sym", self_loops: bool = False) -> torch.Tensor:
    """The normalised user-item adjacency as a torch sparse CSR tensor.

    Args:
        train: ``(n_users, n_items)`` train interactions (``dataset.train``); stored entries
            are edges, their values are ignored.
        norm: ``"sym"`` (default) :math:`D^{-1/2}AD^{-1/2}`, ``"left"``/``"mean"``
            :math:`D^{-1}A`, or ``"none"``.
        self_loops: add the identity before normalising (default ``False``).

    Returns:
        ``(n_users + n_items, n_users + n_items)`` float32 sparse CSR; users first, item
        ``i`` at node ``n_users + i``.
    """
    return scipy_to_torch_csr(normalize_scipy(bipartite_adjacency(train, self_loops), norm))


def _degrees(r: sp.csr_matrix, self_loops: bool) -> tuple[np.ndarray, np.ndarray]:
    """User and item degrees of the bipartite graph (``+1`` each with self-loops)."""
    user_deg = np.diff(r.indptr).astype(np.float64)
    item_deg = np.bincount(r.indices, minlength=r.shape[1]).astype(np.float64)
    return (user_deg + 1.0, item_deg + 1.0) if self_loops else (user_deg, item_deg)


def bipartite_blocks_scipy(
    train: sp.spmatrix, norm: Norm = "sym", self_loops: bool = False
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """The two off-diagonal blocks of :func:`normalized_adjacency` as scipy CSR (float64).

    With ``self_loops`` the degrees count the added identity (``d + 1``), as in
    :func:`normalized_adjacency` with ``self_loops=True``; the diagonal itself is
    :func:`self_loop_weights`.
    """
    norm = _check_norm(norm)
    r = _check_train(train)
    user_deg, item_deg = _degrees(r, self_loops)
    rt = sp.csr_matrix(r.T)
    if norm == "sym":
        user_side, item_side = _inverse_power(user_deg, 0.5), _inverse_power(item_deg, 0.5)
        user_to_item = sp.diags(user_side) @ r @ sp.diags(item_side)
        item_to_user = sp.diags(item_side) @ rt @ sp.diags(user_side)
    elif norm == "left":
        user_to_item = sp.diags(_inverse_power(user_deg, 1.0)) @ r
        item_to_user = sp.diags(_inverse_power(item_deg, 1.0)) @ rt
    else:
        user_to_item, item_to_user = r, rt
    out = (sp.csr_matrix(user_to_item), sp.csr_matrix(item_to_user))
    for block in out:
        block.sort_indices()
    return out


def self_loop_weights(train: sp.spmatrix, norm: Norm = "sym") -> tuple[np.ndarray, np.ndarray]:
    r"""The diagonal of the normalised adjacency with self-loops: users ``(n_users,)``, items ``(n_items,)``.

    :math:`1/(d+1)` for ``"sym"`` and ``"left"`` (with :math:`d` the train degree), ``1`` for
    ``"none"``; with :func:`bipartite_blocks_scipy` (``self_loops=True``) it gives the whole
    operator of :func:`normalized_adjacency` with ``self_loops=True``.
    """
    norm = _check_norm(norm)
    user_deg, item_deg = _degrees(_check_train(train), self_loops=True)
    if norm == "none":
        return np.ones_like(user_deg), np.ones_like(item_deg)
    return 1.0 / user_deg, 1.0 / item_deg


def bipartite_operators(train: sp.spmatrix, norm: Norm = "sym") -> tuple[torch.Tensor, torch.Tensor]:
    """The user->item and item->user blocks of the normalised adjacency (torch sparse CSR).

    ``user_to_item @ item_states`` gives the users' aggregated messages ``(n_users, d)`` and
    ``item_to_user @ user_states`` the items' ``(n_items, d)``; together they equal one
    product with :func:`normalized_adjacency` (without self-loops), at half the work of the
    square matrix's empty diagonal blocks.

    Args:
        train: ``(n_users, n_items)`` train interactions.
        norm: as in :func:`normalized_adjacency` (default ``"sym"``).

    Returns:
        ``(user_to_item (n_users, n_items), item_to_user (n_items, n_users))`` float32 CSR.
    """
    user_to_item, item_to_user = bipartite_blocks_scipy(train, norm)
    return scipy_to_torch_csr(user_to_item), scipy_to_torch_csr(item_to_user)


def edge_index(train: sp.spmatrix) -> torch.Tensor:
    """PyG ``edge_index`` ``(2, 2 * nnz)`` of the bipartite train graph, both directions.

    The first ``nnz`` columns are user -> item edges (row = user, col = ``n_users + item``),
    the last ``nnz`` their reverses; items are offset by ``n_users``.
    """
    coo = _check_train(train).tocoo()
    users = torch.from_numpy(coo.row.astype(np.int64))
    items = torch.from_numpy(coo.col.astype(np.int64)) + coo.shape[0]
    return torch.stack([torch.cat([users, items]), torch.cat([items, users])])


@dataclass(frozen=True, eq=False)
class ModalityGraph:
    """The graph one modality's GCN runs on.

    Attributes:
        modality: modality name (a key of ``dataset.features``).
        features: ``(n_items, d_m)`` float32 item features of this modality.
        user_to_item: ``(n_users, n_items)`` normalised sparse CSR block.
        item_to_user: ``(n_items, n_users)`` normalised sparse CSR block.
    """

    modality: str
    features: torch.Tensor
    user_to_item: torch.Tensor
    item_to_user: torch.Tensor


def modality_graphs(dataset: Dataset, norm: Norm = "sym") -> dict[str, ModalityGraph]:
    """Per-modality graph views ``{modality: ModalityGraph}`` built from ``dataset.train``.

    In MMGCN every modality runs its own GCN, but on the same user-item structure: what
    differs per modality is the item node features, not the edges. So all views share one
    pair of operator tensors (the same objects, built once); models that learn
    modality-specific structure (e.g. item-item kNN graphs) build their own on top.
    """
    user_to_item, item_to_user = bipartite_operators(dataset.train, norm)
    return {
        m: ModalityGraph(m, feats, user_to_item, item_to_user) for m, feats in dataset.features.items()
    }


def degree_summary(train: sp.spmatrix) -> dict[str, Any]:
    """Degree statistics of the train graph: per side min/mean/median/max and isolated count."""
    r = _check_train(train)
    out: dict[str, Any] = {"n_users": r.shape[0], "n_items": r.shape[1], "edges": int(r.nnz)}
    for side, degree in (("user", np.diff(r.indptr)), ("item", np.bincount(r.indices, minlength=r.shape[1]))):
        out[side] = {
            "min": int(degree.min()),
            "mean": float(degree.mean()),
            "median": float(np.median(degree)),
            "max": int(degree.max()),
            "isolated": int((degree == 0).sum()),
        }
    return out


def connected_components(train: sp.spmatrix) -> np.ndarray:
    """Sizes of the connected components of the bipartite train graph, largest first.

    Isolated users/items count as components of size 1.
    """
    _, labels = _scipy_components(bipartite_adjacency(train), directed=False)
    return np.sort(np.bincount(labels))[::-1]


def to_networkx(train: sp.spmatrix, max_nodes: int = 200_000) -> networkx.Graph:
    """The bipartite train graph as a ``networkx.Graph`` (for inspection of small graphs).

    Node ``u < n_users`` is a user, node ``n_users + i`` item ``i``; each node carries
    ``kind`` (``"user"``/``"item"``), ``bipartite`` (0/1) and ``index`` (its user/item id).

    Raises:
        ValueError: the graph has more than ``max_nodes`` nodes (networkx would be slow
            and memory-hungry; use :func:`degree_summary` / :func:`connected_components`).
    """
    import networkx as nx

    r = _check_train(train)
    n_users, n_items = r.shape
    if n_users + n_items > max_nodes:
        raise ValueError(
            f"graph has {n_users + n_items} nodes > max_nodes={max_nodes}; networkx is for small "
            f"graphs (raise max_nodes, or use degree_summary()/connected_components())"
        )
    graph = nx.Graph()
    graph.add_nodes_from((u, {"kind": "user", "bipartite": 0, "index": u}) for u in range(n_users))
    graph.add_nodes_from(
        (n_users + i, {"kind": "item", "bipartite": 1, "index": i}) for i in range(n_items)
    )
    coo = r.tocoo()
    graph.add_edges_from(zip(coo.row.tolist(), (coo.col + n_users).tolist()))
    return graph


__all__ = [
    "ModalityGraph",
    "bipartite_adjacency",
    "bipartite_blocks_scipy",
    "bipartite_operators",
    "connected_components",
    "degree_summary",
    "edge_index",
    "modality_graphs",
    "normalize_scipy",
    "normalized_adjacency",
    "scipy_to_torch_csr",
    "self_loop_weights",
    "to_networkx",
]
