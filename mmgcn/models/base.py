"""The recommender interface and the model registry.

Every model is an ``nn.Module`` with three verbs:

* ``embed()`` -> :class:`Embeddings`: final user ``(n_users, d)`` and item ``(n_items, d)``
  representations, plus per-part pieces (``parts["visual"]``, ``parts["id"]`` ...) where
  the model has them (used for score attribution).
* ``loss(users, pos, neg)`` -> scalar tensor: the training objective for one batch of
  (user, positive item, negative item) triples, regularisation included.
* ``score(users, items=None, emb=None)`` -> ``(len(users), n_items)`` or
  ``(len(users), len(items))`` scores; pass a precomputed ``emb`` to score in blocks
  without re-running propagation.

``recommend(users, k, exclude_seen=True)`` lives here, once. Models are built by name
from the registry: ``build_model("mmgcn", dataset, {"dim": 64})``.

Cold start: ``represent_new_items(features)`` represents items the model never saw (no
train edge, no trained ID embedding) from their content alone; it returns an
:class:`Embeddings` whose ``users`` are the model's user representations and whose
``items`` are the new items, so ``model.score(users, emb=new)`` scores them. Models that
read no content (``uses_content=False``) raise :class:`NewItemsUnsupportedError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from mmgcn.config import from_dict
from mmgcn.data.dataset import Dataset


@dataclass
class Embeddings:
    """User and item representations produced by ``Recommender.embed``.

    Attributes:
        users: ``(n_users, d)`` final user representations.
        items: ``(n_items, d)`` final item representations.
        parts: optional ``{part: (users (n_users, d_p), items (n_items, d_p))}`` such that
            the score decomposes as a sum over parts of ``<users_p[u], items_p[i]>``
            (e.g. one part per modality plus ``"id"``); used to attribute scores.
    """

    #: fields indexed by item (first dimension ``n_items``); subclasses add theirs
    ITEM_FIELDS: ClassVar[tuple[str, ...]] = ("items",)

    users: Tensor
    items: Tensor
    parts: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)

    def with_item_rows(self, index: Tensor, new: Embeddings) -> Embeddings:
        """A copy whose rows ``index`` of every item-indexed field (and of every part's item
        side) are the rows of ``new`` (e.g. :meth:`Recommender.represent_new_items` of those
        items, in the order of ``index``); users are kept."""
        if type(new) is not type(self):
            raise TypeError(f"cannot mix {type(self).__name__} with {type(new).__name__}")
        changes: dict[str, Any] = {}
        for name in self.ITEM_FIELDS:
            old, rows = getattr(self, name), getattr(new, name)
            if old is None or rows is None:
                continue
            if rows.shape[0] != index.numel() or rows.shape[1:] != old.shape[1:]:
                raise ValueError(f"{name}: {tuple(rows.shape)} new rows for {index.numel()} items of {tuple(old.shape)}")
            replaced = old.clone()
            replaced[index] = rows.to(device=old.device, dtype=old.dtype)
            changes[name] = replaced
        parts = {}
        if set(self.parts) == set(new.parts):
            for key, (users, items) in self.parts.items():
                replaced = items.clone()
                replaced[index] = new.parts[key][1].to(device=items.device, dtype=items.dtype)
                parts[key] = (users, replaced)
        return dataclasses.replace(self, **changes, parts=parts)

    def detach(self) -> Embeddings:
        return Embeddings(
            self.users.detach(),
            self.items.detach(),
            {k: (u.detach(), i.detach()) for k, (u, i) in self.parts.items()},
        )


class NewItemsUnsupportedError(ValueError):
    """The model reads no item content, so it cannot represent an item without interactions."""


@dataclass(frozen=True)
class ModelConfig:
    """Fields every model config has; models subclass this with their own fields."""

    dim: int = 64
    reg_weight: float = 1e-4


class Recommender(nn.Module):
    """Base class of all recommenders.

    Subclasses set ``name`` (registry key), ``Config`` (a frozen dataclass derived from
    :class:`ModelConfig`), ``uses_content`` (whether item features are used, i.e. whether
    items without train edges can still be scored meaningfully), ``trainable`` (``False``
    for models with nothing to train, whose ``loss`` raises), and implement
    :meth:`embed` and :meth:`loss`. Models that do not score by a dot product override
    :meth:`score`.

    Args:
        config: the model's config dataclass.
        dataset: the dataset to train on; models read ``n_users``, ``n_items``,
            ``features`` and the train graph from it, never the valid/test splits.
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    uses_content: ClassVar[bool] = False
    # False for models with nothing to learn (e.g. most-popular): trainers skip the epoch loop
    trainable: ClassVar[bool] = True

    def __init__(self, config: ModelConfig, dataset: Dataset) -> None:
        super().__init__()
        self.config = config
        self.n_users = dataset.n_users
        self.n_items = dataset.n_items
        # train interactions, for excluding seen items in recommend(); never valid/test
        self._train_csr: sp.csr_matrix = dataset.train

    # ------------------------------------------------------------ the three verbs
    def embed(self) -> Embeddings:
        raise NotImplementedError

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        raise NotImplementedError

    def score(self, users: Tensor, items: Tensor | None = None, emb: Embeddings | None = None) -> Tensor:
        """Dot-product scores ``(len(users), n_items)`` or ``(len(users), len(items))``."""
        if emb is None:
            emb = self.embed()
        user_vecs = emb.users[users]
        item_vecs = emb.items if items is None else emb.items[items]
        return user_vecs @ item_vecs.T

    def score_parts(
        self, users: Tensor, items: Tensor | None = None, emb: Embeddings | None = None
    ) -> dict[str, Tensor]:
        r"""Per-part scores ``{part: (len(users), n)}`` that sum to :meth:`score`.

        Default: :math:`\langle u_p, i_p \rangle` over ``emb.parts`` (pass the output of
        :meth:`represent_new_items` as ``emb`` to attribute new items' scores).

        Raises:
            ValueError: the model's representations have no additive parts.
        """
        if emb is None:
            emb = self.embed()
        if not emb.parts:
            raise ValueError(f"model '{self.name}' has no additive per-part representations to attribute scores to")
        select = slice(None) if items is None else items
        return {p: u[users] @ i[select].T for p, (u, i) in emb.parts.items()}

    def on_epoch_start(self, epoch: int, rng: np.random.Generator) -> None:
        """Per-epoch work, called by the trainer before epoch ``epoch``'s first batch (default: none).

        Models declare here what changes between epochs (a re-drawn pruned graph, a flag to
        rebuild a learned graph) instead of the trainer knowing about them. Draw all
        randomness from ``rng``: the trainer seeds it from the run seed and ``epoch``
        (:func:`mmgcn.utils.seed.epoch_generator`), so a resumed run redraws exactly what the
        uninterrupted run drew, and the global random streams are left untouched.

        Args:
            epoch: the epoch about to run, from 1.
            rng: this epoch's generator.
        """

    # ------------------------------------------------------------ shared helpers
    @torch.no_grad()
    def recommend(
        self,
        users: Tensor | list[int],
        k: int = 10,
        exclude_seen: bool = True,
        emb: Embeddings | None = None,
        block_size: int = 4096,
    ) -> tuple[Tensor, Tensor]:
        """Top-``k`` items per user: ``(scores (B, k), items (B, k))``, best first.

        With ``exclude_seen`` the user's train items get ``-inf`` and never appear
        unless fewer than ``k`` unseen items exist. Users are scored in blocks of
        ``block_size`` so memory stays ``O(block_size x n_items)``.
        """
        was_training = self.training
        self.eval()
        try:
            users = torch.as_tensor(users, dtype=torch.long)
            if users.numel() and (users.min() < 0 or users.max() >= self.n_users):
                raise IndexError(f"user ids must be in [0, {self.n_users}), got {users.min()}..{users.max()}")
            if emb is None:
                emb = self.embed()
            k = min(k, self.n_items)
            top_scores, top_items = [], []
            for start in range(0, users.numel(), block_size):
                block = users[start : start + block_size]
                scores = self.score(block, emb=emb)
                if exclude_seen:
                    mask_seen_(scores, self._train_csr, block)
                values, indices = torch.topk(scores, k, dim=1)
                top_scores.append(values)
                top_items.append(indices)
            if not top_scores:
                return torch.empty(0, k), torch.empty(0, k, dtype=torch.long)
            return torch.cat(top_scores), torch.cat(top_items)
        finally:
            self.train(was_training)

    def represent_new_items(self, features: Mapping[str, Tensor]) -> Embeddings:
        """Representations of unseen items from their content alone (cold start).

        A new item has no train edge and no trained ID embedding: content models represent
        it as they represent an item whose ID embedding is zero and which has no neighbours
        in the train graph. An item of the dataset without train edges gets the same
        representation up to its own ID embedding term.

        Args:
            features: ``{modality: (n_new, d_m)}`` features of the new items, one entry per
                modality the model uses, produced like the dataset's (same encoder and
                preprocessing; see :mod:`mmgcn.features.new_items`).

        Returns:
            :class:`Embeddings` with ``users`` ``(n_users, d)`` (as in :meth:`embed`) and
            ``items`` ``(n_new, d)``; ``parts`` pair the users' part vectors with the new
            items' (empty where the model has no additive parts).

        Raises:
            NewItemsUnsupportedError: the model reads no item content (``uses_content=False``).
            ValueError: missing / unknown modalities, wrong widths, NaN or inf.
        """
        raise NewItemsUnsupportedError(
            f"model '{self.name}' cannot represent items without interactions: it reads no item "
            f"content (uses_content=False) and an unseen item has no trained ID embedding; use a "
            f"content model (e.g. mmgcn, vbpr, concat, attention) for cold-start items"
        )

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def extra_repr(self) -> str:
        return f"n_users={self.n_users}, n_items={self.n_items}, config={self.config}"


