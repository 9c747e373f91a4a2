"""The synthetic generator: seeded, planted structure is real, cold items, bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from mmgcn.data.synthetic import (
    make_synthetic,
    planted_affinity,
    popularity_probabilities,
    synthetic_log,
)

N_USERS, N_ITEMS = 400, 300


def pairs(matrix) -> tuple[np.ndarray, np.ndarray]:
    return np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr)), matrix.indices


def all_interactions(ds):
    return ds.train + ds.valid + ds.test


def small(**kwargs):
    return make_synthetic(N_USERS, N_ITEMS, progress=False, **kwargs)


def taste_gap(ds) -> float:
    """Mean planted affinity of interacted pairs minus that of random pairs."""
    planted = ds.info["planted"]
    users, items = pairs(all_interactions(ds).tocsr())
    rng = np.random.default_rng(123)
    random_users, random_items = rng.integers(0, N_USERS, 20_000), rng.integers(0, N_ITEMS, 20_000)
    return float(
        planted_affinity(planted, users, items).mean() - planted_affinity(planted, random_users, random_items).mean()
    )


def test_seeded_and_deterministic():
    a, b, c = small(seed=3), small(seed=3), small(seed=4)
    for split in ("train", "valid", "test"):
        assert (a.split(split) != b.split(split)).nnz == 0
    for m in a.modalities:
        assert np.array_equal(a.features[m].numpy(), b.features[m].numpy())
    assert (a.train != c.train).nnz > 0
    assert a.modalities == ("image", "text")
    assert a.features["image"].shape == (N_ITEMS, 32) and a.features["text"].shape == (N_ITEMS, 16)


def test_interacted_items_match_the_users_taste():
    # Planted affinity has unit variance over random pairs; interactions sit well above it.
    assert taste_gap(small()) > 0.5
    # Without taste (popularity only) the gap vanishes: the test above measures the planting.
    assert abs(taste_gap(small(taste_strength=0.0))) < 0.15


def test_features_carry_the_item_factors():
    def recoverable(noise: float) -> float:
        ds = small(noise=noise)
        x = ds.features["text"].numpy()
        v = ds.info["planted"]["item_factors"]["text"]
        coef, *_ = np.linalg.lstsq(x, v, rcond=None)
        return 1.0 - float(((x @ coef - v) ** 2).sum() / ((v - v.mean(0)) ** 2).sum())

    assert recoverable(0.1) > 0.95
    assert recoverable(3.0) < 0.5


def test_popularity_skew_is_measurable():
    probs = popularity_probabilities(1000, 1.0)
    assert probs.sum() == pytest.approx(1.0) and (np.diff(probs) < 0).all()
    np.testing.assert_allclose(popularity_probabilities(50, 0.0), 1 / 50)

    def top_decile_share(ds) -> float:
        degree = np.diff(all_interactions(ds).tocsc().indptr)
        top = np.argsort(-ds.info["planted"]["popularity"])[: N_ITEMS // 10]
        return degree[top].sum() / degree.sum()

    skewed, flat = small(popularity_skew=1.2), small(popularity_skew=0.0)
    assert top_decile_share(skewed) > 2 * top_decile_share(flat)
    degree = np.diff(all_interactions(skewed).tocsc().indptr)
    popularity = skewed.info["planted"]["popularity"]
    rank_corr = np.corrcoef(np.argsort(np.argsort(popularity)), np.argsort(np.argsort(degree)))[0, 1]
    assert rank_corr > 0.6


def test_cold_items_have_features_but_no_train_edge():
    ds = small(cold_item_fraction=0.1)
    cold = np.concatenate([ds.info["cold_item_ids"]["valid"], ds.info["cold_item_ids"]["test"]])
    active = np.count_nonzero(np.diff(all_interactions(ds).tocsc().indptr))
    assert cold.size == round(0.1 * active)
    train_degree = np.diff(ds.train.tocsc().indptr)
    assert (train_degree[cold] == 0).all()
    assert set(ds.cold_items("valid").tolist()) | set(ds.cold_items("test").tolist()) == set(cold.tolist())
    features = ds.features["image"].numpy()[cold]
    assert np.isfinite(features).all() and (np.abs(features).sum(axis=1) > 0).all()
    no_cold = small(cold_item_fraction=0.0)
    assert no_cold.stats()["items_without_train"] < cold.size


def test_counts_split_method_and_no_duplicates():
    ds = small(interactions_per_user=12, split_method="temporal")
    total = all_interactions(ds).nnz
    assert abs(total / N_USERS - 12) < 1.0
    assert ds.info["split"]["duplicates_removed"] == 0
    assert ds.info["split"]["method"] == "cold_items" and ds.info["split"]["warm_method"] == "temporal"
    assert ds.info["synthetic"]["seed"] == 0
    # More interactions per user than items: capped at the distinct items available.
    crowded = make_synthetic(50, 10, interactions_per_user=20, cold_item_fraction=0.0, progress=False)
    assert np.diff(all_interactions(crowded).indptr).max() <= 10
    assert crowded.info["split"]["method"] == "random"


def test_memory_is_bounded_without_dense_matrices():
    # A dense users x items float32 matrix here would take 20k x 50k x 4 B = 4 GB.
    tracemalloc.start()
    try:
        log, features, planted = synthetic_log(20_000, 50_000, interactions_per_user=10, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(log) > 150_000
    assert peak < 150 * 2**20


def test_planted_user_tastes_only_when_small_and_errors():
    log, _, planted = synthetic_log(100, 50, keep_planted=False, progress=False)
    assert planted["user_tastes"] is None and planted["item_factors"]["image"].shape == (50, 8)
    with pytest.raises(ValueError, match="user tastes"):
        planted_affinity(planted, log.users[:3], log.items[:3])
    with pytest.raises(ValueError, match="n_users"):
        make_synthetic(0, 10)
    with pytest.raises(ValueError, match="modality"):
        make_synthetic(10, 10, modalities={"image": 0})
    with pytest.raises(ValueError, match="popularity_skew"):
        make_synthetic(10, 10, popularity_skew=-1.0)
    with pytest.raises(ValueError, match="cold_item_fraction"):
        make_synthetic(10, 10, cold_item_fraction=1.0, progress=False)
    with pytest.raises(ValueError, match="needs cold_item_fraction"):
        make_synthetic(10, 10, cold_item_fraction=0.0, split_method="cold_items", progress=False)
