r"""LGMRec: local graph embeddings per modality and global interests through learned hyperedges.

Guo et al., "LGMRec: Local and Global Graph Learning for Multimodal Recommendation", AAAI
2024, https://arxiv.org/abs/2312.16400; code: github.com/georgeguo-cn/LGMRec (the same
file as MMRec's ``src/models/lgmrec.py``), read for the facts below.

Update rules, for modalities :math:`m` with item features :math:`F^m`, the train
interactions :math:`R` and the symmetric-normalised user-item graph :math:`\hat A`:

.. math::
    \bar E &= \frac{1}{L+1}\sum_{l=0}^{L} \hat A^l E
      \qquad \text{(collaborative graph embedding, LightGCN over the ID embeddings)}\\
    H^m &= \hat A^{L_m}\begin{bmatrix} D_U^{-1} R\, F^m W^m \\ F^m W^m \end{bmatrix}
      \qquad \text{(modality graph embedding: users start as the mean of their items)}\\
    \Lambda^m_I &= \operatorname{GS}_\tau(F^m V^m), \quad
    \Lambda^m_U = \operatorname{GS}_\tau(R\, F^m V^m)
      \qquad \text{(} K \text{ hyperedges per modality, Gumbel-softmax, dropout)}\\
    Z^m &= \Lambda_I^{m\top} G_I^{m}, \quad G_I^m \leftarrow \Lambda^m_I Z^m\ (L_h \text{ times}),
      \quad G_U^m = \Lambda^m_U Z^m, \qquad G_I^{m} \text{ starts at } \bar E_I\\
    E &= \underbrace{\bar E + \sum_m \operatorname{norm}(H^m)}_{\text{local}}
      + \alpha\, \operatorname{norm}\Big(\sum_m G^m\Big)_{\text{global}},
      \qquad \hat y_{ui} = \mathbf e_u^\top \mathbf e_i

with :math:`\operatorname{norm}` the row-wise L2 normalisation. Loss:

.. math::
    \mathcal L = \mathrm{BPR} + \lambda_c \sum_{a<b}\big(\mathrm{NCE}(G^a_{U,u}, G^b_{U,u}; G^b_U)
      + \mathrm{NCE}(G^a_{I,i^+}, G^b_{I,i^+}; G^b_I)\big)
      + \lambda_r \frac{\lVert E_u\rVert_F + \lVert E_{i^+}\rVert_F + \lVert E_{i^-}\rVert_F}{B}

where :math:`\mathrm{NCE}(a, p; C)` is InfoNCE with temperature :math:`\tau` against every
row of :math:`C` (all users, all items), and :math:`E_u` etc. are the batch's final vectors
(Frobenius norms, not squared, as the authors' code).

As in the authors' code: the features are fixed (not fine-tuned), :math:`W^m` and
:math:`V^m` have no bias, :math:`\tau = 0.2` for the Gumbel-softmax and InfoNCE,
:math:`L = L_m = 2`, :math:`L_h = 1`, :math:`K = 4`, keep rate 0.5, :math:`\alpha = 0.3`.
Differences: (1) any number of modalities (the contrastive term sums over pairs; one
modality has none), where the original has two fixed slots and falls back to
:math:`\bar E` alone without both; (2) InfoNCE is averaged over the batch where the
original sums it, so ``cl_weight`` is the authors' ``cl_weight`` times the batch size
(their 1e-4 at batch 2048 is 0.2, the default); (3) the Gumbel noise and the dropout are
drawn from a generator seeded at every epoch start (:meth:`LGMRec.on_epoch_start`), so a
resumed run redraws them exactly, and ranking uses the noise-free assignments
:math:`\operatorname{softmax}(\Lambda/\tau)` (the original draws noise at test time too,
so its rankings change from one evaluation to the next); (4) items without content of a
modality get no projected features and no hyperedge assignment in it, and users average
over their items with content.

Cold items: a new item has no ID embedding and no edges, so :math:`\bar E` and (for
:math:`L_m \ge 1`) :math:`H^m` are zero for it; its global part reads the catalogue's
hyperedges through its own content, :math:`G^m_{\text{new}} = \operatorname{softmax}(F^m_{\text{new}} V^m/\tau)\,Z^m`
(:meth:`represent_new_items`), and with :math:`L_m = 0` its local part is
:math:`\sum_m \operatorname{norm}(F^m_{\text{new}} W^m)`. Items without train edges are
represented the same way plus their own (untrained) ID term under the default
``edgeless_items="own"``; ``"content"`` drops that term.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import ClassVar, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmgcn.data.dataset import Dataset
from mmgcn.models.base import (
    Embeddings,
    ModelConfig,
    Recommender,
    register_model,
)
from mmgcn.nn import BipartitePropagation, LayerMean
from mmgcn.nn.content import ItemContent
from mmgcn.nn.hypergraph import dropout, gumbel_softmax, hypergraph_propagation
from mmgcn.nn.losses import bpr_loss
from mmgcn.utils.modes import eval_mode


@dataclass(frozen=True)
class LGMRecConfig(ModelConfig):
    """Configuration of :class:`LGMRec` (MMRec's names in brackets).

    Attributes:
        dim: embedding width, also of the modality projections [embedding_size,
            feat_embed_dim] (default 64).
        reg_weight: :math:`\\lambda_r`, on the Frobenius norms of the batch's final vectors
            [reg_weight] (default 1e-6).
        num_layers: :math:`L`, LightGCN layers of the ID embeddings [n_ui_layers] (default 2).
        modality_layers: :math:`L_m`, user-item hops of the projected features
            [n_mm_layers] (default 2).
        hyper_layers: :math:`L_h`, item -> hyperedge -> item rounds [n_hyper_layer] (default 1).
        num_hyperedges: :math:`K` per modality [hyper_num] (default 4).
        keep_rate: share of hyperedge assignments kept by dropout in training [keep_rate]
            (default 0.5).
        alpha: :math:`\\alpha`, weight of the global embeddings [alpha] (default 0.3).
        cl_weight: :math:`\\lambda_c`, weight of the batch-mean InfoNCE between modalities'
            hyperedge embeddings (default 0.2 = MMRec's summed 1e-4 at batch 2048).
        temperature: :math:`\\tau` of the Gumbel-softmax and of InfoNCE (default 0.2).
        feature_transform: transform of the raw features (default ``"none"``, as the paper).
    """

    dim: int = 64
    reg_weight: float = 1e-6
    num_layers: int = 2
    modality_layers: int = 2
    hyper_layers: int = 1
    num_hyperedges: int = 4
    keep_rate: float = 0.5
    alpha: float = 0.3
    cl_weight: float = 0.2
    temperature: float = 0.2
    feature_transform: Literal["none", "l2", "zscore", "standard", "zscore+l2"] = "none"

    def __post_init__(self) -> None:
        if self.num_hyperedges <= 0 or self.hyper_layers <= 0:
            raise ValueError(f"num_hyperedges and hyper_layers must be positive, got {self.num_hyperedges}, "
                             f"{self.hyper_layers}")
        if self.num_layers < 0 or self.modality_layers < 0:
            raise ValueError(f"num_layers and modality_layers must be >= 0, got {self.num_layers}, "
                             f"{self.modality_layers}")
        if not 0.0 < self.keep_rate <= 1.0:
            raise ValueError(f"keep_rate must be in (0, 1], got {self.keep_rate}")
        if self.alpha < 0 or self.cl_weight < 0 or self.reg_weight < 0:
            raise ValueError(f"alpha, cl_weight and reg_weight must be >= 0, got {self.alpha}, {self.cl_weight}, "
                             f"{self.reg_weight}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")


class _Pass(NamedTuple):
    """One forward pass: final vectors, their parts, and the per-modality hypergraph states."""

    users: Tensor
    items: Tensor
    parts: dict[str, tuple[Tensor, Tensor]]
    hyper_users: dict[str, Tensor]  # G_U^m (n_users, dim)
    hyper_items: dict[str, Tensor]  # G_I^m (n_items, dim)
    hyperedges: dict[str, Tensor]  # Z^m (K, dim), last round


def _contrast(anchors: Tensor, candidates: Tensor, rows: Tensor, temperature: float) -> Tensor:
    r"""Batch-mean InfoNCE of ``anchors (B, d)`` against all ``candidates (N, d)``, positives ``candidates[rows]``."""
    # the temperature scales the (B, d) anchors, not the (B, N) logits
    logits = (F.normalize(anchors, dim=1) / temperature) @ F.normalize(candidates, dim=1).T
    return F.cross_entropy(logits, rows)


@register_model
class LGMRec(Recommender):
    """LGMRec (see the module docstring for the update rules, differences and cold start)."""

    name: ClassVar[str] = "lgmrec"
    Config: ClassVar[type[ModelConfig]] = LGMRecConfig
    uses_content: ClassVar[bool] = True

    def __init__(self, config: LGMRecConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        self.content = ItemContent(dataset, transform=config.feature_transform, trainable=False, model=self.name)
        self.modalities = self.content.modalities
        self.ui_graph = BipartitePropagation(dataset.train, "sym")
        self.sum_graph = BipartitePropagation(dataset.train, "none")  # R: sums over a user's items
        self.layer_mean = LayerMean(config.num_layers)
        for m in self.modalities:
            # users average over their items with content of m (none: zero)
            count = self._train_csr @ dataset.has_content(m).astype(np.float64)
            inverse = np.divide(1.0, count, out=np.zeros_like(count), where=count > 0)
            self.register_buffer(f"inverse_count_{m}", torch.from_numpy(inverse).float().unsqueeze(1), persistent=False)
        dims = self.content.dims
        self.projections = nn.ModuleDict({m: nn.Linear(d, config.dim, bias=False) for m, d in dims.items()})
        self.hyperedge_logits = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(d, config.num_hyperedges)) for m, d in dims.items()})
        self.user_embedding = nn.Parameter(torch.empty(self.n_users, config.dim))
        self.item_embedding = nn.Parameter(torch.empty(self.n_items, config.dim))
        self._noise_seed = 0
        self._generator: torch.Generator | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user_embedding)
        nn.init.xavier_uniform_(self.item_embedding)
        for m in self.modalities:
            nn.init.xavier_uniform_(self.projections[m].weight)
            nn.init.xavier_uniform_(self.hyperedge_logits[m])

    def on_epoch_start(self, epoch: int, rng: np.random.Generator) -> None:
        """Reseed the generator of this epoch's Gumbel noise and hyperedge dropout."""
        self._noise_seed = int(rng.integers(0, 2**63 - 1))
        self._generator = None

    def _noise(self) -> torch.Generator | None:
        """The training noise generator (``None`` when ranking: no noise, no dropout)."""
        if not self.training:
            return None
        device = self.user_embedding.device
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self._noise_seed)
        return self._generator

    # ------------------------------------------------------------ the forward pass
    def _present(self, modality: str) -> Tensor:
        return self.content.present(modality).unsqueeze(1).to(self.user_embedding.dtype)

    def _modality_graph(self, modality: str) -> tuple[Tensor, Tensor]:
        """:math:`H^m`: users ``(n_users, dim)``, items ``(n_items, dim)``."""
        items = self.projections[modality](self.content.table(modality)) * self._present(modality)
        users = self.sum_graph.to_users(items) * getattr(self, f"inverse_count_{modality}")
        for _ in range(self.config.modality_layers):
            users, items = self.ui_graph(users, items)
        return users, items

    def _forward(self) -> _Pass:
        cfg, generator = self.config, self._noise()
        users_cf, items_cf = self.layer_mean(self.ui_graph, self.user_embedding, self.item_embedding)
        local_u, local_i = torch.zeros_like(users_cf), torch.zeros_like(items_cf)
        global_u, global_i = torch.zeros_like(users_cf), torch.zeros_like(items_cf)
        hyper_users, hyper_items, hyperedges = {}, {}, {}
        for m in self.modalities:
            h_u, h_i = self._modality_graph(m)
            local_u, local_i = local_u + F.normalize(h_u, dim=1), local_i + F.normalize(h_i, dim=1)
            present = self._present(m)
            item_logits = (self.content.table(m) @ self.hyperedge_logits[m]) * present
            user_logits = self.sum_graph.to_users(item_logits)
            item_assign = dropout(gumbel_softmax(item_logits, cfg.temperature, generator), cfg.keep_rate, generator)
            user_assign = dropout(gumbel_softmax(user_logits, cfg.temperature, generator), cfg.keep_rate, generator)
            g_u, g_i, z = hypergraph_propagation(item_assign * present, user_assign, items_cf, cfg.hyper_layers)
            hyper_users[m], hyper_items[m], hyperedges[m] = g_u, g_i, z
            global_u, global_i = global_u + g_u, global_i + g_i
        global_u = cfg.alpha * F.normalize(global_u, dim=1)
        global_i = cfg.alpha * F.normalize(global_i, dim=1)
        users = users_cf + local_u + global_u
        parts = {"interactions": (users, items_cf), "modalities": (users, local_i), "hypergraph": (users, global_i)}
        return _Pass(users, items_cf + local_i + global_i, parts, hyper_users, hyper_items, hyperedges)

    # ------------------------------------------------------------ the three verbs
    def embed(self) -> Embeddings:
        out = self._forward()
        return Embeddings(out.users, out.items, out.parts)

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        cfg = self.config
        out = self._forward()
        u, i_pos, i_neg = out.users[users], out.items[pos], out.items[neg]
        loss = bpr_loss((u * i_pos).sum(1), (u * i_neg).sum(1))
        if cfg.cl_weight > 0:
            for a, b in combinations(self.modalities, 2):
                loss = loss + cfg.cl_weight * (
                    _contrast(out.hyper_users[a][users], out.hyper_users[b], users, cfg.temperature)
                    + _contrast(out.hyper_items[a][pos], out.hyper_items[b], pos, cfg.temperature))
        if cfg.reg_weight > 0:
            norms = torch.linalg.matrix_norm(u) + torch.linalg.matrix_norm(i_pos) + torch.linalg.matrix_norm(i_neg)
            loss = loss + cfg.reg_weight * norms / max(users.numel(), 1)
        return loss

    @torch.no_grad()
    def represent_new_items(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None
    ) -> Embeddings:
        """New items through the catalogue's hyperedges (see the module docstring)."""
        cfg = self.config
        feats, masks = self.content.new_items(features, present)
        with eval_mode(self):
            out = self._forward()
            n_new = next(iter(feats.values())).shape[0]
            local = out.users.new_zeros(n_new, cfg.dim)
            glob = out.users.new_zeros(n_new, cfg.dim)
            for m in self.modalities:
                mask = masks[m].unsqueeze(1).to(local.dtype)
                if cfg.modality_layers == 0:
                    local = local + F.normalize(self.projections[m](feats[m]) * mask, dim=1)
                assign = gumbel_softmax(feats[m] @ self.hyperedge_logits[m], cfg.temperature) * mask
                glob = glob + assign @ out.hyperedges[m]
            glob = cfg.alpha * F.normalize(glob, dim=1)
            parts = {"interactions": (out.users, torch.zeros_like(local)), "modalities": (out.users, local),
                     "hypergraph": (out.users, glob)}
            return Embeddings(out.users, local + glob, parts)

    def extra_repr(self) -> str:
        cfg = self.config
        return (f"n_users={self.n_users}, n_items={self.n_items}, dim={cfg.dim}, modalities={list(self.modalities)}, "
                f"hyperedges={cfg.num_hyperedges}, alpha={cfg.alpha}")


__all__ = ["LGMRec", "LGMRecConfig"]
