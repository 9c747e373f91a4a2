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

    def __post_init__(self) -> None:
        if self.dim <= 0:
            raise ValueError(f"dim must be positive, got {self.dim}")
        if self.reg_weight < 0:
            raise ValueError(f"reg_weight must be >= 0, got {self.reg_weight}")


@register_model
class BPRMF(Recommender):
    r"""Matrix factorisation with BPR (ID embeddings only).

    .. math::
        \hat y_{ui} = e_u^\top e_i, \qquad
        \mathcal L = \mathrm{BPR} + \lambda \cdot \tfrac{1}{2B}\textstyle\sum_b
        (\lVert e_{u_b}\rVert^2 + \lVert e_{i_b}\rVert^2 + \lVert e_{j_b}\rVert^2)

    Args (:class:`BPRConfig`):
        dim: embedding width (default ``64``).
        reg_weight: :math:`\lambda`, L2 weight on the batch's embeddings (default ``1e-4``).
    """

    name: ClassVar[str] = "bpr"
    Config: ClassVar[type[ModelConfig]] = BPRConfig

    def __init__(self, config: BPRConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        self.user_embedding = nn.Parameter(torch.empty(self.n_users, config.dim))
        self.item_embedding = nn.Parameter(torch.empty(self.n_items, config.dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_normal_(self.user_embedding)
        nn.init.xavier_normal_(self.item_embedding)

    def embed(self) -> Embeddings:
        return Embeddings(self.user_embedding, self.item_embedding, {"id": (self.user_embedding, self.item_embedding)})

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        user_vecs = self.user_embedding[users]
        pos_vecs, neg_vecs = self.item_embedding[pos], self.item_embedding[neg]
        pos_scores = (user_vecs * pos_vecs).sum(1)
        neg_scores = (user_vecs * neg_vecs).sum(1)
        return bpr_loss(pos_scores, neg_scores) + self.config.reg_weight * l2_reg(user_vecs, pos_vecs, neg_vecs)


__all__ = ["BPRConfig", "BPRMF"]
