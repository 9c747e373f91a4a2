r"""DRAGON: a user-item graph per modality, item-item and user-user graphs, concatenated modalities.

Zhou et al., "Enhancing Dyadic Relations with Homogeneous Graphs for Multimodal
Recommendation" (DRAGON), ECAI 2023, https://arxiv.org/abs/2301.12097; code:
github.com/hongyurain/DRAGON and MMRec's ``src/models/dragon.py`` (github.com/enoche/MMRec),
read for the facts below.

Update rules, for modalities :math:`m` with item features :math:`F^m`, learned user
preferences :math:`P^m` and the symmetric-normalised user-item graph :math:`\hat A`:

.. math::
    X^m &= \operatorname{norm}\begin{bmatrix} P^m \\ \mathrm{MLP}_m(F^m) \end{bmatrix},
      \qquad H^m = \sum_{l=0}^{L} \hat A^l X^m
      \qquad \text{(heterogeneous graph of modality } m\text{)}\\
    \mathbf u &= \big\Vert_m\, w_{u,m} H^m_u, \qquad \mathbf i = \big\Vert_m H^m_i
      \qquad \text{(attentive concatenation, learned per-user weights } w_u\text{)}\\
    \bar{\mathbf i} &= \mathbf i + \big(S^{L_i}\, \mathbf I\big)_i, \qquad
      S = \sum_m \beta_m \operatorname{sym}\big(\operatorname{kNN}_k(\cos F^m)\big)
      \qquad \text{(frozen item-item graph)}\\
    \bar{\mathbf u} &= \mathbf u + \big(C^{L_u}\, \mathbf U\big)_u, \qquad
      C_{uv} = \operatorname{softmax}_{v \in N_{k_u}(u)}\big(|\mathcal I_u \cap \mathcal I_v|\big)
      \qquad \text{(user-user co-interaction graph)}\\
    \hat y_{ui} &= \bar{\mathbf u}^\top \bar{\mathbf i}, \qquad
    \mathcal L = \mathrm{BPR} + \lambda\Big(\sum_m \tfrac{1}{Bd}\textstyle\sum_b \lVert P^m_{u_b}\rVert^2
      + \overline{w^2}\Big)

with :math:`\operatorname{norm}` row-wise L2, :math:`\mathrm{MLP}_m` two layers
(:math:`d_m \to 4d \to d`, leaky ReLU), :math:`\overline{w^2}` the mean square of all user
modality weights, :math:`N_{k_u}(u)` the :math:`k_u` users sharing the most train items
with :math:`u` (:func:`mmgcn.graph.user_cooccurrence_graph`, softmax over the counts:
:func:`mmgcn.graph.row_softmax`). Scores are dot products of ``len(modalities) * dim``
vectors.

As in the authors' code: :math:`L = 2`, :math:`L_i = L_u = 1`, :math:`k = 10`,
:math:`k_u = 40`, binary kNN graphs including the item itself, the features fixed (the
MLPs read the raw features; no ID embeddings at all), :math:`w_u` initialised to a softmax
and then trained freely. The authors weight two modalities by one number
(``mm_image_weight``, 0.1 on image); ``modality_weights`` names every modality (any
number, normalised). Differences: BPR with the natural log (the code's :math:`\log_2`
scales it by :math:`1/\ln 2`); users with fewer than :math:`k_u` co-users keep the ones they
have (the code pads them by re-drawing their own co-users at random every epoch); items
without content of a modality get a zero row in it (left out of :math:`H^m` and of the
kNN graph).

Cold items: items are represented from content alone (no ID embedding), so an item
without train edges is scored from its features and its content neighbours under the
default policy; a new item (:meth:`represent_new_items`) gets
:math:`\Vert_m \operatorname{norm}(\mathrm{MLP}_m(F^m_{\text{new}}))` (no edges: only
layer 0) plus its row of the frozen item-item graph (:func:`mmgcn.graph.knn_query_graph`)
times the catalogue's items.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmgcn.data.dataset import Dataset
from mmgcn.graph import (
    knn_adjacency,
    knn_query_graph,
    mix_graphs,
    modality_weights,
    normalize_csr,
    row_softmax,
    scipy_to_torch_csr,
    user_cooccurrence_graph,
)
from mmgcn.models.base import (
    Embeddings,
    ModelConfig,
    Recommender,
    register_model,
)
from mmgcn.nn import BipartitePropagation, GraphPropagation, sparse_mm
from mmgcn.nn.content import ItemContent
from mmgcn.nn.losses import bpr_loss
from mmgcn.utils.modes import eval_mode


@dataclass(frozen=True)
class DRAGONConfig(ModelConfig):
    """Configuration of :class:`DRAGON` (MMRec's names in brackets).

    Attributes:
        dim: width per modality (scores use ``len(modalities) * dim``) [embedding_size]
            (default 64).
        reg_weight: :math:`\\lambda` on the batch's user preferences and the user modality
            weights [reg_weight] (default 1e-4).
        num_layers: :math:`L`, user-item hops summed per modality (default 2).
        item_layers: :math:`L_i`, item-item graph layers [n_mm_layers] (default 1).
        user_layers: :math:`L_u`, user-user graph layers (default 1).
        knn_k: neighbours per item in the item-item graphs [knn_k] (default 10).
        user_k: co-users per user [k] (default 40).
        modality_weights: ``{modality: beta_m}`` mixing the item-item graphs (normalised;
            default ``None``: equal) [mm_image_weight for two modalities].
        feature_transform: transform of the raw features (default ``"none"``, as the paper).
    """

    dim: int = 64
    reg_weight: float = 1e-4
    num_layers: int = 2
    item_layers: int = 1
    user_layers: int = 1
    knn_k: int = 10
    user_k: int = 40
    modality_weights: dict[str, float] | None = None
    feature_transform: Literal["none", "l2", "zscore", "standard", "zscore+l2"] = "none"

    def __post_init__(self) -> None:
        if self.knn_k <= 0 or self.user_k <= 0:
            raise ValueError(f"knn_k and user_k must be positive, got {self.knn_k}, {self.user_k}")
        if min(self.num_layers, self.item_layers, self.user_layers) < 0:
            raise ValueError(f"num_layers, item_layers and user_layers must be >= 0, got {self.num_layers}, "
                             f"{self.item_layers}, {self.user_layers}")
        if self.reg_weight < 0:
            raise ValueError(f"reg_weight must be >= 0, got {self.reg_weight}")


@register_model
class DRAGON(Recommender):
    """DRAGON (see the module docstring for the update rules, differences and cold start)."""

    name: ClassVar[str] = "dragon"
    Config: ClassVar[type[ModelConfig]] = DRAGONConfig
    uses_content: ClassVar[bool] = True

    def __init__(self, config: DRAGONConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        self.content = ItemContent(dataset, transform=config.feature_transform, trainable=False, model=self.name)
        self.modalities = self.content.modalities
        self.weights = modality_weights(config.modality_weights, self.modalities)
        self.ui_graph = BipartitePropagation(dataset.train, "sym")
        # frozen item-item graph: binary kNN per modality (cached on disk), sym-normalised, mixed
        self._knn: dict[str, sp.csr_matrix] = {
            m: knn_adjacency(self.content.base(m), config.knn_k, mask=dataset.has_content(m), cache=True)
            for m in self.modalities
        }
        mixed = mix_graphs({m: normalize_csr(a, "sym") for m, a in self._knn.items()}, self.weights)
        self.item_graph = GraphPropagation(scipy_to_torch_csr(mixed))
        co_users = row_softmax(user_cooccurrence_graph(dataset.train, config.user_k))
        self.user_graph = GraphPropagation(scipy_to_torch_csr(co_users))
        d = config.dim
        self.mlps = nn.ModuleDict({
            m: nn.Sequential(nn.Linear(width, 4 * d), nn.LeakyReLU(), nn.Linear(4 * d, d))
            for m, width in self.content.dims.items()
        })
        self.preferences = nn.ParameterDict({m: nn.Parameter(torch.empty(self.n_users, d)) for m in self.modalities})
        self.user_modality_weights = nn.Parameter(torch.empty(self.n_users, len(self.modalities)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modalities:
            nn.init.xavier_normal_(self.preferences[m])
            for layer in self.mlps[m]:
                if isinstance(layer, nn.Linear):
                    layer.reset_parameters()
        with torch.no_grad():
            nn.init.xavier_normal_(self.user_modality_weights)
            self.user_modality_weights.copy_(torch.softmax(self.user_modality_weights, dim=1))

    # ------------------------------------------------------------ the forward pass
    def _item_layer0(self, modality: str, features: Tensor, present: Tensor) -> Tensor:
        """``norm(MLP_m(F^m))`` ``(n, dim)``, zero rows where ``present`` is False."""
        return F.normalize(self.mlps[modality](features), dim=1) * present.unsqueeze(1).to(features.dtype)

    def _heterogeneous(self) -> tuple[Tensor, Tensor]:
        r"""Before the homogeneous graphs: users :math:`\Vert_m w_{u,m} H^m_u` and items
        :math:`\Vert_m H^m_i`, ``(n_users, M*dim)`` and ``(n_items, M*dim)``."""
        user_blocks, item_blocks = [], []
        for k, m in enumerate(self.modalities):
            users = F.normalize(self.preferences[m], dim=1)
            items = self._item_layer0(m, self.content.table(m), self.content.present(m))
            sum_u, sum_i = users, items
            for _ in range(self.config.num_layers):
                users, items = self.ui_graph(users, items)
                sum_u, sum_i = sum_u + users, sum_i + items
            user_blocks.append(self.user_modality_weights[:, k : k + 1] * sum_u)
            item_blocks.append(sum_i)
        return torch.cat(user_blocks, dim=1), torch.cat(item_blocks, dim=1)

    def _item_graph_states(self, items: Tensor, layers: int) -> Tensor:
        for _ in range(layers):
            items = self.item_graph(items)
        return items

    def _co_user_states(self, users: Tensor, layers: int) -> Tensor:
        for _ in range(layers):
            users = self.user_graph(users)
        return users

    def _parts(self, users: Tensor, items: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
        d = self.config.dim
        return {m: (users[:, k * d : (k + 1) * d], items[:, k * d : (k + 1) * d]) for k, m in enumerate(self.modalities)}

    # ------------------------------------------------------------ the three verbs
    def _embed(self) -> tuple[Embeddings, Tensor]:
        """:meth:`embed` and the catalogue's items before the item-item graph ``(n_items, M*dim)``."""
        users, hetero_items = self._heterogeneous()
        cfg = self.config
        users = users + self._co_user_states(users, cfg.user_layers)
        items = hetero_items + self._item_graph_states(hetero_items, cfg.item_layers)
        return Embeddings(users, items, self._parts(users, items)), hetero_items

    def embed(self) -> Embeddings:
        return self._embed()[0]

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        emb = self.embed()
        u = emb.users[users]
        loss = bpr_loss((u * emb.items[pos]).sum(1), (u * emb.items[neg]).sum(1))
        if self.config.reg_weight > 0:
            reg = sum(self.preferences[m][users].pow(2).mean() for m in self.modalities)
            loss = loss + self.config.reg_weight * (reg + self.user_modality_weights.pow(2).mean())
        return loss

    @torch.no_grad()
    def represent_new_items(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None
    ) -> Embeddings:
        """New items from their content and their rows of the frozen item graph (module docstring)."""
        feats, masks = self.content.new_items(features, present)
        with eval_mode(self):
            emb, catalogue = self._embed()
            items = torch.cat([self._item_layer0(m, feats[m], masks[m]) for m in self.modalities], dim=1)
            if self.config.item_layers > 0:
                rows = mix_graphs({
                    m: knn_query_graph(feats[m].cpu(), self.content.base(m).cpu(), self.config.knn_k,
                                       adjacency=self._knn[m], norm="sym", mask=self.content.present(m).cpu(),
                                       query_mask=masks[m].cpu())
                    for m in self.modalities
                }, self.weights)
                neighbours = self._item_graph_states(catalogue, self.config.item_layers - 1)
                items = items + sparse_mm(scipy_to_torch_csr(rows).to(items.device), neighbours)
            return Embeddings(emb.users, items, self._parts(emb.users, items))

    def extra_repr(self) -> str:
        weights = ", ".join(f"{m}:{w:.2f}" for m, w in self.weights.items())
        return (f"n_users={self.n_users}, n_items={self.n_items}, dim={self.config.dim} per modality, "
                f"modality_weights=[{weights}], knn_k={self.config.knn_k}, user_k={self.config.user_k}")


__all__ = ["DRAGON", "DRAGONConfig"]