def mask_seen_(scores: Tensor, seen: sp.csr_matrix, users: Tensor) -> Tensor:
    """Set ``scores[r, i] = -inf`` for every item ``i`` that user ``users[r]`` has in ``seen``.

    ``scores`` is ``(len(users), n_items)`` and is modified in place (and returned).
    """
    rows = users.cpu().numpy()
    sub = seen[rows]
    if sub.nnz:
        r = torch.from_numpy(sub.tocoo().row.astype("int64")).to(scores.device)
        c = torch.from_numpy(sub.indices.astype("int64")).to(scores.device)
        # tocoo() of a CSR keeps the CSR order, so row/col pairs line up
        scores[r, c] = float("-inf")
    return scores


def check_new_item_features(
    features: Mapping[str, Tensor], dims: Mapping[str, int], model: str, device: torch.device | None = None
) -> dict[str, Tensor]:
    """Validate new items' features against the model's modalities and widths.

    Args:
        features: ``{modality: (n_new, d_m)}`` tensors or arrays.
        dims: ``{modality: d_m}`` the model was built with, in the model's order.
        model: the model name, for messages.
        device: where the returned tensors go (default: unchanged).

    Returns:
        ``{modality: (n_new, d_m) float32}`` in the order of ``dims``.

    Raises:
        ValueError: missing or unknown modalities, bad shapes, differing row counts,
            NaN / inf values.
    """
    missing = [m for m in dims if m not in features]
    unknown = [m for m in features if m not in dims]
    if missing or unknown:
        raise ValueError(
            f"model '{model}' reads modalities {list(dims)}; new-item features "
            f"{'lack ' + str(missing) if missing else ''}{' and ' if missing and unknown else ''}"
            f"{'have unknown ' + str(unknown) if unknown else ''}"
        )
    out: dict[str, Tensor] = {}
    n_rows = None
    for m, width in dims.items():
        value = torch.as_tensor(features[m])
        if value.dim() != 2 or value.shape[1] != width:
            raise ValueError(f"new-item features '{m}' must be (n_new, {width}), got shape {tuple(value.shape)}")
        if n_rows is None:
            n_rows = value.shape[0]
        if value.shape[0] != n_rows or value.shape[0] == 0:
            raise ValueError(
                f"new-item features must have the same positive number of rows in every modality, got "
                f"{ {k: int(torch.as_tensor(features[k]).shape[0]) for k in dims} }"
            )
        if value.is_complex() or value.dtype == torch.bool:
            raise ValueError(f"new-item features '{m}' must be real floats, got {value.dtype}")
        value = value.detach().to(torch.float32)
        if not torch.isfinite(value).all():
            raise ValueError(f"new-item features '{m}' contain NaN or inf")
        out[m] = value if device is None else value.to(device)
    return out


