r"""Fusion baselines: early (concat) and attention fusion, each with and without graph smoothing.

Four registered models share one skeleton, so that a comparison separates *how to fuse*
from *whether to propagate*:

===================  =========================================  ===================
name                 item vector (layer 0)                      propagation
===================  =========================================  ===================
``concat``           :class:`~mmgcn.nn.fusion.ConcatFusion`     none
``attention``        :class:`~mmgcn.nn.fusion.AttentionFusion`  none
``concat-graph``     as ``concat``                              LightGCN layer mean
``attention-graph``  as ``attention``                           LightGCN layer mean
===================  =========================================  ===================

Users are free ID embeddings :math:`\mathbf{u}^{(0)}`. Items are fused from their ID
embedding and the dataset's modality features (``dataset.features``; any number of
modalities). The ``-graph`` variants smooth the fused vectors over the symmetric-normalised
user-item *train* graph :math:`\hat{\mathbf{A}}` (He et al., LightGCN, SIGIR 2020,
https://arxiv.org/abs/2002.02126):

.. math::
    \mathbf{E}^{(0)} = \begin{pmatrix} \mathbf{U}^{(0)} \\ \mathbf{H} \end{pmatrix}, \qquad
    \mathbf{E}^{(k+1)} = \hat{\mathbf{A}}\, \mathbf{E}^{(k)}, \qquad
    \mathbf{E} = \frac{1}{K+1} \sum_{k=0}^{K} \mathbf{E}^{(k)}

and the score is :math:`\hat y_{ui} = \langle \mathbf{u}_u, \mathbf{h}_i \rangle` (or an
:class:`~mmgcn.nn.fusion.MLPScoreHead` with ``score_head="mlp"``, or user-conditioned
attention with ``user_conditioned=True``). Loss: BPR plus ``reg_weight`` times the batch
L2 of the layer-0 vectors (user ID rows and fused item rows).

Cold items (no train edge): their ID rows never receive a positive signal, so with
``cold_item_ids="zero"`` (default) an item without train edges has its ID embedding
replaced by zeros (attention masks the ID part out of the softmax), and its vector is
content only. ``id_dropout`` additionally drops random warm items' ID embeddings during
training (DropoutNet, Volkovs et al., NeurIPS 2017), teaching the content path to score
alone. In the ``-graph`` variants a cold item has no neighbours, so its vector is
:math:`\mathbf{h}_i / (K+1)`.

Score attribution (``Embeddings.parts``): exact where fusion is additive -- attention
(parts ``alpha_p e_p``, user-independent weights) and concat with ``hidden_dims=()``
(parts of the affine map, plus ``"bias"``); propagation is linear, so the parts are
propagated alongside. Concat with hidden layers and the MLP score head are not additive:
``parts`` is empty there. User-conditioned attention gives per-part scores through
:meth:`FusionRecommender.score_parts` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from mmgcn.data.dataset import Dataset
from mmgcn.models.base import Embeddings, ModelConfig, Recommender, register_model
from mmgcn.models.lightgcn import layer_mean_propagation
from mmgcn.nn.fusion import (
    AttentionFusion,
    ConcatFusion,
    MLPScoreHead,
    check_modality_names,
    standardize_features,
)
from mmgcn.nn.losses import bpr_loss, l2_reg
from mmgcn.nn.propagation import BipartitePropagation


# ---------------------------------------------------------------------- configs
@dataclass(frozen=True)
class FusionConfig(ModelConfig):
    """Fields shared by the fusion baselines.

    Attributes:
        dim: width of ID embeddings and fused vectors (default 64).
        reg_weight: weight of the batch L2 term (default 1e-4).
        modalities: modalities to use, in order (default ``None``: all of ``dataset.features``).
        feature_norm: ``"standard"`` (per-column z-score, default), ``"l2"`` or ``"none"``.
        cold_item_ids: ``"zero"`` (default) replaces the ID embedding of items without train
            edges by zeros; ``"keep"`` uses the (never positively trained) rows as they are.
        id_dropout: probability of dropping a warm item's ID embedding per training forward
            (default 0.0).
        init_std: std of the normal init of ID embeddings (default 0.1).
        score_head: ``"dot"`` (default) or ``"mlp"`` (:class:`~mmgcn.nn.fusion.MLPScoreHead`).
        head_hidden_dims: hidden widths of the MLP score head (default ``(64,)``).
    """

    modalities: tuple[str, ...] | None = None
    feature_norm: Literal["standard", "l2", "none"] = "standard"
    cold_item_ids: Literal["zero", "keep"] = "zero"
    id_dropout: float = 0.0
    init_std: float = 0.1
    score_head: Literal["dot", "mlp"] = "dot"
    head_hidden_dims: tuple[int, ...] = (64,)

    def __post_init__(self) -> None:
        if self.dim <= 0:
            raise ValueError(f"dim must be positive, got {self.dim}")
        if not 0.0 <= self.id_dropout < 1.0:
            raise ValueError(f"id_dropout must be in [0, 1), got {self.id_dropout}")
        if self.init_std <= 0:
            raise ValueError(f"init_std must be positive, got {self.init_std}")


@dataclass(frozen=True)
class ConcatConfig(FusionConfig):
    """:class:`FusionConfig` plus ``hidden_dims`` (MLP after the concatenation, default
    ``(128,)``; ``()`` makes fusion affine and attributable) and ``dropout`` (default 0.0)."""

    hidden_dims: tuple[int, ...] = (128,)
    dropout: float = 0.0


@dataclass(frozen=True)
class AttentionConfig(FusionConfig):
    """:class:`FusionConfig` plus ``attention_dim`` (key width, default 32) and
    ``user_conditioned`` (user-dependent query and a non-dot score, default ``False``)."""

    attention_dim: int = 32
    user_conditioned: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.user_conditioned and self.score_head == "mlp":
            raise ValueError("user_conditioned attention already defines the score; use score_head='dot'")


def _check_layers(config: ConcatGraphConfig | AttentionGraphConfig) -> None:
    if config.num_layers < 1:
        raise ValueError(f"num_layers must be >= 1 for a graph variant, got {config.num_layers}")


@dataclass(frozen=True)
class ConcatGraphConfig(ConcatConfig):
    """:class:`ConcatConfig` plus ``num_layers`` (LightGCN layers, default 2)."""

    num_layers: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_layers(self)


@dataclass(frozen=True)
class AttentionGraphConfig(AttentionConfig):
    """:class:`AttentionConfig` plus ``num_layers`` (LightGCN layers, default 2)."""

    num_layers: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_layers(self)
        if self.user_conditioned:
            raise ValueError(
                "user_conditioned=True is not available with propagation: the item vector would "
                "depend on the user, so there is no single vector to smooth (use 'attention')"
            )


# ---------------------------------------------------------------------- embeddings
@dataclass
class AttentionEmbeddings(Embeddings):
    """:class:`Embeddings` plus what user-conditioned attention scores from.

    Attributes:
        part_vectors: ``(n_items, P, d)`` unweighted item parts.
        part_keys: ``(n_items, P, a)`` attention keys.
        part_mask: ``(n_items, P)`` bool, ``False`` where a part is absent.
    """

    part_vectors: Tensor | None = None
    part_keys: Tensor | None = None
    part_mask: Tensor | None = None

    def detach(self) -> AttentionEmbeddings:
        base = super().detach()
        return AttentionEmbeddings(
            base.users,
            base.items,
            base.parts,
            *(None if t is None else t.detach() for t in (self.part_vectors, self.part_keys)),
            self.part_mask,
        )


class FusedItems(NamedTuple):
    fused: Tensor  # (n_items, d) layer-0 item vectors
    parts: dict[str, Tensor] | None  # {part: (n_items, d)} summing to fused, or None
    attention: object | None  # AttentionOutput where the fusion is attention


# ---------------------------------------------------------------------- models
class FusionRecommender(Recommender):
    """The shared skeleton of the fusion baselines (see the module docstring).

    Subclasses build ``self.fusion`` in :meth:`_build_fusion` and implement :meth:`_fuse`.
    """

    uses_content = True

    def __init__(self, config: FusionConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        available = dataset.modalities
        modalities = tuple(config.modalities) if config.modalities is not None else available
        if not modalities:
            raise ValueError(
                f"model '{self.name}' fuses item features, but dataset '{dataset.name}' has none "
                f"(extract features first, or use an ID-only model such as bpr / lightgcn)"
            )
        missing = [m for m in modalities if m not in available]
        if missing:
            raise ValueError(f"config.modalities {missing} not in dataset '{dataset.name}' (has {list(available)})")
        self.modalities = check_modality_names(modalities)
        for k, m in enumerate(self.modalities):
            feats = standardize_features(dataset.features[m].float(), config.feature_norm)
            # not persistent: rebuilt from the dataset, so checkpoints stay small
            self.register_buffer(f"_feat{k}", feats, persistent=False)
        item_degree = np.bincount(dataset.train.indices, minlength=dataset.n_items)
        self.register_buffer("has_train_edge", torch.from_numpy(item_degree > 0), persistent=False)
        self.num_layers = int(getattr(config, "num_layers", 0))
        # built from dataset.train only: valid/test edges never enter propagation
        self.propagation = BipartitePropagation(dataset.train, norm="sym") if self.num_layers else None
        self.user_emb = nn.Embedding(self.n_users, config.dim)
        self.item_emb = nn.Embedding(self.n_items, config.dim)
        self.fusion = self._build_fusion({m: dataset.features[m].shape[1] for m in self.modalities})
        self.head = MLPScoreHead(config.dim, config.head_hidden_dims) if config.score_head == "mlp" else None
        self.reset_parameters()

    # ------------------------------------------------------------ subclass hooks
    def _build_fusion(self, in_dims: dict[str, int]) -> nn.Module:
        raise NotImplementedError

    def _fuse(self, id_emb: Tensor, id_present: Tensor, with_parts: bool) -> FusedItems:
        raise NotImplementedError

    @property
    def conditioned(self) -> bool:
        """Whether scores use user-conditioned attention (not a dot product)."""
        return False

    # ------------------------------------------------------------ building blocks
    def reset_parameters(self) -> None:
        nn.init.normal_(self.user_emb.weight, std=self.config.init_std)
        nn.init.normal_(self.item_emb.weight, std=self.config.init_std)
        self.fusion.reset_parameters()
        if self.head is not None:
            self.head.reset_parameters()

    def features(self) -> dict[str, Tensor]:
        """The normalised item features ``{modality: (n_items, d_m)}`` the model reads."""
        return {m: getattr(self, f"_feat{k}") for k, m in enumerate(self.modalities)}

    def _item_ids(self) -> tuple[Tensor, Tensor]:
        """Item ID embeddings ``(n_items, d)`` with absent rows zeroed, and the presence mask."""
        present = torch.ones(self.n_items, dtype=torch.bool, device=self.item_emb.weight.device)
        if self.config.cold_item_ids == "zero":
            present = present & self.has_train_edge
        if self.training and self.config.id_dropout > 0:
            keep = torch.rand(self.n_items, device=present.device) >= self.config.id_dropout
            present = present & keep
        return self.item_emb.weight * present.unsqueeze(1).to(self.item_emb.weight.dtype), present

    def _propagate(self, users: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
        """LightGCN layer mean of ``users (n_users, c)``, ``items (n_items, c)``; identity with 0 layers."""
        if not self.num_layers:
            return users, items
        return layer_mean_propagation(self.propagation, users, items, self.num_layers)

    def _propagate_parts(self, users: Tensor, parts: dict[str, Tensor]) -> tuple[Tensor, Tensor, dict]:
        """Propagate each item part (user ID rows travel with ``"id"``); by linearity the
        final vectors are the sums over parts. Returns users, items, ``{part: (users, items_p)}``."""
        names = list(parts)
        if "id" not in names:
            raise RuntimeError("fusion parts must include 'id' (the user ID rows travel with it)")
        d = users.shape[1]
        user_stack = users.new_zeros(self.n_users, len(names), d)
        user_stack[:, names.index("id")] = users
        item_stack = torch.stack([parts[p] for p in names], dim=1)
        user_out, item_out = self._propagate(user_stack.flatten(1), item_stack.flatten(1))
        user_out = user_out.view(self.n_users, len(names), d).sum(dim=1)
        item_out = item_out.view(self.n_items, len(names), d)
        part_pairs = {p: (user_out, item_out[:, k]) for k, p in enumerate(names)}
        return user_out, item_out.sum(dim=1), part_pairs

    # ------------------------------------------------------------ the three verbs
    def embed(self) -> Embeddings:
        id_emb, present = self._item_ids()
        fused = self._fuse(id_emb, present, with_parts=self.head is None)
        users0 = self.user_emb.weight
        if fused.parts is not None and self.head is None and not self.conditioned:
            users, items, parts = self._propagate_parts(users0, fused.parts)
        else:
            users, items = self._propagate(users0, fused.fused)
            parts = {}
        if self.conditioned:
            att = fused.attention
            return AttentionEmbeddings(users, items, {}, att.parts, att.keys, att.mask)
        return Embeddings(users, items, parts)

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        id_emb, present = self._item_ids()
        fused = self._fuse(id_emb, present, with_parts=False)
        users0 = self.user_emb.weight
        user_vecs, item_vecs = self._propagate(users0, fused.fused)
        u = user_vecs[users]
        if self.conditioned:
            att = fused.attention
            mask = att.mask
            pos_scores = self.fusion.score_pairs(u, att.parts[pos], att.keys[pos], None if mask is None else mask[pos])
            neg_scores = self.fusion.score_pairs(u, att.parts[neg], att.keys[neg], None if mask is None else mask[neg])
        elif self.head is not None:
            pos_scores, neg_scores = self.head(u, item_vecs[pos]), self.head(u, item_vecs[neg])
        else:
            pos_scores = (u * item_vecs[pos]).sum(dim=1)
            neg_scores = (u * item_vecs[neg]).sum(dim=1)
        reg = l2_reg(users0[users], fused.fused[pos], fused.fused[neg])
        return bpr_loss(pos_scores, neg_scores) + self.config.reg_weight * reg

    def score(self, users: Tensor, items: Tensor | None = None, emb: Embeddings | None = None) -> Tensor:
        if emb is None:
            emb = self.embed()
        if self.conditioned:
            select = slice(None) if items is None else items
            mask = None if emb.part_mask is None else emb.part_mask[select]
            return self.fusion.score_all(emb.users[users], emb.part_vectors[select], emb.part_keys[select], mask)
        if self.head is not None:
            item_vecs = emb.items if items is None else emb.items[items]
            return self.head.score_all(emb.users[users], item_vecs)
        return super().score(users, items, emb)

    def score_parts(
        self, users: Tensor, items: Tensor | None = None, emb: Embeddings | None = None
    ) -> dict[str, Tensor]:
        """Per-part scores ``{part: (len(users), n)}`` summing to :meth:`score`.

        Raises:
            ValueError: the model's fusion or score head is not additive (concat with hidden
                layers, MLP score head).
        """
        if emb is None:
            emb = self.embed()
        select = slice(None) if items is None else items
        if self.conditioned:
            mask = None if emb.part_mask is None else emb.part_mask[select]
            user_vecs = emb.users[users]
            weights = self.fusion.user_weights(user_vecs, emb.part_keys[select], mask)
            part_scores = torch.einsum("npd,bd->bnp", emb.part_vectors[select], user_vecs)
            contrib = weights * part_scores
            return {p: contrib[..., k] for k, p in enumerate(self.part_names)}
        if not emb.parts:
            raise ValueError(
                f"model '{self.name}' is not additive over parts (hidden layers after concatenation "
                f"or an MLP score head); use hidden_dims=() / score_head='dot' for attribution"
            )
        return {p: u[users] @ i[select].T for p, (u, i) in emb.parts.items()}

    @property
    def part_names(self) -> tuple[str, ...]:
        return self.fusion.part_names

    def extra_repr(self) -> str:
        dims = ", ".join(f"{m}:{getattr(self, f'_feat{k}').shape[1]}" for k, m in enumerate(self.modalities))
        return (
            f"n_users={self.n_users}, n_items={self.n_items}, dim={self.config.dim}, "
            f"modalities=[{dims}], num_layers={self.num_layers}, score_head={self.config.score_head}"
        )


@register_model
class ConcatFusionModel(FusionRecommender):
    """Early fusion: item = MLP([ID embedding, projected features]); user = ID embedding.

    See :class:`~mmgcn.nn.fusion.ConcatFusion` and the module docstring. Config: :class:`ConcatConfig`.
    """

    name = "concat"
    Config = ConcatConfig

    def _build_fusion(self, in_dims: dict[str, int]) -> nn.Module:
        cfg = self.config
        return ConcatFusion(in_dims, cfg.dim, cfg.dim, hidden_dims=cfg.hidden_dims, dropout=cfg.dropout)

    def _fuse(self, id_emb: Tensor, id_present: Tensor, with_parts: bool) -> FusedItems:
        feats = self.features()
        if with_parts and self.fusion.is_additive:
            parts = self.fusion.parts(feats, id_emb)
            return FusedItems(sum(parts.values()), parts, None)
        return FusedItems(self.fusion(feats, id_emb), None, None)


@register_model
class AttentionFusionModel(FusionRecommender):
    """Attention fusion: item = sum_p alpha_p e_p over the ID embedding and modality projections.

    See :class:`~mmgcn.nn.fusion.AttentionFusion` and the module docstring. Config:
    :class:`AttentionConfig`. The weights are inspectable with :meth:`attention_weights`.
    """

    name = "attention"
    Config = AttentionConfig

    def _build_fusion(self, in_dims: dict[str, int]) -> nn.Module:
        cfg = self.config
        return AttentionFusion(in_dims, cfg.dim, cfg.attention_dim, include_id=True, user_conditioned=cfg.user_conditioned)

    @property
    def conditioned(self) -> bool:
        return self.config.user_conditioned

    def _fuse(self, id_emb: Tensor, id_present: Tensor, with_parts: bool) -> FusedItems:
        n_mod = len(self.modalities)
        mask = torch.cat([id_present.unsqueeze(1), id_present.new_ones(self.n_items, n_mod)], dim=1)
        out = self.fusion(self.features(), id_emb, mask)
        parts = None
        if with_parts:
            weighted = out.weights.unsqueeze(-1) * out.parts
            parts = {p: weighted[:, k] for k, p in enumerate(self.part_names)}
        return FusedItems(out.fused, parts, out)

    @torch.no_grad()
    def attention_weights(self, users: Tensor | None = None) -> Tensor:
        """Attention weights in eval mode: ``(n_items, P)`` (user-independent query), or
        ``(len(users), n_items, P)`` for given ``users`` with ``user_conditioned=True``.

        Column ``k`` belongs to ``self.part_names[k]`` (``"id"`` first); rows sum to 1. In
        the ``-graph`` variant these are the layer-0 weights, before propagation.
        """
        was_training = self.training
        self.eval()
        try:
            id_emb, present = self._item_ids()
            att = self._fuse(id_emb, present, with_parts=False).attention
            if users is None:
                return att.weights
            if not self.conditioned:
                raise ValueError("per-user attention weights need user_conditioned=True")
            user_vecs = self.user_emb.weight[torch.as_tensor(users, dtype=torch.long, device=id_emb.device)]
            return self.fusion.user_weights(user_vecs, att.keys, att.mask)
        finally:
            self.train(was_training)


@register_model
class ConcatGraphModel(ConcatFusionModel):
    """``concat`` with the fused item and user vectors smoothed LightGCN-style over the train graph."""

    name = "concat-graph"
    Config = ConcatGraphConfig


@register_model
class AttentionGraphModel(AttentionFusionModel):
    """``attention`` with the fused item and user vectors smoothed LightGCN-style over the train graph."""

    name = "attention-graph"
    Config = AttentionGraphConfig


__all__ = [
    "AttentionConfig",
    "AttentionEmbeddings",
    "AttentionFusionModel",
    "AttentionGraphConfig",
    "AttentionGraphModel",
    "ConcatConfig",
    "ConcatFusionModel",
    "ConcatGraphConfig",
    "ConcatGraphModel",
    "FusionConfig",
    "FusionRecommender",
]
