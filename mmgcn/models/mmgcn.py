r"""MMGCN (Wei et al., ACM MM 2019), correct by default, plus a flag-by-flag faithful mode.

Paper: https://arxiv.org/abs/1908.09494; original code: github.com/weiyinwei/MMGCN
(``Model_MMGCN.py``), MMRec's port: github.com/enoche/MMRec (``src/models/mmgcn.py``).

What the original code does that the paper does not say (each reproduced by one flag of
:class:`MMGCNConfig`, all set by ``"mmgcn-faithful"``):

* ``train_id_embedding=False``, ``train_preference=False``: the ID embeddings and user
  preferences are created as plain tensors (``xavier_normal_(torch.rand(...)).cuda()``),
  never registered as parameters, so the optimiser never updates them: they stay at
  their random init, and their L2 term has no gradient.
* ``combine="concat"``: the flag is passed as the *string* ``'False'``, which is truthy,
  so concatenation is always on.
* ``num_layers=3``: three layers are hard-coded (the ``num_layer`` argument is ignored).
* ``latent_dim=256, project_modalities=("image",)``: only visual features get a linear
  projection (to 256-d); acoustic / textual features enter raw.

Aggregation in the original is PyG ``MessagePassing(aggr="mean")`` over un-normalised
messages (``aggr="mean"`` here); fusion is the mean of the modalities' outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import scipy.sparse as sp
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
from mmgcn.nn.mmgcn_conv import ModalityGCN
from mmgcn.nn.propagation import BipartitePropagation
from mmgcn.nn.subgraph import Subgraph
from mmgcn.utils.modes import eval_mode

logger = logging.getLogger(__name__)

_AGGR_TO_NORM = {"mean": "left", "sum": "none", "sym": "sym"}


@dataclass(frozen=True)
class MMGCNConfig(ModelConfig):
    """Configuration of :class:`MMGCN` (see the class docstring for each switch)."""

    dim: int = 64
    reg_weight: float = 1e-4
    num_layers: int = 2
    aggr: Literal["mean", "sum", "sym"] = "mean"
    combine: Literal["concat", "ele"] = "concat"
    fusion: Literal["mean", "sum", "attention"] = "mean"
    latent_dim: int | None = 64
    project_modalities: tuple[str, ...] | None = None
    train_id_embedding: bool = True
    train_preference: bool = True
    use_id: bool = True
    normalize_input: bool = True
    negative_slope: float = 0.01
    output_activation: bool = True
    layer_combination: Literal["last", "mean"] = "last"
    dropout: float = 0.0
    id_init_std: float | None = None
    preference_init_std: float | None = None
    standardize_features: bool = False

    def __post_init__(self) -> None:
        if self.dim <= 0:
            raise ValueError(f"dim must be positive, got {self.dim}")
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        if self.latent_dim is not None and self.latent_dim <= 0:
            raise ValueError(f"latent_dim must be positive or null, got {self.latent_dim}")
        if self.reg_weight < 0:
            raise ValueError(f"reg_weight must be >= 0, got {self.reg_weight}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("id_init_std", "preference_init_std"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or null, got {value}")


@dataclass(frozen=True)
class MMGCNFaithfulConfig(MMGCNConfig):
    """:class:`MMGCNConfig` with the original code's behaviour as defaults.

    Every field is pinned here, so that tuning the correct mode's defaults never changes
    what ``"mmgcn-faithful"`` means.
    """

    dim: int = 64
    reg_weight: float = 1e-4
    num_layers: int = 3
    aggr: Literal["mean", "sum", "sym"] = "mean"
    combine: Literal["concat", "ele"] = "concat"
    fusion: Literal["mean", "sum", "attention"] = "mean"
    latent_dim: int | None = 256
    project_modalities: tuple[str, ...] | None = ("image",)
    train_id_embedding: bool = False
    train_preference: bool = False
    use_id: bool = True
    normalize_input: bool = True
    negative_slope: float = 0.01
    output_activation: bool = True
    layer_combination: Literal["last", "mean"] = "last"
    dropout: float = 0.0
    id_init_std: float | None = None
    preference_init_std: float | None = None
    standardize_features: bool = False


class ModalityAttention(nn.Module):
    r"""Per-node softmax attention over modalities: :math:`\alpha_m \propto
    \exp(q^\top \tanh(W r_m + b))`, output :math:`\sum_m \alpha_m r_m`.

    Args:
        dim: width of each modality's representation.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.key = nn.Linear(dim, dim)
        self.query = nn.Linear(dim, 1, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_normal_(self.key.weight)
        nn.init.zeros_(self.key.bias)
        nn.init.xavier_normal_(self.query.weight)

    def logits(self, stacked: Tensor) -> Tensor:
        """``(M, n, dim)`` -> unnormalised scores ``(M, n, 1)``."""
        return self.query(torch.tanh(self.key(stacked)))

    def forward(self, stacked: Tensor) -> Tensor:
        """``(M, n, dim)`` -> weights ``(M, n, 1)`` summing to one over ``M``."""
        return torch.softmax(self.logits(stacked), dim=0)


@register_model
class MMGCN(Recommender):
    r"""Multi-modal graph convolution network (Wei et al., ACM MM 2019).

    Per modality :math:`m` a :class:`~mmgcn.nn.mmgcn_conv.ModalityGCN` runs on the user-item
    train graph: item nodes start from (a projection of) their :math:`m`-features, user
    nodes from a learned preference :math:`p^m_u`; each of the ``num_layers`` layers does

    .. math::
        h_v = \sigma\big(\textstyle\bigoplus_{u\in\mathcal N(v)} W_a x_u\big),\quad
        \hat x_v = \sigma(W_s x_v + b_s) + e_v,\quad
        x'_v = \sigma(W_g[h_v\|\hat x_v] + b_g) \;\text{or}\; \sigma(W_g h_v + b_g + \hat x_v)

    (:math:`\sigma` = LeakyReLU, :math:`e_v` the node's ID embedding shared by all
    modalities, :math:`\bigoplus` mean / sum / symmetric-normalised sum). The modalities'
    final states are fused, :math:`r_v = \mathrm{fuse}_m(x^{m}_v)` (mean, sum or attention; an
    item without content of a modality, per ``dataset.content_masks``, leaves it out of its
    fusion), and :math:`\hat y_{ui} = r_u^\top r_i`. Loss: BPR plus ``reg_weight`` times the L2 of the
    batch's ID embeddings and user preferences.

    ``embed().parts[m] = (users, w_m * items_m)``: the score decomposes exactly over
    modalities (``w_m`` = 1/M for mean -- 1/M_i over the modalities item i has --, 1 for
    sum, the attention weight otherwise).

    Items without train edges are still represented from their content (``uses_content``).
    With a sampled ``subgraph`` (``train.num_neighbors``) a training step propagates over
    the batch's ``num_layers``-hop neighbourhood only.

    Args (:class:`MMGCNConfig`):
        dim: ID embedding / output width (default ``64``).
        reg_weight: L2 weight on the batch's ID embeddings and preferences (default ``1e-4``).
        num_layers: layers per modality (default ``2``).
        aggr: neighbour aggregation ``"mean"`` (default), ``"sum"`` or ``"sym"``.
        combine: ``"concat"`` (default) or ``"ele"``: how :math:`h_v` meets :math:`\hat x_v`.
        fusion: ``"mean"`` (default), ``"sum"`` or ``"attention"`` over modalities.
        latent_dim: width of the feature projection (default ``64``); ``None`` = raw.
        project_modalities: modalities that get the projection (default ``None`` = all;
            names absent from the dataset are ignored, and logged).
        train_id_embedding: train the ID embeddings (default ``True``).
        train_preference: train the user preferences (default ``True``).
        use_id: add ID embeddings in each layer (default ``True``).
        normalize_input: L2-normalise input node states (default ``True``, as the original).
        negative_slope: LeakyReLU slope (default ``0.01``).
        output_activation: LeakyReLU on the last layer's output (default ``True``, as the
            original); ``False`` lets the final representations take either sign.
        layer_combination: ``"last"`` layer's output (default, the original) or ``"mean"``
            over the layers' outputs.
        dropout: dropout rate on every layer's input node states while training
            (default ``0``).
        standardize_features: z-score every feature dimension before anything else, with
            statistics fitted on the items that have train edges and content
            (:mod:`mmgcn.features.transforms`; default ``False``, as the original).
            TikTok's visual vectors all point almost the same way (mean cosine 0.93 to
            their centroid), so without centring, normalised visual states barely differ.
        id_init_std: standard deviation of the normal init of the ID embeddings
            (default ``None``: Xavier normal, as the original, about ``0.015`` on TikTok).
        preference_init_std: the same for the user preferences; with ``normalize_input``
            only their direction counts, so a larger init turns them more slowly under Adam.
    """

    name: ClassVar[str] = "mmgcn"
    Config: ClassVar[type[ModelConfig]] = MMGCNConfig
    uses_content: ClassVar[bool] = True

    def __init__(self, config: MMGCNConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        if not dataset.features:
            raise ValueError(
                f"{self.name} needs item features, but dataset {dataset.name!r} has no modalities; "
                f"extract features first (mmgcn extract) or use an ID-only model (bpr, lightgcn)"
            )
        self.modalities = tuple(dataset.features)
        bad = [m for m in self.modalities if "." in m or not m]
        if bad:
            raise ValueError(f"modality names must be non-empty and contain no '.', got {bad}")
        wanted = self.modalities if config.project_modalities is None else config.project_modalities
        self.projected = tuple(m for m in self.modalities if m in wanted and config.latent_dim)
        ignored = sorted(set(wanted) - set(self.modalities))
        if ignored:
            logger.info("%s: project_modalities %s not in dataset %r (has %s); ignored",
                        self.name, ignored, dataset.name, list(self.modalities))
        # z-scores fitted on items with train edges and content only; saved with the model
        # and applied to new items alike (identity unless standardize_features)
        self.transforms = fit_feature_transforms(
            dataset.features, dataset.items_in_train, dataset.content_masks,
            mode="zscore" if config.standardize_features else "none",
        )
        for m, feats in dataset.features.items():
            # constants: moved with .to(device), not checkpointed (they come from the dataset)
            self.register_buffer(f"features_{m}", self.transforms[m](feats), persistent=False)
        # (n_modalities, n_items): 1 where the item has content of the modality; items
        # without content of a modality leave it out of their fused representation
        present = torch.stack([torch.from_numpy(dataset.has_content(m).copy()) for m in self.modalities])
        self.register_buffer("content_present", present, persistent=False)
        self.graph = BipartitePropagation(dataset.train, _AGGR_TO_NORM[config.aggr])
        self.user_id = nn.Parameter(torch.empty(self.n_users, config.dim), requires_grad=config.train_id_embedding)
        self.item_id = nn.Parameter(torch.empty(self.n_items, config.dim), requires_grad=config.train_id_embedding)
        self.gcns = nn.ModuleDict(
            {
                m: ModalityGCN(
                    n_users=self.n_users,
                    feature_dim=int(dataset.features[m].shape[1]),
                    out_dim=config.dim,
                    num_layers=config.num_layers,
                    latent_dim=config.latent_dim if m in self.projected else None,
                    combine=config.combine,
                    use_id=config.use_id,
                    normalize_input=config.normalize_input,
                    train_preference=config.train_preference,
                    negative_slope=config.negative_slope,
                    output_activation=config.output_activation,
                    layer_combination=config.layer_combination,
                    dropout=config.dropout,
                    preference_init_std=config.preference_init_std,
                )
                for m in self.modalities
            }
        )
        self.attention = ModalityAttention(config.dim) if config.fusion == "attention" else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for table in (self.user_id, self.item_id):
                if self.config.id_init_std is None:
                    nn.init.xavier_normal_(table)
                else:
                    nn.init.normal_(table, std=self.config.id_init_std)
        for gcn in self.gcns.values():
            gcn.reset_parameters()
        if self.attention is not None:
            self.attention.reset_parameters()

    def features(self, modality: str) -> Tensor:
        """``(n_items, d_m)`` item features of ``modality``, after the fitted transform."""
        return getattr(self, f"features_{modality}")

    def _fusion_weights(self, stack: Tensor, present: Tensor | None) -> Tensor:
        """``(M, n, 1)`` fusion weights of ``stack`` ``(M, n, d)``; modalities absent for a node
        (``present`` ``(M, n)`` bool) get weight 0. A node with no modality present keeps
        them all (its rows are fills, but it needs a representation)."""
        n_mod = stack.shape[0]
        if present is not None:
            present = present | ~present.any(dim=0, keepdim=True)
        if self.config.fusion == "attention":
            logits = self.attention.logits(stack)
            if present is not None:
                logits = logits.masked_fill(~present.unsqueeze(-1), float("-inf"))
            return torch.softmax(logits, dim=0)
        if present is None:
            scale = 1.0 / n_mod if self.config.fusion == "mean" else 1.0
            return stack.new_full((n_mod, 1, 1), scale)
        weights = present.to(stack.dtype).unsqueeze(-1)
        if self.config.fusion == "mean":
            weights = weights / weights.sum(dim=0, keepdim=True)
        return weights

    def _fused(self, user_rows: Tensor | None = None, item_rows: Tensor | None = None,
               subgraph: Subgraph | None = None) -> Embeddings:
        """Fused representations of all nodes, or of ``user_rows`` / ``item_rows`` only
        (local positions when propagating over ``subgraph``)."""
        if subgraph is None:
            graph, users, items, present = self.graph, None, None, self.content_present
            user_id, item_id = self.user_id, self.item_id
        else:
            graph, users, items = subgraph.graph, subgraph.users, subgraph.items
            user_id, item_id, present = self.user_id[users], self.item_id[items], self.content_present[:, items]
        outputs = {
            m: gcn(self.features(m) if items is None else self.features(m)[items], graph, user_id, item_id,
                   user_rows, item_rows, users=users)
            for m, gcn in self.gcns.items()
        }
        user_stack = torch.stack([u for u, _ in outputs.values()])
        item_stack = torch.stack([i for _, i in outputs.values()])
        present = present if item_rows is None else present[:, item_rows]
        users = (self._fusion_weights(user_stack, None) * user_stack).sum(0)
        weighted_items = self._fusion_weights(item_stack, present) * item_stack
        items = weighted_items.sum(0)
        parts = {m: (users, weighted_items[k]) for k, m in enumerate(outputs)}
        return Embeddings(users, items, parts)

    def embed(self) -> Embeddings:
        return self._fused()

    def subgraph_sampling(self) -> tuple[nn.Module, int]:
        return self.graph, self.config.num_layers

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor, subgraph: Subgraph | None = None) -> Tensor:
        # the last layer and the fusion only run for the batch's distinct users and items
        # (the same values as slicing embed(), at a fraction of the dense work)
        batch_users, user_index = torch.unique(users, return_inverse=True)
        batch_items, item_index = torch.unique(torch.cat([pos, neg]), return_inverse=True)
        if subgraph is not None:  # a subgraph's seeds are its first nodes, in this very order
            batch_users = torch.arange(subgraph.n_seed_users, device=users.device)
            batch_items = torch.arange(subgraph.n_seed_items, device=users.device)
        emb = self._fused(batch_users, batch_items, subgraph)
        user_vecs = emb.users[user_index]
        pos_scores = (user_vecs * emb.items[item_index[: pos.numel()]]).sum(1)
        neg_scores = (user_vecs * emb.items[item_index[pos.numel() :]]).sum(1)
        reg_terms = [self.user_id[users], self.item_id[pos], self.item_id[neg]]
        reg_terms += [gcn.preference[users] for gcn in self.gcns.values()]
        return bpr_loss(pos_scores, neg_scores) + self.config.reg_weight * l2_reg(*reg_terms)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, modalities={list(self.modalities)}, projected={list(self.projected)}"

    @torch.no_grad()
    def represent_new_items(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None
    ) -> Embeddings:
        """Content-only representations of unseen items (see :meth:`Recommender.represent_new_items`).

        The raw features go through the fitted transforms; each modality's GCN runs on the
        new items as isolated nodes (no neighbour messages) with a zero ID embedding:
        exactly what an item of the dataset without train edges gets in :meth:`embed`,
        minus its own ID embedding. Modalities a new item has no content of are left out
        of its fusion. Users are :meth:`embed`'s; ``parts`` hold one exact part per
        modality, as in :meth:`embed`.
        """
        dims = {m: int(self.features(m).shape[1]) for m in self.modalities}
        device = self.item_id.device
        feats = check_new_item_features(features, dims, self.name, device)
        feats = {m: self.transforms[m](f) for m, f in feats.items()}
        n_new = next(iter(feats.values())).shape[0]
        mask = None if present is None else torch.stack(
            [torch.as_tensor(present[m], dtype=torch.bool, device=device).reshape(n_new) for m in self.modalities])
        with eval_mode(self):
            emb = self.embed()
            # an edgeless graph between all users and the new items: the layers see the
            # new items exactly as they see cold items, and the forward pass is reused as is
            isolated = BipartitePropagation(sp.csr_matrix((self.n_users, n_new), dtype="float32"),
                                            _AGGR_TO_NORM[self.config.aggr]).to(device)
            zero_ids = self.item_id.new_zeros(n_new, self.item_id.shape[1])
            no_users = torch.zeros(0, dtype=torch.long, device=device)
            item_stack = torch.stack([
                gcn(feats[m], isolated, self.user_id, zero_ids, user_rows=no_users)[1]
                for m, gcn in self.gcns.items()
            ])
            weighted = self._fusion_weights(item_stack, mask) * item_stack
            parts = {m: (emb.users, weighted[k]) for k, m in enumerate(self.gcns)}
            return Embeddings(emb.users, weighted.sum(0), parts)


@register_model
class MMGCNFaithful(MMGCN):
    """MMGCN with the original code's behaviour (:class:`MMGCNFaithfulConfig` defaults).

    Same model as :class:`MMGCN`; only the defaults differ: frozen random ID embeddings
    and user preferences, concatenation, 3 layers, only ``image`` projected (to 256-d).
    Every flag can still be overridden one at a time.
    """

    name: ClassVar[str] = "mmgcn-faithful"
    Config: ClassVar[type[ModelConfig]] = MMGCNFaithfulConfig


__all__ = ["MMGCN", "MMGCNConfig", "MMGCNFaithful", "MMGCNFaithfulConfig", "ModalityAttention"]
