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

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mmgcn.models.base import register_model
from mmgcn.models.fusion_base import (
    AttentionEmbeddings,
    FusedItems,
    FusionConfig,
    FusionRecommender,
)
from mmgcn.nn.fusion import AttentionFusion, ConcatFusion
from mmgcn.utils.modes import eval_mode


# ---------------------------------------------------------------------- configs
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


# ---------------------------------------------------------------------- models
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

    def _fuse_features(
        self, feats: Mapping[str, Tensor], id_emb: Tensor, id_present: Tensor, content_present: Tensor,
        with_parts: bool,
    ) -> FusedItems:
        if with_parts and self.fusion.is_additive:
            parts = self.fusion.parts(feats, id_emb, content_present)
            return FusedItems(sum(parts.values()), parts, None)
        return FusedItems(self.fusion(feats, id_emb, content_present), None, None)


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

    def _fuse_features(
        self, feats: Mapping[str, Tensor], id_emb: Tensor, id_present: Tensor, content_present: Tensor,
        with_parts: bool,
    ) -> FusedItems:
        # absent parts (no ID embedding, no content of a modality) are never attended to;
        # an item with no part at all keeps its modalities (fills) so the softmax is defined
        content_present = content_present | ~(id_present.unsqueeze(1) | content_present).any(dim=1, keepdim=True)
        mask = torch.cat([id_present.unsqueeze(1), content_present], dim=1)
        out = self.fusion(feats, id_emb, mask)
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
        with eval_mode(self):
            id_emb, present = self._item_ids()
            att = self._fuse(id_emb, present, with_parts=False).attention
            if users is None:
                return att.weights
            if not self.conditioned:
                raise ValueError("per-user attention weights need user_conditioned=True")
            user_vecs = self.user_emb.weight[torch.as_tensor(users, dtype=torch.long, device=id_emb.device)]
            return self.fusion.user_weights(user_vecs, att.keys, att.mask)


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
