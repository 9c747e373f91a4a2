"""Neural building blocks: sparse propagation layers, the modality GCN layer, fusion blocks, losses.

Propagation (over graphs built by :mod:`mmgcn.graph`):

* :mod:`mmgcn.nn.sparse`: CSR products for fixed operators (:func:`sparse_mm`, prebuilt
  transpose for the backward) and learned ones (:func:`learned_sparse_mm`, gradients to
  the edge values by SDDMM; :func:`edge_dot` for differentiable edge scores);
* :mod:`mmgcn.nn.conv`: :class:`SparseConv`, a PyG ``MessagePassing`` layer over a sparse
  ``adj_t`` whose ``message_and_aggregate`` is one CSR product;
* :mod:`mmgcn.nn.propagation`: :class:`BipartitePropagation` (user-item hop),
  :class:`GraphPropagation` (square graphs), :class:`LayerMean` (LightGCN's layer mean).
"""

from mmgcn.nn.conv import SparseConv
from mmgcn.nn.propagation import (
    BipartitePropagation,
    GraphPropagation,
    LayerMean,
    layer_mean_propagation,
)
from mmgcn.nn.sparse import csr_from_edges, edge_dot, learned_sparse_mm, sparse_mm, transpose_csr

__all__ = [
    "BipartitePropagation",
    "GraphPropagation",
    "LayerMean",
    "SparseConv",
    "csr_from_edges",
    "edge_dot",
    "layer_mean_propagation",
    "learned_sparse_mm",
    "sparse_mm",
    "transpose_csr",
]
