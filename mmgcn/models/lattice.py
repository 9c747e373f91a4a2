r"""LATTICE: item-item graphs learned from projected content, mixed with frozen kNN graphs.

Zhang et al., "Mining Latent Structures for Multimedia Recommendation", ACM MM 2021,
https://arxiv.org/abs/2104.09036; code: github.com/CRIPAC-DIG/LATTICE and MMRec's
``src/models/lattice.py`` (github.com/enoche/MMRec), read for the facts below.

Update rules, for modalities :math:`m` with item features :math:`F^m` and projections
:math:`W_m`:

.. math::
    \tilde S^m &= \operatorname{sym}\big(\operatorname{kNN}_k(\cos(F^m))\big)
      \qquad \text{(cosine-weighted top-}k\text{, frozen)}\\
    A^m &= \operatorname{kNN}_k\big(\cos(W_m F^m)\big)
      \qquad \text{(learned: cosine of the projections, top-}k\text{)}\\
    S &= (1-\lambda)\,\operatorname{sym}\Big(\sum_m \alpha_m A^m\Big) + \lambda \sum_m \alpha_m \tilde S^m,
      \qquad \alpha = \operatorname{softmax}(\mathbf w)\\
    \mathbf h &= S^{L_i} E_I, \qquad
    \bar E_U, \bar E_I = \frac{1}{L+1}\sum_{l=0}^{L} \big(D^{-1}(A + I)\big)^l E\\
    \mathbf u &= \bar{\mathbf e}_u, \qquad
    \mathbf i = \bar{\mathbf e}_i + \mathbf h_i / \lVert \mathbf h_i \rVert, \qquad
    \mathcal L = \mathrm{BPR} + \mathtt{reg\_weight}\cdot\Omega(\mathbf u, \mathbf i^+, \mathbf i^-)

with :math:`\operatorname{sym}(A) = D^{-1/2} A D^{-1/2}` (row sums), :math:`\lambda = 0.9`,
:math:`k = 10`, :math:`L_i = 1`, :math:`L = 2` (the authors' LightGCN backbone on the
left-normalised user-item graph with self-loops), fine-tuned features, and :math:`\Omega`
the L2 of the batch's final embeddings. As in the authors' code the learned graph is built
with gradients at the first batch of every epoch (:meth:`LATTICE.on_epoch_start`) and
used detached for the rest of the epoch; ranking rebuilds it from the current weights.
The modality weights :math:`\mathbf w` are learned (any number of modalities).

Memory: the authors build dense ``n_items x n_items`` similarity and graph matrices (160 GB
at 200k items). Here the top-:math:`k` search is blockwise (:func:`mmgcn.graph.knn_edges`),
the learned weights are one SDDMM over the kNN edges (:func:`mmgcn.nn.edge_dot`), the
graphs stay sparse edge lists (:func:`mmgcn.graph.mix_edges`, PyG's ``gcn_norm``), and the
product with gradients to the edge values is :func:`mmgcn.nn.learned_sparse_mm`: memory
``O(n_items k)`` plus one search tile.

Cold items: an item without train edges has content neighbours in both graphs, so
:math:`\mathbf h_i` represents it from content under the default ``edgeless_items="own"``.
A new item (:meth:`represent_new_items`) gets the rows it would have in both graphs
(neighbours among the catalogue, catalogue rows unchanged) and no ID embedding or
user-item edges: :math:`\mathbf i = \mathbf h_{\text{new}}/\lVert\mathbf h_{\text{new}}\rVert`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter

from mmgcn.data.dataset import Dataset
from mmgcn.graph import (
    csr_to_edges,
    knn_adjacency,
    knn_edges,
    knn_query_graph,
    mix_edges,
    normalize_csr,
    normalize_edges,
)
from mmgcn.models.base import (
    Embeddings,
    ModelConfig,
    Recommender,
    register_model,
)
from mmgcn.nn import (
    BipartitePropagation,
    LayerMean,
    SparseConv,
    csr_from_edges,
    edge_dot,
    transpose_csr,
)
from mmgcn.nn.content import ItemContent
from mmgcn.nn.losses import bpr_loss, l2_reg
from mmgcn.utils.modes import eval_mode


@dataclass(frozen=True)
class LATTICEConfig(ModelConfig):
    """Configuration of :class:`LATTICE` (MMRec's names in brackets).

    Attributes:
        dim: embedding width [embedding_size] (default 64).
        reg_weight: L2 on the batch's final user / item vectors [reg_weight] (default 1e-4).
        feature_dim: width of the projections the learned graph is built from
            [feat_embed_dim] (default 64).
        num_layers: :math:`L`, user-item LightGCN layers [len(weight_size)] (default 2).
        item_layers: :math:`L_i`, item-item graph layers [n_layers] (default 1).
        knn_k: neighbours per item [knn_k] (default 10).
        frozen_weight: :math:`\\lambda`, the frozen graphs' share of the item graph
            [lambda_coeff] (default 0.9).
        ui_norm: user-item graph: ``"left+self"`` (default, :math:`D^{-1}(A+I)` as the
            authors) or ``"sym"`` (LightGCN's :math:`D^{-1/2}AD^{-1/2}`).
        feature_transform: transform of the raw features (default ``"none"``, as the paper).
        tune_features: fine-tune the feature tables (default ``True``, as the authors' code).
    """

    dim: int = 64
    reg_weight: float = 1e-4
    feature_dim: int = 64
    num_layers: int = 2
    item_layers: int = 1
    knn_k: int = 10
    frozen_weight: float = 0.9
    ui_norm: Literal["left+self", "sym"] = "left+self"
    feature_transform: Literal["none", "l2", "zscore", "standard", "zscore+l2"] = "none"
    tune_features: bool = True

    def __post_init__(self) -> None:
        if min(self.dim, self.feature_dim, self.knn_k) <= 0:
            raise ValueError(f"dim, feature_dim and knn_k must be positive, got {self.dim}, {self.feature_dim}, {self.knn_k}")
        if self.num_layers < 0 or self.item_layers < 0:
            raise ValueError(f"num_layers and item_layers must be >= 0, got {self.num_layers}, {self.item_layers}")
        if self.reg_weight < 0:
            raise ValueError(f"reg_weight must be >= 0, got {self.reg_weight}")
        if not 0.0 <= self.frozen_weight <= 1.0:
            raise ValueError(f"frozen_weight must be in [0, 1], got {self.frozen_weight}")


def _sorted_edges(edge_index: Tensor, n: int) -> Tensor:
    """Edges sorted by row, then column (the CSR order :func:`edge_dot` needs)."""
    return edge_index[:, torch.argsort(edge_index[0] * n + edge_index[1])]


@register_model
class LATTICE(Recommender):
    """LATTICE (see the module docstring for the update rules, memory and cold start)."""

    name: ClassVar[str] = "lattice"
    Config: ClassVar[type[ModelConfig]] = LATTICEConfig
    uses_content: ClassVar[bool] = True
    # the projections and modality weights get gradients at an epoch's first batch only
    same_parameters_every_step: ClassVar[bool] = False

    def __init__(self, config: LATTICEConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        self.content = ItemContent(dataset, transform=config.feature_transform, trainable=config.tune_features,
                                   model=self.name)
        self.modalities = self.content.modalities
        # frozen graphs: cosine-weighted kNN per modality (cached), sym-normalised, as edge lists
        self._knn = {m: knn_adjacency(self.content.base(m), config.knn_k, weighted=True,
                                      mask=dataset.has_content(m), cache=True) for m in self.modalities}
        for m, adjacency in self._knn.items():
            edges, values = csr_to_edges(normalize_csr(adjacency, "sym"))
            self.register_buffer(f"frozen_edges_{m}", edges, persistent=False)
            self.register_buffer(f"frozen_values_{m}", values, persistent=False)
        self.projections = nn.ModuleDict({m: nn.Linear(d, config.feature_dim) for m, d in self.content.dims.items()})
        self.modality_logits = nn.Parameter(torch.zeros(len(self.modalities)))
        left = config.ui_norm == "left+self"
        self.ui_graph = BipartitePropagation(dataset.train, "left" if left else "sym", self_loops=left)
        self.layer_mean = LayerMean(config.num_layers)
        self.item_conv = SparseConv()
        self.user_embedding = nn.Parameter(torch.empty(self.n_users, config.dim))
        self.item_embedding = nn.Parameter(torch.empty(self.n_items, config.dim))
        self._epoch_graph: tuple[Tensor, Tensor] | None = None  # (operator, transpose), detached
        self._rebuild = True
        self._ranking_graph: tuple[tuple[int, ...], Tensor, Tensor] | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user_embedding)
        nn.init.xavier_uniform_(self.item_embedding)
        nn.init.zeros_(self.modality_logits)
        for projection in self.projections.values():
            projection.reset_parameters()
        self.content.reset_parameters()
        self._epoch_graph, self._ranking_graph, self._rebuild = None, None, True

    def on_epoch_start(self, epoch: int, rng: np.random.Generator) -> None:
        """Rebuild the learned graph (with gradients) at this epoch's first batch."""
        self._rebuild = True

    # ------------------------------------------------------------ the item graph
    def _projected(self) -> dict[str, Tensor]:
        return {m: self.projections[m](self.content.table(m)) for m in self.modalities}

    def _learned_edges(self, projected: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        r"""The unnormalised :math:`\sum_m \alpha_m A^m` as coalesced ``(edges (2, E), values (E,))``."""
        graphs = []
        for m, proj in projected.items():
            edges, _ = knn_edges(proj.detach(), self.config.knn_k, mask=self.content.present(m))
            edges = _sorted_edges(edges, self.n_items)
            unit = F.normalize(proj, dim=1)
            graphs.append((edges, edge_dot(edges, unit, unit).clamp_min(0)))
        return mix_edges(graphs, torch.softmax(self.modality_logits, 0), self.n_items)

    def _frozen_edges(self) -> tuple[Tensor, Tensor]:
        graphs = [(getattr(self, f"frozen_edges_{m}"), getattr(self, f"frozen_values_{m}")) for m in self.modalities]
        return mix_edges(graphs, torch.softmax(self.modality_logits, 0), self.n_items)

    def item_graph(self) -> tuple[Tensor, Tensor]:
        """The current item-item operator :math:`S` ``(n_items, n_items)``: a sparse CSR pattern
        (values detached) and its values ``(nnz,)``, differentiable in the projections,
        features and modality weights."""
        edges, values = self._learned_edges(self._projected())
        learned = (edges, normalize_edges(edges, values, self.n_items, "sym"))
        lam = self.config.frozen_weight
        mixed, mixed_values = mix_edges([learned, self._frozen_edges()], [1.0 - lam, lam], self.n_items)
        return csr_from_edges(mixed, mixed_values, (self.n_items, self.n_items)), mixed_values

    def _graph_key(self) -> tuple[int, ...]:
        # in-place updates (optimizer steps, load_state_dict) bump a tensor's version
        tensors = [self.modality_logits, *self.projections.parameters(), *self.content.tables.values()]
        return tuple(t._version for t in tensors) + tuple(t.data_ptr() for t in tensors)

    def _current_graph(self) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """``(operator, transpose or None, learned values or None)`` for this forward pass:
        in training, with gradients at the epoch's first batch and detached after it; in
        ranking, rebuilt whenever the weights changed (see the module docstring)."""
        if self.training:
            if self._rebuild or self._epoch_graph is None:
                graph, values = self.item_graph()
                self._epoch_graph, self._rebuild = (graph, transpose_csr(graph)), False
                return graph, None, values
            return (*self._epoch_graph, None)
        key = self._graph_key()
        if self._ranking_graph is None or self._ranking_graph[0] != key:
            with torch.no_grad():
                graph, _ = self.item_graph()
            self._ranking_graph = (key, graph, transpose_csr(graph))
        return self._ranking_graph[1], self._ranking_graph[2], None

    def _item_graph_states(self, graph: Tensor, transpose: Tensor | None, values: Tensor | None, layers: int) -> Tensor:
        states = self.item_embedding
        for _ in range(layers):
            states = self.item_conv(states, graph, transpose, edge_weight=values)
        return states

    # ------------------------------------------------------------ the three verbs
    def embed(self) -> Embeddings:
        users, items = self.layer_mean(self.ui_graph, self.user_embedding, self.item_embedding)
        content = F.normalize(self._item_graph_states(*self._current_graph(), self.config.item_layers), dim=1)
        return Embeddings(users, items + content, {"interactions": (users, items), "item_graph": (users, content)})

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        emb = self.embed()
        u, i_pos, i_neg = emb.users[users], emb.items[pos], emb.items[neg]
        loss = bpr_loss((u * i_pos).sum(1), (u * i_neg).sum(1))
        return loss + self.config.reg_weight * l2_reg(u, i_pos, i_neg)

    @torch.no_grad()
    def represent_new_items(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None
    ) -> Embeddings:
        """New items as rows of the learned and frozen item graphs (see the module docstring)."""
        feats, masks = self.content.new_items(features, present)
        n_new = next(iter(feats.values())).shape[0]
        with eval_mode(self):
            emb = self.embed()
            device = self.item_embedding.device
            content = self.item_embedding.new_zeros(n_new, self.config.dim)
            if self.config.item_layers > 0:
                alpha = torch.softmax(self.modality_logits, 0)
                rows = self._new_learned_rows(feats, masks, alpha)
                for k, m in enumerate(self.modalities):
                    frozen = knn_query_graph(feats[m].cpu(), self.content.base(m).cpu(), self.config.knn_k,
                                             adjacency=self._knn[m], norm="sym", weighted=True,
                                             mask=self.content.present(m).cpu(), query_mask=masks[m].cpu())
                    edges, values = csr_to_edges(frozen)
                    rows.append((edges.to(device), self.config.frozen_weight * alpha[k] * values.to(device)))
                edges = torch.cat([e for e, _ in rows], dim=1)
                values = torch.cat([v for _, v in rows])
                states = self._item_graph_states(*self._current_graph(), self.config.item_layers - 1)
                aggregated = scatter(values.unsqueeze(1) * states[edges[1]], edges[0], dim=0, dim_size=n_new)
                content = F.normalize(aggregated, dim=1)
            zeros = torch.zeros_like(content)
            return Embeddings(emb.users, content, {"interactions": (emb.users, zeros), "item_graph": (emb.users, content)})

    def _new_learned_rows(
        self, feats: Mapping[str, Tensor], masks: Mapping[str, Tensor], alpha: Tensor
    ) -> list[tuple[Tensor, Tensor]]:
        """New items' rows of :math:`(1-\\lambda)\\operatorname{sym}(\\sum_m \\alpha_m A^m)`, with the
        catalogue's learned row sums as column degrees (catalogue rows unchanged)."""
        projected = self._projected()
        catalogue_edges, catalogue_values = self._learned_edges(projected)
        catalogue_degree = scatter(catalogue_values, catalogue_edges[0], dim=0, dim_size=self.n_items)
        rows = []
        for k, m in enumerate(self.modalities):
            query = self.projections[m](feats[m])
            edges, sims = knn_edges(projected[m], self.config.knn_k, mask=self.content.present(m),
                                    queries=query, query_mask=masks[m])
            rows.append((edges, alpha[k] * sims.clamp_min(0)))
        n_new = next(iter(feats.values())).shape[0]
        new_degree = scatter(torch.cat([v for _, v in rows]), torch.cat([e[0] for e, _ in rows]), dim=0, dim_size=n_new)
        scale = (1.0 - self.config.frozen_weight)
        out = []
        for edges, values in rows:
            denominator = (new_degree[edges[0]] * catalogue_degree[edges[1]]).sqrt()
            out.append((edges, scale * torch.where(denominator > 0, values / denominator.clamp_min(1e-30), 0.0)))
        return out

    def extra_repr(self) -> str:
        return (f"n_users={self.n_users}, n_items={self.n_items}, dim={self.config.dim}, "
                f"modalities={list(self.modalities)}, knn_k={self.config.knn_k}, frozen_weight={self.config.frozen_weight}")


__all__ = ["LATTICE", "LATTICEConfig"]
