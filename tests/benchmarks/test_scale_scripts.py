"""The scale scripts' own logic: growth exponents, product counting, and gpu.py on CPU."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_growth_exponent_recovers_a_power_law():
    scale = _module("scale")
    edges = [1e4, 1e5, 1e6, 2e7]
    assert scale.fit_exponent(edges, [3e-4 * e**1.5 for e in edges]) == pytest.approx(1.5)
    assert scale.fit_exponent(edges, [2.0 * e for e in edges]) == pytest.approx(1.0)
    assert scale.fit_exponent([1e4], [1.0]) is None  # one point: no slope
    assert scale.fit_exponent(edges, [None, 1.0, None, None]) is None  # failed cells are left out


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_product_log_counts_dense_and_sparse_work():
    roofline = _module("roofline")
    linear = torch.nn.Linear(8, 3)
    x = torch.randn(5, 8, requires_grad=True)
    operator = torch.eye(5)[[0, 2, 4]].to_sparse_csr()  # 3 x 5, 3 stored entries
    log = roofline.ProductLog()
    with log:
        out = torch.mm(operator, linear(x))  # addmm (5x8 @ 8x3), then the sparse product
    kinds = [kind for kind, _, _ in log.records]
    assert kinds == ["addmm", "sparse"]
    work = [roofline.flops(*record) for record in log.records]
    assert work == [2.0 * 5 * 8 * 3, 2.0 * 3 * 3]
    assert out.shape == (3, 3)
    assert roofline.plain_seconds(*log.records[1]) > 0


@pytest.mark.slow
def test_gpu_script_runs_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    command = [sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--device", "cpu", "--datasets", "synthetic-tiktok",
               "--models", "lightgcn", "--max-steps", "1", "--ranks", "1", "--precisions", "fp32", "bf16",
               "--cache", str(tmp_path / "cache"), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                          env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["model"], r["precision"], r["ranks"]) for r in rows] == [("lightgcn", "fp32", 1), ("lightgcn", "bf16", 1)]
    for row in rows:
        assert row["epoch_s"] > 0 and row["extrapolated"] and row["steps"] > 1
        assert np.isfinite(row["loss"]) and row["eval_users"] > 0 and row["train_peak_gib"] > 0


def test_sampled_quality_names_runs_by_fanouts_and_pairs_their_seeds(tmp_path):
    quality = _module("sampled_quality")
    assert quality.fanout_tag([10]) == "10" and quality.fanout_tag([-1, 10, 10]) == "all-10-10"
    stems = {quality.run_stem(tmp_path, "mmgcn", "sampled", 0, f) for f in ([10], [25], [-1, 10, 10])}
    assert len(stems) == 3 and quality.run_stem(tmp_path, "mmgcn", "full", 0, [10]).name == "mmgcn-full-seed0"
    # three seeds at very different levels; sampled = full + 0.002 on every user of every seed
    (tmp_path / "runs").mkdir()
    rng = np.random.default_rng(0)
    users = np.arange(300)
    for seed, level in enumerate((0.05, 0.09, 0.13)):
        full = np.clip(level + rng.normal(0, 0.02, size=users.size), 0, 1)
        for mode, values in (("full", full), ("sampled", full + 0.002)):
            stem = quality.run_stem(tmp_path, "mmgcn", mode, seed, [-1, 10, 10])
            np.savez(f"{stem}.npz", valid_users=users, valid=values, test_users=users, test=values)
            record = {"seed": seed, "num_neighbors": [-1, 10, 10] if mode == "sampled" else None, "epochs": 5,
                      "best_epoch": 3, "train_s_per_epoch": 1.0}
            Path(f"{stem}.json").write_text(json.dumps(record))
    row = quality.report(tmp_path, ["mmgcn"], [0, 1, 2], [-1, 10, 10])["mmgcn"]["test"]
    assert row["seeds_paired"] and row["within_5pct"]
    assert row["ci"] == pytest.approx([0.002, 0.002])  # paired: the shift itself
    low, high = row["unpaired_relative_ci"]
    assert low < -0.05 and high > 0.05  # unpaired, the seed levels swamp it
