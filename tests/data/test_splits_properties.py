"""Property tests (hypothesis) of every split method on random small logs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mmgcn.data.log import InteractionLog
from mmgcn.data.prepare import deduplicate, split_with_report
from mmgcn.data.splits import METHODS

SETTINGS = settings(max_examples=30, deadline=None)
RATIOS = st.sampled_from([(0.8, 0.1, 0.1), (0.7, 0.1, 0.2), (0.6, 0.2, 0.2), (0.9, 0.0, 0.1), (1.0, 0.0, 0.0)])


@st.composite
def logs(draw) -> InteractionLog:
    """Small logs with repeated pairs and tied timestamps (times drawn from a narrow range)."""
    n_users = draw(st.integers(1, 12))
    n_items = draw(st.integers(2, 15))
    n = draw(st.integers(1, 120))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    return InteractionLog(
        rng.integers(0, n_users, n),
        rng.integers(0, n_items, n),
        n_users,
        n_items,
        timestamps=rng.integers(0, draw(st.integers(1, 30)), n),
    )


def keys(log: InteractionLog) -> np.ndarray:
    return log.users * log.n_items + log.items


def split(log, method, ratios, seed):
    if method == "cold_items" and np.unique(log.items).size < 2:
        log = InteractionLog(
            np.append(log.users, 0), np.append(log.items, (log.items[0] + 1) % log.n_items),
            log.n_users, log.n_items, timestamps=np.append(log.timestamps, 0),
        )
    return log, *split_with_report(log, method, ratios, seed, cold_item_fraction=0.3)


@SETTINGS
@given(log=logs(), method=st.sampled_from(METHODS), ratios=RATIOS, seed=st.integers(0, 1000))
def test_disjoint_cover_and_deterministic(log, method, ratios, seed):
    log, parts, report = split(log, method, ratios, seed)
    all_keys = [keys(parts[s]) for s in ("train", "valid", "test")]
    for k in all_keys:
        assert np.unique(k).size == k.size  # no repeated pair within a split
    merged = np.concatenate(all_keys)
    assert np.unique(merged).size == merged.size  # pairwise disjoint
    deduped, removed = deduplicate(log)
    assert np.array_equal(np.sort(merged), np.sort(keys(deduped)))  # union = deduplicated input
    assert report["duplicates_removed"] == removed == len(log) - merged.size
    _, again, _ = split(log, method, ratios, seed)
    for s in parts:
        assert np.array_equal(again[s].users, parts[s].users)
        assert np.array_equal(again[s].items, parts[s].items)


@SETTINGS
@given(log=logs(), method=st.sampled_from(["random", "temporal"]), ratios=RATIOS, seed=st.integers(0, 1000))
def test_per_user_ratios_within_rounding(log, method, ratios, seed):
    _, parts, _ = split(log, method, ratios, seed)
    counts = {s: np.bincount(p.users, minlength=log.n_users) for s, p in parts.items()}
    n = counts["train"] + counts["valid"] + counts["test"]
    active = n > 0
    assert (counts["train"][active] >= 1).all()  # a user never loses all train items
    # Users long enough that the short-history rule does not apply: floor rounding only.
    positive = [r for r in ratios[1:] if r > 0]
    long_enough = active & (n * (min(positive) if positive else 1.0) >= 1)
    for s, r in zip(("train", "valid", "test"), ratios):
        assert (np.abs(counts[s][long_enough] - n[long_enough] * r) < 2).all()
    for s, r in zip(("valid", "test"), ratios[1:]):
        if r == 0:
            assert counts[s].sum() == 0


@SETTINGS
@given(log=logs(), ratios=RATIOS)
def test_global_temporal_ratios_and_order(log, ratios):
    _, parts, _ = split(log, "global_temporal", ratios, 0)
    total = sum(len(p) for p in parts.values())
    assert abs(len(parts["train"]) - total * ratios[0]) < 1
    assert abs(len(parts["train"]) + len(parts["valid"]) - total * (ratios[0] + ratios[1])) < 1
    if len(parts["train"]):
        last_train = parts["train"].timestamps.max()
        for s in ("valid", "test"):
            assert (parts[s].timestamps >= last_train).all()


@SETTINGS
@given(log=logs(), method=st.sampled_from(["temporal", "loo"]), ratios=RATIOS)
def test_temporal_eval_events_not_earlier_than_train(log, method, ratios):
    _, parts, _ = split(log, method, ratios, 0)
    last_train = np.full(log.n_users, np.iinfo(np.int64).min)
    np.maximum.at(last_train, parts["train"].users, parts["train"].timestamps)
    for s in ("valid", "test"):
        assert (parts[s].timestamps >= last_train[parts[s].users]).all()
    if method == "loo":
        for s in ("valid", "test"):
            assert (np.bincount(parts[s].users, minlength=log.n_users) <= 1).all()
        # test is a user's last event: never earlier than the user's valid event.
        valid_time = np.full(log.n_users, np.iinfo(np.int64).min)
        np.maximum.at(valid_time, parts["valid"].users, parts["valid"].timestamps)
        assert (parts["test"].timestamps >= valid_time[parts["test"].users]).all()


@SETTINGS
@given(log=logs(), ratios=RATIOS, seed=st.integers(0, 1000))
def test_cold_items_have_no_train_interaction(log, ratios, seed):
    log, parts, report = split(log, "cold_items", ratios, seed)
    cold_valid, cold_test = report["cold_item_ids"]["valid"], report["cold_item_ids"]["test"]
    assert np.intersect1d(cold_valid, cold_test).size == 0
    assert cold_valid.size + cold_test.size >= 1
    assert not np.isin(parts["train"].items, cold_valid).any()
    assert not np.isin(parts["train"].items, cold_test).any()
    assert not np.isin(parts["test"].items, cold_valid).any()
    assert not np.isin(parts["valid"].items, cold_test).any()
    # Cold items are items that occur in the log, and some item stays warm.
    assert np.isin(np.concatenate([cold_valid, cold_test]), log.items).all()
    assert len(parts["train"]) >= 1
