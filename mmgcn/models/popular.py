r"""Most-popular items: a non-personalised floor every learned model must beat.

Each item scores its number of TRAIN interactions, the same for every user:

.. math:: \hat y_{ui} = |\{v : (v, i) \in \mathcal{R}_{train}\}|

``recommend()`` gives each user the most popular items outside the masked splits (train
and valid by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from mmgcn.data.dataset import Dataset
from mmgcn.models.base import Embeddings, ModelConfig, Recommender, register_model


@dataclass(frozen=True)
class PopularConfig(ModelConfig):
    """Configuration of :class:`MostPopular` (``dim`` and ``reg_weight`` are unused)."""


@register_model
class MostPopular(Recommender):
    """Score every item by its train interaction count (nothing to train).

    As a dot product: users are the constant ``(n_users, 1)`` vector of ones, items the
    ``(n_items, 1)`` column of train counts, so the base class scores and recommends it
    like any other model. ``loss`` raises: ``trainable`` is ``False``.
    """

    name: ClassVar[str] = "popular"
    Config: ClassVar[type[ModelConfig]] = PopularConfig
    trainable: ClassVar[bool] = False

    def __init__(self, config: PopularConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        counts = np.bincount(dataset.train.indices, minlength=self.n_items).astype(np.float32)
        self.register_buffer("item_counts", torch.from_numpy(counts).unsqueeze(1))
        self.register_buffer("user_ones", torch.ones(self.n_users, 1), persistent=False)

    def reset_parameters(self) -> None:
        """Nothing to reset: the counts are a function of the train split."""

    def embed(self) -> Embeddings:
        return Embeddings(self.user_ones, self.item_counts, {"popularity": (self.user_ones, self.item_counts)})

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        raise RuntimeError("the 'popular' model has nothing to train (trainable=False); evaluate it directly")


__all__ = ["MostPopular", "PopularConfig"]
