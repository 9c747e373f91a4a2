r"""BPR-MF: matrix factorisation trained with the BPR loss.

Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009,
https://arxiv.org/abs/1205.2618.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from mmgcn.data.dataset import Dataset
from mmgcn.models.base import Embeddings, ModelConfig, Recommender, register_model
from mmgcn.nn.losses import bpr_loss, l2_reg


@dataclass(frozen=True)
class BPRConfig(ModelConfig):
    """Configuration of :class:`BPRMF`."""

    dim: int = 64
    reg_weight: float = 1e-4
    item_bias: bool = False

    def __post_init__(self) -> None:
        if self.dim <= 0:
            raise ValueError(f"dim must be positive, got {self.dim}")
        if self.reg_weight < 0:
            raise ValueError(f"reg_weight must be >= 0, got {self.reg_weight}")


@register_model
class BPRMF(Recommender):
    r"""Matrix factorisation with BPR (ID embeddings only).

    .. math::
        \hat y_{ui} = e_u^\top e_i \;[+\, \beta_i], \qquad
        \mathcal L = \mathrm{BPR} + \lambda \cdot \tfrac{1}{2B}\textstyle\sum_b
        (\lVert e_{u_b}\rVert^2 + \lVert e_{i_b}\rVert^2 + \lVert e_{j_b}\rVert^2
        \,[+\, \beta_{i_b}^2 + \beta_{j_b}^2])

    With ``item_bias`` each item has a scalar bias :math:`\beta_i` (as in Rendle's BPR
    and Cornac's implementation): popularity then has its own parameter instead of being
    squeezed into the factors. As a dot product: users :math:`[e_u; 1]`, items
    :math:`[e_i; \beta_i]`; ``embed().parts`` holds ``"id"`` and ``"bias"``.

    Args (:class:`BPRConfig`):
        dim: embedding width (default ``64``).
        reg_weight: :math:`\lambda`, L2 weight on the batch's embeddings (default ``1e-4``).
        item_bias: add a learned item bias :math:`\beta_i`, initialised at 0 (default ``False``).
    """

    name: ClassVar[str] = "bpr"
    Config: ClassVar[type[ModelConfig]] = BPRConfig

    def __init__(self, config: BPRConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        self.user_embedding = nn.Parameter(torch.empty(self.n_users, config.dim))
        self.item_embedding = nn.Parameter(torch.empty(self.n_items, config.dim))
        self.bias = nn.Parameter(torch.empty(self.n_items)) if config.item_bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_normal_(self.user_embedding)
        nn.init.xavier_normal_(self.item_embedding)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def embed(self) -> Embeddings:
        parts = {"id": (self.user_embedding, self.item_embedding)}
        if self.bias is None:
            return Embeddings(self.user_embedding, self.item_embedding, parts)
        parts["bias"] = (self.user_embedding.new_ones(self.n_users, 1), self.bias.unsqueeze(1))
        users = torch.cat([u for u, _ in parts.values()], dim=1)
        items = torch.cat([i for _, i in parts.values()], dim=1)
        return Embeddings(users, items, parts)

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        user_vecs = self.user_embedding[users]
        pos_vecs, neg_vecs = self.item_embedding[pos], self.item_embedding[neg]
        pos_scores = (user_vecs * pos_vecs).sum(1)
        neg_scores = (user_vecs * neg_vecs).sum(1)
        reg_terms = [user_vecs, pos_vecs, neg_vecs]
        if self.bias is not None:
            pos_bias, neg_bias = self.bias[pos], self.bias[neg]
            pos_scores, neg_scores = pos_scores + pos_bias, neg_scores + neg_bias
            reg_terms += [pos_bias.unsqueeze(1), neg_bias.unsqueeze(1)]
        return bpr_loss(pos_scores, neg_scores) + self.config.reg_weight * l2_reg(*reg_terms)


__all__ = ["BPRConfig", "BPRMF"]
