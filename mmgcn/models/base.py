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

``recommend(users, k, mask=("train", "valid"))`` lives here, once. Models are built by
name from the registry: ``build_model("mmgcn", dataset, {"dim": 64})``.

Item representation policy: every path that ranks items (the evaluator, ``recommend()``,
the explanations, the trainer's validation, notebooks) scores with :meth:`ranking_embed`,
which is ``embed()`` with the model's ``edgeless_items`` policy applied: items without a
train edge keep their own representation (``"own"``) or are represented from their content
alone, exactly as a new item (``"content"``). The policy is a field of every model config,
so it is saved with the run (``config.yaml``, checkpoints) and restored with the model.

Per-epoch work: ``on_epoch_start(epoch, rng)`` is called by the trainer before every
training epoch (default: nothing); models declare there what changes between epochs (a
re-drawn pruned graph, a learned graph to rebuild), drawing randomness from ``rng`` only.

Cold start: ``represent_new_items(features)`` represents items the model never saw (no
train edge, no trained ID embedding) from their content alone; it returns an
:class:`Embeddings` whose ``users`` are the model's user representations and whose
``items`` are the new items, so ``model.score(users, emb=new)`` scores them. Models that
read no content (``uses_content=False``) raise :class:`NewItemsUnsupportedError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from mmgcn.config import ConfigError, from_dict
from mmgcn.data.dataset import Dataset
from mmgcn.utils.modes import eval_mode
from mmgcn.utils.ranking import binary_union, mask_rows_, top_k_items


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


class UnknownModelError(ConfigError, KeyError):
    """No model of that name is registered (the message lists the registered ones)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NewItemsUnsupportedError(ConfigError):
    """The model reads no item content, so it cannot represent an item without interactions."""


#: how a model represents items without a train edge when ranking (see :meth:`Recommender.ranking_embed`)
EDGELESS_ITEMS = ("own", "content")


@dataclass(frozen=True)
class ModelConfig:
    """Fields every model config has; models subclass this with their own fields.

    Attributes:
        dim: embedding width (default ``64``).
        reg_weight: L2 weight of the model's regulariser (default ``1e-4``).
        edgeless_items: how items without a train edge are represented when ranking:
            ``"own"`` (default: the model's embedding of them, whose ID part never saw a
            positive) or ``"content"`` (from their content alone, as a new item:
            :meth:`Recommender.represent_new_items`; content models only).

    A subclass that gains a field after benchmark cells were committed lists it in
    ``legacy_values`` with the value that reproduces the behaviour before it (often, but
    not always, its default): only at that value does it stay out of a cell's config hash,
    so the finished cells remain valid; any other value is hashed. The value is written out
    rather than read from the default, so that a later change of the default is hashed.
    """

    #: fields added after results existed: name -> the value of the behaviour before them
    legacy_values: ClassVar[Mapping[str, Any]] = {}

    dim: int = 64
    reg_weight: float = 1e-4
    edgeless_items: Literal["own", "content"] = "own"


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
        dataset: the dataset to train on; models learn from ``n_users``, ``n_items``,
            ``features`` and the train graph only. The valid split is kept for one purpose:
            :meth:`recommend` masks it by default (as the evaluator does at test time);
            nothing reads the test split.
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    uses_content: ClassVar[bool] = False
    # False for models with nothing to learn (e.g. most-popular): trainers skip the epoch loop
    trainable: ClassVar[bool] = True
    # False for models whose loss uses some parameters in some steps only (LATTICE builds its
    # learned graph with gradients at an epoch's first batch): data-parallel training then has
    # DistributedDataParallel find the unused parameters at every step
    same_parameters_every_step: ClassVar[bool] = True

    def __init__(self, config: ModelConfig, dataset: Dataset) -> None:
        super().__init__()
        self.config = config
        self.n_users = dataset.n_users
        self.n_items = dataset.n_items
        policy = getattr(config, "edgeless_items", "own")
        if policy not in EDGELESS_ITEMS:
            raise ValueError(f"model '{self.name}': edgeless_items {policy!r} must be one of {list(EDGELESS_ITEMS)}")
        if policy == "content" and not self.uses_content:
            raise ValueError(
                f"model '{self.name}' reads no item content, so it cannot represent items without train "
                f"edges from content (edgeless_items='content'); keep the default 'own'"
            )
        # seen items for recommend(): train (never learned from beyond the model's own use)
        # and valid (masked only); the test split is never held
        self._seen: dict[str, sp.csr_matrix] = {"train": dataset.train, "valid": dataset.valid}
        self._train_csr: sp.csr_matrix = dataset.train
        # raw content of the items without a train edge, for the "content" policy
        self._edgeless_ids = np.flatnonzero(~dataset.items_in_train)
        self._edgeless_features = {m: f[torch.from_numpy(self._edgeless_ids)] for m, f in dataset.features.items()}
        self._edgeless_present = {m: dataset.has_content(m)[self._edgeless_ids] for m in dataset.features}

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

    def subgraph_sampling(self) -> tuple[nn.Module, int] | None:
        """``(graph, hops)`` for models that can train on sampled subgraphs, else ``None``.

        ``graph`` is the user-item :class:`~mmgcn.nn.propagation.BipartitePropagation` the
        model propagates over and ``hops`` how many hops of it a representation depends on
        (its number of layers). Such a model's ``loss(users, pos, neg, subgraph=...)``
        propagates over a :class:`~mmgcn.nn.subgraph.Subgraph` of the batch's neighbourhood
        only (``train.num_neighbors``; :mod:`mmgcn.train.subgraph`).
        """
        return None

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
    @property
    def edgeless_item_ids(self) -> np.ndarray:
        """Sorted ids of the items without a train edge."""
        return self._edgeless_ids

    def ranking_embed(self) -> Embeddings:
        """The representations every ranking path scores with: :meth:`embed` in eval mode
        (the module's mode is restored after), with the ``edgeless_items`` policy applied.

        With ``"content"`` the rows of items without a train edge (and their part rows) are
        replaced by :meth:`represent_new_items` of their own raw features (and content
        masks): they are scored exactly as new items would be.
        """
        # always in eval mode: a model may propagate over another graph while training (FREEDOM)
        with eval_mode(self):
            emb = self.embed()
            if getattr(self.config, "edgeless_items", "own") != "content" or self._edgeless_ids.size == 0:
                return emb
            modalities = tuple(getattr(self, "modalities", None) or self._edgeless_features)
            device = emb.items.device
            features = {m: self._edgeless_features[m].to(device) for m in modalities}
            present = {m: torch.from_numpy(self._edgeless_present[m]).to(device) for m in modalities}
            new = self.represent_new_items(features, present=present)
            return emb.with_item_rows(torch.from_numpy(self._edgeless_ids).to(device), new)

    @torch.no_grad()
    def recommend(
        self,
        users: Tensor | list[int],
        k: int = 10,
        mask: tuple[str, ...] | list[str] = ("train", "valid"),
        emb: Embeddings | None = None,
        block_size: int = 4096,
    ) -> tuple[Tensor, Tensor]:
        """Top-``k`` items per user: ``(scores (B, k), items (B, k))``, best first.

        Scores come from :meth:`ranking_embed` (the model's item-representation policy);
        the user's items in the ``mask`` splits (default train and valid, as the evaluator
        masks at test time; ``()`` keeps them) get ``-inf`` and appear only when fewer than
        ``k`` other items exist. Ties are broken by the lower item id, exactly as in the
        evaluator. Users are scored in blocks of ``block_size`` (memory
        ``O(block_size x n_items)``).
        """
        bad = [m for m in mask if m not in self._seen]
        if bad:
            raise ValueError(f"recommend: mask may name {sorted(self._seen)}, got {bad}")
        with eval_mode(self):
            users = torch.as_tensor(users, dtype=torch.long)
            if users.numel() and (users.min() < 0 or users.max() >= self.n_users):
                raise IndexError(f"user ids must be in [0, {self.n_users}), got {users.min()}..{users.max()}")
            if emb is None:
                emb = self.ranking_embed()
            seen = binary_union([self._seen[m] for m in mask], (self.n_users, self.n_items)) if mask else None
            k = min(k, self.n_items)
            top_scores, top_items = [], []
            for start in range(0, users.numel(), block_size):
                block = users[start : start + block_size]
                scores = self.score(block.to(emb.users.device), emb=emb).float()
                scores = scores.clone(memory_format=torch.contiguous_format)
                if seen is not None:
                    mask_rows_(scores, seen, block, float("-inf"))
                values, indices = top_k_items(scores, k)
                top_scores.append(values)
                top_items.append(indices)
            if not top_scores:
                return torch.empty(0, k), torch.empty(0, k, dtype=torch.long)
            return torch.cat(top_scores), torch.cat(top_items)

    def represent_new_items(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None
    ) -> Embeddings:
        """Representations of unseen items from their content alone (cold start).

        A new item has no train edge and no trained ID embedding: content models represent
        it as they represent an item whose ID embedding is zero and which has no neighbours
        in the train graph. An item of the dataset without train edges gets the same
        representation up to its own ID embedding term.

        Args:
            features: ``{modality: (n_new, d_m)}`` RAW features of the new items (the model
                applies its own fitted feature transforms), one entry per modality the
                model uses, produced like the dataset's (same encoder and preprocessing;
                see :mod:`mmgcn.features.new_items`).
            present: ``{modality: (n_new,) bool}``, ``False`` where a new item has no
                content of that modality (its feature row is a fill); models then leave that
                modality out of the item's representation. Default: all present.

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

    # ------------------------------------------------------------ calibration
    def calibration_candidates(self) -> list[dict[str, float]]:
        """Settings of a post-training calibration to try on the VALIDATION split, the neutral
        one first (default: none).

        The trainer, once the best epoch is restored, applies each candidate, evaluates the
        valid split, keeps the best (the first of equal values) and saves it with the model
        (:meth:`apply_calibration` must store it in the model's state, e.g. a persistent
        buffer), before the test split is evaluated once. Example: MMGCN+'s score offset for
        items represented as new items (mixed ranking of new and known items).
        """
        return []

    def apply_calibration(self, values: Mapping[str, float]) -> None:
        """Set a calibration returned by :meth:`calibration_candidates`."""
        raise NotImplementedError(f"model '{self.name}' has no calibration")

    @torch.no_grad()
    def calibrated_embeddings(self, candidates: Sequence[Mapping[str, float]]) -> Iterator[Embeddings]:
        """For each candidate in turn: apply it (:meth:`apply_calibration`) and yield
        :meth:`ranking_embed` as it then is; the last candidate stays applied. A model whose
        calibration changes a few rows in a known way overrides this to compute the
        representations once and derive each candidate's from them."""
        for values in candidates:
            self.apply_calibration(values)
            yield self.ranking_embed()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def extra_repr(self) -> str:
        return f"n_users={self.n_users}, n_items={self.n_items}, config={self.config}"


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
        raise UnknownModelError(f"unknown model {name!r}; available: {sorted(MODEL_REGISTRY)}") from None


def build_config(name: str, values: Mapping[str, Any] | None = None) -> ModelConfig:
    """The typed config of model ``name`` from a dict (unknown keys and bad values are errors)."""
    config = from_dict(model_class(name).Config, dict(values or {}), where=f"model '{name}'")
    check_config_values(config, f"model '{name}'")
    return config


def check_config_values(config: ModelConfig, where: str) -> None:
    """Range checks every model config shares, by field name: sizes (``dim``,
    ``*_dim``) positive, layer counts >= 0, regularisation weights (``reg*``,
    ``*_reg*``, ``weight_decay``) >= 0, dropouts in ``[0, 1)``, standard deviations >= 0.

    Raises:
        ConfigError: naming the field, its value and the accepted range.
    """
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        name = f.name
        if (name == "dim" or name.endswith("_dim")) and value <= 0:
            problem = "must be a positive size"
        elif name.startswith("num_") and value < 0:
            problem = "must be >= 0"
        elif ("reg" in name.split("_") or name.startswith("reg") or name == "weight_decay") and value < 0:
            problem = "is a regularisation weight and must be >= 0"
        elif "dropout" in name and not 0 <= value < 1:
            problem = "is a dropout probability and must be in [0, 1)"
        elif name.endswith("_std") and value < 0:
            problem = "is a standard deviation and must be >= 0"
        else:
            continue
        raise ConfigError(f"{where}: {name} = {value!r} {problem}")


def build_model(name: str, dataset: Dataset, config: Mapping[str, Any] | ModelConfig | None = None) -> Recommender:
    """Build model ``name`` for ``dataset`` from a config dict or dataclass."""
    cls = model_class(name)
    if not dataclasses.is_dataclass(config):
        config = build_config(name, config)
    else:
        check_config_values(config, f"model '{name}'")
    try:
        return cls(config, dataset)
    except ConfigError:
        raise
    except ValueError as exc:  # the model refuses this config / dataset combination
        raise ConfigError(f"model '{name}' on {dataset.name}: {exc}") from exc



def _import_builtin_models() -> None:
    # importing mmgcn.models registers every built-in model exactly once
    import mmgcn.models  # noqa: F401
