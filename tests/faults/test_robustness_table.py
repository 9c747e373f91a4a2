"""``benchmarks/robustness.py`` end to end: the committed table's targets hold on this code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.fault_timeout(900)
def test_robustness_targets(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "benchmarks/robustness.py", "--json", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=850,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert out.is_file(), proc.stderr[-3000:]
    totals = json.loads(out.read_text())["totals"]
    assert sum(totals.values()) >= 300
    bad = {k: totals.get(k, 0) for k in ("traceback", "silently wrong", "hang", "wrongly refused")}
    assert bad == dict.fromkeys(bad, 0), proc.stdout[-3000:]
    assert proc.returncode == 0
