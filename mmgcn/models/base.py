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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

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

    users: Tensor
    items: Tensor
    parts: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)

    def detach(self) -> Embeddings:
        return Embeddings(
            self.users.detach(),
            self.items.detach(),
            {k: (u.detach(), i.detach()) for k, (u, i) in self.parts.items()},
        )


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
