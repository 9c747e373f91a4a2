r"""Top-K ranking metrics as pure functions over hit matrices.

A *hit matrix* ``hits`` of shape ``(n_users, L)`` is boolean: ``hits[u, r]`` says whether
the item ranked at position ``r`` (0-based) for user ``u`` is one of the user's held-out
positives. ``n_pos`` of shape ``(n_users,)`` counts each user's positives (``> 0``; users
without positives are skipped before metrics are computed). Every metric at cut-off ``K``
reads ``hits[:, :K]``; when the list is shorter than ``K`` (a catalogue smaller than ``K``)
the missing positions count as misses. Each function returns a ``(n_users,)`` float64
tensor; the evaluator averages them over users.

With :math:`h_r \in \{0,1\}` the hit at rank :math:`r = 1..K` and :math:`P` = ``n_pos``:

.. math::
    \mathrm{Recall@K} = \frac{\sum_{r \le K} h_r}{P} \qquad
    \mathrm{Precision@K} = \frac{\sum_{r \le K} h_r}{K} \qquad
    \mathrm{HitRate@K} = \mathbb{1}\Big[\sum_{r \le K} h_r > 0\Big]

.. math::
    \mathrm{NDCG@K} = \frac{\sum_{r \le K} h_r / \log_2(r+1)}
                           {\sum_{r=1}^{\min(P, K)} 1 / \log_2(r+1)} \qquad
    \mathrm{MRR@K} = \frac{1}{\min\{r \le K : h_r = 1\}} \text{ (0 without a hit)}

.. math::
    \mathrm{MAP@K} = \frac{1}{\min(P, K)} \sum_{r \le K} h_r \,
                     \frac{\sum_{s \le r} h_s}{r}

Recall divides by :math:`P`, not :math:`\min(P, K)` (the MMRec / MMSSL convention), so a
user with more than ``K`` positives cannot reach 1. NDCG uses binary gains and the ideal
DCG of :math:`\min(P, K)` hits. MAP is average precision truncated at ``K``, normalised
by the most hits a list of length ``K`` can hold.

Ranking (:func:`top_k_items`) breaks ties by the lower item index (candidate position),
so results do not depend on ``torch.topk``'s implementation-defined order for equal scores,
nor on the device or on how users are blocked. Items masked with ``-inf`` tie with each
other and rank last; they can fill a list only when fewer than ``K`` unmasked candidates
exist, and they are never hits and never count towards coverage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from mmgcn.utils.ranking import top_k_items

#: per-user metric names computed by :func:`ranking_metrics` (coverage is per list, not per user)
METRIC_NAMES = ("recall", "ndcg", "precision", "hit_rate", "map", "mrr")


def _prepare(hits: Tensor, n_pos: Tensor | None, k: int) -> tuple[Tensor, Tensor | None]:
    hits = torch.as_tensor(hits)
    if hits.dim() != 2:
        raise ValueError(f"hits must be 2-D (n_users, L), got shape {tuple(hits.shape)}")
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    hits = hits[:, :k].to(torch.float64)
    if n_pos is not None:
        n_pos = torch.as_tensor(n_pos, device=hits.device)
        if n_pos.shape != (hits.shape[0],):
            raise ValueError(f"n_pos has shape {tuple(n_pos.shape)}, expected ({hits.shape[0]},)")
        if n_pos.numel() and n_pos.min() <= 0:
            raise ValueError("every user needs at least one positive (skip users without held-out items)")
        n_pos = n_pos.to(torch.float64)
    return hits, n_pos


def _discounts(length: int, device: torch.device) -> Tensor:
    """``1 / log2(r + 1)`` for ranks ``r = 1..length``."""
    ranks = torch.arange(1, length + 1, dtype=torch.float64, device=device)
    return 1.0 / torch.log2(ranks + 1.0)


def recall_at_k(hits: Tensor, n_pos: Tensor, k: int) -> Tensor:
    """Share of each user's positives found in the top ``k``: ``(n_users,)``."""
    hits, n_pos = _prepare(hits, n_pos, k)
    return hits.sum(1) / n_pos


def precision_at_k(hits: Tensor, k: int) -> Tensor:
    """Share of the top ``k`` that are positives (denominator ``k``): ``(n_users,)``."""
    hits, _ = _prepare(hits, None, k)
    return hits.sum(1) / k


def hit_rate_at_k(hits: Tensor, k: int) -> Tensor:
    """1 where the top ``k`` holds at least one positive, else 0: ``(n_users,)``."""
    hits, _ = _prepare(hits, None, k)
    return (hits.sum(1) > 0).to(torch.float64)


