r"""Train / valid / test splits of an :class:`~mmgcn.data.log.InteractionLog`.

Every split here is vectorised (one sort of the events, no Python loop over users), seeded
and deterministic, and works in the id space of its input. Before splitting, repeated
``(user, item)`` pairs are collapsed to one event (:func:`deduplicate`, the earliest event
is kept), so one pair can never land in two splits; the number removed is reported.

Methods (``method=``):

* ``"random"`` -- per user, a seeded random permutation of the user's items, cut with
  MMRec's per-user rule (:func:`per_user_split_sizes`).
* ``"temporal"`` -- per user, items ordered by time (ties by item id), same per-user
  sizes: a user's valid/test events are never earlier than the user's train events.
* ``"global_temporal"`` -- all events ordered by time (ties by user, then item id), cut at
  the global ratio quantiles: no valid/test event is earlier than any train event.
  Users first seen after the cut have no train interaction (cold users).
* ``"loo"`` -- leave-one-out per user: the last item (by time if the log has timestamps,
  else a seeded random one) is test, the second last is valid, the rest is train. A user
  with 2 items keeps 1 in train and 1 in test; a user with 1 item keeps it in train.
* ``"cold_items"`` -- a seeded fraction of the items that occur in the log is held out of
  train with all its interactions; those items are divided by item between valid (the
  first ``n // 2``) and test (the rest); the other items' interactions are split with
  ``warm_method`` (per-user ``"random"`` by default). Item content and features are not
  touched: a cold item keeps its features in the dataset.

MMRec's per-user rule (enoche/MMRec, ``preprocessing/1splitting.ipynb``): a user with
``n < 10`` interactions gets ``n - 2`` train, 1 valid, 1 test; otherwise
``held = int(0.2 n)``, ``valid = held // 2``, ``test = held - valid`` and the rest is
train. :func:`per_user_split_sizes` is the same rule for any ratios (identical to MMRec's
for ``(0.8, 0.1, 0.1)`` and every ``n >= 3``), extended so that a user always keeps at
least one train item: ``n = 2`` gives 1 train + 1 test, ``n = 1`` gives 1 train.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmgcn.data.dataset import SPLITS, DataError
from mmgcn.data.log import InteractionLog

logger = logging.getLogger(__name__)

METHODS = ("random", "temporal", "global_temporal", "loo", "cold_items")
# Float slack when flooring n * ratio: 0.8 + 0.1 + 0.1 style ratios must not lose a unit.
_EPS = 1e-9
_TRAIN, _VALID, _TEST = 0, 1, 2


def check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    """Validate ``(train, valid, test)`` ratios: finite, non-negative, train > 0, sum 1."""
    try:
        values = tuple(float(r) for r in ratios)
    except (TypeError, ValueError) as err:
        raise ValueError(f"ratios must be three numbers (train, valid, test), got {ratios!r}") from err
    if len(values) != 3:
        raise ValueError(f"ratios must be three numbers (train, valid, test), got {ratios!r}")
    if not all(np.isfinite(values)) or min(values) < 0:
        raise ValueError(f"ratios must be finite and non-negative, got {values}")
    if values[0] <= 1e-6:
        raise ValueError(f"the train ratio must be positive, got {values}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"ratios must sum to 1, got {values} (sum {sum(values)})")
    return values  # type: ignore[return-value]


def per_user_split_sizes(n: np.ndarray, ratios: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MMRec's per-user split sizes, generalised to any ratios.

    ``held = floor(n (r_valid + r_test))``, ``valid = floor(held r_valid / (r_valid + r_test))``,
    ``test = held - valid``. Then, for short histories, a split with a positive ratio that
    got nothing gets one item taken from train -- test first, then valid -- as long as
    train keeps at least one. With ``(0.8, 0.1, 0.1)``: ``n = 1 -> (1, 0, 0)``,
    ``2 -> (1, 0, 1)``, ``3..9 -> (n - 2, 1, 1)``, ``10 -> (8, 1, 1)``, ``25 -> (20, 2, 3)``.

    Args:
        n: ``(n_users,)`` interactions per user (non-negative ints).
        ratios: ``(train, valid, test)``, see :func:`check_ratios`.

    Returns:
        ``(n_train, n_valid, n_test)``, each ``(n_users,)`` int64, summing to ``n``.
    """
    _, r_valid, r_test = check_ratios(ratios)
    n = np.asarray(n, dtype=np.int64)
    held_ratio = r_valid + r_test
    held = np.floor(n * held_ratio + _EPS).astype(np.int64)
    if held_ratio > 0:
        n_valid = np.floor(held * (r_valid / held_ratio) + _EPS).astype(np.int64)
    else:
        n_valid = np.zeros_like(n)
    n_test = held - n_valid
    if r_test > 0:
        n_test = n_test + ((n_test == 0) & (n - n_valid - n_test >= 2))
    if r_valid > 0:
        n_valid = n_valid + ((n_valid == 0) & (n - n_valid - n_test >= 2))
    return n - n_valid - n_test, n_valid, n_test