# ---------------------------------------------------------------------- registry
MODEL_REGISTRY: dict[str, type[Recommender]] = {}


def register_model(cls: type[Recommender]) -> type[Recommender]:
    """Class decorator: make ``cls`` buildable by ``cls.name``."""
    if cls.name in MODEL_REGISTRY and MODEL_REGISTRY[cls.name] is not cls:
        raise ValueError(f"model name {cls.name!r} registered twice")
    MODEL_REGISTRY[cls.name] = cls
    return cls


def available_models() -> list[str]:
    _import_builtin_models()
    return sorted(MODEL_REGISTRY)


def model_class(name: str) -> type[Recommender]:
    _import_builtin_models()
    try:
        return MODEL_REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; available: {sorted(MODEL_REGISTRY)}") from None


def build_config(name: str, values: Mapping[str, Any] | None = None) -> ModelConfig:
    """The typed config of model ``name`` from a dict (unknown keys are errors)."""
    return from_dict(model_class(name).Config, dict(values or {}), where=f"model '{name}'")


def build_model(name: str, dataset: Dataset, config: Mapping[str, Any] | ModelConfig | None = None) -> Recommender:
    """Build model ``name`` for ``dataset`` from a config dict or dataclass."""
    cls = model_class(name)
    if not dataclasses.is_dataclass(config):
        config = build_config(name, config)
    return cls(config, dataset)



def _import_builtin_models() -> None:
    # importing mmgcn.models registers every built-in model exactly once
    import mmgcn.models  # noqa: F401
