"""Ranking metrics against hand-computed values, ties and -inf handling of the ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmgcn.eval.metrics import (
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

L2 = math.log2
# user A: hits at ranks 1 and 3, 3 positives; user B: hits at ranks 4 and 5, 2 positives;
# user C: no hit, 1 positive; user D: 5 hits out of 10 positives (|pos| > K)
HITS = torch.tensor(
    [[1, 0, 1, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool
)
N_POS = torch.tensor([3, 2, 1, 10])


def close(actual: torch.Tensor, expected: list[float]) -> None:
    np.testing.assert_allclose(actual.numpy(), expected, rtol=0, atol=1e-12)


def test_recall_divides_by_all_positives():
    close(recall_at_k(HITS, N_POS, 5), [2 / 3, 1.0, 0.0, 0.5])
    close(recall_at_k(HITS, N_POS, 3), [2 / 3, 0.0, 0.0, 0.3])
    close(recall_at_k(HITS, N_POS, 1), [1 / 3, 0.0, 0.0, 0.1])


def test_precision_and_hit_rate():
    close(precision_at_k(HITS, 5), [0.4, 0.4, 0.0, 1.0])
    close(precision_at_k(HITS, 3), [2 / 3, 0.0, 0.0, 1.0])
    close(hit_rate_at_k(HITS, 5), [1.0, 1.0, 0.0, 1.0])
    close(hit_rate_at_k(HITS, 3), [1.0, 0.0, 0.0, 1.0])


def test_ndcg_binary_gains_and_ideal_over_min_pos_k():
    idcg3 = 1 + 1 / L2(3) + 1 / L2(4)
    expected_a = (1 + 1 / L2(4)) / idcg3
    expected_b = (1 / L2(5) + 1 / L2(6)) / (1 + 1 / L2(3))
    close(ndcg_at_k(HITS, N_POS, 5), [expected_a, expected_b, 0.0, 1.0])
    # K=1: user A's single slot is a hit, ideal is one hit
    close(ndcg_at_k(HITS, N_POS, 1), [1.0, 0.0, 0.0, 1.0])
    # K=2 for user D: 2 hits, ideal over min(10, 2) = 2 -> perfect
    close(ndcg_at_k(HITS[3:], N_POS[3:], 2), [1.0])


def test_map_truncated_and_normalised_by_min_pos_k():
    close(map_at_k(HITS, N_POS, 5), [(1 + 2 / 3) / 3, (1 / 4 + 2 / 5) / 2, 0.0, 1.0])
    close(map_at_k(HITS, N_POS, 3), [(1 + 2 / 3) / 3, 0.0, 0.0, 1.0])
    close(map_at_k(HITS, N_POS, 1), [1.0, 0.0, 0.0, 1.0])


def test_mrr_first_hit_within_k():
    close(mrr_at_k(HITS, 5), [1.0, 0.25, 0.0, 1.0])
    close(mrr_at_k(HITS, 3), [1.0, 0.0, 0.0, 1.0])


def test_list_shorter_than_k_counts_missing_positions_as_misses():
    short = torch.tensor([[1, 1, 0]], dtype=torch.bool)  # a catalogue of 3 items, K = 5
    n_pos = torch.tensor([2])
    close(precision_at_k(short, 5), [0.4])
    close(recall_at_k(short, n_pos, 5), [1.0])
    close(ndcg_at_k(short, n_pos, 5), [1.0])


def test_ranking_metrics_names_and_values():
    out = ranking_metrics(HITS, N_POS, ks=(1, 5))
    assert set(out) == {f"{m}@{k}" for m in ("recall", "ndcg", "precision", "hit_rate", "map", "mrr") for k in (1, 5)}
    close(out["recall@5"], [2 / 3, 1.0, 0.0, 0.5])
    assert out["mrr@1"].dtype == torch.float64


def test_users_without_positives_are_rejected():
    with pytest.raises(ValueError, match="at least one positive"):
        recall_at_k(HITS, torch.tensor([3, 0, 1, 10]), 5)
    with pytest.raises(ValueError, match="n_pos"):
        recall_at_k(HITS, torch.tensor([1, 2]), 5)
    with pytest.raises(ValueError, match="positive integer"):
        recall_at_k(HITS, N_POS, 0)


def test_top_k_breaks_ties_by_lower_item_id():
    scores = torch.tensor([
        [0.0, 1.0, 1.0, 0.0, 1.0, 2.0],   # ties inside the list
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],   # all tied: the cut-off falls inside a tie
        [0.0, 5.0, 3.0, 3.0, 3.0, 3.0],   # tie straddles the cut-off
    ])
    values, items = top_k_items(scores, 3)
    assert items.tolist() == [[5, 1, 2], [0, 1, 2], [1, 2, 3]]
    assert values.tolist() == [[2.0, 1.0, 1.0], [0.0, 0.0, 0.0], [5.0, 3.0, 3.0]]
    # the same rows in a large catalogue, where topk's own order is arbitrary
    wide = torch.zeros(2, 50_000)
    wide[1, 40_000] = 1.0
    assert top_k_items(wide, 4)[1].tolist() == [[0, 1, 2, 3], [40_000, 0, 1, 2]]


def test_top_k_puts_masked_items_last_and_coverage_ignores_them():
    inf = float("-inf")
    scores = torch.tensor([[inf, 1.0, inf, 0.5], [0.2, inf, 0.9, 0.1]])
    values, items = top_k_items(scores, 4)
    assert items.tolist() == [[1, 3, 0, 2], [2, 0, 3, 1]]
    assert torch.isinf(values[0, 2:]).all() and torch.isinf(values[1, 3:]).all()
    # top-3: user 0 lists {1, 3} (+ a masked one), user 1 lists {2, 0, 3} -> 4 distinct real items
    assert catalogue_coverage(items, values, n_candidates=4, k=3) == 1.0
    # top-2: {1, 3} and {2, 0}
    assert catalogue_coverage(items, values, n_candidates=4, k=2) == 1.0
    # top-1: {1} and {2}
    assert catalogue_coverage(items, values, n_candidates=4, k=1) == 0.5
    only_masked = torch.tensor([[inf, inf, 2.0]])
    v, i = top_k_items(only_masked, 3)
    assert catalogue_coverage(i, v, n_candidates=3, k=3) == pytest.approx(1 / 3)


def test_top_k_clips_k_to_catalogue():
    values, items = top_k_items(torch.tensor([[0.3, 0.1]]), 10)
    assert items.tolist() == [[0, 1]]


@pytest.mark.parametrize("length", [1, 4, 12])
def test_ranking_metrics_fast_path_equals_single_metric_functions(length):
    generator = torch.Generator().manual_seed(length)
    hits = torch.rand(200, length, generator=generator) < 0.3
    n_pos = hits.sum(1) + torch.randint(1, 6, (200,), generator=generator)
    out = ranking_metrics(hits, n_pos, ks=(1, 3, 10))
    for k in (1, 3, 10):
        torch.testing.assert_close(out[f"recall@{k}"], recall_at_k(hits, n_pos, k))
        torch.testing.assert_close(out[f"ndcg@{k}"], ndcg_at_k(hits, n_pos, k))
        torch.testing.assert_close(out[f"precision@{k}"], precision_at_k(hits, k))
        torch.testing.assert_close(out[f"hit_rate@{k}"], hit_rate_at_k(hits, k))
        torch.testing.assert_close(out[f"map@{k}"], map_at_k(hits, n_pos, k))
        torch.testing.assert_close(out[f"mrr@{k}"], mrr_at_k(hits, k))