def ndcg_at_k(hits: Tensor, n_pos: Tensor, k: int) -> Tensor:
    """Binary-gain NDCG with the ideal DCG of ``min(n_pos, k)`` hits: ``(n_users,)``."""
    hits, n_pos = _prepare(hits, n_pos, k)
    disc = _discounts(k, hits.device)
    dcg = (hits * disc[: hits.shape[1]]).sum(1)
    ideal_cumulative = torch.cumsum(disc, 0)
    n_ideal = torch.clamp(n_pos, max=k).long() - 1
    return dcg / ideal_cumulative[n_ideal]


def map_at_k(hits: Tensor, n_pos: Tensor, k: int) -> Tensor:
    """Average precision truncated at ``k``, divided by ``min(n_pos, k)``: ``(n_users,)``."""
    hits, n_pos = _prepare(hits, n_pos, k)
    ranks = torch.arange(1, hits.shape[1] + 1, dtype=torch.float64, device=hits.device)
    precision_at_rank = torch.cumsum(hits, 1) / ranks
    return (precision_at_rank * hits).sum(1) / torch.clamp(n_pos, max=k)


def mrr_at_k(hits: Tensor, k: int) -> Tensor:
    """Reciprocal rank of the first positive within the top ``k`` (0 if none): ``(n_users,)``."""
    hits, _ = _prepare(hits, None, k)
    if hits.shape[1] == 0:
        return torch.zeros(hits.shape[0], dtype=torch.float64, device=hits.device)
    first = hits.argmax(1)  # index of the first maximum, i.e. the first hit when there is one
    found = hits.sum(1) > 0
    return torch.where(found, 1.0 / (first.to(torch.float64) + 1.0), torch.zeros_like(first, dtype=torch.float64))


def ranking_metrics(hits: Tensor, n_pos: Tensor, ks: Iterable[int]) -> dict[str, Tensor]:
    """Every metric of :data:`METRIC_NAMES` at every ``k``: ``{"recall@20": (n_users,), ...}``.

    Same values as the single-metric functions, computed from one cumulative sum.
    """
    ks = sorted(set(ks))
    hits, n_pos = _prepare(hits, n_pos, max(ks))
    n_users, length = hits.shape
    device = hits.device
    ranks = torch.arange(1, length + 1, dtype=torch.float64, device=device)
    found = torch.cumsum(hits, 1)  # hits within the first r places
    disc = _discounts(max(ks), device)
    dcg = torch.cumsum(hits * disc[:length], 1)
    ideal = torch.cumsum(disc, 0)
    ap = torch.cumsum(hits * found / ranks, 1)
    has_hit = hits.sum(1) > 0
    first = hits.argmax(1) + 1  # rank of the first hit (meaningless where has_hit is False)
    out: dict[str, Tensor] = {}
    zeros = torch.zeros(n_users, dtype=torch.float64, device=device)
    for k in ks:
        last = min(k, length) - 1
        n_found = found[:, last] if length else zeros
        capped = torch.clamp(n_pos, max=k)
        out[f"recall@{k}"] = n_found / n_pos
        out[f"ndcg@{k}"] = (dcg[:, last] if length else zeros) / ideal[capped.long() - 1]
        out[f"precision@{k}"] = n_found / k
        out[f"hit_rate@{k}"] = (n_found > 0).to(torch.float64)
        out[f"map@{k}"] = (ap[:, last] if length else zeros) / capped
        out[f"mrr@{k}"] = torch.where(has_hit & (first <= k), 1.0 / first.to(torch.float64), zeros)
    return out


def catalogue_coverage(top_items: Tensor, top_scores: Tensor, n_candidates: int, k: int) -> float:
    """Share of the ``n_candidates`` items that appear in at least one user's top ``k``.

    Args:
        top_items: ``(n_users, L)`` ranked item indices (candidate positions).
        top_scores: ``(n_users, L)`` their scores; ``-inf`` entries (masked) do not count.
        n_candidates: size of the catalogue that was ranked.
        k: list cut-off.
    """
    if n_candidates <= 0:
        raise ValueError(f"n_candidates must be positive, got {n_candidates}")
    covered = torch.zeros(n_candidates, dtype=torch.bool, device=top_items.device)
    mark_covered_(covered, top_items, top_scores, k)
    return covered.sum().item() / n_candidates


def mark_covered_(covered: Tensor, top_items: Tensor, top_scores: Tensor, k: int) -> Tensor:
    """Set ``covered[i] = True`` for every item in some user's top ``k`` (not ``-inf``)."""
    items = top_items[:, :k]
    real = top_scores[:, :k] > -math.inf
    covered[items[real]] = True
    return covered


__all__ = [
    "METRIC_NAMES",
    "catalogue_coverage",
    "hit_rate_at_k",
    "map_at_k",
    "mark_covered_",
    "mrr_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "top_k_items",
]
