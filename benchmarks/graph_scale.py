"""Item-item graphs at catalogue scale: time and peak memory of the kNN search and of LATTICE.

    python benchmarks/graph_scale.py                          # 200k items, kNN + LATTICE
    python benchmarks/graph_scale.py --items 50000 --phases knn

Synthetic catalogue: ``--items`` items with two random ``--dim``-d modalities and
``--users`` users with 20 random train items each (the graphs' cost depends on the catalogue
size, not on what the features mean). Phases, each printed with its wall time and the
process's peak RSS above the RSS before it (the kernel's peak counter is reset with
``/proc/self/clear_refs`` on Linux; elsewhere the lifetime peak is printed):

* ``knn``: the blockwise cosine top-``k`` graph of one modality (:func:`mmgcn.graph.knn_graph`,
  no cache), at the default tile (1024 x 4096 similarities);
* ``lattice``: LATTICE built (two frozen kNN graphs), one training step at the first batch
  of an epoch (the learned graph with gradients: two more searches, SDDMM weights, the
  product with gradients to the edge values), and one ranking ``embed()`` (the learned
  graph rebuilt once more).

For scale: the dense ``items x items`` float32 similarity matrix the original LATTICE code
builds (several times) is printed alongside. No timing is asserted anywhere; the memory
bound itself is a CI test (``tests/graph/test_knn_memory.py``, ``tests/models/test_lattice.py``).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmgcn.data.dataset import Dataset  # noqa: E402
from mmgcn.graph import knn_graph  # noqa: E402
from mmgcn.models import build_model  # noqa: E402

_CLEAR = Path("/proc/self/clear_refs")


def _rss() -> tuple[int, int]:
    """``(current, peak)`` resident set size in bytes."""
    if Path("/proc/self/status").exists():
        text = Path("/proc/self/status").read_text()
        return tuple(int(re.search(k + r":\s+(\d+)", text).group(1)) * 1024 for k in ("VmRSS", "VmHWM"))  # type: ignore[return-value]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return peak, peak


class Phase:
    """Context manager printing a phase's seconds and peak RSS above the RSS at its start."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __enter__(self) -> Phase:
        if _CLEAR.exists():
            _CLEAR.write_text("5")
        self.rss, self.started = _rss()[0], time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        seconds, peak = time.perf_counter() - self.started, _rss()[1]
        print(f"{self.label:<58}{seconds:>9.1f} s   peak RSS +{(peak - self.rss) / 2**20:>8.0f} MiB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=32, help="feature width of each modality")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--phases", default="knn,lattice")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    phases = set(args.phases.split(","))

    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(args.users), 20)
    items = rng.integers(0, args.items, users.size)
    train = sp.csr_matrix((np.ones(users.size, np.float32), (users, items)), shape=(args.users, args.items))
    valid = sp.csr_matrix((args.users, args.items), dtype=np.float32)
    features = {m: rng.normal(size=(args.items, args.dim)).astype(np.float32) for m in ("image", "audio")}
    dataset = Dataset("synthetic-scale", args.users, args.items, train, valid, valid, features=features)
    print(f"# {args.items:,} items x {args.dim}-d (2 modalities), {args.users:,} users, {train.nnz:,} train edges, "
          f"k={args.k}; torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"# a dense items x items float32 matrix would take {args.items**2 * 4 / 2**30:,.1f} GiB")

    if "knn" in phases:
        with Phase("knn graph of one modality (blockwise, no cache)"):
            graph = knn_graph(dataset.features["image"], args.k, cache=False)
        print(f"#   {graph.nnz:,} edges")
    if "lattice" in phases:
        with Phase("lattice: build (two frozen kNN graphs)"):
            model = build_model("lattice", dataset, {"knn_k": args.k})
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        batch = [torch.from_numpy(rng.integers(0, n, 2048)) for n in (args.users, args.items, args.items)]
        with Phase("lattice: first training step of an epoch (learned graph)"):
            model.train()
            model.on_epoch_start(1, np.random.default_rng(0))
            model.loss(*batch).backward()
            optimizer.step()
        with Phase("lattice: next training step (graph held fixed)"):
            optimizer.zero_grad()
            model.loss(*batch).backward()
            optimizer.step()
        with Phase("lattice: ranking embed (learned graph rebuilt)"):
            model.eval()
            with torch.no_grad():
                model.embed()
    print(f"# load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
