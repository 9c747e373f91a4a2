r"""Significance of model differences that counts training runs (seeds) and users.

A benchmark compares models trained with several seeds and evaluated on the same test
users. Two sources of variance make a difference between two models uncertain: which
users were sampled (the test set) and how a training run happened to go (the seed). A test
over users only -- e.g. a Wilcoxon signed-rank test over users of seed-averaged metrics --
ignores the second: with thousands of users it declares tiny differences "significant"
even when the models' seeds disagree on the sign. The headline test here treats both.

**Seed-aware hierarchical bootstrap** (:func:`seed_user_bootstrap`). Model ``a`` has a
``(S_a, n)`` matrix of per-user test metrics (one row per seed), model ``b`` a ``(S_b, n)``
matrix over the same ``n`` users. The statistic is the difference of the grand means,

.. math:: \Delta = \frac{1}{S_a n}\sum_{s,u} a_{su} - \frac{1}{S_b n}\sum_{s,u} b_{su}.

Each bootstrap replicate resamples, with replacement, first the training runs of each
model independently (seed ``k`` of ``a`` and seed ``k`` of ``b`` are unrelated runs), then
the users, paired between the models (the same user draw for both, as the users are
shared); :math:`\Delta^*` is recomputed on the resample. The 95% interval is the 2.5% and
97.5% percentiles of :math:`\Delta^*`; the two-sided p-value is
:math:`\min\{1, 2\min(P^*(\Delta^* \le 0), P^*(\Delta^* \ge 0))\}` (so the interval
excludes 0 exactly when :math:`p < 0.05`). With few seeds the seed level dominates: two
models whose seeds disagree are not significant however many users there are. With 3 seeds
only 10 distinct seed resamples exist per model, and a percentile bootstrap over so few
runs is, if anything, optimistic: read 3-seed results as provisional. The replicates use a
fixed generator seed, so the numbers are reproducible.

**Seeds paired** (``paired_seeds=True``): when the two arms share their seeds by design --
the same seed gives both the same initialisation and the same batches, and only a training
*option* differs (e.g. sampled vs full-graph propagation) -- run ``k`` of ``a`` and run ``k``
of ``b`` are a pair, and each replicate draws one set of seeds for both. The between-seed
variance common to both arms then cancels, as in a paired design; the interval is about the
option, not about how lucky the seeds were. Never use it for two different models.

Multiple comparisons: :func:`holm` adjusts the p-values of a whole family (every model x
metric comparison a table shows); a comparison is reported **significant** only where its
Holm-adjusted p is below 0.05 (which implies that its unadjusted interval excludes 0).

**Per-seed detail** (:func:`paired_tests`): for one seed of each model, the Wilcoxon
signed-rank test and the paired t-test over users. It is labelled as what it is -- the
user-sampling uncertainty of one pair of training runs -- and never the headline:

* the Wilcoxon signed-rank test drops zero differences (scipy's ``zero_method="wilcox"``)
  and gives tied ``|differences|`` average ranks; with at most :data:`EXACT_MAX_N`
  non-zero differences the two-sided p-value is exact (:func:`signed_rank_exact_p`),
  otherwise scipy's normal approximation with tie correction;
* the paired t-test is ``scipy.stats.ttest_rel``, two-sided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats
from scipy.stats import rankdata

# largest number of non-zero differences for which the exact signed-rank p-value is used
EXACT_MAX_N = 50
#: family-wise error level of "significant"
ALPHA = 0.05
#: bootstrap replicates and generator seed used by the benchmark
N_BOOT = 10_000
BOOT_SEED = 0


@dataclass(frozen=True)
class PairedTest:
    """Result of :func:`paired_tests` for ``a`` (a model) against ``b`` (the reference).

    Attributes:
        n_users: number of paired users.
        mean_a: mean of ``a`` over the paired users.
        mean_b: mean of ``b`` over the paired users.
        mean_diff: mean of ``a - b``.
        n_nonzero: users whose difference is not zero (the Wilcoxon sample size).
        wilcoxon_stat: ``min(W+, W-)``, the smaller signed-rank sum.
        wilcoxon_p: two-sided p-value of the signed-rank test (1.0 when every difference is 0).
        t_stat: paired t statistic (``nan`` when the differences are constant).
        t_p: two-sided p-value of the paired t-test (1.0 when every difference is 0).
    """

    n_users: int
    mean_a: float
    mean_b: float
    mean_diff: float
    n_nonzero: int
    wilcoxon_stat: float
    wilcoxon_p: float
    t_stat: float
    t_p: float

    def to_dict(self) -> dict[str, float | int | None]:
        # JSON has no NaN: undefined statistics are written as null
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> PairedTest:
        return cls(**{k: (float("nan") if v is None else v) for k, v in data.items()})


def paired_tests(a: np.ndarray, b: np.ndarray) -> PairedTest:
    """Wilcoxon signed-rank and paired t-test of ``a`` against ``b``.

    Args:
        a: ``(n,)`` per-user metric of the model under test.
        b: ``(n,)`` per-user metric of the reference model, same users in the same order.

    Raises:
        ValueError: shapes differ, fewer than 2 pairs, or NaN / inf values.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_tests: need two 1-D arrays of the same length, got {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError(f"paired_tests: need at least 2 paired users, got {a.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("paired_tests: per-user metrics contain NaN or inf")
    diff = a - b
    nonzero = int(np.count_nonzero(diff))
    if nonzero == 0:
        # identical per-user results: no evidence of a difference (scipy would divide by 0)
        w_stat, w_p, t_stat, t_p = 0.0, 1.0, float("nan"), 1.0
    else:
        if nonzero <= EXACT_MAX_N:
            w_stat, w_p = signed_rank_exact_p(diff)
        else:
            w = stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided", method="asymptotic")
            w_stat, w_p = float(w.statistic), float(w.pvalue)
        if np.ptp(diff) == 0.0:
            # a constant non-zero shift: the t statistic is infinite, p -> 0
            t_stat, t_p = float(np.sign(diff[0]) * np.inf), 0.0
        else:
            t = stats.ttest_rel(a, b, alternative="two-sided")
            t_stat, t_p = float(t.statistic), float(t.pvalue)
    return PairedTest(
        n_users=int(a.size),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        mean_diff=float(diff.mean()),
        n_nonzero=nonzero,
        wilcoxon_stat=w_stat,
        wilcoxon_p=w_p,
        t_stat=t_stat,
        t_p=t_p,
    )


def signed_rank_exact_p(diff: np.ndarray) -> tuple[float, float]:
    """Exact two-sided Wilcoxon signed-rank test of paired differences ``diff``.

    Zeros are dropped; the remaining ``|diff|`` are ranked with average ranks for ties.
    Under the null every sign is +/- with probability 1/2 independently, so the null
    distribution of ``W+`` (sum of the ranks of positive differences) is counted over all
    ``2^n`` sign assignments by dynamic programming on doubled (integer) ranks.

    Returns:
        ``(min(W+, W-), p)`` with ``p = min(1, 2 * P(W+ <= min(W+, W-)))``.
    """
    d = np.asarray(diff, dtype=np.float64)
    d = d[d != 0]
    n = d.size
    if n == 0:
        return 0.0, 1.0
    ranks = rankdata(np.abs(d))  # average ranks for ties: multiples of 1/2
    doubled = np.rint(2 * ranks).astype(np.int64)
    w_plus = float(ranks[d > 0].sum())
    w_minus = float(ranks[d < 0].sum())
    observed = int(round(2 * min(w_plus, w_minus)))
    # counts[s] = number of sign assignments whose doubled W+ equals s
    counts = np.zeros(int(doubled.sum()) + 1, dtype=np.float64)
    counts[0] = 1.0
    for r in doubled:
        shifted = np.zeros_like(counts)
        shifted[r:] = counts[: counts.size - r]
        counts = counts + shifted
    p = 2.0 * counts[: observed + 1].sum() / 2.0**n
    return min(w_plus, w_minus), float(min(1.0, p))


def seed_matrices(
    runs_a: Sequence[tuple[np.ndarray, np.ndarray]], runs_b: Sequence[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align two models' per-seed per-user metrics on the users they all share.

    Args:
        runs_a: one ``(user_ids (n_s,), values (n_s,))`` pair per seed of model ``a``.
        runs_b: the same for model ``b``.

    Returns:
        ``(users (n,), a (S_a, n), b (S_b, n))`` over the users present in every run of
        both models, sorted by user id (the seeds of one dataset evaluate the same users;
        the intersection guards against a run that skipped some).

    Raises:
        ValueError: no run, a user id twice in one run, or mismatched shapes.
    """
    runs = [*runs_a, *runs_b]
    if not runs_a or not runs_b:
        raise ValueError("seed_matrices: each model needs at least one run")
    common: np.ndarray | None = None
    for ids, values in runs:
        ids = np.asarray(ids)
        if ids.shape != np.asarray(values).shape or ids.ndim != 1:
            raise ValueError("seed_matrices: user ids and values must be 1-D arrays of one length")
        if np.unique(ids).size != ids.size:
            raise ValueError("seed_matrices: a user id appears twice in one run")
        common = ids if common is None else np.intersect1d(common, ids)
    assert common is not None
    common = np.sort(common)

    def matrix(model_runs: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        rows = []
        for ids, values in model_runs:
            ids = np.asarray(ids)
            order = np.argsort(ids)
            pos = np.searchsorted(ids[order], common)
            rows.append(np.asarray(values, dtype=np.float64)[order][pos])
        return np.stack(rows)

    return common, matrix(runs_a), matrix(runs_b)


@dataclass(frozen=True)
class SeedComparison:
    """Seed-aware comparison of ``model`` against ``reference`` on one per-user ``metric``.

    Attributes:
        model, reference, metric: what is compared.
        n_users: paired test users.
        seeds_model, seeds_reference: number of training runs of each.
        mean_model, mean_reference: grand means (over seeds and users).
        diff: ``mean_model - mean_reference``.
        ci_low, ci_high: 95% hierarchical-bootstrap interval of ``diff``.
        p: two-sided bootstrap p-value (see the module docstring).
        p_holm: Holm-adjusted ``p`` over the family it was reported in (``None`` until set).
        seed_means_model, seed_means_reference: each run's mean over the users.
        n_boot: bootstrap replicates; ``boot_seed``: their generator seed.
        per_seed_wilcoxon_p: Wilcoxon p over users of seed ``k`` of each model (a labelled
            detail: user-sampling uncertainty of one pair of runs, not the headline).
    """

    model: str
    reference: str
    metric: str
    n_users: int
    seeds_model: int
    seeds_reference: int
    mean_model: float
    mean_reference: float
    diff: float
    ci_low: float
    ci_high: float
    p: float
    n_boot: int
    boot_seed: int
    seed_means_model: list[float] = field(default_factory=list)
    seed_means_reference: list[float] = field(default_factory=list)
    per_seed_wilcoxon_p: list[float] = field(default_factory=list)
    p_holm: float | None = None

    @property
    def significant(self) -> bool:
        """Holm-adjusted p below 0.05 (the unadjusted interval then excludes 0)."""
        return self.p_holm is not None and self.p_holm < ALPHA

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedComparison:
        return cls(**data)


def seed_user_bootstrap(
    a: np.ndarray, b: np.ndarray, n_boot: int = N_BOOT, seed: int = BOOT_SEED, chunk: int = 500,
    paired_seeds: bool = False,
) -> tuple[float, float, float, float]:
    """Hierarchical bootstrap of the difference of grand means (see the module docstring).

    Args:
        a: ``(S_a, n)`` per-seed per-user metric of the model.
        b: ``(S_b, n)`` of the reference, same users in the same order.
        n_boot: replicates.
        seed: generator seed (the same seed gives the same user draws to every comparison).
        chunk: replicates drawn at once (memory ``chunk x n`` floats).
        paired_seeds: row ``k`` of ``a`` and of ``b`` share seed ``k`` (see the module
            docstring): one draw of seeds for both (default ``False``: independent).

    Returns:
        ``(diff, ci_low, ci_high, p)``.

    Raises:
        ValueError: shapes that differ in users, empty input, NaN or inf; paired seeds with
            different numbers of runs.
    """
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or a.shape[1] == 0:
        raise ValueError(f"seed_user_bootstrap: need (S_a, n) and (S_b, n) with n > 0, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("seed_user_bootstrap: per-user metrics contain NaN or inf")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    if paired_seeds and a.shape[0] != b.shape[0]:
        raise ValueError(f"seed_user_bootstrap: paired seeds need as many runs on both sides, got "
                         f"{a.shape[0]} and {b.shape[0]}")
    n = a.shape[1]
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        # users drawn with replacement once per replicate and shared by both models (paired):
        # counts[r, u] = how often user u is in resample r (a multinomial draw, via bincount)
        draws = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
        weights = np.bincount(draws.ravel(), minlength=size * n).reshape(size, n).T / n  # (n, size)
        means_a, means_b = a @ weights, b @ weights  # (S, size): each run's mean on the resample
        # ... then each model's training runs, independently (or one draw for both when paired)
        pick_a = rng.integers(0, a.shape[0], size=(a.shape[0], size))
        pick_b = pick_a if paired_seeds else rng.integers(0, b.shape[0], size=(b.shape[0], size))
        cols = np.arange(size)
        diffs[start : start + size] = (
            means_a[pick_a, cols].mean(axis=0) - means_b[pick_b, cols].mean(axis=0)
        )
    diff = float(a.mean() - b.mean())
    low, high = np.percentile(diffs, [2.5, 97.5])
    # a resample whose difference is zero up to rounding counts on both sides
    tol = 1e-12 * max(1.0, float(np.abs(a).max()), float(np.abs(b).max()))
    p = min(1.0, 2.0 * min(float(np.mean(diffs <= tol)), float(np.mean(diffs >= -tol))))
    return diff, float(low), float(high), p


def compare(
    model: str,
    reference: str,
    metric: str,
    runs_model: Sequence[tuple[np.ndarray, np.ndarray]],
    runs_reference: Sequence[tuple[np.ndarray, np.ndarray]],
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
    paired_seeds: bool = False,
) -> SeedComparison:
    """:class:`SeedComparison` of two models' runs (each ``(user_ids, values)`` per seed;
    ``paired_seeds``: the ``k``-th runs share their seed, see :func:`seed_user_bootstrap`)."""
    users, a, b = seed_matrices(runs_model, runs_reference)
    if users.size < 2:
        raise ValueError(f"{model} vs {reference}: fewer than 2 common users for {metric}")
    diff, low, high, p = seed_user_bootstrap(a, b, n_boot, seed, paired_seeds=paired_seeds)
    per_seed = [paired_tests(a[k], b[k]).wilcoxon_p for k in range(min(a.shape[0], b.shape[0]))]
    return SeedComparison(
        model=model, reference=reference, metric=metric, n_users=int(users.size),
        seeds_model=int(a.shape[0]), seeds_reference=int(b.shape[0]),
        mean_model=float(a.mean()), mean_reference=float(b.mean()), diff=diff, ci_low=low, ci_high=high, p=p,
        n_boot=n_boot, boot_seed=seed,
        seed_means_model=a.mean(axis=1).tolist(), seed_means_reference=b.mean(axis=1).tolist(),
        per_seed_wilcoxon_p=per_seed,
    )


def pair_by_user(
    ids_a: np.ndarray, values_a: np.ndarray, ids_b: np.ndarray, values_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align two per-user vectors on their common user ids: ``(ids, a, b)`` sorted by id."""
    ids_a, ids_b = np.asarray(ids_a), np.asarray(ids_b)
    common, pos_a, pos_b = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
    return common, np.asarray(values_a)[pos_a], np.asarray(values_b)[pos_b]


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order.

    ``NaN`` entries are ignored (and stay ``NaN``).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = valid.size
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        out[idx] = running
    return out.tolist()
