r"""FREEDOM: a frozen item-item graph and a degree-pruned user-item graph (Zhou & Shen, MM 2023).

Zhou & Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal
Recommendation", ACM MM 2023, https://arxiv.org/abs/2211.06924; the authors' code is
MMRec's ``src/models/freedom.py`` (github.com/enoche/MMRec), read for the facts below.

Update rules, for modalities :math:`m \in \mathcal M` with item features :math:`F^m`:

.. math::
    S^m &= \operatorname{sym}\big(\operatorname{kNN}_k(\cos(F^m))\big), \qquad
    S = \sum_m \alpha_m S^m \qquad \text{(binary top-}k\text{ graphs, frozen before training)}\\
    \tilde H &= S^{L_i} E_I \qquad \text{(item-item graph over the item ID embeddings)}\\
    \bar E_U, \bar E_I &= \frac{1}{L+1}\sum_{l=0}^{L} \hat A_\rho^{\,l} E
      \qquad \text{(LightGCN on the user-item graph)}\\
    \mathbf u &= \bar{\mathbf e}_u, \qquad \mathbf i = \bar{\mathbf e}_i + \tilde{\mathbf h}_i,
    \qquad \hat y_{ui} = \mathbf u^\top \mathbf i

where :math:`\operatorname{sym}(A) = D^{-1/2} A D^{-1/2}` with row sums, and
:math:`\hat A_\rho` is the symmetric-normalised user-item graph after degree-sensitive
pruning: every training epoch keeps a share :math:`1-\rho` of the train edges, drawn
without replacement with probability :math:`\propto 1/\sqrt{d_u d_i}`, re-normalised
(:func:`mmgcn.graph.degree_sensitive_prune`, redrawn in :meth:`FREEDOM.on_epoch_start`);
ranking uses the full graph. Loss, with projections :math:`W_m` of the features:

.. math::
    \mathcal L = \mathrm{BPR}(\mathbf u, \mathbf i^+, \mathbf i^-)
      + \lambda \sum_m \mathrm{BPR}(\mathbf u, W_m \mathbf f^m_{i^+}, W_m \mathbf f^m_{i^-})
      \;[+\ \mathtt{reg\_weight} \cdot \Omega(E_{u}, E_{i^+}, E_{i^-})]

As in the authors' code: the features are fine-tuned (``tune_features``), the kNN graphs
include the item itself, :math:`L_i = 1`, :math:`L = 2`, :math:`k = 10`. The authors weight
two modalities by one number (``mm_image_weight``, ``0.1`` on image); here
``modality_weights`` names every modality (any number; normalised to sum 1).

Cold items: an item without train edges is reached through the item-item graph (its
:math:`\tilde{\mathbf h}_i` sums its content neighbours' ID embeddings), so the default
``edgeless_items="own"`` already scores it from content. A new item
(:meth:`represent_new_items`) gets the row it would have in the frozen graph
(:func:`mmgcn.graph.knn_query_graph`): :math:`\mathbf i = S_{\text{new}}\tilde H^{(L_i-1)}`,
with no ID embedding and no user-item edges (with ``item_layers=0`` it cannot be
represented and gets zeros).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from mmgcn.data.dataset import Dataset
from mmgcn.graph import (
    degree_sensitive_prune,
    knn_adjacency,
    knn_query_graph,
    mix_graphs,
    modality_weights,
    normalize_csr,
    scipy_to_torch_csr,
)
from mmgcn.models.base import (
    Embeddings,
    ModelConfig,
    Recommender,
    register_model,
)
from mmgcn.nn import BipartitePropagation, GraphPropagation, LayerMean, sparse_mm
from mmgcn.nn.content import ItemContent
from mmgcn.nn.losses import bpr_loss, l2_reg
from mmgcn.utils.modes import eval_mode


@dataclass(frozen=True)
class FREEDOMConfig(ModelConfig):
    """Configuration of :class:`FREEDOM` (MMRec's names in brackets).

    Attributes:
        dim: embedding width [embedding_size] (default 64).
        reg_weight: L2 on the batch's layer-0 embeddings (default 0: the authors' code has none).
        projection_weight: :math:`\\lambda`, weight of the modality-projection BPR terms
            [reg_weight] (default 1e-4).
        num_layers: :math:`L`, user-item LightGCN layers [n_ui_layers] (default 2).
        item_layers: :math:`L_i`, item-item graph layers [n_mm_layers] (default 1).
        knn_k: neighbours per item in the item-item graphs [knn_k] (default 10).
        modality_weights: ``{modality: alpha_m}`` mixing the modalities' graphs (normalised;
            default ``None``: equal) [mm_image_weight for two modalities].
        prune_ratio: :math:`\\rho`, share of train edges dropped each epoch [dropout]
            (default 0.8; 0 trains on the full graph).
        feature_transform: transform of the raw features before the kNN graphs and the
            projections (:mod:`mmgcn.features.transforms`; default ``"none"``, as the paper).
        tune_features: fine-tune the feature tables the projections read (default ``True``,
            as the authors' code).
    """

    dim: int = 64
    reg_weight: float = 0.0
    projection_weight: float = 1e-4
    num_layers: int = 2
    item_layers: int = 1
    knn_k: int = 10
    modality_weights: dict[str, float] | None = None
    prune_ratio: float = 0.8
    feature_transform: Literal["none", "l2", "zscore", "standard", "zscore+l2"] = "none"
    tune_features: bool = True

    def __post_init__(self) -> None:
        if self.dim <= 0 or self.knn_k <= 0:
            raise ValueError(f"dim and knn_k must be positive, got {self.dim}, {self.knn_k}")
        if self.num_layers < 0 or self.item_layers < 0:
            raise ValueError(f"num_layers and item_layers must be >= 0, got {self.num_layers}, {self.item_layers}")
        if self.reg_weight < 0 or self.projection_weight < 0:
            raise ValueError(f"reg_weight and projection_weight must be >= 0, got {self.reg_weight}, {self.projection_weight}")
        if not 0.0 <= self.prune_ratio < 1.0:
            raise ValueError(f"prune_ratio must be in [0, 1), got {self.prune_ratio}")


@register_model
class FREEDOM(Recommender):
    """FREEDOM (see the module docstring for the update rules and the cold-start behaviour)."""

    name: ClassVar[str] = "freedom"
    Config: ClassVar[type[ModelConfig]] = FREEDOMConfig
    uses_content: ClassVar[bool] = True

    def __init__(self, config: FREEDOMConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        self.content = ItemContent(dataset, transform=config.feature_transform, trainable=config.tune_features,
                                   model=self.name)
        self.modalities = self.content.modalities
        self.weights = modality_weights(config.modality_weights, self.modalities)
        # frozen item-item graph: binary kNN per modality, sym-normalised, mixed (cached on disk)
        self._knn: dict[str, sp.csr_matrix] = {
            m: knn_adjacency(self.content.base(m), config.knn_k, mask=dataset.has_content(m), cache=True)
            for m in self.modalities
        }
        mixed = mix_graphs({m: normalize_csr(a, "sym") for m, a in self._knn.items()}, self.weights)
        self.item_graph = GraphPropagation(scipy_to_torch_csr(mixed))
        self.ui_graph = BipartitePropagation(dataset.train, "sym")
        # the pruned graph is redrawn every epoch (on_epoch_start); until then, a draw with seed 0
        self.train_graph = BipartitePropagation(self._pruned(np.random.default_rng(0)), "sym")
        self.layer_mean = LayerMean(config.num_layers)
        self.user_embedding = nn.Parameter(torch.empty(self.n_users, config.dim))
        self.item_embedding = nn.Parameter(torch.empty(self.n_items, config.dim))
        self.projections = nn.ModuleDict({m: nn.Linear(d, config.dim) for m, d in self.content.dims.items()})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user_embedding)
        nn.init.xavier_uniform_(self.item_embedding)
        for projection in self.projections.values():
            projection.reset_parameters()
        self.content.reset_parameters()

    def _pruned(self, rng: np.random.Generator) -> sp.csr_matrix:
        return degree_sensitive_prune(self._train_csr, 1.0 - self.config.prune_ratio, rng)

    def on_epoch_start(self, epoch: int, rng: np.random.Generator) -> None:
        """Redraw the degree-pruned user-item graph this epoch trains on."""
        if self.config.prune_ratio > 0:
            self.train_graph.set_graph(self._pruned(rng))

    # ------------------------------------------------------------ the three verbs
    def _item_graph_states(self, layers: int) -> Tensor:
        """:math:`S^{layers} E_I` ``(n_items, dim)``."""
        states = self.item_embedding
        for _ in range(layers):
            states = self.item_graph(states)
        return states

    def embed(self) -> Embeddings:
        graph = self.train_graph if self.training and self.config.prune_ratio > 0 else self.ui_graph
        users, items = self.layer_mean(graph, self.user_embedding, self.item_embedding)
        content = self._item_graph_states(self.config.item_layers)
        return Embeddings(users, items + content, {"interactions": (users, items), "item_graph": (users, content)})

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        emb = self.embed()
        u = emb.users[users]
        loss = bpr_loss((u * emb.items[pos]).sum(1), (u * emb.items[neg]).sum(1))
        for m, projection in self.projections.items():
            table, present = self.content.table(m), self.content.present(m)
            pos_scores = (u * projection(table[pos])).sum(1)
            neg_scores = (u * projection(table[neg])).sum(1)
            # pairs whose items lack content of m (fill rows) say nothing about m
            both = present[pos] & present[neg]
            if both.all():
                loss = loss + self.config.projection_weight * bpr_loss(pos_scores, neg_scores)
            elif both.any():
                loss = loss + self.config.projection_weight * bpr_loss(pos_scores[both], neg_scores[both])
        if self.config.reg_weight:
            reg = l2_reg(self.user_embedding[users], self.item_embedding[pos], self.item_embedding[neg])
            loss = loss + self.config.reg_weight * reg
        return loss

    @torch.no_grad()
    def represent_new_items(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None
    ) -> Embeddings:
        """New items as rows of the frozen item-item graph (see the module docstring)."""
        feats, masks = self.content.new_items(features, present)
        n_new = next(iter(feats.values())).shape[0]
        with eval_mode(self):
            emb = self.embed()
            device = self.item_embedding.device
            content = self.item_embedding.new_zeros(n_new, self.config.dim)
            if self.config.item_layers > 0:
                rows = mix_graphs({
                    m: knn_query_graph(feats[m].cpu(), self.content.base(m).cpu(), self.config.knn_k,
                                       adjacency=self._knn[m], norm="sym", mask=self.content.present(m).cpu(),
                                       query_mask=masks[m].cpu())
                    for m in self.modalities
                }, self.weights)
                content = sparse_mm(scipy_to_torch_csr(rows).to(device),
                                    self._item_graph_states(self.config.item_layers - 1))
            zeros = torch.zeros_like(content)
            return Embeddings(emb.users, content, {"interactions": (emb.users, zeros), "item_graph": (emb.users, content)})

    def extra_repr(self) -> str:
        weights = ", ".join(f"{m}:{w:.2f}" for m, w in self.weights.items())
        return (f"n_users={self.n_users}, n_items={self.n_items}, dim={self.config.dim}, "
                f"modality_weights=[{weights}], prune_ratio={self.config.prune_ratio}")


__all__ = ["FREEDOM", "FREEDOMConfig"]
