"""Moved to :mod:`mmgcn.graph.bipartite`; this module keeps the old import path working.

New code imports from :mod:`mmgcn.graph` (the graph toolkit: bipartite operators, item-item
kNN graphs, user-user co-interaction graphs, degree-sensitive pruning).
"""

from mmgcn.graph.bipartite import (  # noqa: F401
    ModalityGraph,
    Norm,
    bipartite_adjacency,
    bipartite_blocks_scipy,
    bipartite_operators,
    connected_components,
    degree_summary,
    edge_index,
    modality_graphs,
    normalize_scipy,
    normalized_adjacency,
    scipy_to_torch_csr,
    self_loop_weights,
    to_networkx,
)

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
