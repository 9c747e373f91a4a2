"""Evaluation: pure ranking metrics and the full-ranking evaluator (warm / cold breakdown)."""

from mmgcn.eval.evaluator import DEFAULT_MASKS, EvalResult, evaluate
from mmgcn.eval.metrics import (
    METRIC_NAMES,
    catalogue_coverage,
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    top_k_items,
)

__all__ = [
    "DEFAULT_MASKS",
    "METRIC_NAMES",
    "EvalResult",
    "catalogue_coverage",
    "evaluate",
    "hit_rate_at_k",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "top_k_items",
]