def deduplicate(log: InteractionLog) -> tuple[InteractionLog, int]:
    """Collapse repeated ``(user, item)`` pairs to one event.

    The earliest event of a pair is kept (by timestamp, then by position in the log); the
    kept events stay in their original order.

    Returns:
        The deduplicated log (same id space) and the number of events removed.
    """
    if len(log) == 0:
        return log, 0
    key = log.users * np.int64(log.n_items) + log.items
    sorted_key = np.sort(key)
    if not (sorted_key[1:] == sorted_key[:-1]).any():
        return log, 0  # the common case, found with one unstable sort
    if log.timestamps is None:
        order = np.argsort(key, kind="stable")
    else:
        order = np.lexsort((log.timestamps, key))  # lexsort is stable: ties keep log order
    sorted_key = key[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = sorted_key[1:] != sorted_key[:-1]
    removed = int(order.size - first.sum())
    if removed == 0:
        return log, 0
    return log.subset(np.sort(order[first])), removed


def _rank_within_user(users: np.ndarray, order: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """For events sorted by ``order`` (grouped by user): position of each within its user."""
    sorted_users = users[order]
    counts = np.bincount(sorted_users, minlength=n_users)
    starts = np.cumsum(counts) - counts
    return np.arange(order.size) - starts[sorted_users], counts


def _labels_from_sizes(
    users: np.ndarray, order: np.ndarray, n_users: int, sizes_fn: Any
) -> np.ndarray:
    """Split label per event: the first ``n_train`` of a user (in ``order``) train, then valid, test."""
    rank, counts = _rank_within_user(users, order, n_users)
    n_train, n_valid, _ = sizes_fn(counts)
    sorted_users = users[order]
    sorted_labels = np.full(order.size, _TEST, dtype=np.int8)
    sorted_labels[rank < n_train[sorted_users] + n_valid[sorted_users]] = _VALID
    sorted_labels[rank < n_train[sorted_users]] = _TRAIN
    labels = np.empty_like(sorted_labels)
    labels[order] = sorted_labels
    return labels


def _random_user_order(log: InteractionLog, rng: np.random.Generator) -> np.ndarray:
    """Events grouped by user, in a seeded random order within each user."""
    # Unique keys (user, random rank): any sort algorithm gives the same order.
    key = log.users * np.int64(len(log)) + rng.permutation(len(log))
    return np.argsort(key)


def _temporal_user_order(log: InteractionLog) -> np.ndarray:
    """Events grouped by user, by time within each user; ties by item id."""
    return np.lexsort((log.items, log.timestamps, log.users))


def _need_timestamps(log: InteractionLog, method: str) -> None:
    if log.timestamps is None:
        raise DataError(
            f"{log.source}: split method '{method}' needs event times but field 'timestamps' is "
            f"missing; use method='random' (or 'loo', which falls back to a random order), or "
            f"read the data with a reader that keeps timestamps"
        )


def _loo_sizes(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_test = (counts >= 2).astype(np.int64)
    n_valid = (counts >= 3).astype(np.int64)
    return counts - n_valid - n_test, n_valid, n_test


def _labels(
    log: InteractionLog, method: str, ratios: tuple[float, float, float], rng: np.random.Generator
) -> np.ndarray:
    """Split label (0 train, 1 valid, 2 test) per event of a deduplicated log."""
    def sizes(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return per_user_split_sizes(counts, ratios)

    if method == "random":
        return _labels_from_sizes(log.users, _random_user_order(log, rng), log.n_users, sizes)
    if method == "temporal":
        _need_timestamps(log, method)
        return _labels_from_sizes(log.users, _temporal_user_order(log), log.n_users, sizes)
    if method == "loo":
        # Train first in the order, so the last event (by time) is test, the second last valid.
        order = _random_user_order(log, rng) if log.timestamps is None else _temporal_user_order(log)
        return _labels_from_sizes(log.users, order, log.n_users, _loo_sizes)
    if method == "global_temporal":
        _need_timestamps(log, method)
        order = np.lexsort((log.items, log.users, log.timestamps))
        n = order.size
        n_train = int(np.floor(n * ratios[0] + _EPS))
        n_train_valid = int(np.floor(n * (ratios[0] + ratios[1]) + _EPS))
        labels = np.full(n, _TEST, dtype=np.int8)
        labels[order[:n_train_valid]] = _VALID
        labels[order[:n_train]] = _TRAIN
        return labels
    raise ValueError(f"unknown split method {method!r}; expected one of {METHODS}")


def _cold_item_labels(
    log: InteractionLog,
    ratios: tuple[float, float, float],
    cold_item_fraction: float,
    warm_method: str,
    seed: int,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if not 0.0 < cold_item_fraction < 1.0:
        raise ValueError(f"cold_item_fraction must be in (0, 1), got {cold_item_fraction}")
    if warm_method == "cold_items":
        raise ValueError("warm_method must be a per-event method, not 'cold_items'")
    active = np.flatnonzero(np.bincount(log.items, minlength=log.n_items) > 0)
    if active.size < 2:
        raise DataError(
            f"{log.source}: a cold-item split needs at least 2 items with interactions, found "
            f"{active.size}"
        )
    n_cold = int(np.clip(round(cold_item_fraction * active.size), 1, active.size - 1))
    cold = np.random.default_rng([seed, 1]).choice(active, size=n_cold, replace=False)
    cold_valid, cold_test = np.sort(cold[: n_cold // 2]), np.sort(cold[n_cold // 2 :])
    labels = np.full(len(log), _TRAIN, dtype=np.int8)
    labels[np.isin(log.items, cold_valid)] = _VALID
    labels[np.isin(log.items, cold_test)] = _TEST
    warm = np.flatnonzero(~np.isin(log.items, cold))
    if warm.size:
        warm_log = log.subset(warm)
        labels[warm] = _labels(warm_log, warm_method, ratios, np.random.default_rng([seed, 2]))
    return labels, {"valid": cold_valid, "test": cold_test}


def split_with_report(
    log: InteractionLog,
    method: str = "random",
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    cold_item_fraction: float = 0.1,
    warm_method: str = "random",
) -> tuple[dict[str, InteractionLog], dict[str, Any]]:
    """:func:`split_log`, plus a report of what was done.

    Returns:
        ``({"train", "valid", "test"} -> InteractionLog, report)``. The report is
        JSON-serialisable except ``report["cold_item_ids"]`` (``{"valid", "test"}`` ->
        sorted int64 arrays), present for ``method="cold_items"`` only.
    """
    if method not in METHODS:
        raise ValueError(f"unknown split method {method!r}; expected one of {METHODS}")
    ratios = check_ratios(ratios)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if len(log) == 0:
        raise DataError(f"{log.source}: the interaction log is empty; there is nothing to split")
    deduped, n_duplicates = deduplicate(log)
    if n_duplicates:
        logger.info("%s: %d repeated (user, item) events collapsed before splitting", log.source, n_duplicates)
    report: dict[str, Any] = {
        "method": method,
        "ratios": list(ratios),
        "seed": int(seed),
        "duplicates_removed": n_duplicates,
    }
    if method == "cold_items":
        labels, cold = _cold_item_labels(deduped, ratios, cold_item_fraction, warm_method, int(seed))
        report.update(
            cold_item_fraction=float(cold_item_fraction),
            warm_method=warm_method,
            cold_items={"valid": int(cold["valid"].size), "test": int(cold["test"].size)},
            cold_item_ids=cold,
        )
    else:
        labels = _labels(deduped, method, ratios, np.random.default_rng([int(seed), 0]))
    splits = {name: deduped.subset(labels == code) for code, name in enumerate(SPLITS)}
    report["interactions"] = {name: len(part) for name, part in splits.items()}
    return splits, report


def split_log(
    log: InteractionLog,
    method: str = "random",
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    cold_item_fraction: float = 0.1,
    warm_method: str = "random",
) -> dict[str, InteractionLog]:
    """Split a log into ``{"train", "valid", "test"}`` logs (same id space as ``log``).

    Repeated ``(user, item)`` pairs are collapsed first (see :func:`deduplicate`); the
    three splits are disjoint and their union is the deduplicated log. See the module
    docstring for the methods and MMRec's per-user rule.

    Args:
        log: the events to split.
        method: ``"random"`` (default), ``"temporal"``, ``"global_temporal"``, ``"loo"`` or
            ``"cold_items"``.
        ratios: ``(train, valid, test)`` fractions, summing to 1 (default ``(0.8, 0.1, 0.1)``);
            ignored by ``"loo"``; for ``"cold_items"`` they apply to the warm items.
        seed: seed of every random choice (default ``0``).
        cold_item_fraction: fraction of the items with interactions held out by
            ``"cold_items"`` (default ``0.1``; at least one item, at most all but one).
        warm_method: how ``"cold_items"`` splits the other items' events (default ``"random"``).

    Raises:
        DataError: an empty log, or a temporal method on a log without timestamps.
        ValueError: an unknown method, bad ratios, seed or fraction.
    """
    splits, _ = split_with_report(log, method, ratios, seed, cold_item_fraction, warm_method)
    return splits
