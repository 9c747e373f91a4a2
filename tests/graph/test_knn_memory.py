"""Peak memory of the blockwise kNN search on a 200k-item catalogue: bounded by the tile, not items^2.

Each measurement runs in a fresh interpreter (torch's allocations are invisible to
tracemalloc): it resets the kernel's peak-RSS counter (``/proc/self/clear_refs``), runs the
search and reports ``VmHWM - VmRSS`` before the call. The search covers the whole 200k-item
catalogue as candidates for a slice of query items (every row block does the same work and
frees its tile before the next, so more query rows add only their ``k`` output edges; the
full 200k x 200k search takes minutes on 2 cores and is measured by
``benchmarks/graph_scale.py``). No timing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
N_ITEMS, DIM, K = 200_000, 16, 10

SCRIPT = r"""
import json, re, sys
import torch
from mmgcn.graph.knn import knn_edges

def status():
    text = open("/proc/self/status").read()
    return {key: int(re.search(key + r":\s+(\d+)", text).group(1)) * 1024 for key in ("VmRSS", "VmHWM")}

torch.set_num_threads(1)
n_items, dim, k, block, columns, n_query = map(int, sys.argv[1:7])
features = torch.randn(n_items, dim, generator=torch.Generator().manual_seed(0))
knn_edges(features[:20000], k, rows=torch.arange(block), block_size=block, column_block=columns)  # warm-up: BLAS buffers, allocator
open("/proc/self/clear_refs", "w").write("5")  # reset the peak-RSS counter
before = status()["VmRSS"]
edges, sims = knn_edges(features, k, rows=torch.arange(n_query), block_size=block, column_block=columns)
after = status()
print(json.dumps({"peak_delta": after["VmHWM"] - before, "edges": int(edges.shape[1]),
                  "feature_bytes": features.numel() * 4}))
"""


def _measure(block: int, columns: int, n_query: int) -> dict:
    # a fixed glibc mmap threshold: freed tiles go back to the OS at once, so RSS tracks live memory
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, *map(str, (N_ITEMS, DIM, K, block, columns, n_query))],
        capture_output=True, text=True, env=env, check=True, timeout=600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc/self/clear_refs")
def test_knn_peak_memory_follows_the_tile_not_the_catalogue():
    small = _measure(block=512, columns=2048, n_query=1024)  # 4 MiB tiles
    large = _measure(block=1024, columns=16384, n_query=1024)  # 64 MiB tiles
    tile_small, tile_large = 512 * 2048 * 4, 1024 * 16384 * 4
    assert small["edges"] == large["edges"] == 1024 * K
    # the working set: a normalised copy of the features (linear in n_items), the tile, slack
    bound = lambda tile: small["feature_bytes"] + 2 * tile + 8 * 2**20  # noqa: E731
    print(f"\npeak RSS delta, {N_ITEMS:,} items x {DIM}: tile 4 MiB -> {small['peak_delta'] / 2**20:.1f} MiB, "
          f"tile 64 MiB -> {large['peak_delta'] / 2**20:.1f} MiB (a dense similarity matrix: "
          f"{N_ITEMS**2 * 4 / 2**30:.0f} GiB)")
    assert small["peak_delta"] < bound(tile_small)
    assert large["peak_delta"] < bound(tile_large)
    # memory follows the tile: 16x larger tiles (60 MiB more) cost at least 3/4 of the difference
    assert large["peak_delta"] - small["peak_delta"] > 3 * (tile_large - tile_small) / 4
