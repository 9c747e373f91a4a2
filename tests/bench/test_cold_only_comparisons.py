"""Seed-aware comparisons on the cold-start protocol's ranking among cold test items only."""

from __future__ import annotations

import numpy as np
import pytest

from mmgcn.bench.aggregate import cold_only_comparisons, compare_table
from mmgcn.bench.readme import cold_only_comparisons_table
from mmgcn.bench.results import BenchResults
from mmgcn.bench.tables import cold_only_comparison_rows, to_markdown
from mmgcn.eval.significance import compare, holm

USERS = np.arange(0, 60)
COLD_USERS = np.arange(0, 60, 3)  # the users holding cold test items


def run(seed: int, cold_level: float | None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {"users": USERS, "recall@20": rng.random(USERS.size), "ndcg@20": rng.random(USERS.size)}
    if cold_level is not None:  # content models rank the cold items; ID-only ones cannot
        arrays["cold-only/users"] = COLD_USERS
        arrays["cold-only/recall@20"] = np.clip(cold_level + 0.1 * rng.standard_normal(COLD_USERS.size), 0, 1)
        arrays["cold-only/ndcg@20"] = np.clip(cold_level / 2 + 0.1 * rng.standard_normal(COLD_USERS.size), 0, 1)
    return arrays


@pytest.fixture()
def per_user() -> dict:
    return {"plus": {s: run(10 + s, 0.6) for s in range(3)},
            "vbpr": {s: run(20 + s, 0.3) for s in range(3)},
            "lightgcn": {s: run(30 + s, None) for s in range(3)}}


def test_pairs_with_a_cold_only_ranking_compared_with_holm_over_their_own_family(per_user):
    got = cold_only_comparisons(per_user, [("plus", "vbpr"), ("plus", "lightgcn")], ["recall@20", "ndcg@20"],
                                n_boot=500)
    rows = got["rows"]
    # the ID-only reference has no cold-only ranking: its pair is left out, not compared at chance
    assert [(r["model"], r["reference"], r["metric"]) for r in rows] == [
        ("plus", "vbpr", "cold-only/recall@20"), ("plus", "vbpr", "cold-only/ndcg@20")]
    expected = [compare("plus", "vbpr", f"cold-only/{m}",
                        [(COLD_USERS, per_user["plus"][s][f"cold-only/{m}"]) for s in range(3)],
                        [(COLD_USERS, per_user["vbpr"][s][f"cold-only/{m}"]) for s in range(3)], 500, 0)
                for m in ("recall@20", "ndcg@20")]
    for row, want, p_holm in zip(rows, expected, holm([c.p for c in expected]), strict=True):
        assert row["n_users"] == COLD_USERS.size
        assert row["diff"] == pytest.approx(want.diff) and row["p_holm"] == pytest.approx(p_holm)
    assert rows[0]["diff"] == pytest.approx(0.3, abs=0.05) and rows[0]["p_holm"] < 0.05
    assert cold_only_comparisons(per_user, [("plus", "lightgcn")], ["recall@20"]) == {}


def test_compare_table_adds_them_only_where_cold_only_arrays_exist(per_user):
    _, breakdowns, _ = compare_table(per_user, ["plus", "vbpr", "lightgcn"], "lightgcn", [("plus", "vbpr")], [],
                                     ["recall@20"])
    assert [r["metric"] for r in breakdowns["cold_only_comparisons"]["rows"]] == ["cold-only/recall@20"]
    standard = {m: {s: {k: v for k, v in a.items() if not k.startswith("cold-only/")} for s, a in seeds.items()}
                for m, seeds in per_user.items()}
    _, breakdowns, _ = compare_table(standard, ["plus", "vbpr"], "vbpr", [("plus", "vbpr")], [], ["recall@20"])
    assert "cold_only_comparisons" not in breakdowns


def test_tables_render_them_with_verdicts(per_user):
    got = cold_only_comparisons(per_user, [("plus", "vbpr")], ["recall@20"], n_boot=500)
    results = BenchResults(header={}, summaries=[], breakdowns={"cold_only_comparisons": got})
    rows = cold_only_comparison_rows(results)
    assert rows[0] == ["model", "reference", "metric", "users", "model mean", "reference mean", "Δ [95% CI]",
                       "p Holm"]
    assert rows[1][:4] == ["plus", "vbpr", "cold-only Recall@20", "20"]
    block = cold_only_comparisons_table(results).splitlines()
    assert block[2].startswith("| `plus` | `vbpr` | cold-only Recall@20 | 20 |")
    assert block[2].endswith("| `plus` better |")
    assert "(no cold-only comparisons" in cold_only_comparisons_table(BenchResults(header={}, summaries=[]))
    assert "on the cold-only ranking" not in to_markdown(BenchResults(header={}, summaries=[]))
