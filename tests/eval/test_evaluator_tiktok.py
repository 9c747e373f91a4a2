"""The evaluator on the real TikTok files: published anchors and the one-item-per-user fact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmgcn.eval.evaluator import evaluate
from mmgcn.models.base import Embeddings, ModelConfig, Recommender


class TrainPopularity(Recommender):
    """Every user gets the items ranked by their number of train interactions."""

    name = "train-popularity-eval-test"

    def __init__(self, dataset) -> None:
        super().__init__(ModelConfig(), dataset)
        counts = np.asarray(dataset.train.sum(0)).ravel()
        self.register_buffer("counts", torch.as_tensor(counts, dtype=torch.float32))

    def embed(self) -> Embeddings:
        return Embeddings(torch.ones(self.n_users, 1), self.counts[:, None])


@pytest.mark.slow
def test_tiktok_most_popular_matches_published_anchor(data_root):
    from mmgcn.data.registry import load_dataset

    dataset = load_dataset("tiktok", data_root)
    result = evaluate(TrainPopularity(dataset), dataset, "test", ks=(10, 20), mask=("train",), warm_cold=True)
    # PUBLISHED.md: most-popular items on trnMat/tstMat, train masked: 0.0597 / 0.0255
    assert round(result.metrics["recall@20"], 4) == 0.0597
    assert round(result.metrics["ndcg@20"], 4) == 0.0255
    # every TikTok test user holds out exactly one item
    assert result.n_users == 6130 and result.n_users_skipped == dataset.n_users - 6130
    assert (result.n_positives == 1).all()
    for k in (10, 20):
        assert np.array_equal(result.per_user[f"recall@{k}"], result.per_user[f"hit_rate@{k}"])
        np.testing.assert_allclose(result.per_user[f"precision@{k}"], result.per_user[f"recall@{k}"] / k)
    # 449 test interactions are on items without a train edge; popularity never reaches them
    cold = result.groups["cold"]
    assert int(cold.n_positives.sum()) == 449 and cold.metrics["recall@20"] == 0.0
    assert cold.n_users + result.groups["warm"].n_users == 6130
