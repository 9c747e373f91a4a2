"""k-core, re-indexing, splits and make_dataset against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from mmgcn.data.dataset import DataError, ItemContent
from mmgcn.data.log import InteractionLog
from mmgcn.data.prepare import (
    deduplicate,
    k_core,
    make_dataset,
    per_user_split_sizes,
    reindex,
    select_items,
    split_log,
    split_with_report,
)


def make_log(pairs, n_users=None, n_items=None, timestamps=None, ratings=None) -> InteractionLog:
    users, items = (np.array(x, dtype=np.int64) for x in zip(*pairs))
    return InteractionLog(
        users,
        items,
        n_users if n_users is not None else int(users.max()) + 1,
        n_items if n_items is not None else int(items.max()) + 1,
        timestamps=None if timestamps is None else np.array(timestamps),
        ratings=None if ratings is None else np.array(ratings, dtype=np.float32),
    )


def pair_set(log: InteractionLog) -> set[tuple[int, int]]:
    return set(zip(log.users.tolist(), log.items.tolist()))


# ----------------------------------------------------------------------------- MMRec rule
def mmrec_rule(n: int) -> tuple[int, int, int]:
    """MMRec preprocessing/1splitting.ipynb, verbatim logic (for n >= 3)."""
    if n < 10:
        return n - 2, 1, 1
    val_test_len = int(n * 0.2)
    val_len = val_test_len // 2
    return n - val_test_len, val_len, val_test_len - val_len


def test_per_user_sizes_equal_mmrec_rule_for_default_ratios():
    n = np.arange(3, 400)
    train, valid, test = per_user_split_sizes(n, (0.8, 0.1, 0.1))
    expected = np.array([mmrec_rule(int(k)) for k in n])
    np.testing.assert_array_equal(np.stack([train, valid, test], axis=1), expected)


def test_per_user_sizes_short_histories_keep_one_train_item():
    train, valid, test = per_user_split_sizes(np.array([0, 1, 2]), (0.8, 0.1, 0.1))
    assert train.tolist() == [0, 1, 1]
    assert valid.tolist() == [0, 0, 0]
    assert test.tolist() == [0, 0, 1]


def test_per_user_sizes_other_ratios():
    # 7:1:2 on 20 items: held = 6, valid = floor(6 * 1/3) = 2, test = 4.
    assert [int(x[0]) for x in per_user_split_sizes(np.array([20]), (0.7, 0.1, 0.2))] == [14, 2, 4]
    # No valid split at all: valid never receives an item, even for short histories.
    train, valid, test = per_user_split_sizes(np.array([4, 20]), (0.9, 0.0, 0.1))
    assert valid.tolist() == [0, 0]
    assert train.tolist() == [3, 18] and test.tolist() == [1, 2]


@pytest.mark.parametrize("ratios", [(0.8, 0.1), (0.5, 0.5, 0.5), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1), (np.nan, 0.5, 0.5)])
def test_bad_ratios_raise(ratios):
    log = make_log([(0, 0), (0, 1)])
    with pytest.raises(ValueError, match="ratios|train ratio"):
        split_log(log, ratios=ratios)


# ----------------------------------------------------------------------------- k-core
def chain_log() -> InteractionLog:
    """A 4-cycle u0-i0-u1-i1 with a tail u1-i2-u2-i3-u3; u0 repeats i0 (a duplicate event).

    2-core: round 1 drops u3 (degree 1); round 2 drops i3; round 3 drops u2; round 4 drops
    i2; the cycle {u0, u1} x {i0, i1} survives.
    """
    return make_log([(0, 0), (0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 2), (2, 3), (3, 3)])


def test_k_core_needs_several_rounds():
    core, report = k_core(chain_log(), k_user=2, k_item=2)
    assert report["rounds"] == 4
    assert pair_set(core) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert len(core) == 5  # the repeated (0, 0) event is kept; the split collapses it
    assert core.n_users == 4 and core.n_items == 4  # same id space
    assert report["users_before"] == 4 and report["users_after"] == 2 and report["users_removed"] == 2
    assert report["items_before"] == 4 and report["items_after"] == 2 and report["items_removed"] == 2
    assert report["interactions_before"] == 9 and report["interactions_after"] == 5
    assert report["interactions_removed"] == 4


def test_k_core_counts_distinct_pairs_not_events():
    # u0 has 3 events but only 2 distinct items: not in the 3-core of users.
    log = make_log([(0, 0), (0, 0), (0, 1), (1, 0), (1, 1), (1, 2)])
    core, report = k_core(log, k_user=3, k_item=1)
    assert pair_set(core) == {(1, 0), (1, 1), (1, 2)}
    assert report["users_removed"] == 1 and report["rounds"] == 1


def test_k_core_asymmetric_thresholds_and_trivial_core():
    log = chain_log()
    same, report = k_core(log, k_user=1, k_item=1)
    assert len(same) == len(log) and report["rounds"] == 0
    # Items need 2 users, users need 1 item: i3 (u2, u3) and i2 (u1, u2) survive, as all users.
    core, report = k_core(log, k_user=1, k_item=2)
    assert pair_set(core) == pair_set(log)
    # Items need 3 users: nothing survives.
    empty, report = k_core(log, k_user=1, k_item=3)
    assert len(empty) == 0 and report["users_after"] == 0


def test_k_core_rejects_negative_k():
    with pytest.raises(ValueError, match="k_user"):
        k_core(chain_log(), k_user=-1)


# ----------------------------------------------------------------------------- reindex
def test_reindex_dense_ids_and_maps():
    log = make_log([(5, 7), (2, 7), (5, 3), (9, 0)], n_users=12, n_items=10, timestamps=[4, 3, 2, 1])
    new, user_ids, item_ids = reindex(log)
    assert user_ids.tolist() == [2, 5, 9] and item_ids.tolist() == [0, 3, 7]
    assert new.n_users == 3 and new.n_items == 3
    np.testing.assert_array_equal(user_ids[new.users], log.users)
    np.testing.assert_array_equal(item_ids[new.items], log.items)
    np.testing.assert_array_equal(new.timestamps, log.timestamps)
    kept, _, all_items = reindex(log, keep_all_items=True)
    assert kept.n_items == 10 and all_items.tolist() == list(range(10))
    np.testing.assert_array_equal(kept.items, log.items)


def test_select_items_reorders_item_side():
    features = {"image": np.arange(10, dtype=np.float32).reshape(5, 2)}
    content = ItemContent(titles=("a", "b", None, "d", "e"))
    meta = {"year": np.array([1990, 1991, 1992, 1993, 1994]), "tags": ["x", "y", "z", "w", "v"]}
    feats, cont, new_meta = select_items(np.array([1, 3]), features=features, content=content, item_meta=meta)
    np.testing.assert_array_equal(feats["image"], [[2, 3], [6, 7]])
    assert cont.titles == ("b", "d") and cont.texts is None
    assert new_meta["year"].tolist() == [1991, 1993] and new_meta["tags"] == ["y", "w"]


# ----------------------------------------------------------------------------- splits
def test_deduplicate_keeps_earliest_event():
    log = make_log([(0, 1), (0, 2), (0, 1), (1, 1)], timestamps=[50, 10, 20, 5], ratings=[1, 2, 3, 4])
    out, removed = deduplicate(log)
    assert removed == 1
    assert list(zip(out.users.tolist(), out.items.tolist(), out.timestamps.tolist())) == [
        (0, 2, 10), (0, 1, 20), (1, 1, 5)
    ]
    assert out.ratings.tolist() == [2, 3, 4]


def test_random_split_sizes_per_user():
    # u0: 10 items, u1: 2 items, u2: 1 item, u3: 5 items.
    pairs = [(0, i) for i in range(10)] + [(1, 0), (1, 1), (2, 4)] + [(3, i) for i in range(5)]
    splits = split_log(make_log(pairs), method="random", seed=3)
    counts = {s: np.bincount(part.users, minlength=4).tolist() for s, part in splits.items()}
    assert counts == {"train": [8, 1, 1, 3], "valid": [1, 0, 0, 1], "test": [1, 1, 0, 1]}


def test_random_split_is_seeded():
    pairs = [(u, i) for u in range(6) for i in range(12)]
    log = make_log(pairs)
    a, b = split_log(log, seed=1), split_log(log, seed=1)
    for name in a:
        assert pair_set(a[name]) == pair_set(b[name])
    others = [pair_set(split_log(log, seed=s)["test"]) for s in range(2, 6)]
    assert any(o != pair_set(a["test"]) for o in others)


def test_temporal_split_orders_by_time_with_item_tiebreak():
    # One user, 10 events; times have a tie at the train/valid border (t=8 for items 3 and 9).
    items = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    times = [1, 2, 3, 8, 4, 5, 6, 7, 9, 8]
    splits = split_log(make_log([(0, i) for i in items], timestamps=times), method="temporal")
    # Order by (time, item): 0,1,2,4,5,6,7,3(t8),9(t8),8(t9) -> 8 train, valid = 9, test = 8.
    assert sorted(splits["train"].items.tolist()) == [0, 1, 2, 3, 4, 5, 6, 7]
    assert splits["valid"].items.tolist() == [9]
    assert splits["test"].items.tolist() == [8]


def test_global_temporal_cut():
    times = [30, 10, 20, 90, 50, 40, 60, 80, 70, 100]
    pairs = [(i % 3, i) for i in range(10)]
    splits = split_log(make_log(pairs, timestamps=times), method="global_temporal")
    assert sorted(splits["train"].timestamps.tolist()) == [10, 20, 30, 40, 50, 60, 70, 80]
    assert splits["valid"].timestamps.tolist() == [90]
    assert splits["test"].timestamps.tolist() == [100]


def test_leave_one_out_by_time():
    pairs = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 4), (1, 5), (2, 6)]
    times = [4, 1, 3, 2, 9, 8, 1]
    splits = split_log(make_log(pairs, timestamps=times), method="loo")
    assert pair_set(splits["test"]) == {(0, 0), (1, 4)}
    assert pair_set(splits["valid"]) == {(0, 2)}
    assert pair_set(splits["train"]) == {(0, 1), (0, 3), (1, 5), (2, 6)}


def test_leave_one_out_without_time_is_random_but_seeded():
    log = make_log([(u, i) for u in range(4) for i in range(8)])
    a = split_log(log, method="loo", seed=0)
    assert np.bincount(a["test"].users).tolist() == [1, 1, 1, 1]
    assert np.bincount(a["valid"].users).tolist() == [1, 1, 1, 1]
    assert pair_set(split_log(log, method="loo", seed=0)["test"]) == pair_set(a["test"])
    assert any(pair_set(split_log(log, method="loo", seed=s)["test"]) != pair_set(a["test"]) for s in range(1, 5))


def test_cold_item_split_holds_items_out_of_train():
    rng = np.random.default_rng(0)
    pairs = sorted({(int(u), int(i)) for u, i in zip(rng.integers(0, 30, 600), rng.integers(0, 40, 600))})
    log = make_log(pairs, n_users=30, n_items=40)
    splits, report = split_with_report(log, method="cold_items", seed=5, cold_item_fraction=0.25)
    n_active = np.unique(log.items).size
    cold_valid, cold_test = report["cold_item_ids"]["valid"], report["cold_item_ids"]["test"]
    assert cold_valid.size + cold_test.size == round(0.25 * n_active)
    assert cold_valid.size == (cold_valid.size + cold_test.size) // 2
    assert not np.isin(splits["train"].items, np.concatenate([cold_valid, cold_test])).any()
    # Every interaction of a cold item is in that item's split, none elsewhere.
    for items, split, other in ((cold_valid, "valid", "test"), (cold_test, "test", "valid")):
        in_log = np.isin(log.items, items).sum()
        assert np.isin(splits[split].items, items).sum() == in_log
        assert not np.isin(splits[other].items, items).any()
    assert report["cold_items"] == {"valid": int(cold_valid.size), "test": int(cold_test.size)}


def test_split_errors():
    no_time = make_log([(0, 0), (0, 1)])
    for method in ("temporal", "global_temporal"):
        with pytest.raises(DataError, match="timestamps"):
            split_log(no_time, method=method)
    with pytest.raises(ValueError, match="unknown split method"):
        split_log(no_time, method="stratified")
    empty = InteractionLog(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 2, 2, source="e.inter")
    with pytest.raises(DataError, match="e.inter.*empty"):
        split_log(empty)
    with pytest.raises(ValueError, match="cold_item_fraction"):
        split_log(no_time, method="cold_items", cold_item_fraction=1.5)
    with pytest.raises(DataError, match="at least 2 items"):
        split_log(make_log([(0, 0), (1, 0)]), method="cold_items")


# ----------------------------------------------------------------------------- make_dataset
def test_make_dataset_records_split_filtering_and_maps():
    rng = np.random.default_rng(1)
    raw = make_log(
        list(zip(rng.integers(0, 25, 500).tolist(), rng.integers(0, 30, 500).tolist())),
        n_users=25,
        n_items=30,
        timestamps=rng.integers(0, 100, 500),
    )
    core, filtering = k_core(raw, 3, 3)
    core, user_ids, item_ids = reindex(core)
    features, content, _ = select_items(
        item_ids,
        features={"text": rng.normal(size=(30, 4)).astype(np.float32)},
        content=ItemContent(titles=tuple(f"t{i}" for i in range(30))),
    )
    ds = make_dataset(
        core, name="toy", method="temporal", seed=7, features=features, content=content,
        filtering=filtering, id_maps=(user_ids, item_ids), info={"origin": "test"}, source="toy.inter",
    )
    assert ds.n_users == user_ids.size and ds.n_items == item_ids.size
    assert ds.info["origin"] == "test"
    assert ds.info["split"]["method"] == "temporal" and ds.info["split"]["seed"] == 7
    assert ds.info["split"]["ratios"] == [0.8, 0.1, 0.1]
    deduped, removed = deduplicate(core)
    assert ds.info["split"]["duplicates_removed"] == removed
    assert ds.train.nnz + ds.valid.nnz + ds.test.nnz == len(deduped)
    assert ds.info["filtering"] == filtering
    np.testing.assert_array_equal(ds.info["id_maps"]["item_ids"], item_ids)
    stats = ds.stats()
    assert stats["split"]["method"] == "temporal" and stats["filtering"]["k_user"] == 3
    assert ds.content.titles[0] == f"t{item_ids[0]}"


def test_make_dataset_cold_items_keeps_features_of_cold_items():
    pairs = [(u, i) for u in range(12) for i in range(10) if (u + i) % 3]
    log = make_log(pairs)
    features = {"image": np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)}
    ds = make_dataset(log, name="cold", method="cold_items", cold_item_fraction=0.3, features=features)
    cold = np.concatenate([ds.info["cold_item_ids"]["valid"], ds.info["cold_item_ids"]["test"]])
    assert cold.size == 3
    assert set(ds.cold_items("valid").tolist()) | set(ds.cold_items("test").tolist()) == set(cold.tolist())
    np.testing.assert_array_equal(ds.features["image"].numpy()[cold], features["image"][cold])


def test_make_dataset_refuses_empty_train_and_bad_maps():
    one = make_log([(0, 0)], timestamps=[1])
    with pytest.raises(DataError, match="train split empty"):
        make_dataset(one, name="x", method="global_temporal", source="one.inter")
    log = make_log([(0, 0), (0, 1), (1, 1)])
    with pytest.raises(DataError, match="id_maps"):
        make_dataset(log, name="x", id_maps=(np.arange(5), np.arange(2)))
