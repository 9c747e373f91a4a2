r"""BM3: bootstrapped latent views without negatives, with inter- and intra-modal alignment.

Zhou et al., "Bootstrap Latent Representations for Multi-modal Recommendation", WWW 2023,
https://arxiv.org/abs/2207.05969. Facts checked against the authors' code in MMRec
(github.com/enoche/MMRec, ``src/models/bm3.py``): the item residual
:math:`h_i \mathrel{+}= e_i`, one predictor shared by the ID and modality latents, dropout
on detached targets, scoring with the predicted representations, the regulariser
(unsquared Frobenius norms of the whole online tables over ``n_items``; on TikTok this
toolkit's batch L2 at ``reg_weight`` 0.1 keeps the model from recovering after its early
peak).

Differences from that code, on purpose: item features are fixed inputs by default (MMRec
fine-tunes the raw feature table, ``tune_features=True`` here, so a new item's raw features
would not match what trained items were scored from), normalised by a transform fitted on
train items (:mod:`mmgcn.features.transforms`); a missing modality is left out of an item's
alignment terms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmgcn.data.dataset import Dataset
from mmgcn.features.transforms import TransformMode, check_mode
from mmgcn.models.base import (
    Embeddings,
    ModelConfig,
    Recommender,
    register_model,
)
from mmgcn.nn.content import ItemContent
from mmgcn.nn.losses import cosine_alignment
from mmgcn.nn.propagation import BipartitePropagation, LayerMean


@dataclass(frozen=True)
class BM3Config(ModelConfig):
    """Configuration of :class:`BM3` (see the class docstring for each field)."""

    dim: int = 64
    reg_weight: float = 0.1
    num_layers: int = 1
    dropout: float = 0.5
    cl_weight: float = 2.0
    feature_transform: TransformMode = "zscore"
    tune_features: bool = False

    def __post_init__(self) -> None:
        if self.dim <= 0:
            raise ValueError(f"dim must be positive, got {self.dim}")
        if self.num_layers < 0:
            raise ValueError(f"num_layers must be >= 0, got {self.num_layers}")
        if self.reg_weight < 0 or self.cl_weight < 0:
            raise ValueError(f"reg_weight and cl_weight must be >= 0, got {self.reg_weight}, {self.cl_weight}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        check_mode(self.feature_transform)


@register_model
class BM3(Recommender):
    r"""BM3: a LightGCN encoder trained to predict dropout views of itself, aligned with content.

    Online representations: LightGCN over the train graph, plus the item's ID embedding
    (the authors' residual), and one linear projection per modality :math:`m`:

    .. math::
        h_u, h'_i = \frac{1}{K+1}\sum_{k=0}^{K} \hat A^k E \quad (u, i), \qquad
        h_i = h'_i + e_i, \qquad h^m_i = W_m \phi_m(x^m_i) + b_m

    (:math:`\phi_m` the fitted feature transform). A shared predictor
    :math:`f_p(h) = W_p h + b_p` gives :math:`\dot h = f_p(h)`; targets are dropout views of
    detached representations, :math:`\tilde h = \mathrm{Dropout}_p(\mathrm{sg}(h))`. With
    :math:`C(a, b) = 1 - \cos(a, b)` averaged over the batch's observed pairs
    :math:`(u, i)` (no negatives; the trainer's sampled negatives are ignored):

    .. math::
        \mathcal L_{rec} = C(\dot h_u, \tilde h_i) + C(\dot h_i, \tilde h_u), \quad
        \mathcal L_{align} = \sum_m C(\dot h^m_i, \tilde h_i), \quad
        \mathcal L_{mask} = \sum_m C(\dot h^m_i, \tilde h^m_i)

    .. math::
        \mathcal L = \mathcal L_{rec} + \lambda_c (\mathcal L_{align} + \mathcal L_{mask})
            + \frac{\lambda}{n_I} (\lVert H_U \rVert_F + \lVert H_I \rVert_F)

    Items lacking content of modality :math:`m` (``dataset.content_masks``) are left out of
    that modality's terms. Scores: :math:`\hat y_{ui} = \dot h_u^\top \dot h_i`.

    Content at ranking time: the score reads ID representations only; content shapes them
    through :math:`\mathcal L_{align}`, which turns :math:`\dot h^m_i` towards
    :math:`h_i`. An item without train edges therefore keeps an untrained ID embedding in
    :meth:`embed` (``edgeless_items="own"``); :meth:`represent_new_items` (and
    ``edgeless_items="content"``) instead estimates its ID view from content: the unit mean
    of the directions :math:`\dot h^m_i / \lVert \dot h^m_i \rVert` over the modalities it
    has, times the mean norm of the train items' :math:`h_i` (the alignment is by angle
    only, so the length comes from the trained items), then scores :math:`f_p` of that.

    Args (:class:`BM3Config`):
        dim: width of every representation (default ``64``).
        reg_weight: :math:`\lambda` (default ``0.1``).
        num_layers: :math:`K` (default ``1``).
        dropout: :math:`p`, dropout of the target views (default ``0.5``).
        cl_weight: :math:`\lambda_c` (default ``2.0``, the authors').
        feature_transform: :mod:`mmgcn.features.transforms` mode applied to the raw
            features, fitted on train items with content (default ``"zscore"``: TikTok's
            visual rows all point almost the same way; ``"none"`` is the authors' raw input).
        tune_features: fine-tune the (transformed) feature tables, as the authors' code
            (default ``False``; new items are then projected from features the projections
            were not trained on).
    """

    name: ClassVar[str] = "bm3"
    Config: ClassVar[type[ModelConfig]] = BM3Config
    uses_content: ClassVar[bool] = True

    def __init__(self, config: BM3Config, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        # fitted on items with train edges and content; saved with the model, applied to new items
        self.content = ItemContent(dataset, transform=config.feature_transform, trainable=config.tune_features,
                                   model=self.name)
        self.modalities = self.content.modalities
        self.graph = BipartitePropagation(dataset.train, "sym")
        self.layer_mean = LayerMean(config.num_layers)
        self.user_embedding = nn.Parameter(torch.empty(self.n_users, config.dim))
        self.item_embedding = nn.Parameter(torch.empty(self.n_items, config.dim))
        self.projections = nn.ModuleDict({m: nn.Linear(d, config.dim) for m, d in self.content.dims.items()})
        self.predictor = nn.Linear(config.dim, config.dim)
        self.register_buffer("in_train", torch.from_numpy(dataset.items_in_train.copy()), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user_embedding)
        nn.init.xavier_uniform_(self.item_embedding)
        # Xavier weights; biases keep nn.Linear's U(+-1/sqrt(fan_in)) init, as the authors'
        # code: with zero biases the predicted users stay collapsed onto one direction for
        # many epochs on TikTok and the model peaks far lower
        for layer in [self.predictor, *self.projections.values()]:
            layer.reset_parameters()
            nn.init.xavier_normal_(layer.weight)
        self.content.reset_parameters()

    def online(self) -> tuple[Tensor, Tensor]:
        """Online ID representations ``(h_u (n_users, d), h_i (n_items, d))``, before the predictor."""
        users, items = self.layer_mean(self.graph, self.user_embedding, self.item_embedding)
        return users, items + self.item_embedding

    def embed(self) -> Embeddings:
        users, items = self.online()
        return Embeddings(self.predictor(users), self.predictor(items))

    def _target(self, states: Tensor) -> Tensor:
        return F.dropout(states.detach(), p=self.config.dropout, training=True)

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        h_users, h_items = self.online()
        h_u, h_i = h_users[users], h_items[pos]
        target_u, target_i = self._target(h_u), self._target(h_i)
        loss = cosine_alignment(self.predictor(h_u), target_i) + cosine_alignment(self.predictor(h_i), target_u)
        modal = h_u.new_zeros(())
        for m in self.modalities:
            keep = self.content.present(m)[pos]
            if not bool(keep.any()):
                continue
            latent = self.projections[m](self.content.table(m)[pos[keep]])
            predicted = self.predictor(latent)
            modal = modal + cosine_alignment(predicted, target_i[keep]) + cosine_alignment(predicted, self._target(latent))
        # the authors' regulariser: unsquared norms of the whole online tables over n_items
        reg = (h_users.norm() + h_items.norm()) / self.n_items
        return loss + self.config.cl_weight * modal + self.config.reg_weight * reg

    @torch.no_grad()
    def represent_new_items(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None
    ) -> Embeddings:
        r"""Content-only representations of unseen items (see the class docstring).

        Returns ``users`` :math:`\dot h_u` ``(n_users, d)`` and ``items``
        :math:`f_p(\hat h_i)` ``(n_new, d)``, where :math:`\hat h_i` is the content estimate
        of the item's ID view; an item with no modality at all gets :math:`\hat h_i = 0`.
        """
        feats, masks = self.content.new_items(features, present)
        n_new = next(iter(feats.values())).shape[0]
        direction = self.predictor.weight.new_zeros(n_new, self.config.dim)
        for m in self.modalities:
            latent = self.predictor(self.projections[m](feats[m]))
            direction = direction + F.normalize(latent, dim=1) * masks[m].unsqueeze(1)
        h_users, h_items = self.online()
        warm = h_items[self.in_train] if bool(self.in_train.any()) else h_items
        estimate = F.normalize(direction, dim=1) * warm.norm(dim=1).mean()
        return Embeddings(self.predictor(h_users), self.predictor(estimate))


__all__ = ["BM3", "BM3Config"]
