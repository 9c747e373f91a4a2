"""The README's "Your own dataset" commands, run exactly as written, on the generated shop."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The command lines of the first bash block under '## Your own dataset'."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Your own dataset", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [line.split("  #", 1)[0].strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_section_has_four_mmgcn_commands():
    commands = readme_commands()
    mmgcn = [c for c in commands if c.startswith("mmgcn ")]
    assert len(mmgcn) == 4
    assert mmgcn[0].startswith("mmgcn datasets import ") and mmgcn[-1].startswith("mmgcn bench ")
    assert all(c.startswith(("mmgcn ", "python ")) for c in commands)


@pytest.mark.slow
def test_readme_own_dataset_commands(tmp_path):
    env = {
        **os.environ,
        "MMGCN_DATA": str(tmp_path / "data"),
        "MMGCN_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
    }
    env.pop("MMGCN_CARDS", None)
    outputs = []
    for line in readme_commands():
        argv = shlex.split(line)
        # `python` and `mmgcn` as this interpreter runs them (the console script may belong
        # to another checkout)
        argv = [sys.executable, *argv[1:]] if argv[0] == "python" else [sys.executable, "-m", "mmgcn", *argv[1:]]
        result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500)
        assert result.returncode == 0, f"{line}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        outputs.append(result.stdout)
    assert "imported shop" in outputs[1]
    with open(tmp_path / "shop-raw" / "items.csv", newline="") as handle:
        without = sum(not row["image"] for row in csv.DictReader(handle))
    assert without > 0
    # items without an image are recorded as missing, not encoded
    assert f"encoded {120 - without}, missing {without} (no content {without}" in outputs[2]
    assert (tmp_path / "cache" / "shop" / "features" / "image_mask.npy").is_file()
    results = json.loads((tmp_path / "benchmarks" / "results" / "shop-quick" / "results.json").read_text())
    assert "cells: 8 ran" in outputs[-1] and "0 failed" in outputs[-1]
    recall = {row["model"]: row["mean"]["recall@20"] for row in results["summaries"]}
    assert set(recall) == {"mmgcn", "lightgcn", "vbpr", "popular"}
    # the planted tastes are learnable: every trained model beats the popularity floor
    assert min(recall[m] for m in ("mmgcn", "lightgcn", "vbpr")) > recall["popular"]

