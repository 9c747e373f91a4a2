"""Seed-aware comparisons within user train-degree buckets (where a gain comes from)."""

from __future__ import annotations

import numpy as np
import pytest

from mmgcn.bench.aggregate import DATASET_KEY, degree_comparisons
from mmgcn.bench.readme import degree_comparisons_table
from mmgcn.bench.results import BenchResults
from mmgcn.bench.tables import degree_comparison_rows
from mmgcn.eval.significance import SeedComparison, compare, holm

N = 100
# 50 users with 1 train item, 40 with 2, 10 with 7 (a bucket below the minimum of 30)
DEGREE = np.array([1] * 50 + [2] * 40 + [7] * 10, dtype=np.int32)


def per_user() -> dict:
    rng = np.random.default_rng(0)
    users = np.arange(N)
    out = {DATASET_KEY: {0: {"train_degree": DEGREE}}}
    # model a is better than b only for the 1-interaction users
    for name, seeds, lift in (("a", 2, 0.3), ("b", 3, 0.0)):
        out[name] = {}
        for s in range(seeds):
            values = rng.random(N) * 0.5
            values[:50] += lift
            out[name][s] = {"users": users, "recall@20": values}
    return out


def test_each_bucket_is_the_comparison_restricted_to_its_users():
    data = per_user()
    got = degree_comparisons(data, [("a", "b")], "recall@20", n_boot=2000)
    assert got["metric"] == "recall@20" and got["min_users"] == 30
    rows = got["rows"]
    assert [r["bucket"] for r in rows] == ["1", "2"]  # "5-9" has 10 users: left out
    for row, (lo, hi) in zip(rows, ((0, 50), (50, 90))):
        keep = np.arange(lo, hi)
        runs = {m: [(keep, data[m][s]["recall@20"][keep]) for s in sorted(data[m])] for m in ("a", "b")}
        expected = compare("a", "b", "recall@20", runs["a"], runs["b"], n_boot=2000)
        assert row["n_users"] == hi - lo and row["seeds_model"] == 2 and row["seeds_reference"] == 3
        assert (row["diff"], row["ci_low"], row["ci_high"], row["p"]) == (expected.diff, expected.ci_low,
                                                                           expected.ci_high, expected.p)
    # the 0.3 lift of the 1-interaction users shows there, and not in the 2-interaction bucket
    assert rows[0]["diff"] == pytest.approx(0.3, abs=0.1) and rows[0]["ci_low"] > 0
    assert rows[1]["ci_low"] < 0 < rows[1]["ci_high"]
    # Holm over this breakdown's own rows
    assert [r["p_holm"] for r in rows] == pytest.approx(holm([r["p"] for r in rows]))


def test_min_users_none_without_degrees_or_pairs():
    data = per_user()
    assert [r["bucket"] for r in degree_comparisons(data, [("a", "b")], "recall@20", min_users=10,
                                                    n_boot=200)["rows"]] == ["1", "2", "5-9"]
    assert degree_comparisons(data, [], "recall@20") == {}
    del data[DATASET_KEY]
    assert degree_comparisons(data, [("a", "b")], "recall@20") == {}
    # a bucket where neither model has a hit in any run says nothing: left out
    zeroed = per_user()
    for name in ("a", "b"):
        for arrays in zeroed[name].values():
            arrays["recall@20"][50:90] = 0.0
    assert [r["bucket"] for r in degree_comparisons(zeroed, [("a", "b")], "recall@20", n_boot=200)["rows"]] == ["1"]
    # a model without per-user data is skipped, not an error
    assert degree_comparisons(per_user(), [("a", "missing")], "recall@20") == {}


def test_tables_render_every_row_with_its_interval():
    got = degree_comparisons(per_user(), [("a", "b")], "recall@20", n_boot=500)
    results = BenchResults(header={}, summaries=[], breakdowns={"user_degree_comparisons": got})
    rows = degree_comparison_rows(results)
    assert rows[0][:4] == ["model", "reference", "users' train degree", "users"]
    first = SeedComparison.from_dict({k: v for k, v in got["rows"][0].items() if k != "bucket"})
    assert rows[1][:4] == ["a", "b", "1", "50"]
    assert rows[1][6].startswith(f"{first.diff:+.4f} [{first.ci_low:+.4f}, {first.ci_high:+.4f}]")
    text = degree_comparisons_table(results)
    assert text.splitlines()[2].startswith("| `a` | `b` | 1 | 50 |") and len(text.splitlines()) == 4
    empty = BenchResults(header={}, summaries=[], breakdowns={})
    assert degree_comparison_rows(empty) == [] and "no per-bucket comparisons" in degree_comparisons_table(empty)
