"""The shared skeleton of the fusion baselines: :class:`FusionRecommender` and its config.

The registered models (``concat``, ``attention`` and their ``-graph`` variants), the update
rules and the design notes (cold items, score attribution) are in :mod:`mmgcn.models.fusion`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from mmgcn.data.dataset import Dataset
from mmgcn.features.transforms import fit_feature_transforms
from mmgcn.models.base import Embeddings, ModelConfig, Recommender
from mmgcn.nn.content import check_new_item_features
from mmgcn.nn.fusion import AttentionOutput, MLPScoreHead, check_modality_names
from mmgcn.nn.losses import bpr_loss, l2_reg
from mmgcn.nn.propagation import BipartitePropagation, layer_mean_propagation
from mmgcn.utils.modes import eval_mode


@dataclass(frozen=True)
class FusionConfig(ModelConfig):
    """Fields shared by the fusion baselines.

    Attributes:
        dim: width of ID embeddings and fused vectors (default 64).
        reg_weight: weight of the batch L2 term (default 1e-2).
        modalities: modalities to use, in order (default ``None``: all of ``dataset.features``).
        feature_norm: ``"standard"`` (per-column z-score over sqrt(d_m), default),
            ``"zscore"``, ``"l2"`` or ``"none"``, fitted on the items with train edges and
            content (:mod:`mmgcn.features.transforms`).
        cold_item_ids: ``"zero"`` (default) replaces the ID embedding of items without train
            edges by zeros; ``"keep"`` uses the (never positively trained) rows as they are.
        id_dropout: probability of dropping a warm item's ID embedding per training forward
            (default 0.0).
        init_std: std of the normal init of ID embeddings (default 0.1).
        score_head: ``"dot"`` (default) or ``"mlp"`` (:class:`~mmgcn.nn.fusion.MLPScoreHead`).
        head_hidden_dims: hidden widths of the MLP score head (default ``(64,)``).
    """

    # stronger than the base default: the content path fits train pairs quickly (on TikTok
    # validation, 20 epochs at lr 1e-3: concat Recall@20 0.024 with 1e-4, 0.041 with 1e-2)
    reg_weight: float = 1e-2
    modalities: tuple[str, ...] | None = None
    feature_norm: Literal["standard", "zscore", "l2", "none"] = "standard"
    cold_item_ids: Literal["zero", "keep"] = "zero"
    id_dropout: float = 0.0
    init_std: float = 0.1
    score_head: Literal["dot", "mlp"] = "dot"
    head_hidden_dims: tuple[int, ...] = (64,)

    def __post_init__(self) -> None:
        if self.dim <= 0:
            raise ValueError(f"dim must be positive, got {self.dim}")
        if not 0.0 <= self.id_dropout < 1.0:
            raise ValueError(f"id_dropout must be in [0, 1), got {self.id_dropout}")
        if self.reg_weight < 0:
            raise ValueError(f"reg_weight must be >= 0, got {self.reg_weight}")
        if self.init_std <= 0:
            raise ValueError(f"init_std must be positive, got {self.init_std}")


@dataclass
class AttentionEmbeddings(Embeddings):
    """:class:`Embeddings` plus what user-conditioned attention scores from.

    Attributes:
        part_vectors: ``(n_items, P, d)`` unweighted item parts.
        part_keys: ``(n_items, P, a)`` attention keys.
        part_mask: ``(n_items, P)`` bool, ``False`` where a part is absent.
    """

    ITEM_FIELDS: ClassVar[tuple[str, ...]] = ("items", "part_vectors", "part_keys", "part_mask")

    part_vectors: Tensor | None = None
    part_keys: Tensor | None = None
    part_mask: Tensor | None = None

    def detach(self) -> AttentionEmbeddings:
        base = super().detach()
        return AttentionEmbeddings(
            base.users,
            base.items,
            base.parts,
            *(None if t is None else t.detach() for t in (self.part_vectors, self.part_keys)),
            self.part_mask,
        )


class FusedItems(NamedTuple):
    """Layer-0 item vectors as a subclass's ``_fuse`` returns them."""

    fused: Tensor  # (n_items, d) layer-0 item vectors
    parts: dict[str, Tensor] | None  # {part: (n_items, d)} summing to fused, or None
    attention: AttentionOutput | None  # where the fusion is attention


