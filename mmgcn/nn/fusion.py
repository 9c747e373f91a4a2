r"""Fusion blocks: how an item's ID embedding and its modality features become one vector.

Three layers, independent of any model, graph or trainer:

* :class:`ConcatFusion` -- early fusion: an MLP over the concatenation of the ID embedding
  and linearly projected modality features (as in VBPR, He & McAuley, AAAI 2016,
  https://arxiv.org/abs/1510.01784, generalised by an MLP).
* :class:`AttentionFusion` -- a softmax over the item's parts (ID embedding and one
  projection per modality), computed from the item's own representations and, optionally,
  the user's (component-level attention after ACF, Chen et al., SIGIR 2017,
  https://doi.org/10.1145/3077136.3080797).
* :class:`MLPScoreHead` -- a learned, non-dot-product score :math:`f(\mathbf{u}, \mathbf{i})`
  (after NCF, He et al., WWW 2017, https://arxiv.org/abs/1708.05031).

Part names: ``"id"`` is the ID embedding, every other part is a modality name. Modality
names must not be ``"id"``/``"bias"`` and must not contain ``"."`` (they key module dicts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

RESERVED_PARTS = ("id", "bias")


def check_modality_names(names: Sequence[str]) -> tuple[str, ...]:
    """Validate modality names used as part names and module keys; return them as a tuple."""
    names = tuple(names)
    if not names:
        raise ValueError("fusion needs at least one modality; got none")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate modality names in {list(names)}")
    for name in names:
        if not isinstance(name, str) or not name or "." in name or name in RESERVED_PARTS:
            raise ValueError(
                f"modality name {name!r} is not usable: names must be non-empty strings without "
                f"'.' and must not be one of {RESERVED_PARTS} (rename the feature set)"
            )
    return names


def make_mlp(
    in_dim: int, hidden_dims: Sequence[int], out_dim: int, dropout: float = 0.0, negative_slope: float = 0.2
) -> nn.Sequential:
    """``Linear -> LeakyReLU -> Dropout`` per hidden width, then a final ``Linear`` to ``out_dim``.

    With ``hidden_dims=()`` this is a single affine map.
    """
    layers: list[nn.Module] = []
    width = in_dim
    for hidden in hidden_dims:
        if hidden <= 0:
            raise ValueError(f"hidden widths must be positive, got {list(hidden_dims)}")
        layers += [nn.Linear(width, hidden), nn.LeakyReLU(negative_slope)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def _reset_linears(module: nn.Module) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)


class ModalityProjections(nn.Module):
    r"""One affine projection per modality, :math:`\mathbf{p}_{i,m} = \mathbf{W}_m \mathbf{x}_{i,m} + \mathbf{b}_m`.

    Args:
        in_dims: ``{modality: d_m}``, in part order.
        out_dim: output width of every projection.
    """

    def __init__(self, in_dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__()
        self.modalities = check_modality_names(list(in_dims))
        self.out_dim = out_dim
        self.proj = nn.ModuleDict({m: nn.Linear(int(in_dims[m]), out_dim) for m in self.modalities})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_linears(self.proj)

    def forward(self, features: Mapping[str, Tensor]) -> list[Tensor]:
        """``[(n, out_dim)]`` per modality, in ``self.modalities`` order."""
        missing = [m for m in self.modalities if m not in features]
        if missing:
            raise KeyError(f"features for modalities {missing} are missing; got {list(features)}")
        return [self.proj[m](features[m]) for m in self.modalities]

    def __repr__(self) -> str:
        dims = ", ".join(f"{m}:{self.proj[m].in_features}" for m in self.modalities)
        return f"{self.__class__.__name__}({{{dims}}} -> {self.out_dim})"


class ConcatFusion(nn.Module):
    r"""Early fusion: an MLP over the ID embedding concatenated with projected modality features.

    .. math::
        \mathbf{p}_{i,m} = \mathbf{W}_m \mathbf{x}_{i,m} + \mathbf{b}_m, \qquad
        \mathbf{h}_i = \mathrm{MLP}\big(\mathbf{e}_i \,\Vert\, \mathbf{p}_{i,1}
        \,\Vert \cdots \Vert\, \mathbf{p}_{i,M}\big)

    With ``hidden_dims=()`` the MLP is one affine map and :math:`\mathbf{h}_i` is exactly a
    sum of per-part terms (see :meth:`parts`); with hidden layers it is not additive and
    :meth:`parts` returns ``None``.

    Args:
        in_dims: ``{modality: d_m}`` feature widths.
        id_dim: width of the ID embedding :math:`\mathbf{e}_i`.
        out_dim: width of :math:`\mathbf{h}_i`.
        proj_dim: width of each :math:`\mathbf{p}_{i,m}` (default ``out_dim``).
        hidden_dims: hidden widths of the MLP (default ``(128,)``).
        dropout: dropout after each hidden activation (default ``0.0``).
        negative_slope: LeakyReLU slope (default ``0.2``).

    Shapes:
        input: ``features[m]`` ``(n, d_m)``, ``id_emb`` ``(n, id_dim)``; output ``(n, out_dim)``.
    """

    def __init__(
        self,
        in_dims: Mapping[str, int],
        id_dim: int,
        out_dim: int,
        proj_dim: int | None = None,
        hidden_dims: Sequence[int] = (128,),
        dropout: float = 0.0,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.id_dim, self.out_dim = id_dim, out_dim
        self.proj_dim = proj_dim or out_dim
        self.hidden_dims = tuple(hidden_dims)
        self.projections = ModalityProjections(in_dims, self.proj_dim)
        self.modalities = self.projections.modalities
        self.mlp = make_mlp(id_dim + len(self.modalities) * self.proj_dim, self.hidden_dims, out_dim, dropout, negative_slope)
        self.reset_parameters()

    @property
    def part_names(self) -> tuple[str, ...]:
        return ("id", *self.modalities)

    @property
    def is_additive(self) -> bool:
        """Whether the output is an exact sum of per-part terms (no hidden layer)."""
        return not self.hidden_dims

    def reset_parameters(self) -> None:
        self.projections.reset_parameters()
        _reset_linears(self.mlp)

    def _inputs(self, features: Mapping[str, Tensor], id_emb: Tensor, present: Tensor | None) -> list[Tensor]:
        """``[e_i, p_{i,1}, ..., p_{i,M}]``; a modality absent for an item (``present[:, m]``
        False) enters as a zero block, not as the projection of a fill vector."""
        projected = self.projections(features)
        if present is not None:
            projected = [p * present[:, k : k + 1].to(p.dtype) for k, p in enumerate(projected)]
        return [id_emb, *projected]

    def forward(self, features: Mapping[str, Tensor], id_emb: Tensor, present: Tensor | None = None) -> Tensor:
        """``present``: optional ``(n, M)`` bool, which items have content of each modality."""
        return self.mlp(torch.cat(self._inputs(features, id_emb, present), dim=-1))

    def parts(
        self, features: Mapping[str, Tensor], id_emb: Tensor, present: Tensor | None = None
    ) -> dict[str, Tensor] | None:
        r"""Exact decomposition ``{part: (n, out_dim)}`` summing to :meth:`forward`, or ``None``.

        For the affine case :math:`\mathbf{h}_i = \mathbf{A}_{\mathrm{id}}\mathbf{e}_i +
        \sum_m \mathbf{A}_m \mathbf{p}_{i,m} + \mathbf{c}`: parts ``"id"``, one per modality
        and ``"bias"`` (:math:`\mathbf{c}`, the same for every item). ``None`` with hidden
        layers, where no exact additive split exists.
        """
        if not self.is_additive:
            return None
        linear: nn.Linear = self.mlp[-1]
        blocks = torch.split(linear.weight, [self.id_dim] + [self.proj_dim] * len(self.modalities), dim=1)
        inputs = self._inputs(features, id_emb, present)
        out = {name: x @ w.T for name, x, w in zip(self.part_names, inputs, blocks)}
        out["bias"] = linear.bias.expand(id_emb.shape[0], -1)
        return out

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(id:{self.id_dim} + {self.projections!r}, "
            f"hidden={list(self.hidden_dims)} -> {self.out_dim})"
        )


class AttentionOutput(NamedTuple):
    """What :class:`AttentionFusion` computes for ``n`` items and ``P`` parts.

    Attributes:
        fused: ``(n, d)`` :math:`\\sum_p \\alpha_{i,p} \\mathbf{e}_{i,p}` (user-independent weights).
        weights: ``(n, P)`` user-independent attention weights (rows sum to 1).
        parts: ``(n, P, d)`` unweighted part vectors :math:`\\mathbf{e}_{i,p}`.
        keys: ``(n, P, a)`` attention keys :math:`\\mathbf{k}_{i,p}`.
        mask: ``(n, P)`` bool, ``False`` where a part is absent (never attended to).
    """

    fused: Tensor
    weights: Tensor
    parts: Tensor
    keys: Tensor
    mask: Tensor | None


class AttentionFusion(nn.Module):
    r"""Attention over an item's parts: its ID embedding and one projection per modality.

    .. math::
        \mathbf{e}_{i,m} = \mathbf{W}_m \mathbf{x}_{i,m} + \mathbf{b}_m, \quad
        \mathbf{e}_{i,\mathrm{id}} = \text{ID embedding}, \quad
        \mathbf{k}_{i,p} = \tanh(\mathbf{W}_k \mathbf{e}_{i,p} + \mathbf{b}_k)

        \alpha_{i,p} = \operatorname{softmax}_p\big(\mathbf{q}^\top \mathbf{k}_{i,p}\big), \qquad
        \mathbf{h}_i = \sum_p \alpha_{i,p}\, \mathbf{e}_{i,p}

    With ``user_conditioned=True`` the query also depends on the user,
    :math:`\alpha_{u,i,p} = \operatorname{softmax}_p\big((\mathbf{q} + \mathbf{W}_u
    \mathbf{u})^\top \mathbf{k}_{i,p}\big)`, and the score is
    :math:`\hat y_{ui} = \sum_p \alpha_{u,i,p} \langle \mathbf{u}, \mathbf{e}_{i,p}\rangle`
    (:meth:`score_pairs`, :meth:`score_all`). ACF puts :math:`\mathbf{W}_u\mathbf{u}`
    inside the non-linearity; putting it in the query keeps the logits bilinear, so scoring
    ``B`` users against ``n`` items costs :math:`O(BnPa)` without ever materialising a
    ``(B, n, P, a)`` tensor.

    Args:
        in_dims: ``{modality: d_m}`` feature widths.
        dim: width :math:`d` of every part (the ID embedding must have it too).
        attention_dim: width :math:`a` of the keys (default ``32``).
        include_id: whether the ID embedding is a part (default ``True``).
        user_conditioned: add the user-dependent query term (default ``False``).

    Shapes:
        input: ``features[m]`` ``(n, d_m)``, ``id_emb`` ``(n, d)``, ``mask`` ``(n, P)``;
        output: :class:`AttentionOutput`.
    """

    def __init__(
        self,
        in_dims: Mapping[str, int],
        dim: int,
        attention_dim: int = 32,
        include_id: bool = True,
        user_conditioned: bool = False,
    ) -> None:
        super().__init__()
        self.dim, self.attention_dim = dim, attention_dim
        self.include_id, self.user_conditioned = include_id, user_conditioned
        self.projections = ModalityProjections(in_dims, dim)
        self.modalities = self.projections.modalities
        self.key = nn.Linear(dim, attention_dim)
        self.query = nn.Parameter(torch.empty(attention_dim))
        self.user_query = nn.Linear(dim, attention_dim, bias=False) if user_conditioned else None
        self.reset_parameters()

    @property
    def part_names(self) -> tuple[str, ...]:
        return (("id",) if self.include_id else ()) + self.modalities

    def reset_parameters(self) -> None:
        self.projections.reset_parameters()
        _reset_linears(self.key)
        # a uniform query in [-1/sqrt(a), 1/sqrt(a)] keeps initial logits O(1)
        bound = self.attention_dim**-0.5
        nn.init.uniform_(self.query, -bound, bound)
        if self.user_query is not None:
            nn.init.xavier_uniform_(self.user_query.weight)

    def forward(
        self, features: Mapping[str, Tensor], id_emb: Tensor | None = None, mask: Tensor | None = None
    ) -> AttentionOutput:
        stacked = self.projections(features)
        if self.include_id:
            if id_emb is None:
                raise ValueError("include_id=True: pass the items' ID embeddings (n, dim)")
            stacked = [id_emb, *stacked]
        parts = torch.stack(stacked, dim=1)
        keys = torch.tanh(self.key(parts))
        weights = self._softmax(keys @ self.query, mask)
        fused = (weights.unsqueeze(-1) * parts).sum(dim=1)
        return AttentionOutput(fused, weights, parts, keys, mask)

    @staticmethod
    def _softmax(logits: Tensor, mask: Tensor | None) -> Tensor:
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        return torch.softmax(logits, dim=-1)

    def _check_conditioned(self) -> nn.Linear:
        if self.user_query is None:
            raise RuntimeError("user-conditioned scoring needs AttentionFusion(user_conditioned=True)")
        return self.user_query

    def user_weights(self, users: Tensor, keys: Tensor, mask: Tensor | None = None) -> Tensor:
        """Weights ``(B, n, P)`` of every user ``(B, d)`` over every item's parts (keys ``(n, P, a)``)."""
        queries = self.query + self._check_conditioned()(users)
        logits = torch.einsum("npa,ba->bnp", keys, queries)
        return self._softmax(logits, None if mask is None else mask.unsqueeze(0))

    def score_pairs(self, users: Tensor, parts: Tensor, keys: Tensor, mask: Tensor | None = None) -> Tensor:
        """Scores ``(B,)`` of aligned pairs: users ``(B, d)``, their items' parts ``(B, P, d)`` and keys ``(B, P, a)``."""
        queries = self.query + self._check_conditioned()(users)
        weights = self._softmax(torch.einsum("bpa,ba->bp", keys, queries), mask)
        return (weights * torch.einsum("bpd,bd->bp", parts, users)).sum(dim=1)

    def score_all(
        self, users: Tensor, parts: Tensor, keys: Tensor, mask: Tensor | None = None, chunk_elems: int = 1 << 24
    ) -> Tensor:
        """Scores ``(B, n)`` of users ``(B, d)`` against all items (parts ``(n, P, d)``), in user chunks
        so that no intermediate exceeds ``chunk_elems`` elements."""
        n, n_parts = parts.shape[0], parts.shape[1]
        step = max(1, chunk_elems // max(1, n * n_parts))
        out = []
        for start in range(0, users.shape[0], step):
            block = users[start : start + step]
            weights = self.user_weights(block, keys, mask)
            part_scores = torch.einsum("npd,bd->bnp", parts, block)
            out.append((weights * part_scores).sum(dim=-1))
        return torch.cat(out) if out else parts.new_zeros(0, n)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(parts={list(self.part_names)}, {self.projections!r}, "
            f"attention_dim={self.attention_dim}, user_conditioned={self.user_conditioned})"
        )


class MLPScoreHead(nn.Module):
    r"""A learned score :math:`\hat y_{ui} = \mathrm{MLP}\big(\mathbf{u} \,\Vert\, \mathbf{i}
    \,\Vert\, \mathbf{u} \odot \mathbf{i}\big)` in place of the dot product.

    The element-wise product is an input because an MLP over :math:`[\mathbf{u}\Vert\mathbf{i}]`
    alone learns a dot product poorly (Rendle et al., RecSys 2020,
    https://arxiv.org/abs/2005.09683). The first layer is split into user, item and product
    blocks so that all-items scoring only materialises ``(B, n, d)`` per user chunk.

    Args:
        dim: width :math:`d` of user and item vectors.
        hidden_dims: hidden widths (default ``(64,)``; ``()`` gives an affine score).
        dropout: dropout after each hidden activation (default ``0.0``).
        negative_slope: LeakyReLU slope (default ``0.2``).
    """

    def __init__(
        self, dim: int, hidden_dims: Sequence[int] = (64,), dropout: float = 0.0, negative_slope: float = 0.2
    ) -> None:
        super().__init__()
        self.dim, self.hidden_dims = dim, tuple(hidden_dims)
        self.mlp = make_mlp(3 * dim, self.hidden_dims, 1, dropout, negative_slope)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_linears(self.mlp)

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        """Scores ``(B,)`` of aligned pairs ``users (B, d)``, ``items (B, d)``."""
        return self.mlp(torch.cat([users, items, users * items], dim=-1)).squeeze(-1)

    def score_all(self, users: Tensor, items: Tensor, chunk_elems: int = 1 << 23) -> Tensor:
        """Scores ``(B, n)`` of users ``(B, d)`` against items ``(n, d)``, in user chunks."""
        first: nn.Linear = self.mlp[0]
        w_user, w_item, w_prod = torch.split(first.weight, self.dim, dim=1)
        item_term = items @ w_item.T + first.bias
        width = first.out_features
        n = items.shape[0]
        step = max(1, chunk_elems // max(1, n * max(self.dim, width)))
        out = []
        for start in range(0, users.shape[0], step):
            block = users[start : start + step]
            hidden = (block @ w_user.T).unsqueeze(1) + item_term.unsqueeze(0)
            hidden = hidden + (block.unsqueeze(1) * items.unsqueeze(0)) @ w_prod.T
            for layer in self.mlp[1:]:
                hidden = layer(hidden)
            out.append(hidden.squeeze(-1))
        return torch.cat(out) if out else items.new_zeros(0, n)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(3x{self.dim} -> {list(self.hidden_dims)} -> 1)"


__all__ = [
    "AttentionFusion",
    "AttentionOutput",
    "ConcatFusion",
    "MLPScoreHead",
    "ModalityProjections",
    "check_modality_names",
    "make_mlp",
]
