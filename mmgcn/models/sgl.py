r"""SGL: self-supervised graph learning with edge-dropout views (SGL-ED).

Wu et al., "Self-supervised Graph Learning for Recommendation", SIGIR 2021,
https://arxiv.org/abs/2010.10783. ID only: no item content is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from mmgcn.data.dataset import Dataset
from mmgcn.models.base import Embeddings, ModelConfig, Recommender, register_model
from mmgcn.nn.losses import bpr_loss, info_nce, l2_reg
from mmgcn.nn.propagation import BipartitePropagation, LayerMean


@dataclass(frozen=True)
class ContrastiveGCNConfig(ModelConfig):
    """The fields SGL and SimGCL share: a LightGCN backbone plus an InfoNCE term between two
    views (each model adds how its views differ, and its own defaults)."""

    dim: int = 64
    reg_weight: float = 1e-4
    num_layers: int = 3
    ssl_weight: float = 0.1
    temperature: float = 0.2

    def __post_init__(self) -> None:
        if self.dim <= 0:
            raise ValueError(f"dim must be positive, got {self.dim}")
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1 (views differ only through propagation), got {self.num_layers}")
        if self.reg_weight < 0 or self.ssl_weight < 0:
            raise ValueError(f"reg_weight and ssl_weight must be >= 0, got {self.reg_weight}, {self.ssl_weight}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")


@dataclass(frozen=True)
class SGLConfig(ContrastiveGCNConfig):
    """Configuration of :class:`SGL` (see the class docstring for each field)."""

    edge_dropout: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.edge_dropout < 1.0:
            raise ValueError(f"edge_dropout must be in [0, 1), got {self.edge_dropout}")


def edge_dropout_subgraph(train: sp.spmatrix, drop: float, rng: np.random.Generator) -> sp.csr_matrix:
    """A uniform random subgraph of ``train`` keeping ``int((1 - drop) * nnz)`` edges.

    The kept edges are drawn without replacement, every edge equally likely (SGL's edge
    dropout; the authors' code keeps exactly this many).

    Args:
        train: ``(n_users, n_items)`` train interactions.
        drop: share of edges dropped, in ``[0, 1)``.
        rng: source of randomness (an epoch's generator).

    Returns:
        ``(n_users, n_items)`` binary float32 CSR holding the kept edges.
    """
    if not 0.0 <= drop < 1.0:
        raise ValueError(f"drop must be in [0, 1), got {drop}")
    csr = sp.csr_matrix(train, dtype=np.float32, copy=True)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    keep = np.sort(rng.choice(csr.nnz, size=int((1.0 - drop) * csr.nnz), replace=False))
    data = np.ones(keep.size, dtype=np.float32)
    return sp.csr_matrix((data, (rows[keep], csr.indices[keep])), shape=csr.shape)


@register_model
class SGL(Recommender):
    r"""SGL-ED: LightGCN trained with BPR plus a contrastive task between two edge-dropout views.

    Encoder (LightGCN, on graph :math:`\mathcal G`, layer-0 embeddings :math:`E^{(0)}`):

    .. math::
        E^{(k+1)} = D^{-1/2} A_{\mathcal G} D^{-1/2} E^{(k)}, \qquad
        Z_{\mathcal G} = \frac{1}{K+1}\sum_{k=0}^{K} E^{(k)}

    At every epoch two subgraphs :math:`s_1(\mathcal G), s_2(\mathcal G)` are drawn, each
    keeping a uniform ``1 - edge_dropout`` share of the train edges (the same subgraph at
    every layer, re-normalised with its own degrees); :math:`Z' = Z_{s_1}`,
    :math:`Z'' = Z_{s_2}`. With cosine similarity :math:`s` and temperature :math:`\tau`,

    .. math::
        \mathcal L_{ssl}^{user} = \sum_{u \in \mathcal B_U}
            -\log \frac{\exp(s(z'_u, z''_u)/\tau)}{\sum_{v \in \mathcal U} \exp(s(z'_u, z''_v)/\tau)},
        \qquad
        \mathcal L = \mathcal L_{BPR}(Z_{\mathcal G}) + \lambda_1 (\mathcal L_{ssl}^{user}
            + \mathcal L_{ssl}^{item}) + \lambda_2 \lVert E^{(0)}_{\mathcal B} \rVert^2

    where :math:`\mathcal B_U` are the batch's distinct users (contrasted with every user's
    second view), :math:`\mathcal L_{ssl}^{item}` the same over the batch's distinct
    positive items and every item, each term averaged over its anchors (the BPR term too,
    so :math:`\lambda_1` keeps the paper's meaning), and the L2 term is the batch's layer-0
    embeddings as in LightGCN. Scores use the full train graph:
    :math:`\hat y_{ui} = z_u^\top z_i`.

    Per-epoch views: drawn in :meth:`on_epoch_start` from the trainer's generator, which
    depends only on the run seed and the epoch, so a resumed run draws the same views; until
    the first epoch starts, the views are a draw with seed 0.

    Args (:class:`SGLConfig`):
        dim: embedding width (default ``64``).
        reg_weight: :math:`\lambda_2`, L2 weight on the batch's layer-0 embeddings (default ``1e-4``).
        num_layers: :math:`K`, propagation layers (default ``3``).
        ssl_weight: :math:`\lambda_1` (default ``0.1``, the paper's).
        temperature: :math:`\tau` (default ``0.2``, the paper's).
        edge_dropout: :math:`\rho`, share of edges each view drops (default ``0.1``, the paper's).
    """

    name: ClassVar[str] = "sgl"
    Config: ClassVar[type[ModelConfig]] = SGLConfig

    def __init__(self, config: SGLConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        self.graph = BipartitePropagation(dataset.train, "sym")
        self.layer_mean = LayerMean(config.num_layers)
        self.user_embedding = nn.Parameter(torch.empty(self.n_users, config.dim))
        self.item_embedding = nn.Parameter(torch.empty(self.n_items, config.dim))
        # the two views of the running epoch: redrawn every epoch, derived, never saved
        rng = np.random.default_rng(0)
        self.views = nn.ModuleList(
            BipartitePropagation(edge_dropout_subgraph(dataset.train, config.edge_dropout, rng), "sym") for _ in range(2)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Glorot uniform, as the authors' TensorFlow code (xavier_initializer)
        nn.init.xavier_uniform_(self.user_embedding)
        nn.init.xavier_uniform_(self.item_embedding)

    def propagate(self, graph: BipartitePropagation) -> tuple[Tensor, Tensor]:
        """LightGCN's layer mean over ``graph``: ``(users (n_users, d), items (n_items, d))``."""
        return self.layer_mean(graph, self.user_embedding, self.item_embedding)

    def embed(self) -> Embeddings:
        users, items = self.propagate(self.graph)
        return Embeddings(users, items, {"id": (users, items)})

    # ------------------------------------------------------------ views
    def on_epoch_start(self, epoch: int, rng: np.random.Generator) -> None:
        """Draw this epoch's two edge-dropout views from ``rng``."""
        self.set_views(*(edge_dropout_subgraph(self._train_csr, self.config.edge_dropout, rng) for _ in range(2)))

    def set_views(self, first: sp.spmatrix, second: sp.spmatrix) -> None:
        """Use the subgraphs ``first`` and ``second`` ``(n_users, n_items)`` as the two views."""
        for view, graph in zip(self.views, (first, second)):
            view.set_graph(graph)

    # ------------------------------------------------------------ objective
    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        emb = self.embed()
        user_vecs = emb.users[users]
        main = bpr_loss((user_vecs * emb.items[pos]).sum(1), (user_vecs * emb.items[neg]).sum(1))
        reg = l2_reg(self.user_embedding[users], self.item_embedding[pos], self.item_embedding[neg])
        loss = main + self.config.reg_weight * reg
        if self.config.ssl_weight > 0:
            loss = loss + self.config.ssl_weight * self.ssl_loss(users, pos)
        return loss

    def ssl_loss(self, users: Tensor, pos: Tensor) -> Tensor:
        """:math:`\\mathcal L_{ssl}^{user} + \\mathcal L_{ssl}^{item}` between the two current views."""
        users1, items1 = self.propagate(self.views[0])
        users2, items2 = self.propagate(self.views[1])
        u, i = torch.unique(users), torch.unique(pos)
        t = self.config.temperature
        return info_nce(users1[u], users2[u], t, candidates=users2) + info_nce(items1[i], items2[i], t, candidates=items2)


__all__ = ["SGL", "SGLConfig", "edge_dropout_subgraph"]
