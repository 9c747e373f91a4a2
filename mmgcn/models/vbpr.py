r"""VBPR: BPR matrix factorisation with a content-based item factor.

He & McAuley, "VBPR: Visual Bayesian Personalized Ranking from Implicit Feedback",
AAAI 2016, https://arxiv.org/abs/1510.01784. All modalities are used: their features are
concatenated (each modality's rows L2-normalised first, so no modality dominates by
scale) and projected by one learned matrix :math:`E`. A modality an item has no content of
contributes a zero block (missing, not a fill vector).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from mmgcn.data.dataset import Dataset
from mmgcn.features.transforms import fit_feature_transforms
from mmgcn.models.base import (
    Embeddings,
    ModelConfig,
    Recommender,
    register_model,
)
from mmgcn.nn.content import check_new_item_features
from mmgcn.nn.losses import bpr_loss, l2_reg


@dataclass(frozen=True)
class VBPRConfig(ModelConfig):
    """Configuration of :class:`VBPR`."""

    dim: int = 64
    reg_weight: float = 1e-4
    content_dim: int | None = None
    normalize_features: bool = True
    standardize_features: bool = False
    item_bias: bool = True
    reg_content: bool = True

    def __post_init__(self) -> None:
        if self.dim <= 0:
            raise ValueError(f"dim must be positive, got {self.dim}")
        if self.content_dim is not None and self.content_dim <= 0:
            raise ValueError(f"content_dim must be positive or null, got {self.content_dim}")
        if self.reg_weight < 0:
            raise ValueError(f"reg_weight must be >= 0, got {self.reg_weight}")


@register_model
class VBPR(Recommender):
    r"""Visual BPR, generalised to any set of modalities.

    .. math::
        \hat y_{ui} = \gamma_u^\top \gamma_i + \theta_u^\top (E f_i) + \beta_i + \beta'^\top f_i

    with ID factors :math:`\gamma`, user content preferences :math:`\theta_u`, the
    concatenated item features :math:`f_i`, and (``item_bias``) the item bias
    :math:`\beta_i` plus content bias :math:`\beta'^\top f_i` (user and global biases do
    not change a user's ranking and are omitted). As a dot product: users
    :math:`[\gamma_u; \theta_u; 1]`, items :math:`[\gamma_i; E f_i; \beta_i + \beta'^\top f_i]`;
    ``embed().parts`` holds ``"id"``, ``"content"`` and ``"bias"``. Items without train
    edges are scored through :math:`E f_i` and :math:`\beta'^\top f_i` (``uses_content``).

    Loss: BPR plus ``reg_weight`` times the L2 of the batch's :math:`\gamma_u, \theta_u,
    \gamma_i, \gamma_j` (and item biases).

    Args (:class:`VBPRConfig`):
        dim: width of the ID factors (default ``64``).
        reg_weight: L2 weight on the batch's factors (default ``1e-4``).
        content_dim: width of :math:`E f_i` and :math:`\theta_u` (default ``None`` = ``dim``).
        normalize_features: L2-normalise each modality's rows before concatenating
            (default ``True``).
        standardize_features: z-score each feature column first, with statistics fitted on
            the items that have train edges and content (default ``False``;
            :mod:`mmgcn.features.transforms`). TikTok's visual rows all point almost the
            same way, so normalising alone leaves them nearly identical.
        item_bias: include :math:`\beta_i + \beta'^\top f_i` (default ``True``).
        reg_content: also put the L2 term on the batch items' content vectors
            :math:`E f_i, E f_j` and content biases (default ``True``, as the paper, which
            regularises :math:`E` and :math:`\beta'` with the other parameters). Without it
            the shared projection is free to grow under Adam and fit noise in near-identical
            features (TikTok validation Recall@20 0.061 with it off, 0.078 on; see
            ``benchmarks/tuning/archive/tiktok-2026-11.md``).
    """

    name: ClassVar[str] = "vbpr"
    Config: ClassVar[type[ModelConfig]] = VBPRConfig
    uses_content: ClassVar[bool] = True

    def __init__(self, config: VBPRConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        if not dataset.features:
            raise ValueError(
                f"vbpr needs item features, but dataset {dataset.name!r} has no modalities; "
                f"extract features first (mmgcn extract) or use bpr"
            )
        self.modalities = tuple(dataset.features)
        self.feature_dims = {m: int(dataset.features[m].shape[1]) for m in self.modalities}
        mode = {(False, False): "none", (False, True): "l2", (True, False): "zscore", (True, True): "zscore+l2"}[
            (config.standardize_features, config.normalize_features)]
        # fitted on items with train edges and content; saved with the model, applied to new items
        self.transforms = fit_feature_transforms(dataset.features, dataset.items_in_train, dataset.content_masks, mode)
        present = {m: torch.from_numpy(dataset.has_content(m).copy()) for m in self.modalities}
        # the concatenated features never change: computed once, kept as a constant buffer
        self.register_buffer("content", self._content(dataset.features, present), persistent=False)
        content_dim = config.content_dim or config.dim
        self.user_id = nn.Parameter(torch.empty(self.n_users, config.dim))
        self.item_id = nn.Parameter(torch.empty(self.n_items, config.dim))
        self.user_content = nn.Parameter(torch.empty(self.n_users, content_dim))
        self.projection = nn.Linear(self.content.shape[1], content_dim, bias=False)
        if config.item_bias:
            self.bias_id = nn.Parameter(torch.empty(self.n_items))
            self.bias_content = nn.Linear(self.content.shape[1], 1, bias=False)
        else:
            self.bias_id, self.bias_content = None, None
        self.reset_parameters()

    def _content(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None) -> Tensor:
        """``(n, sum_m d_m)`` transformed, concatenated features; zero blocks where absent."""
        blocks = []
        for m in self.modalities:
            block = self.transforms[m](features[m])
            if present is not None:
                block = block * present[m].to(device=block.device, dtype=block.dtype).reshape(-1, 1)
            blocks.append(block)
        return torch.cat(blocks, dim=1)

    def reset_parameters(self) -> None:
        for table in (self.user_id, self.item_id, self.user_content):
            nn.init.xavier_normal_(table)
        nn.init.xavier_normal_(self.projection.weight)
        if self.bias_id is not None:
            nn.init.zeros_(self.bias_id)
            nn.init.zeros_(self.bias_content.weight)

    def embed(self) -> Embeddings:
        item_content = self.projection(self.content)
        parts = {"id": (self.user_id, self.item_id), "content": (self.user_content, item_content)}
        if self.bias_id is not None:
            item_bias = self.bias_id.unsqueeze(1) + self.bias_content(self.content)
            parts["bias"] = (self.user_id.new_ones(self.n_users, 1), item_bias)
        users = torch.cat([u for u, _ in parts.values()], dim=1)
        items = torch.cat([i for _, i in parts.values()], dim=1)
        return Embeddings(users, items, parts)

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        # nothing propagates over the graph: score only the batch's rows, and project the
        # content of each distinct item of the batch once (not once per triple)
        items, index = torch.unique(torch.cat([pos, neg]), return_inverse=True)
        projected = self.projection(self.content[items])[index]
        pos_content, neg_content = projected[: pos.numel()], projected[pos.numel() :]
        user_vecs = [self.user_id[users], self.user_content[users]]
        pos_vecs = [self.item_id[pos], pos_content]
        neg_vecs = [self.item_id[neg], neg_content]
        reg_terms = [self.user_id[users], self.user_content[users], self.item_id[pos], self.item_id[neg]]
        if self.config.reg_content:
            reg_terms += [pos_content, neg_content]
        if self.bias_id is not None:
            content_bias = self.bias_content(self.content[items])[index]
            pos_bias, neg_bias = content_bias[: pos.numel()], content_bias[pos.numel() :]
            user_vecs.append(self.user_id.new_ones(users.numel(), 1))
            pos_vecs.append(self.bias_id[pos].unsqueeze(1) + pos_bias)
            neg_vecs.append(self.bias_id[neg].unsqueeze(1) + neg_bias)
            reg_terms += [self.bias_id[pos].unsqueeze(1), self.bias_id[neg].unsqueeze(1)]
            if self.config.reg_content:
                reg_terms += [pos_bias, neg_bias]
        user_vec = torch.cat(user_vecs, dim=1)
        pos_scores = (user_vec * torch.cat(pos_vecs, dim=1)).sum(1)
        neg_scores = (user_vec * torch.cat(neg_vecs, dim=1)).sum(1)
        return bpr_loss(pos_scores, neg_scores) + self.config.reg_weight * l2_reg(*reg_terms)

    @torch.no_grad()
    def represent_new_items(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None
    ) -> Embeddings:
        r"""Content-only representations of unseen items (see :meth:`Recommender.represent_new_items`).

        A new item has no ID factor and no item bias: its vector is
        :math:`[0; E f_i; \beta'^\top f_i]`, the same as a dataset item's with
        :math:`\gamma_i = 0, \beta_i = 0`. ``parts`` hold ``"id"`` (zero), ``"content"`` and
        ``"bias"``, as in :meth:`embed`.
        """
        feats = check_new_item_features(features, self.feature_dims, self.name, self.content.device)
        content = self._content(feats, present)
        n_new = content.shape[0]
        parts = {
            "id": (self.user_id, self.item_id.new_zeros(n_new, self.item_id.shape[1])),
            "content": (self.user_content, self.projection(content)),
        }
        if self.bias_id is not None:
            parts["bias"] = (self.user_id.new_ones(self.n_users, 1), self.bias_content(content))
        users = torch.cat([u for u, _ in parts.values()], dim=1)
        items = torch.cat([i for _, i in parts.values()], dim=1)
        return Embeddings(users, items, parts)


__all__ = ["VBPR", "VBPRConfig"]
