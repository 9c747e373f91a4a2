"""Defaults at scale: import time, epoch time with the old vs the automatic batch size,
evaluation block sizes, and the peak memory of the light commands.

    python benchmarks/large_defaults.py                       # everything (about 10-15 min on 2 cores)
    python benchmarks/large_defaults.py --parts import light  # a subset
    python benchmarks/large_defaults.py --parts light --before /path/to/old/checkout

Parts, each printing its figures:

* ``import`` -- :func:`mmgcn.datasets.import_table` on (a) the README's demo shop (CSV +
  PNG images) and (b) a synthetic log of ``--users x --per-user`` interactions (default
  50,000 x 20 = 1M; :func:`mmgcn.data.synthetic.synthetic_log`) written as a CSV with
  string ids and as a MovieLens-1M style ``::`` file without a header.
* ``train`` -- LightGCN (64-d, 2 layers) on the same 1M-interaction synthetic dataset
  (:func:`mmgcn.data.synthetic.make_synthetic`, random 8:1:1 split, seed 0): seconds per
  training epoch with the old fixed batch size 2048 and with the automatic one
  (:func:`mmgcn.train.config.auto_batch_size`), and valid Recall@20 after the same number
  of epochs (so the speed is not bought with quality); full-ranking evaluation of the
  valid split with the automatic block size and fixed ones.
* ``light`` -- peak RSS (``ru_maxrss``) of a fresh interpreter running ``mmgcn --help``,
  ``mmgcn datasets list`` and ``mmgcn datasets info tiktok`` / ``ml-100k``, and whether torch was
  imported; ``--before DIR`` also runs them with another checkout's code (e.g. the commit
  before the change) for a before / after table.

Timings depend on the machine's load: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------- import
def part_import(args: argparse.Namespace, tmp: Path) -> None:
    import pandas as pd

    from mmgcn.data.synthetic import synthetic_log
    from mmgcn.datasets import import_table, write_demo_shop

    print(f"== import (load average {load()})")
    shop = write_demo_shop(tmp / "shop")
    start = time.perf_counter()
    dataset = import_table("shop", shop["interactions"], items=shop["items"], data_dir=tmp / "data",
                           cache_dir=tmp / "cache", split="temporal", progress=False)
    print(f"demo shop (README): {len(pd.read_csv(shop['interactions'])):,} rows + {dataset.n_items} items with "
          f"text and images -> {dataset!r} in {time.perf_counter() - start:.2f} s")

    log, _, _ = synthetic_log(args.users, args.items, interactions_per_user=args.per_user, seed=0, progress=False)
    frame = pd.DataFrame({
        "user_id": np.char.add("u", log.users.astype(str)),
        "item_id": np.char.add("i", log.items.astype(str)),
        "rating": 1 + (log.items % 5),
        "timestamp": log.timestamps,
    })
    csv_path = tmp / "big.csv"
    frame.to_csv(csv_path, index=False)
    dat_path = tmp / "big.dat"
    with open(dat_path, "w") as handle:
        for u, i, r, t in zip(log.users.tolist(), log.items.tolist(), frame.rating.tolist(), log.timestamps.tolist()):
            handle.write(f"{u}::{i}::{r}::{t}\n")
    for label, path, kwargs in (
        ("CSV, string ids, header", csv_path, {"split": "temporal"}),
        ("'::' file, no header, numbered columns, rating >= 3, 5-core", dat_path,
         {"sep": "::", "header": False, "user_col": 0, "item_col": 1, "rating_col": 2, "timestamp_col": 3,
          "min_rating": 3, "k_core": 5, "split": "loo"}),
    ):
        start = time.perf_counter()
        dataset = import_table(f"big-{path.suffix[1:]}", path, data_dir=tmp / "data", cache_dir=tmp / "cache",
                               progress=False, **kwargs)
        seconds = time.perf_counter() - start
        print(f"{label}: {len(frame):,} rows ({path.stat().st_size / 2**20:.0f} MiB) -> {dataset.n_users:,} x "
              f"{dataset.n_items:,}, {dataset.train.nnz + dataset.valid.nnz + dataset.test.nnz:,} interactions "
              f"in {seconds:.1f} s ({len(frame) / seconds / 1e6:.2f} M rows/s); peak RSS {peak_mib():.0f} MiB")


# ---------------------------------------------------------------------- train
def part_train(args: argparse.Namespace) -> None:
    import torch

    from mmgcn.data.synthetic import make_synthetic
    from mmgcn.eval.evaluator import evaluate
    from mmgcn.models import build_model
    from mmgcn.train.config import auto_batch_size
    from mmgcn.train.sampling import BPRSampler
    from mmgcn.train.trainer import run_epoch
    from mmgcn.utils.seed import seed_everything

    torch.set_num_threads(args.threads)
    print(f"== train (torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load()})")
    start = time.perf_counter()
    dataset = make_synthetic(args.users, args.items, interactions_per_user=args.per_user, seed=0,
                             cold_item_fraction=0.0, progress=False)
    print(f"synthetic: {dataset!r} in {time.perf_counter() - start:.1f} s")
    auto = auto_batch_size(dataset.train.nnz)
    results = {}
    for batch in (2048, auto):
        seed_everything(0)
        model = build_model("lightgcn", dataset)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        sampler = BPRSampler(dataset.train, seed=0)
        times = []
        for _ in range(args.epochs):
            stats = run_epoch(model, optimizer, sampler, batch)
            times.append(stats["seconds"])
        with torch.no_grad():
            valid = evaluate(model, dataset, split="valid", ks=(20,), mask=("train",)).metrics["recall@20"]
        results[batch] = (min(times), valid)
        print(f"lightgcn batch {batch:>6}{' (auto)' if batch == auto else ' (old default)'}: "
              f"{sampler.n_batches(batch)} steps, epoch {min(times):.1f} s (min of {args.epochs}; all: "
              + ", ".join(f"{t:.1f}" for t in times) + f"), valid recall@20 after {args.epochs} epochs {valid:.4f}")
    old, new = results[2048][0], results[auto][0]
    print(f"epoch_speedup_auto_vs_2048={old / new:.1f} (load average {load()})")
    model.eval()
    with torch.no_grad():
        emb = model.embed()
        for block in (None, 1024, 8192):
            start = time.perf_counter()
            evaluate(model, dataset, split="valid", ks=(20,), mask=("train",), block_size=block, emb=emb)
            print(f"evaluate valid ({dataset.n_users:,} users x {dataset.n_items:,} items), block "
                  f"{'auto' if block is None else block}: {time.perf_counter() - start:.1f} s")


# ---------------------------------------------------------------------- light
PROBE = """
import resource, sys
from mmgcn.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("PROBE", "torch" in sys.modules, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)
"""


def _probe(code_dir: Path, argv: list[str]) -> tuple[bool, float]:
    env = {**os.environ, "PYTHONPATH": str(code_dir)}
    result = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env,
                            cwd=code_dir, timeout=600)
    line = next(x for x in result.stderr.splitlines() if x.startswith("PROBE"))
    _, torch_loaded, mib = line.split()
    return torch_loaded == "True", float(mib)


def part_light(args: argparse.Namespace) -> None:
    print(f"== light commands: peak RSS of a fresh interpreter (MMGCN_DATA={os.environ.get('MMGCN_DATA')})")
    commands = (["--help"], ["datasets", "list"], ["datasets", "info", "tiktok"], ["datasets", "info", "ml-100k"])
    checkouts = [("after", REPO)] + ([("before", Path(args.before))] if args.before else [])
    rows = {}
    for label, folder in checkouts:
        for argv in commands:
            rows[(label, " ".join(argv))] = _probe(folder, argv)
    for argv in commands:
        name = " ".join(argv)
        cells = [f"{label}: {rows[(label, name)][1]:.0f} MiB (torch {'imported' if rows[(label, name)][0] else 'not imported'})"
                 for label, _ in checkouts]
        print(f"mmgcn {name:<22} " + "; ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=("import", "train", "light"), default=["import", "train", "light"])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--per-user", type=float, default=20)
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per batch size (default 2)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--before", help="another checkout to compare the light commands with")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        if "light" in args.parts:
            part_light(args)
        if "import" in args.parts:
            part_import(args, Path(tmp))
        if "train" in args.parts:
            part_train(args)


if __name__ == "__main__":
    main()