class FusionRecommender(Recommender):
    """The shared skeleton of the fusion baselines (design notes: :mod:`mmgcn.models.fusion`).

    Subclasses build ``self.fusion`` in :meth:`_build_fusion` and implement :meth:`_fuse`.
    """

    uses_content = True

    def __init__(self, config: FusionConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        available = dataset.modalities
        modalities = tuple(config.modalities) if config.modalities is not None else available
        if not modalities:
            raise ValueError(
                f"model '{self.name}' fuses item features, but dataset '{dataset.name}' has none "
                f"(extract features first, or use an ID-only model such as bpr / lightgcn)"
            )
        missing = [m for m in modalities if m not in available]
        if missing:
            raise ValueError(f"config.modalities {missing} not in dataset '{dataset.name}' (has {list(available)})")
        self.modalities = check_modality_names(modalities)
        # fitted on items with train edges and content; saved with the model, applied to new items
        self.transforms = fit_feature_transforms(
            dataset.features, dataset.items_in_train, dataset.content_masks, config.feature_norm, self.modalities)
        for k, m in enumerate(self.modalities):
            # not persistent: rebuilt from the dataset, so checkpoints stay small
            self.register_buffer(f"_feat{k}", self.transforms[m](dataset.features[m]), persistent=False)
        # (n_items, M): which items have content of each modality (absent parts are left out)
        present = torch.stack([torch.from_numpy(dataset.has_content(m).copy()) for m in self.modalities], dim=1)
        self.register_buffer("content_present", present, persistent=False)
        item_degree = np.bincount(dataset.train.indices, minlength=dataset.n_items)
        self.register_buffer("has_train_edge", torch.from_numpy(item_degree > 0), persistent=False)
        self.num_layers = int(getattr(config, "num_layers", 0))
        # built from dataset.train only: valid/test edges never enter propagation
        self.propagation = BipartitePropagation(dataset.train, norm="sym") if self.num_layers else None
        self.user_emb = nn.Embedding(self.n_users, config.dim)
        self.item_emb = nn.Embedding(self.n_items, config.dim)
        self.fusion = self._build_fusion({m: dataset.features[m].shape[1] for m in self.modalities})
        self.head = MLPScoreHead(config.dim, config.head_hidden_dims) if config.score_head == "mlp" else None
        self.reset_parameters()

    # ------------------------------------------------------------ subclass hooks
    def _build_fusion(self, in_dims: dict[str, int]) -> nn.Module:
        raise NotImplementedError

    def _fuse(self, id_emb: Tensor, id_present: Tensor, with_parts: bool) -> FusedItems:
        """Layer-0 vectors of the dataset's items (ID rows ``(n_items, d)``, presence ``(n_items,)``)."""
        return self._fuse_features(self.features(), id_emb, id_present, self.content_present, with_parts)

    def _fuse_features(
        self, features: Mapping[str, Tensor], id_emb: Tensor, id_present: Tensor, content_present: Tensor,
        with_parts: bool,
    ) -> FusedItems:
        """Layer-0 vectors of any ``n`` items: normalised ``features[m]`` ``(n, d_m)``, ID rows
        ``(n, d)`` and their presence ``(n,)`` (``False``: the item has no ID embedding),
        ``content_present`` ``(n, M)`` (``False``: no content of that modality)."""
        raise NotImplementedError

    @property
    def conditioned(self) -> bool:
        """Whether scores use user-conditioned attention (not a dot product)."""
        return False

    # ------------------------------------------------------------ building blocks
    def reset_parameters(self) -> None:
        nn.init.normal_(self.user_emb.weight, std=self.config.init_std)
        nn.init.normal_(self.item_emb.weight, std=self.config.init_std)
        self.fusion.reset_parameters()
        if self.head is not None:
            self.head.reset_parameters()

    def features(self) -> dict[str, Tensor]:
        """The normalised item features ``{modality: (n_items, d_m)}`` the model reads."""
        return {m: getattr(self, f"_feat{k}") for k, m in enumerate(self.modalities)}

    def _item_ids(self) -> tuple[Tensor, Tensor]:
        """Item ID embeddings ``(n_items, d)`` with absent rows zeroed, and the presence mask."""
        present = torch.ones(self.n_items, dtype=torch.bool, device=self.item_emb.weight.device)
        if self.config.cold_item_ids == "zero":
            present = present & self.has_train_edge
        if self.training and self.config.id_dropout > 0:
            keep = torch.rand(self.n_items, device=present.device) >= self.config.id_dropout
            present = present & keep
        return self.item_emb.weight * present.unsqueeze(1).to(self.item_emb.weight.dtype), present

    def _propagate(self, users: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
        """LightGCN layer mean of ``users (n_users, c)``, ``items (n_items, c)``; identity with 0 layers."""
        if not self.num_layers:
            return users, items
        return layer_mean_propagation(self.propagation, users, items, self.num_layers)

    def _propagate_parts(self, users: Tensor, parts: dict[str, Tensor]) -> tuple[Tensor, Tensor, dict]:
        """Propagate each item part (user ID rows travel with ``"id"``); by linearity the
        final vectors are the sums over parts. Returns users, items, ``{part: (users, items_p)}``."""
        names = list(parts)
        if "id" not in names:
            raise RuntimeError("fusion parts must include 'id' (the user ID rows travel with it)")
        d = users.shape[1]
        user_stack = users.new_zeros(self.n_users, len(names), d)
        user_stack[:, names.index("id")] = users
        item_stack = torch.stack([parts[p] for p in names], dim=1)
        user_out, item_out = self._propagate(user_stack.flatten(1), item_stack.flatten(1))
        user_out = user_out.view(self.n_users, len(names), d).sum(dim=1)
        item_out = item_out.view(self.n_items, len(names), d)
        part_pairs = {p: (user_out, item_out[:, k]) for k, p in enumerate(names)}
        return user_out, item_out.sum(dim=1), part_pairs

    # ------------------------------------------------------------ the three verbs
    def embed(self) -> Embeddings:
        id_emb, present = self._item_ids()
        fused = self._fuse(id_emb, present, with_parts=self.head is None)
        users0 = self.user_emb.weight
        if fused.parts is not None and self.head is None and not self.conditioned:
            users, items, parts = self._propagate_parts(users0, fused.parts)
        else:
            users, items = self._propagate(users0, fused.fused)
            parts = {}
        if self.conditioned:
            att = fused.attention
            return AttentionEmbeddings(users, items, {}, att.parts, att.keys, att.mask)
        return Embeddings(users, items, parts)

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        id_emb, present = self._item_ids()
        fused = self._fuse(id_emb, present, with_parts=False)
        users0 = self.user_emb.weight
        user_vecs, item_vecs = self._propagate(users0, fused.fused)
        u = user_vecs[users]
        if self.conditioned:
            att = fused.attention
            mask = att.mask
            pos_scores = self.fusion.score_pairs(u, att.parts[pos], att.keys[pos], None if mask is None else mask[pos])
            neg_scores = self.fusion.score_pairs(u, att.parts[neg], att.keys[neg], None if mask is None else mask[neg])
        elif self.head is not None:
            pos_scores, neg_scores = self.head(u, item_vecs[pos]), self.head(u, item_vecs[neg])
        else:
            pos_scores = (u * item_vecs[pos]).sum(dim=1)
            neg_scores = (u * item_vecs[neg]).sum(dim=1)
        reg = l2_reg(users0[users], fused.fused[pos], fused.fused[neg])
        return bpr_loss(pos_scores, neg_scores) + self.config.reg_weight * reg

    def score(self, users: Tensor, items: Tensor | None = None, emb: Embeddings | None = None) -> Tensor:
        if emb is None:
            emb = self.embed()
        if self.conditioned:
            select = slice(None) if items is None else items
            mask = None if emb.part_mask is None else emb.part_mask[select]
            return self.fusion.score_all(emb.users[users], emb.part_vectors[select], emb.part_keys[select], mask)
        if self.head is not None:
            item_vecs = emb.items if items is None else emb.items[items]
            return self.head.score_all(emb.users[users], item_vecs)
        return super().score(users, items, emb)

    def score_parts(
        self, users: Tensor, items: Tensor | None = None, emb: Embeddings | None = None
    ) -> dict[str, Tensor]:
        """Per-part scores ``{part: (len(users), n)}`` summing to :meth:`score`.

        Raises:
            ValueError: the model's fusion or score head is not additive (concat with hidden
                layers, MLP score head).
        """
        if emb is None:
            emb = self.embed()
        select = slice(None) if items is None else items
        if self.conditioned:
            mask = None if emb.part_mask is None else emb.part_mask[select]
            user_vecs = emb.users[users]
            weights = self.fusion.user_weights(user_vecs, emb.part_keys[select], mask)
            part_scores = torch.einsum("npd,bd->bnp", emb.part_vectors[select], user_vecs)
            contrib = weights * part_scores
            return {p: contrib[..., k] for k, p in enumerate(self.part_names)}
        if not emb.parts:
            raise ValueError(
                f"model '{self.name}' is not additive over parts (hidden layers after concatenation "
                f"or an MLP score head); use hidden_dims=() / score_head='dot' for attribution"
            )
        return {p: u[users] @ i[select].T for p, (u, i) in emb.parts.items()}

    @property
    def part_names(self) -> tuple[str, ...]:
        return self.fusion.part_names

    @torch.no_grad()
    def represent_new_items(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None
    ) -> Embeddings:
        r"""Content-only representations of unseen items (see :meth:`Recommender.represent_new_items`).

        The features are normalised with the catalogue's statistics (``feature_norm``), the
        ID embedding is absent (zero, and masked out of attention, as for a cold item with
        ``cold_item_ids="zero"``), and an isolated node's LightGCN layer mean keeps only
        layer 0: :math:`\mathbf{h}_i / (K+1)` in the ``-graph`` variants. Users, and the
        ``parts`` structure, are :meth:`embed`'s.
        """
        raw_dims = {m: int(getattr(self, f"_feat{k}").shape[1]) for k, m in enumerate(self.modalities)}
        device = self.item_emb.weight.device
        feats = check_new_item_features(features, raw_dims, self.name, device)
        normalised = {m: self.transforms[m](feats[m]) for m in self.modalities}
        n_new = next(iter(feats.values())).shape[0]
        if present is None:
            content_present = torch.ones(n_new, len(self.modalities), dtype=torch.bool, device=device)
        else:
            content_present = torch.stack(
                [torch.as_tensor(present[m], dtype=torch.bool, device=device).reshape(n_new) for m in self.modalities],
                dim=1)
        with eval_mode(self):
            emb = self.embed()
            id_emb = self.item_emb.weight.new_zeros(n_new, self.config.dim)
            id_present = torch.zeros(n_new, dtype=torch.bool, device=device)
            fused = self._fuse_features(normalised, id_emb, id_present, content_present, with_parts=self.head is None)
            # an isolated node receives nothing in layers 1..K of the layer mean
            scale = 1.0 / (self.num_layers + 1) if self.num_layers else 1.0
            if self.conditioned:
                att = fused.attention
                return AttentionEmbeddings(emb.users, fused.fused, {}, att.parts, att.keys, att.mask)
            if fused.parts is not None and self.head is None:
                parts = {p: (emb.users, vec * scale) for p, vec in fused.parts.items()}
                items = torch.stack([i for _, i in parts.values()], dim=1).sum(dim=1)
                return Embeddings(emb.users, items, parts)
            return Embeddings(emb.users, fused.fused * scale, {})

    def extra_repr(self) -> str:
        dims = ", ".join(f"{m}:{getattr(self, f'_feat{k}').shape[1]}" for k, m in enumerate(self.modalities))
        return (
            f"n_users={self.n_users}, n_items={self.n_items}, dim={self.config.dim}, "
            f"modalities=[{dims}], num_layers={self.num_layers}, score_head={self.config.score_head}"
        )


__all__ = ["AttentionEmbeddings", "FusedItems", "FusionConfig", "FusionRecommender"]
