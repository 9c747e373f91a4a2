r"""GRCN: the user-item graph refined per modality by routing attention, then convolved.

Wei et al., "Graph-Refined Convolutional Network for Multimedia Recommendation with
Implicit Feedback", ACM MM 2020, https://arxiv.org/abs/2111.02036
(doi:10.1145/3394171.3413556); code: github.com/weiyinwei/GRCN and MMRec's
``src/models/grcn.py`` (github.com/enoche/MMRec), read for the facts below.

Graph refining layer, for each modality :math:`m` with item features :math:`F^m` and user
prototypes :math:`P^m`, over the train edges :math:`(u, i)`:

.. math::
    \mathbf f_i &= \operatorname{norm}\big(\sigma(W_m \mathbf f^m_i + \mathbf b_m)\big), \qquad
    \mathbf p_u \leftarrow \operatorname{norm}(P^m_u)\\
    \mathbf p_u &\leftarrow \operatorname{norm}\Big(\mathbf p_u + \sum_{i \in N(u)}
      \operatorname{softmax}_{i \in N(u)}(\mathbf p_u^\top \mathbf f_i)\, \mathbf f_i\Big)
      \qquad (T \text{ routing iterations})\\
    a^{m}_{i \to u} &= \operatorname{softmax}_{i' \in N(u)}(\mathbf p_u^\top \mathbf f_{i'})\big|_{i}, \qquad
    a^{m}_{u \to i} = \operatorname{softmax}_{u' \in N(i)}(\mathbf p_{u'}^\top \mathbf f_i)\big|_{u}\\
    \mathbf c^m_u &= \mathbf p_u + \sum_{i \in N(u)} a^m_{i \to u} \mathbf f_i, \qquad
    \mathbf c^m_i = \mathbf f_i + \sum_{u \in N(i)} a^m_{u \to i} \mathbf p_u
      \qquad \text{(content representations)}

with :math:`\sigma` the leaky ReLU and :math:`\operatorname{norm}` row-wise L2. The refined
graph weights every directed edge by its source's modality confidences :math:`c` (learned,
``weight_mode="confid"``; ``"max"`` and ``"mean"`` drop them) and prunes it with a ReLU:

.. math::
    w_{j \to k} = \operatorname{ReLU}\big(\max_m c^m_j\, a^m_{j \to k}\big), \qquad
    X^{(0)} = \operatorname{norm}(E), \quad X^{(l+1)}_k = \sum_{j \in N(k)} w_{j \to k} X^{(l)}_j, \quad
    \mathbf x = \sum_{l=0}^{L} X^{(l)}

and the prediction concatenates the ID and content parts:
:math:`\mathbf u = [\mathbf x_u \Vert \mathbf c^1_u \Vert \dots]`,
:math:`\mathbf i = [\mathbf x_i \Vert \mathbf c^1_i \Vert \dots]`,
:math:`\hat y_{ui} = \mathbf u^\top \mathbf i`. Loss:

.. math::
    \mathcal L = \mathrm{BPR} + \lambda \frac{1}{Bd}\sum_b\Big(\lVert E_{u_b}\rVert^2
      + \tfrac12\lVert E_{i^+_b}\rVert^2 + \tfrac12\lVert E_{i^-_b}\rVert^2
      + \sum_m \lVert P^m_{u_b}\rVert^2\Big)

(the mean squares of the raw batch embeddings, as the authors' code).

As in the authors' code: :math:`T = 3`, :math:`L = 2`, ``weight_mode="confid"``, hard
pruning (the ReLU; ``prune=False`` keeps negative weights), no activation after the
convolutions, the features fixed. Difference: in the authors' code (and MMRec's) the
routing layer is given the user -> item edge list, so it aggregates into items only and
the users' prototype update is a no-op (:math:`\mathbf p_u = \operatorname{norm}(P^m_u)`);
here the routing follows the paper (``num_routing=0`` reproduces the code). MMRec's loss
also adds the mean square of the whole preference table of its first ("v") modality, a
slot-specific term left out here (every modality's batch rows are regularised). Any number of
modalities; an item without content of a modality has no features in it, its edges are
left out of that modality's attention, and its edge weights come from the other
modalities (zero when it has none).

Cold items: a new item has no ID embedding and no edges, so its ID part is zero and its
content parts are its features, :math:`\mathbf c^m_{\text{new}} = \mathbf f^m_{\text{new}}`
(:meth:`represent_new_items`); items without train edges get the same content parts
plus their own (untrained) ID part under the default ``edgeless_items="own"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import softmax as edge_softmax

from mmgcn.data.dataset import Dataset
from mmgcn.models.base import (
    Embeddings,
    ModelConfig,
    Recommender,
    register_model,
)
from mmgcn.nn.bipartite_edges import BipartiteEdges
from mmgcn.nn.content import ItemContent
from mmgcn.nn.losses import bpr_loss
from mmgcn.utils.modes import eval_mode


@dataclass(frozen=True)
class GRCNConfig(ModelConfig):
    """Configuration of :class:`GRCN` (MMRec's names in brackets).

    Attributes:
        dim: ID embedding width [embedding_size] (default 64).
        content_dim: width of each modality's content representation [latent_embedding]
            (default 64); scores use ``dim + len(modalities) * content_dim``.
        reg_weight: :math:`\\lambda` [reg_weight] (default 1e-4).
        num_routing: :math:`T`, routing iterations of the user prototypes [n_layers]
            (default 3; 0 as the authors' code behaves).
        num_layers: :math:`L`, convolutions over the refined graph (default 2).
        weight_mode: how modalities' attention becomes one edge weight: ``"confid"``
            (default: max of confidence-scaled attention), ``"max"`` or ``"mean"``.
        prune: ReLU on the edge weights (hard pruning, default ``True``; ``False`` keeps
            negative weights, the authors' soft variant).
        feature_transform: transform of the raw features (default ``"none"``, as the paper).
    """

    dim: int = 64
    content_dim: int = 64
    reg_weight: float = 1e-4
    num_routing: int = 3
    num_layers: int = 2
    weight_mode: Literal["confid", "max", "mean"] = "confid"
    prune: bool = True
    feature_transform: Literal["none", "l2", "zscore", "standard", "zscore+l2"] = "none"

    def __post_init__(self) -> None:
        if self.num_routing < 0 or self.num_layers < 0:
            raise ValueError(f"num_routing and num_layers must be >= 0, got {self.num_routing}, {self.num_layers}")
        if self.reg_weight < 0:
            raise ValueError(f"reg_weight must be >= 0, got {self.reg_weight}")
        if self.weight_mode not in ("confid", "max", "mean"):
            raise ValueError(f"weight_mode must be 'confid', 'max' or 'mean', got {self.weight_mode!r}")


@register_model
class GRCN(Recommender):
    """GRCN (see the module docstring for the update rules, the difference and cold start)."""

    name: ClassVar[str] = "grcn"
    Config: ClassVar[type[ModelConfig]] = GRCNConfig
    uses_content: ClassVar[bool] = True

    def __init__(self, config: GRCNConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        self.content = ItemContent(dataset, transform=config.feature_transform, trainable=False, model=self.name)
        self.modalities = self.content.modalities
        self.edges = BipartiteEdges(dataset.train)
        # (E, M) whether each edge's item has content of each modality
        counted = torch.stack([self.content.present(m)[self.edges.items] for m in self.modalities], dim=1)
        self.register_buffer("edge_has_content", counted, persistent=False)
        for k, m in enumerate(self.modalities):
            # the edges whose item has content of m (None: all of them)
            keep = None if bool(counted[:, k].all()) else torch.nonzero(counted[:, k]).squeeze(1)
            self.register_buffer(f"content_edges_{m}", keep, persistent=False)
        n_mod = len(self.modalities)
        self.projections = nn.ModuleDict({m: nn.Linear(d, config.content_dim) for m, d in self.content.dims.items()})
        self.preferences = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(self.n_users, config.content_dim)) for m in self.modalities})
        self.user_embedding = nn.Parameter(torch.empty(self.n_users, config.dim))
        self.item_embedding = nn.Parameter(torch.empty(self.n_items, config.dim))
        # confidences exist in "confid" mode only (a parameter no step uses would stall
        # data-parallel training)
        confid = config.weight_mode == "confid"
        self.user_confidence = nn.Parameter(torch.empty(self.n_users, n_mod)) if confid else None
        self.item_confidence = nn.Parameter(torch.empty(self.n_items, n_mod)) if confid else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for param in (self.user_embedding, self.item_embedding, self.user_confidence, self.item_confidence,
                      *self.preferences.values()):
            if param is not None:
                nn.init.xavier_normal_(param)
        for projection in self.projections.values():
            nn.init.xavier_normal_(projection.weight)
            nn.init.zeros_(projection.bias)

    # ------------------------------------------------------------ the refining layer
    def _features(self, modality: str, raw: Tensor, present: Tensor) -> Tensor:
        """:math:`\\mathbf f` ``(n, content_dim)``: zero rows where ``present`` is False."""
        out = F.normalize(F.leaky_relu(self.projections[modality](raw)), dim=1)
        return out * present.unsqueeze(1).to(out.dtype)

    def _softmax(self, scores: Tensor, group: Tensor, keep: Tensor | None, n: int) -> Tensor:
        """Softmax of per-edge ``scores (E,)`` over each node's edges (``group``), edges in ``keep`` only."""
        if keep is None:
            return edge_softmax(scores, group, num_nodes=n)
        return torch.zeros_like(scores).index_put((keep,), edge_softmax(scores[keep], group[keep], num_nodes=n))

    def _refine(self, modality: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One modality: content representations ``c_u (n_users, c)``, ``c_i (n_items, c)`` and
        the attention of every edge ``(E,)`` towards its user and towards its item."""
        edges, keep = self.edges, getattr(self, f"content_edges_{modality}")
        f = self._features(modality, self.content.table(modality), self.content.present(modality))
        p = F.normalize(self.preferences[modality], dim=1)
        for _ in range(self.config.num_routing):
            to_user = self._softmax(edges.dot(p, f), edges.users, keep, self.n_users)
            p = F.normalize(p + edges.to_users(to_user, f), dim=1)
        scores = edges.dot(p, f)
        to_user = self._softmax(scores, edges.users, keep, self.n_users)
        to_item = self._softmax(scores, edges.items, keep, self.n_items)
        return p + edges.to_users(to_user, f), f + edges.to_items(to_item, p), to_user, to_item

    def _edge_weights(self, attention: list[Tensor], confidence: Tensor | None) -> Tensor:
        """One weight per edge ``(E,)`` from the modalities' attention ``[(E,)]`` and the
        sources' confidences ``(E, M)`` (``None`` unless ``weight_mode="confid"``); modalities
        the edge's item lacks are left out."""
        stacked = torch.stack(attention, dim=1)
        if confidence is not None:
            stacked = stacked * confidence
        counted = self.edge_has_content
        if self.config.weight_mode == "mean":
            weights = (stacked * counted).sum(1) / counted.sum(1).clamp_min(1)
        else:
            weights = stacked.masked_fill(~counted, float("-inf")).max(dim=1).values
            weights = torch.where(counted.any(1), weights, torch.zeros_like(weights))
        return torch.relu(weights) if self.config.prune else weights

    # ------------------------------------------------------------ the three verbs
    def embed(self) -> Embeddings:
        edges = self.edges
        content, to_user, to_item = [], [], []
        for m in self.modalities:
            c_u, c_i, a_u, a_i = self._refine(m)
            content.append((c_u, c_i))
            to_user.append(a_u)
            to_item.append(a_i)
        # the message i -> u is scaled by the item's confidence, u -> i by the user's
        confid = self.user_confidence is not None
        w_to_user = self._edge_weights(to_user, self.item_confidence[edges.items] if confid else None)
        w_to_item = self._edge_weights(to_item, self.user_confidence[edges.users] if confid else None)
        x_u, x_i = F.normalize(self.user_embedding, dim=1), F.normalize(self.item_embedding, dim=1)
        id_u, id_i = x_u, x_i
        for _ in range(self.config.num_layers):
            x_u, x_i = edges.to_users(w_to_user, x_i), edges.to_items(w_to_item, x_u)
            id_u, id_i = id_u + x_u, id_i + x_i
        parts = {"id": (id_u, id_i), **{m: c for m, c in zip(self.modalities, content)}}
        users = torch.cat([id_u, *(c_u for c_u, _ in content)], dim=1)
        items = torch.cat([id_i, *(c_i for _, c_i in content)], dim=1)
        return Embeddings(users, items, parts)

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        emb = self.embed()
        u = emb.users[users]
        loss = bpr_loss((u * emb.items[pos]).sum(1), (u * emb.items[neg]).sum(1))
        if self.config.reg_weight > 0:
            reg = (self.user_embedding[users].pow(2).mean()
                   + 0.5 * (self.item_embedding[pos].pow(2).mean() + self.item_embedding[neg].pow(2).mean()))
            reg = reg + sum(self.preferences[m][users].pow(2).mean() for m in self.modalities)
            loss = loss + self.config.reg_weight * reg
        return loss

    @torch.no_grad()
    def represent_new_items(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None
    ) -> Embeddings:
        """New items: zero ID part, their features as content parts (see the module docstring)."""
        feats, masks = self.content.new_items(features, present)
        with eval_mode(self):
            emb = self.embed()
            n_new = next(iter(feats.values())).shape[0]
            parts = {"id": (emb.parts["id"][0], emb.users.new_zeros(n_new, self.config.dim))}
            for m in self.modalities:
                parts[m] = (emb.parts[m][0], self._features(m, feats[m], masks[m]))
            return Embeddings(emb.users, torch.cat([i for _, i in parts.values()], dim=1), parts)

    def extra_repr(self) -> str:
        cfg = self.config
        return (f"n_users={self.n_users}, n_items={self.n_items}, dim={cfg.dim}, content_dim={cfg.content_dim}, "
                f"modalities={list(self.modalities)}, num_routing={cfg.num_routing}, weight_mode={cfg.weight_mode!r}")


__all__ = ["GRCN", "GRCNConfig"]
