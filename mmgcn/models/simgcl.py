r"""SimGCL: graph contrastive learning with uniform noise instead of graph augmentations.

Yu et al., "Are Graph Augmentations Necessary? Simple Graph Contrastive Learning for
Recommendation", SIGIR 2022, https://arxiv.org/abs/2112.08679. ID only: no item content
is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmgcn.data.dataset import Dataset
from mmgcn.models.base import Embeddings, ModelConfig, Recommender, register_model
from mmgcn.models.sgl import ContrastiveGCNConfig
from mmgcn.nn.losses import bpr_loss, info_nce, l2_reg
from mmgcn.nn.propagation import BipartitePropagation


@dataclass(frozen=True)
class SimGCLConfig(ContrastiveGCNConfig):
    """Configuration of :class:`SimGCL` (see the class docstring for each field)."""

    num_layers: int = 2
    ssl_weight: float = 0.5
    noise_eps: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.noise_eps < 0:
            raise ValueError(f"noise_eps must be >= 0, got {self.noise_eps}")


def sign_aligned_noise(states: Tensor, eps: float) -> Tensor:
    r"""SimGCL's perturbation :math:`\Delta = \epsilon\, \mathrm{sign}(E) \odot \bar\Delta / \lVert\bar\Delta\rVert`.

    :math:`\bar\Delta \sim U(0, 1)^{n \times d}` (global torch generator), each row scaled
    to norm :math:`\epsilon`: every row of ``states`` moves by exactly ``eps`` and stays in
    its own orthant (the noise never flips a coordinate's sign by itself).

    Args:
        states: ``(n, d)`` embeddings.
        eps: the noise radius :math:`\epsilon`.

    Returns:
        ``(n, d)`` noise, to be added to ``states``.
    """
    return torch.sign(states) * F.normalize(torch.rand_like(states), dim=1) * eps


@register_model
class SimGCL(Recommender):
    r"""SimGCL: LightGCN (without the layer-0 term) plus InfoNCE between two noise-perturbed encoders.

    Encoder with noise :math:`\Delta^{(k)}` (:func:`sign_aligned_noise`, fresh at every
    layer and every call; :math:`\Delta = 0` for the recommendation view):

    .. math::
        E^{(k)} = \hat A E^{(k-1)} + \Delta^{(k)}, \qquad
        Z = \frac{1}{K}\sum_{k=1}^{K} E^{(k)}

    (the input embeddings :math:`E^{(0)}` are left out of the mean, as in the paper). Two
    perturbed passes give :math:`Z', Z''`; with in-batch negatives,

    .. math::
        \mathcal L_{cl} = \sum_{u \in \mathcal B_U} -\log
            \frac{\exp(s(z'_u, z''_u)/\tau)}{\sum_{v \in \mathcal B_U} \exp(s(z'_u, z''_v)/\tau)}
            + (\text{the same over } \mathcal B_I), \qquad
        \mathcal L = \mathcal L_{BPR}(Z) + \lambda\, \mathcal L_{cl} + \lambda_2 \lVert E^{(0)}_{\mathcal B}\rVert^2

    where :math:`\mathcal B_U, \mathcal B_I` are the batch's distinct users and positive
    items, :math:`s` is cosine similarity, each term is averaged over its anchors, and the
    L2 term covers the batch's input embeddings (as LightGCN here). Scores:
    :math:`\hat y_{ui} = z_u^\top z_i` without noise.

    Args (:class:`SimGCLConfig`):
        dim: embedding width (default ``64``).
        reg_weight: :math:`\lambda_2` (default ``1e-4``).
        num_layers: :math:`K` (default ``2``).
        ssl_weight: :math:`\lambda` (default ``0.5``).
        temperature: :math:`\tau` (default ``0.2``).
        noise_eps: :math:`\epsilon`, the noise radius (default ``0.1``).
    """

    name: ClassVar[str] = "simgcl"
    Config: ClassVar[type[ModelConfig]] = SimGCLConfig

    def __init__(self, config: SimGCLConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        self.graph = BipartitePropagation(dataset.train, "sym")
        self.user_embedding = nn.Parameter(torch.empty(self.n_users, config.dim))
        self.item_embedding = nn.Parameter(torch.empty(self.n_items, config.dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user_embedding)
        nn.init.xavier_uniform_(self.item_embedding)

    def propagate(self, noise_eps: float = 0.0) -> tuple[Tensor, Tensor]:
        """Mean of layers ``1..K``, noise of radius ``noise_eps`` after every hop (``0``: none)."""
        users, items = self.user_embedding, self.item_embedding
        user_sum = item_sum = None
        for _ in range(self.config.num_layers):
            users, items = self.graph(users, items)
            if noise_eps > 0:
                users = users + sign_aligned_noise(users, noise_eps)
                items = items + sign_aligned_noise(items, noise_eps)
            user_sum = users if user_sum is None else user_sum + users
            item_sum = items if item_sum is None else item_sum + items
        scale = 1.0 / self.config.num_layers
        return user_sum * scale, item_sum * scale

    def embed(self) -> Embeddings:
        users, items = self.propagate()
        return Embeddings(users, items, {"id": (users, items)})

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        emb = self.embed()
        user_vecs = emb.users[users]
        main = bpr_loss((user_vecs * emb.items[pos]).sum(1), (user_vecs * emb.items[neg]).sum(1))
        reg = l2_reg(self.user_embedding[users], self.item_embedding[pos], self.item_embedding[neg])
        loss = main + self.config.reg_weight * reg
        if self.config.ssl_weight > 0:
            loss = loss + self.config.ssl_weight * self.contrastive_loss(users, pos)
        return loss

    def contrastive_loss(self, users: Tensor, pos: Tensor) -> Tensor:
        """:math:`\\mathcal L_{cl}`: two fresh perturbed passes, in-batch InfoNCE on users and items."""
        users1, items1 = self.propagate(self.config.noise_eps)
        users2, items2 = self.propagate(self.config.noise_eps)
        u, i = torch.unique(users), torch.unique(pos)
        t = self.config.temperature
        return info_nce(users1[u], users2[u], t) + info_nce(items1[i], items2[i], t)


__all__ = ["SimGCL", "SimGCLConfig", "sign_aligned_noise"]
