"""SIGKILL at random points of ``mmgcn bench`` (two seeds per cell) and ``mmgcn extract``:
re-running after each kill ends with the same outputs as an uninterrupted run.

Both run the real command line in a subprocess on ML-100K (real data: skipped without it,
required in CI). Wall-clock figures (seconds, memory, creation times) are the only fields
allowed to differ.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mmgcn.bench.cells import load_per_user

pytestmark = [pytest.mark.slow, pytest.mark.fault_timeout(900)]

REPO = Path(__file__).resolve().parents[2]
BENCH_YAML = """\
dataset: ml-100k
models: [bpr, lightgcn]
seeds: 2
train: {epochs: 3, patience: 3, batch_size: 4096}
model_configs:
  bpr: {dim: 16}
  lightgcn: {dim: 16, num_layers: 1}
"""


def _env(tmp: Path, data_root: Path) -> dict[str, str]:
    return {**os.environ, "MMGCN_DATA": str(data_root), "MMGCN_CACHE": str(tmp / "cache"),
            "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _run(args: list[str], env: dict[str, str], kill_after: float | None = None, kill_when=None) -> int | None:
    """Run ``python -m mmgcn ARGS``; SIGKILL it after ``kill_after`` s or once ``kill_when()``;
    returns the exit code, or None when it was killed."""
    proc = subprocess.Popen([sys.executable, "-m", "mmgcn", *args], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    while proc.poll() is None:
        if (kill_after is not None and time.monotonic() - started >= kill_after) or (kill_when and kill_when()):
            proc.send_signal(signal.SIGKILL)
            proc.wait(60)
            return None
        if time.monotonic() - started > 600:
            proc.kill()
            raise AssertionError(f"mmgcn {' '.join(args)} hung")
        time.sleep(0.02)
    err = proc.stderr.read()
    assert proc.returncode == 0, err[-2000:]
    return proc.returncode


def _stable_results(folder: Path) -> dict:
    data = json.loads((folder / "results.json").read_text())
    data["header"].pop("created_utc", None)
    clock = ("train_s_per_epoch", "eval_s", "peak_mem_mb")
    for cell in data["cells"]:
        for key in clock:
            cell.pop(key, None)
    for summary in data["summaries"]:
        for table in ("mean", "std"):
            for key in clock:
                summary[table].pop(key, None)
    return data


def _cells(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    return {str(p.parent.relative_to(folder)): load_per_user(p) for p in sorted(folder.glob("cells/*/*/per_user.npz"))}


def test_bench_killed_at_random_points_ends_identical(tmp_path, data_root):
    config = tmp_path / "bench.yaml"
    config.write_text(BENCH_YAML)
    args = ["bench", "--config", str(config), "--no-plots", "--no-progress"]
    env = _env(tmp_path, data_root)
    started = time.monotonic()
    _run([*args, "--out", str(tmp_path / "reference")], env)
    duration = time.monotonic() - started
    folder = tmp_path / "killed" / "ml-100k-quick"
    rng = random.Random(13)
    kills = 0
    for _ in range(6):
        if _run([*args, "--out", str(tmp_path / "killed")], env, kill_after=rng.uniform(0.2, 1.1) * duration) is not None:
            break
        kills += 1
    else:
        _run([*args, "--out", str(tmp_path / "killed")], env)
    assert kills >= 1, "no run was killed; the kill points are too late"
    reference = tmp_path / "reference" / "ml-100k-quick"
    assert _stable_results(folder) == _stable_results(reference)
    got, want = _cells(folder), _cells(reference)
    assert sorted(got) == sorted(want) and len(got) == 4
    for cell in want:
        assert sorted(got[cell]) == sorted(want[cell])
        for name in want[cell]:
            np.testing.assert_array_equal(got[cell][name], want[cell][name], err_msg=f"{cell}: {name}")
    assert not list(folder.glob("cells/*/.*.partial")) and not (folder / ".bench.lock").exists()


def test_extract_killed_at_random_points_ends_identical(tmp_path, data_root):
    pytest.importorskip("transformers")
    args = ["extract", "--dataset", "ml-100k", "--modality", "text", "--limit", "96", "--batch-size", "8",
            "--chunk-size", "16", "--no-progress", "--threads", "1"]
    env = _env(tmp_path, data_root)
    _run([*args, "--cache-dir", str(tmp_path / "reference")], env)
    out = tmp_path / "killed" / "ml-100k" / "features" / "limit-96"
    progress = out / ".text_feat.partial" / "progress.json"
    rng = random.Random(7)

    def after_chunk(target: int):
        def reached() -> bool:
            try:
                return json.loads(progress.read_text())["done_chunks"] >= target
            except (OSError, ValueError, KeyError):
                return False
        return reached

    for target in sorted(rng.sample(range(1, 6), 3)):  # 6 chunks of 16: kill after 3 random ones
        assert _run([*args, "--cache-dir", str(tmp_path / "killed")], env, kill_when=after_chunk(target)) is None
    _run([*args, "--cache-dir", str(tmp_path / "killed")], env)
    ref = tmp_path / "reference" / "ml-100k" / "features" / "limit-96"
    for name in ("text_feat.npy", "text_mask.npy"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    manifest, expected = (json.loads((d / "text_feat.json").read_text()) for d in (out, ref))
    for key in ("created", "items_per_second", "encode_seconds"):
        manifest.pop(key), expected.pop(key)
    assert manifest == expected
    assert not (out / ".text_feat.partial").exists()
