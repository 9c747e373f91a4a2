"""BPRSampler: negatives never positive, epochs cover train once, determinism, uniformity."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import chisquare

from mmgcn.train.sampling import BPRSampler


def random_train(n_users=200, n_items=50, density=0.3, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < density
    dense[:, 0] = True  # nobody is empty
    return sp.csr_matrix(dense.astype(np.float32))


def collect(sampler: BPRSampler, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = list(sampler.batches(batch_size))
    return tuple(torch.cat([p[i] for p in parts]).numpy() for i in range(3))


def test_hand_case_negatives_exclude_train_positives(tiny_dataset):
    # train: u0 {0,1}, u1 {1,2}, u2 {2,3}, u3 {0}
    sampler = BPRSampler(tiny_dataset.train, seed=1)
    allowed = {0: {2, 3, 4}, 1: {0, 3, 4}, 2: {0, 1, 4}, 3: {1, 2, 3, 4}}
    seen: dict[int, set[int]] = {u: set() for u in allowed}
    for _ in range(300):
        users, _, negatives = collect(sampler, batch_size=3)
        for u, j in zip(users.tolist(), negatives.tolist()):
            assert j in allowed[u]
            seen[u].add(j)
    assert seen == allowed  # and every allowed negative does show up


def test_random_matrix_never_samples_a_positive_and_covers_each_interaction_once():
    train = random_train(density=0.6)  # dense rows: many collisions to redraw
    dense = train.toarray() > 0
    sampler = BPRSampler(train, seed=3)
    for _ in range(5):
        users, positives, negatives = collect(sampler, batch_size=512)
        assert users.dtype == np.int64 and negatives.dtype == np.int64
        assert not dense[users, negatives].any()
        assert dense[users, positives].all()
        keys = np.sort(users * train.shape[1] + positives)
        expected = np.sort(train.tocoo().row.astype(np.int64) * train.shape[1] + train.tocoo().col)
        assert np.array_equal(keys, expected)


def test_batches_have_requested_size():
    sampler = BPRSampler(random_train(), seed=0)
    sizes = [len(b[0]) for b in sampler.batches(1000)]
    assert sum(sizes) == sampler.n_interactions
    assert sizes[:-1] == [1000] * (len(sizes) - 1) and len(sizes) == sampler.n_batches(1000)


def test_deterministic_for_a_seed():
    train = random_train()
    a, b, c = (BPRSampler(train, seed=s) for s in (7, 7, 8))
    for _ in range(2):
        ea, eb, ec = collect(a, 256), collect(b, 256), collect(c, 256)
        for x, y in zip(ea, eb):
            assert np.array_equal(x, y)
        assert not np.array_equal(ea[2], ec[2])


def test_state_round_trip_reproduces_the_stream():
    train = random_train()
    first = BPRSampler(train, seed=5)
    collect(first, 300)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    expected = collect(first, 300)
    second = BPRSampler(train, seed=999)
    second.load_state_dict(state)
    for x, y in zip(collect(second, 300), expected):
        assert np.array_equal(x, y)
    other = BPRSampler(random_train(n_users=10), seed=0)
    with pytest.raises(ValueError, match="different dataset"):
        other.load_state_dict(state)


def test_negatives_are_uniform_over_the_complement():
    # one user, positives {0, 1} of 10 items: each of the 8 others has probability 1/8
    train = sp.csr_matrix(([1.0, 1.0], ([0, 0], [0, 1])), shape=(1, 10))
    sampler = BPRSampler(train, seed=11)
    negatives = sampler.sample_negatives(np.zeros(80_000, dtype=np.int64))
    counts = np.bincount(negatives, minlength=10)
    assert counts[:2].sum() == 0
    assert chisquare(counts[2:]).pvalue > 1e-3


def test_exact_complement_fallback_is_uniform_and_never_positive():
    # no rejection rounds at all: every collision goes through the rank-based draw
    positives = [0, 2, 5, 7]
    train = sp.csr_matrix(([1.0] * 4 + [1.0] * 9, ([0] * 4 + [1] * 9, positives + list(range(9)))), shape=(2, 10))
    sampler = BPRSampler(train, seed=2, max_rejection_rounds=0)
    negatives = sampler.sample_negatives(np.zeros(60_000, dtype=np.int64))
    counts = np.bincount(negatives, minlength=10)
    assert counts[positives].sum() == 0
    assert chisquare(counts[[1, 3, 4, 6, 8, 9]]).pvalue > 1e-3
    # user 1 has every item but 9: the only negative is 9
    assert set(sampler.sample_negatives(np.ones(1000, dtype=np.int64)).tolist()) == {9}


def test_invalid_inputs():
    with pytest.raises(ValueError, match="no interactions"):
        BPRSampler(sp.csr_matrix((3, 4)))
    full = sp.csr_matrix(np.array([[1, 1, 1], [1, 0, 0]], dtype=np.float32))
    with pytest.raises(ValueError, match=r"user\(s\) \[0\] interacted with all 3 items"):
        BPRSampler(full)
    with pytest.raises(ValueError, match="batch_size"):
        next(BPRSampler(random_train()).batches(0))


def test_negative_pool_excludes_held_out_items_and_stays_uniform():
    # user 0: positives {0, 1}; user 1: positives {1, 3}; items 6..9 are held out (no train
    # edge) and must never be drawn; within the pool {0..5} each non-positive is equally likely
    train = sp.csr_matrix(([1.0] * 4, ([0, 0, 1, 1], [0, 1, 1, 3])), shape=(2, 10))
    pool = np.arange(6)
    for rounds in (20, 0):  # rejection draws, and the exact rank-based fallback alone
        sampler = BPRSampler(train, seed=5, max_rejection_rounds=rounds, negative_items=pool[::-1])
        assert (sampler.n_items, sampler.n_pool) == (10, 6)
        neg0 = sampler.sample_negatives(np.zeros(40_000, dtype=np.int64))
        counts = np.bincount(neg0, minlength=10)
        assert counts[[0, 1]].sum() == 0 and counts[6:].sum() == 0
        assert chisquare(counts[[2, 3, 4, 5]]).pvalue > 1e-3
        neg1 = sampler.sample_negatives(np.ones(40_000, dtype=np.int64))
        assert set(np.unique(neg1).tolist()) == {0, 2, 4, 5}
    # the epoch still visits every train interaction once, with item ids (not pool positions)
    users, positives, negatives = collect(BPRSampler(train, seed=1, negative_items=pool), 3)
    assert sorted(zip(users.tolist(), positives.tolist())) == [(0, 0), (0, 1), (1, 1), (1, 3)]
    assert not BPRSampler(train, negative_items=pool).is_positive(users, negatives).any()
    assert BPRSampler(train, negative_items=pool).is_positive(np.array([0, 1, 1]), np.array([1, 3, 7])).tolist() == [
        True, True, False]


def test_negative_pool_validation():
    train = sp.csr_matrix(([1.0, 1.0], ([0, 0], [0, 4])), shape=(1, 6))
    with pytest.raises(ValueError, match=r"misses 1 item\(s\) with train interactions \(e.g. \[4\]\)"):
        BPRSampler(train, negative_items=[0, 1, 2])
    with pytest.raises(ValueError, match=r"item ids in \[0, 6\)"):
        BPRSampler(train, negative_items=[0, 4, 6])
    with pytest.raises(ValueError, match="interacted with all 2 items negatives are drawn from"):
        BPRSampler(train, negative_items=[0, 4])
    # without a pool the draws are exactly as before (the pool of all items is the same stream)
    a = BPRSampler(train, seed=3).sample_negatives(np.zeros(50, dtype=np.int64))
    b = BPRSampler(train, seed=3, negative_items=np.arange(6)).sample_negatives(np.zeros(50, dtype=np.int64))
    assert np.array_equal(a, b)
