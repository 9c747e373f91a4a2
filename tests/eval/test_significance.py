"""Significance: the seed-aware bootstrap and the per-seed detail tests, against hand-computed cases."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest
from scipy import stats

from mmgcn.eval.significance import (
    PairedTest,
    SeedComparison,
    compare,
    holm,
    pair_by_user,
    paired_tests,
    seed_matrices,
    seed_user_bootstrap,
    signed_rank_exact_p,
)

# a - b = [0.5, -1, 2, 3, 4]: |d| ranks 1..5, W- = 2 (the -1), W+ = 13
A = np.array([1.5, 0.0, 5.0, 6.0, 9.0])
B = np.array([1.0, 1.0, 3.0, 3.0, 5.0])


def test_wilcoxon_hand_computed_exact_p() -> None:
    result = paired_tests(A, B)
    # min(W+, W-) = 2; sign patterns of ranks {1..5} with W <= 2: {}, {1}, {2} -> 3 of 32;
    # two-sided p = 2 * 3 / 32
    assert result.wilcoxon_stat == 2.0
    assert result.wilcoxon_p == pytest.approx(2 * 3 / 32, abs=1e-12)
    assert result.n_nonzero == 5
    assert result.wilcoxon_p == pytest.approx(stats.wilcoxon(A, B, method="exact").pvalue)


def test_paired_t_hand_computed() -> None:
    result = paired_tests(A, B)
    # d mean 1.7, sample variance 15.8 / 4 = 3.95, t = 1.7 / sqrt(3.95 / 5)
    t = 1.7 / math.sqrt(3.95 / 5)
    assert result.t_stat == pytest.approx(t, rel=1e-12)
    # Student t with 4 degrees of freedom has a closed-form CDF
    cdf = 0.5 + 3 / 8 * (t / math.sqrt(1 + t * t / 4)) * (1 - t * t / (12 * (1 + t * t / 4)))
    assert result.t_p == pytest.approx(2 * (1 - cdf), rel=1e-9)
    assert result.mean_diff == pytest.approx(1.7)
    assert (result.mean_a, result.mean_b, result.n_users) == (pytest.approx(4.3), pytest.approx(2.6), 5)


def test_exact_p_with_ties_and_zeros_by_enumeration() -> None:
    # zeros dropped, ties get average ranks: |d| = 1,1,1,2,3 -> ranks 2,2,2,4,5
    diff = np.array([1.0, 1.0, -1.0, 2.0, 3.0, 0.0, 0.0])
    w, p = signed_rank_exact_p(diff)
    assert w == 2.0  # W- = rank of the single -1
    ranks = [2, 2, 2, 4, 5]
    below = sum(sum(r for r, s in zip(ranks, signs) if s) <= 2 for signs in product([0, 1], repeat=5))
    assert p == pytest.approx(2 * below / 32)
    assert p == pytest.approx(0.25)


def test_identical_and_constant_shift() -> None:
    same = paired_tests(A, A.copy())
    assert (same.wilcoxon_p, same.t_p, same.n_nonzero) == (1.0, 1.0, 0)
    shifted = paired_tests(A + 1.0, A)
    assert shifted.t_p == 0.0 and shifted.t_stat == math.inf
    assert shifted.wilcoxon_p == pytest.approx(2 / 32)


def test_large_sample_uses_normal_approximation() -> None:
    rng = np.random.default_rng(3)
    a = rng.random(500)
    b = a - 0.05 + rng.normal(0, 0.2, 500)
    result = paired_tests(a, b)
    expected = stats.wilcoxon(a, b, method="asymptotic")
    assert result.wilcoxon_p == pytest.approx(expected.pvalue)
    assert result.t_p == pytest.approx(stats.ttest_rel(a, b).pvalue)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="same length"):
        paired_tests(A, B[:3])
    with pytest.raises(ValueError, match="at least 2"):
        paired_tests(A[:1], B[:1])
    with pytest.raises(ValueError, match="NaN"):
        paired_tests(np.array([1.0, np.nan]), np.array([0.0, 0.0]))


def test_seed_matrices_align_users_over_every_run() -> None:
    users, a, b = seed_matrices(
        [(np.array([3, 1, 2]), np.array([1.0, 0.0, 0.5])), (np.array([1, 2, 3, 9]), np.array([1.0, 0.5, 0.0, 7.0]))],
        [(np.array([2, 3, 1]), np.array([0.2, 0.3, 0.1]))],
    )
    np.testing.assert_array_equal(users, [1, 2, 3])
    np.testing.assert_allclose(a, [[0.0, 0.5, 1.0], [1.0, 0.5, 0.0]])
    np.testing.assert_allclose(b, [[0.1, 0.2, 0.3]])
    with pytest.raises(ValueError, match="twice"):
        seed_matrices([(np.array([1, 1]), np.array([0.0, 1.0]))], [(np.array([1]), np.array([0.0]))])
    with pytest.raises(ValueError, match="at least one run"):
        seed_matrices([], [(np.array([1]), np.array([0.0]))])


def test_seeds_that_disagree_are_never_significant_however_many_users() -> None:
    """Model a: seed 0 gives every user 0.1, seed 1 gives 0.3; model b: 0.2 on both seeds.
    Every per-seed difference is large and, over 20,000 users, a per-user test would call
    each of them "significant" -- but the seeds disagree on the sign. By hand: resampling
    a's two runs gives a mean of 0.1, 0.2 or 0.3 with probabilities 1/4, 1/2, 1/4, users do
    not matter (constant rows), so Delta* is -0.1, 0 or +0.1: P(<= 0) = P(>= 0) = 3/4, p = 1,
    and the 95% interval is [-0.1, 0.1]."""
    n = 20_000
    a = np.stack([np.full(n, 0.1), np.full(n, 0.3)])
    b = np.stack([np.full(n, 0.2), np.full(n, 0.2)])
    diff, low, high, p = seed_user_bootstrap(a, b, n_boot=2000)
    assert diff == pytest.approx(0.0, abs=1e-12)
    assert (low, high) == (pytest.approx(-0.1), pytest.approx(0.1))
    assert p == 1.0
    # the per-seed detail, by contrast, is extreme on each seed
    assert paired_tests(a[0], b[0]).wilcoxon_p < 1e-10 and paired_tests(a[1], b[1]).wilcoxon_p < 1e-10


def test_consistent_seeds_and_users_are_significant() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    base = rng.random(n)
    a = np.stack([base + 0.2 + rng.normal(0, 0.05, n) for _ in range(3)])
    b = np.stack([base + rng.normal(0, 0.05, n) for _ in range(3)])
    diff, low, high, p = seed_user_bootstrap(a, b, n_boot=2000)
    assert diff == pytest.approx(a.mean() - b.mean())
    assert 0.18 < low < diff < high < 0.22
    assert p == 0.0


def test_one_seed_each_reduces_to_a_paired_user_bootstrap() -> None:
    """With one run per model only users vary: the interval is the paired bootstrap's,
    close to mean(d) +- 1.96 sd(d) / sqrt(n) (checked by hand on a normal sample)."""
    rng = np.random.default_rng(1)
    n = 5000
    d = rng.normal(0.01, 0.2, n)
    b = rng.random(n)
    a = b + d
    diff, low, high, p = seed_user_bootstrap(a[None], b[None], n_boot=4000)
    se = d.std(ddof=1) / np.sqrt(n)
    assert diff == pytest.approx(d.mean())
    assert low == pytest.approx(d.mean() - 1.96 * se, abs=0.15 * se + 1e-4)
    assert high == pytest.approx(d.mean() + 1.96 * se, abs=0.15 * se + 1e-4)
    # the interval excludes zero exactly when p < 0.05
    assert (low > 0 or high < 0) == (p < 0.05)


def test_bootstrap_is_reproducible_and_validates_input() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.random((3, 50)), rng.random((2, 50))
    assert seed_user_bootstrap(a, b, n_boot=300) == seed_user_bootstrap(a, b, n_boot=300)
    assert seed_user_bootstrap(a, b, n_boot=300, seed=1) != seed_user_bootstrap(a, b, n_boot=300)
    with pytest.raises(ValueError, match="need"):
        seed_user_bootstrap(a, b[:, :40])
    with pytest.raises(ValueError, match="NaN"):
        seed_user_bootstrap(np.full((1, 3), np.nan), np.zeros((1, 3)))


def test_compare_records_seed_means_and_the_per_seed_detail() -> None:
    users = np.arange(40)
    runs_a = [(users, np.full(40, 0.5)), (users[::-1], np.full(40, 0.7))]
    runs_b = [(users, np.linspace(0, 1, 40))]
    result = compare("a", "b", "recall@20", runs_a, runs_b, n_boot=500)
    assert (result.n_users, result.seeds_model, result.seeds_reference) == (40, 2, 1)
    assert result.seed_means_model == pytest.approx([0.5, 0.7])
    assert result.diff == pytest.approx(0.6 - 0.5)
    assert len(result.per_seed_wilcoxon_p) == 1
    assert not result.significant  # no Holm-adjusted p yet
    back = SeedComparison.from_dict(result.to_dict())
    assert back == result


def test_pair_by_user_aligns_ids() -> None:
    ids, a, b = pair_by_user(np.array([5, 2, 7]), np.array([0.5, 0.2, 0.7]), np.array([7, 5]), np.array([1.7, 1.5]))
    np.testing.assert_array_equal(ids, [5, 7])
    np.testing.assert_allclose(a, [0.5, 0.7])
    np.testing.assert_allclose(b, [1.5, 1.7])


def test_holm_hand_computed() -> None:
    # sorted 0.01, 0.03, 0.04, 0.5 with m = 4: 0.04, 0.09, max(0.09, 0.08), 0.5
    adjusted = holm([0.01, 0.04, 0.03, float("nan"), 0.5])
    assert adjusted[:3] == pytest.approx([0.04, 0.09, 0.09])
    assert math.isnan(adjusted[3]) and adjusted[4] == pytest.approx(0.5)
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])


def test_paired_test_dict_round_trip_with_nan() -> None:
    same = paired_tests(A, A.copy())
    data = same.to_dict()
    assert data["t_stat"] is None
    back = PairedTest.from_dict(data)
    assert math.isnan(back.t_stat) and back.wilcoxon_p == 1.0


def test_readme_verdict_says_unresolved_unless_significant() -> None:
    from mmgcn.bench.readme import verdict

    base = dict(model="a", reference="b", metric="recall@20", n_users=10, seeds_model=3, seeds_reference=3,
                mean_model=0.2, mean_reference=0.1, diff=0.1, ci_low=-0.01, ci_high=0.2, p=0.06, n_boot=1000,
                boot_seed=0)
    assert verdict(SeedComparison(**base, p_holm=0.06)) == "unresolved"
    assert verdict(SeedComparison(**base, p_holm=0.01)) == "`a` better"
    assert verdict(SeedComparison(**{**base, "diff": -0.1}, p_holm=0.01)) == "`b` better"


def test_paired_seeds_cancel_the_seed_effect_both_arms_share() -> None:
    # three seeds with very different levels; arm b is arm a plus a constant 0.01 per seed
    # (a training option that changes nothing but a fixed shift): paired, the interval is the
    # shift itself; unpaired, the seed levels make it wide
    rng = np.random.default_rng(0)
    levels = np.array([0.05, 0.10, 0.15])[:, None]
    a = levels + rng.normal(0.0, 0.01, size=(3, 400))
    b = a + 0.01
    diff, low, high, p = seed_user_bootstrap(b, a, n_boot=2000, paired_seeds=True)
    assert diff == pytest.approx(0.01) and low == pytest.approx(0.01) and high == pytest.approx(0.01)
    assert p < 1e-3
    _, low_u, high_u, p_u = seed_user_bootstrap(b, a, n_boot=2000)
    assert low_u < 0.0 < high_u and p_u > 0.05
    with pytest.raises(ValueError, match="paired seeds"):
        seed_user_bootstrap(a[:2], b, paired_seeds=True)
