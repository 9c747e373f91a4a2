"""The README's result tables are what the committed results JSON gives: no number in a
generated block is typed by hand or left stale (`mmgcn report DIR --readme README.md`)."""

from __future__ import annotations

import re
from pathlib import Path

from mmgcn.bench.readme import check_readme

REPO = Path(__file__).resolve().parents[1]


def test_readme_blocks_match_the_committed_results():
    readme = REPO / "README.md"
    blocks = re.findall(r"<!-- mmgcn:([a-z-]+) ([A-Za-z0-9_./-]+) -->", readme.read_text(encoding="utf-8"))
    assert ("results", "shop-quick") in blocks
    for kind, name in blocks:
        wanted = REPO / "benchmarks" / "results" / name
        assert (wanted if kind == "output" else wanted / "results.json").is_file(), name
    stale = check_readme(readme, REPO / "benchmarks" / "results", REPO / "benchmarks" / "published.yaml")
    assert stale == [], f"README blocks out of date for {stale}: run `mmgcn report benchmarks/results/<folder> --readme README.md`"
