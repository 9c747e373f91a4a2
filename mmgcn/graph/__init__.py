r"""The graph toolkit: pure functions that build the graphs models propagate over.

Everything here is construction (scipy CSR and torch edge lists in, the same out); the
layers that propagate over the results are in :mod:`mmgcn.nn` (:class:`~mmgcn.nn.SparseConv`,
:class:`~mmgcn.nn.BipartitePropagation`, :class:`~mmgcn.nn.GraphPropagation`,
:class:`~mmgcn.nn.LayerMean`). Only the train split ever enters a graph.

=========================  ===============================================================
module                     builds
=========================  ===============================================================
:mod:`.bipartite`          the user-item graph: normalised adjacency and its two blocks
                           (``sym``/``left``/``none``, optional self-loops), ``edge_index``,
                           degree statistics, components, networkx view
:mod:`.knn`                item-item kNN graphs per modality: cosine top-``k`` per row in
                           tiles (memory independent of ``n_items^2``), binary or
                           cosine-weighted, normalised, cached on disk by the features'
                           fingerprint; :func:`mix_graphs` for fixed modality weights
:mod:`.edges`              torch edge lists: from scipy, and :func:`mix_edges` (weights and
                           values differentiable: learned modality weights)
:mod:`.normalize`          ``sym``/``row`` normalisation of square graphs (scipy, and
                           differentiable torch edge weights via PyG's ``gcn_norm``),
                           symmetrisation, row softmax
:mod:`.cooccurrence`       user-user graphs: top-``k`` co-users by shared train items
:mod:`.pruning`            degree-sensitive sampling of the user-item graph
                           (:math:`p \propto 1/\sqrt{d_u d_i}`, FREEDOM)
:mod:`.cache`              the on-disk cache (``$MMGCN_CACHE/graphs``), atomic writes
=========================  ===============================================================

Per-epoch graphs (a re-drawn pruned graph) are built in a model's
:meth:`~mmgcn.models.base.Recommender.on_epoch_start`, with the generator the trainer
passes (seeded from the run seed and the epoch, so ``--resume`` redraws the same graphs).
"""

from mmgcn.graph.bipartite import (
    ModalityGraph,
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
from mmgcn.graph.cache import fingerprint
from mmgcn.graph.cooccurrence import user_cooccurrence_graph
from mmgcn.graph.edges import csr_to_edges, mix_edges
from mmgcn.graph.knn import (
    knn_adjacency,
    knn_edges,
    knn_graph,
    knn_query_graph,
    mix_graphs,
    modality_weights,
)
from mmgcn.graph.normalize import normalize_csr, normalize_edges, row_softmax, symmetrize
from mmgcn.graph.pruning import degree_edge_weights, degree_sensitive_prune

__all__ = [
    "ModalityGraph",
    "bipartite_adjacency",
    "bipartite_blocks_scipy",
    "bipartite_operators",
    "connected_components",
    "csr_to_edges",
    "degree_edge_weights",
    "degree_sensitive_prune",
    "degree_summary",
    "edge_index",
    "fingerprint",
    "knn_adjacency",
    "knn_edges",
    "knn_graph",
    "knn_query_graph",
    "mix_edges",
    "mix_graphs",
    "modality_graphs",
    "modality_weights",
    "normalize_csr",
    "normalize_edges",
    "normalize_scipy",
    "normalized_adjacency",
    "row_softmax",
    "scipy_to_torch_csr",
    "self_loop_weights",
    "symmetrize",
    "to_networkx",
    "user_cooccurrence_graph",
]
