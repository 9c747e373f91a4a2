"""Preparation: k-core filtering, re-indexing, splitting, and building the :class:`Dataset`.

The usual chain from a reader's :class:`~mmgcn.data.log.InteractionLog`::

    core, filtering = k_core(log, k_user=5, k_item=5)
    core, user_ids, item_ids = reindex(core)
    features, content, item_meta = select_items(item_ids, features=..., content=...)
    dataset = make_dataset(core, name="ml-100k", method="random", seed=0,
                           features=features, content=content, item_meta=item_meta,
                           filtering=filtering, id_maps=(user_ids, item_ids))

Nothing is dropped silently: :func:`k_core` returns a report of what it removed, the
split reports the repeated ``(user, item)`` events it collapsed, and :func:`make_dataset`
stores both in ``info`` (``info["filtering"]``, ``info["split"]``) where
:meth:`Dataset.stats` shows them. The split methods live in :mod:`mmgcn.data.splits`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmgcn.data.dataset import DataError, Dataset, FeatureMap, ItemContent
from mmgcn.data.log import InteractionLog
from mmgcn.data.splits import (
    METHODS,
    deduplicate,
    per_user_split_sizes,
    split_log,
    split_with_report,
)

logger = logging.getLogger(__name__)

__all__ = [
    "METHODS",
    "deduplicate",
    "k_core",
    "make_dataset",
    "per_user_split_sizes",
    "reindex",
    "select_items",
    "split_log",
    "split_with_report",
]


def k_core(log: InteractionLog, k_user: int = 5, k_item: int = 5) -> tuple[InteractionLog, dict[str, Any]]:
    """The (k_user, k_item)-core: keep only events of users and items that stay dense enough.

    Degrees count **distinct** ``(user, item)`` pairs (the dataset is binary: a repeated
    event adds no edge). Each round removes, at once, every user with fewer than
    ``k_user`` distinct items and every item with fewer than ``k_item`` distinct users
    (degrees taken at the start of the round), with all their events; rounds repeat until
    nothing changes. The result is the unique maximal subgraph with those minimum
    degrees. Repeated events of the surviving pairs are kept (the split collapses them).

    Args:
        log: the events.
        k_user: minimum distinct items per kept user (default ``5``; ``<= 1`` keeps all).
        k_item: minimum distinct users per kept item (default ``5``).

    Returns:
        The filtered log (same id space as ``log``) and a report: ``k_user``, ``k_item``,
        ``rounds`` (rounds that removed something), ``users_before/after/removed``,
        ``items_before/after/removed`` (counting ids with at least one event) and
        ``interactions_before/after/removed`` (events, repeats included).
    """
    for name, k in (("k_user", k_user), ("k_item", k_item)):
        if not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {k!r}")
    pairs, _ = deduplicate(log)
    alive = np.ones(len(pairs), dtype=bool)
    rounds = 0
    while True:
        user_deg = np.bincount(pairs.users[alive], minlength=log.n_users)
        item_deg = np.bincount(pairs.items[alive], minlength=log.n_items)
        drop = alive & ((user_deg[pairs.users] < k_user) | (item_deg[pairs.items] < k_item))
        if not drop.any():
            break
        alive &= ~drop
        rounds += 1
    keep_users = np.bincount(pairs.users[alive], minlength=log.n_users) > 0
    keep_items = np.bincount(pairs.items[alive], minlength=log.n_items) > 0
    # A removed pair always has a removed end: when a user (item) falls below k, all its
    # pairs go in the same round. So surviving ends select exactly the surviving pairs.
    kept = keep_users[log.users] & keep_items[log.items]
    out = log.subset(kept)
    users_before = int((np.bincount(log.users, minlength=log.n_users) > 0).sum())
    items_before = int((np.bincount(log.items, minlength=log.n_items) > 0).sum())
    users_after, items_after = int(keep_users.sum()), int(keep_items.sum())
    report = {
        "k_user": int(k_user),
        "k_item": int(k_item),
        "rounds": rounds,
        "users_before": users_before,
        "users_after": users_after,
        "users_removed": users_before - users_after,
        "items_before": items_before,
        "items_after": items_after,
        "items_removed": items_before - items_after,
        "interactions_before": len(log),
        "interactions_after": len(out),
        "interactions_removed": len(log) - len(out),
    }
    logger.info(
        "%s: %d-%d core after %d round(s): removed %d users, %d items, %d interactions",
        log.source, k_user, k_item, rounds, report["users_removed"], report["items_removed"],
        report["interactions_removed"],
    )
    return out, report


def reindex(log: InteractionLog, keep_all_items: bool = False) -> tuple[InteractionLog, np.ndarray, np.ndarray]:
    """Map the users and items that occur in ``log`` to dense ids, keeping the original order.

    Args:
        log: the events.
        keep_all_items: keep the whole item id space (items without events stay, e.g. items
            that only have content) instead of dropping items without events (default ``False``).

    Returns:
        ``(log, user_ids, item_ids)``: the re-indexed log, and for each new id its original
        id -- ``user_ids`` ``(n_users_new,)`` and ``item_ids`` ``(n_items_new,)``, int64 and
        increasing, so ``item_ids[new] == old``.
    """
    if len(log) == 0:
        raise DataError(f"{log.source}: the interaction log is empty; nothing to re-index")
    user_ids = np.flatnonzero(np.bincount(log.users, minlength=log.n_users))
    if keep_all_items:
        item_ids = np.arange(log.n_items, dtype=np.int64)
    else:
        item_ids = np.flatnonzero(np.bincount(log.items, minlength=log.n_items))
    user_new = np.full(log.n_users, -1, dtype=np.int64)
    user_new[user_ids] = np.arange(user_ids.size)
    item_new = np.full(log.n_items, -1, dtype=np.int64)
    item_new[item_ids] = np.arange(item_ids.size)
    out = InteractionLog(
        users=user_new[log.users],
        items=item_new[log.items],
        n_users=int(user_ids.size),
        n_items=int(item_ids.size),
        timestamps=log.timestamps,
        ratings=log.ratings,
        source=log.source,
    )
    return out, user_ids.astype(np.int64), item_ids.astype(np.int64)


def select_items(
    item_ids: np.ndarray,
    *,
    features: Mapping[str, Any] | None = None,
    content: ItemContent | None = None,
    item_meta: Mapping[str, Sequence] | None = None,
) -> tuple[dict[str, Any], ItemContent | None, dict[str, Any]]:
    """Item-side arrays re-indexed like :func:`reindex`'s ``item_ids`` (row ``new`` = old ``item_ids[new]``).

    Args:
        item_ids: ``(n_items_new,)`` original item ids, one per new id.
        features: ``{modality: (n_items_old, d)}`` arrays or tensors.
        content: raw content with one entry per old item.
        item_meta: ``{name: (n_items_old,)}`` arrays or sequences.

    Returns:
        ``(features, content, item_meta)`` restricted and re-ordered to the new ids.
    """
    idx = np.asarray(item_ids, dtype=np.int64)
    new_features = {m: value[idx] for m, value in (features or {}).items()}
    new_meta = {
        k: (v[idx] if isinstance(v, np.ndarray) else [v[i] for i in idx.tolist()])
        for k, v in (item_meta or {}).items()
    }
    new_content = None
    if content is not None:
        fields = {name: tuple(values[i] for i in idx.tolist()) for name, values in content.fields_present().items()}
        new_content = ItemContent(**fields)
    return new_features, new_content, new_meta


def make_dataset(
    log: InteractionLog,
    *,
    name: str,
    method: str = "random",
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    features: Mapping[str, Any] | None = None,
    content_masks: Mapping[str, Any] | None = None,
    content: ItemContent | None = None,
    item_meta: Mapping[str, Any] | None = None,
    user_meta: Mapping[str, Any] | None = None,
    info: Mapping[str, Any] | None = None,
    source: str = "<memory>",
    cold_item_fraction: float = 0.1,
    warm_method: str = "random",
    filtering: Mapping[str, Any] | None = None,
    id_maps: tuple[np.ndarray, np.ndarray] | None = None,
) -> Dataset:
    """Split ``log`` (see :func:`~mmgcn.data.splits.split_log`) and build the :class:`Dataset`.

    When ``log`` has timestamps, the dataset keeps each split's event times
    (``Dataset.timestamps``; a repeated pair keeps its earliest time).

    Args:
        log: the events, in the dataset's id space (``log.n_users x log.n_items``).
        name: dataset name.
        method, ratios, seed, cold_item_fraction, warm_method: passed to the split.
        features: ``{modality: (n_items, d)}`` item features, rows in the log's item ids.
        content_masks: ``{modality: (n_items,) bool}``, which items have content.
        content: raw item content, one entry per item.
        item_meta: ``{name: (n_items,)}`` per-item metadata.
        user_meta: ``{name: (n_users,)}`` per-user metadata.
        info: extra provenance; copied, then ``info["split"]`` is set to the split report
            (method, ratios, seed, duplicates removed, interactions per split; cold-item
            counts), ``info["cold_item_ids"]`` to ``{"valid", "test"}`` id arrays for a
            cold-item split, ``info["filtering"]`` to ``filtering`` when given, and
            ``info["id_maps"]`` to ``{"user_ids", "item_ids"}`` when ``id_maps`` is given.
        source: what the data was read from (starts every error message).
        filtering: the report of :func:`k_core` (or any filtering) that produced ``log``.
        id_maps: ``(user_ids, item_ids)`` from :func:`reindex`: original id per dataset id.

    Raises:
        DataError: an empty log, an empty train split, or what :class:`Dataset` rejects.
    """
    splits, report = split_with_report(log, method, ratios, seed, cold_item_fraction, warm_method)
    out_info = dict(info or {})
    cold_ids = report.pop("cold_item_ids", None)
    out_info["split"] = report
    if cold_ids is not None:
        out_info["cold_item_ids"] = cold_ids
    if filtering is not None:
        out_info["filtering"] = dict(filtering)
    if id_maps is not None:
        user_ids, item_ids = id_maps
        if len(user_ids) != log.n_users or len(item_ids) != log.n_items:
            raise DataError(
                f"{source}: id_maps hold {len(user_ids)} users / {len(item_ids)} items but the log "
                f"has {log.n_users} / {log.n_items}; pass the maps returned by reindex() for this log"
            )
        out_info["id_maps"] = {"user_ids": np.asarray(user_ids), "item_ids": np.asarray(item_ids)}
    if splits["train"].users.size == 0:
        raise DataError(f"{source}: the {method} split left the train split empty; use more data or other ratios")
    timestamps = None
    if log.timestamps is not None:
        # the splits are deduplicated: one event per (user, item), so CSR order is (user, item) order
        timestamps = {
            name: part.timestamps[np.lexsort((part.items, part.users))] for name, part in splits.items()
        }
    if isinstance(features, FeatureMap):
        features = features.stored()
    return Dataset(
        name=name,
        n_users=log.n_users,
        n_items=log.n_items,
        train=splits["train"].to_csr(),
        valid=splits["valid"].to_csr(),
        test=splits["test"].to_csr(),
        features=dict(features or {}),
        content_masks=dict(content_masks or {}),
        content=content,
        item_meta=dict(item_meta or {}),
        user_meta=dict(user_meta or {}),
        info=out_info,
        source=source,
        timestamps=timestamps,
    )
