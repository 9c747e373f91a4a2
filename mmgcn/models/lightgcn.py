r"""LightGCN: linear propagation of ID embeddings over the normalised user-item graph.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020, https://arxiv.org/abs/2002.02126.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from mmgcn.data.dataset import Dataset
from mmgcn.models.base import Embeddings, ModelConfig, Recommender, register_model
from mmgcn.nn.losses import bpr_loss, l2_reg
from mmgcn.nn.propagation import BipartitePropagation, LayerMean, layer_mean_propagation
from mmgcn.nn.subgraph import Subgraph, trimmed_layer_mean


@dataclass(frozen=True)
class LightGCNConfig(ModelConfig):
    """Configuration of :class:`LightGCN`."""

    dim: int = 64
    reg_weight: float = 1e-4
    num_layers: int = 3

    def __post_init__(self) -> None:
        if self.dim <= 0:
            raise ValueError(f"dim must be positive, got {self.dim}")
        if self.num_layers < 0:
            raise ValueError(f"num_layers must be >= 0, got {self.num_layers}")
        if self.reg_weight < 0:
            raise ValueError(f"reg_weight must be >= 0, got {self.reg_weight}")


@register_model
class LightGCN(Recommender):
    r"""LightGCN: ID embeddings smoothed over the train graph, averaged over layers.

    .. math::
        E^{(k+1)} = D^{-1/2} A D^{-1/2} E^{(k)}, \qquad
        E = \frac{1}{K+1}\sum_{k=0}^{K} E^{(k)}, \qquad \hat y_{ui} = e_u^\top e_i

    Loss: BPR plus ``reg_weight`` times the L2 of the batch's *ego* (layer-0) embeddings,
    as in the paper. With a sampled ``subgraph`` (``train.num_neighbors``) the propagation
    runs over the batch's K-hop neighbourhood only.

    Args (:class:`LightGCNConfig`):
        dim: embedding width (default ``64``).
        reg_weight: L2 weight on the batch's layer-0 embeddings (default ``1e-4``).
        num_layers: :math:`K`, propagation layers (default ``3``; ``0`` is BPR-MF).
    """

    name: ClassVar[str] = "lightgcn"
    Config: ClassVar[type[ModelConfig]] = LightGCNConfig

    def __init__(self, config: LightGCNConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        self.graph = BipartitePropagation(dataset.train, "sym")
        self.layer_mean = LayerMean(config.num_layers)
        self.user_embedding = nn.Parameter(torch.empty(self.n_users, config.dim))
        self.item_embedding = nn.Parameter(torch.empty(self.n_items, config.dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_normal_(self.user_embedding)
        nn.init.xavier_normal_(self.item_embedding)

    def embed(self) -> Embeddings:
        users, items = self.layer_mean(self.graph, self.user_embedding, self.item_embedding)
        return Embeddings(users, items, {"id": (users, items)})

    def subgraph_sampling(self) -> tuple[nn.Module, int]:
        return self.graph, self.config.num_layers

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor, subgraph: Subgraph | None = None) -> Tensor:
        if subgraph is None:
            emb, u, i = self.embed(), users, torch.cat([pos, neg])
        else:  # the same propagation over the batch's neighbourhood, in local ids
            user_states, item_states = trimmed_layer_mean(
                subgraph.graph, self.user_embedding[subgraph.users], self.item_embedding[subgraph.items],
                self.config.num_layers,
            )
            emb, u, i = Embeddings(user_states, item_states), subgraph.user_index, subgraph.item_index
        user_vecs = emb.users[u]
        pos_scores = (user_vecs * emb.items[i[: pos.numel()]]).sum(1)
        neg_scores = (user_vecs * emb.items[i[pos.numel():]]).sum(1)
        reg = l2_reg(self.user_embedding[users], self.item_embedding[pos], self.item_embedding[neg])
        return bpr_loss(pos_scores, neg_scores) + self.config.reg_weight * reg


# layer_mean_propagation lives in mmgcn.nn.propagation; re-exported for old imports
__all__ = ["LightGCN", "LightGCNConfig", "layer_mean_propagation"]
