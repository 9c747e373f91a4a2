"""Paired significance tests on per-user metrics.

Two models evaluated on the same test users give two per-user metric vectors (e.g. each
user's Recall@20). The benchmark tests, for every model against the reference model,
whether the per-user differences are centred on zero:

* the Wilcoxon signed-rank test: zero differences are dropped (Wilcoxon's original
  convention, scipy's ``zero_method="wilcox"``) and tied ``|differences|`` share average
  ranks; with at most :data:`EXACT_MAX_N` non-zero differences the two-sided p-value is
  exact (:func:`signed_rank_exact_p`: the sign-flip distribution of the observed ranks,
  ties included, counted by dynamic programming), otherwise it is scipy's normal
  approximation with tie correction (``method="asymptotic"``, no continuity correction).
  Both are deterministic (scipy's ``"auto"`` would switch to a random permutation test
  for small samples with ties);
* the paired t-test (``scipy.stats.ttest_rel``), two-sided.

Seeds are pooled by averaging each user's metric over the seeds before pairing
(:func:`pool_seeds`), so a user counts once and the test asks whether the *seed-averaged*
model is better per user; users are paired by id (:func:`pair_by_user`). Holm's step-down
correction (:func:`holm`) is provided for the family of comparisons against one reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats
from scipy.stats import rankdata

# largest number of non-zero differences for which the exact signed-rank p-value is used
EXACT_MAX_N = 50


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


def pool_seeds(runs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Average each user's metric over seeds.

    Args:
        runs: one ``(user_ids (n_s,), values (n_s,))`` pair per seed.

    Returns:
        ``(user_ids (n,), mean_values (n,))`` over the users present in *every* seed,
        sorted by user id (seeds of one dataset evaluate the same users; the
        intersection guards against a seed that skipped some).
    """
    if not runs:
        raise ValueError("pool_seeds: no runs")
    common: np.ndarray | None = None
    for ids, values in runs:
        ids = np.asarray(ids)
        if ids.shape != np.asarray(values).shape or ids.ndim != 1:
            raise ValueError("pool_seeds: user ids and values must be 1-D arrays of one length")
        if np.unique(ids).size != ids.size:
            raise ValueError("pool_seeds: a user id appears twice in one run")
        common = ids if common is None else np.intersect1d(common, ids)
    assert common is not None
    common = np.sort(common)
    total = np.zeros(common.size, dtype=np.float64)
    for ids, values in runs:
        order = np.argsort(ids)
        pos = np.searchsorted(np.asarray(ids)[order], common)
        total += np.asarray(values, dtype=np.float64)[order][pos]
    return common, total / len(runs)


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
