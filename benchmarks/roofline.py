"""How close an MMGCN training epoch on TikTok runs to the machine's own kernels, and what
the user-flippable options (torch.compile, bf16 autocast, larger batches) change.

    python benchmarks/roofline.py                             # mmgcn-faithful, batch 2048, 1 thread
    python benchmarks/roofline.py --model mmgcn --repeats 3
    python benchmarks/roofline.py --options                   # + compile, bf16, batch 8192 (timed)
    python benchmarks/roofline.py --options --quality         # + the larger batch trained to early stop

**The bound.** One epoch (every train interaction once, batch 2048, the trainer's own
``run_epoch``: sampler, forward, backward, Adam) is run once under a dispatch mode that
records every matrix product the step executes, forward and backward: the dense transforms
(``mm`` / ``addmm`` / ``bmm`` of the linear layers and projections) and the sparse products
(CSR operator x dense states, each propagation hop and its backward). Their floating-point
work is counted (``2mkn`` per dense product, ``2 nnz d`` per sparse one). Then each recorded
product is run again *alone*, as a plain kernel of the same shapes on fresh contiguous
tensors (the same CSR operator for the sparse ones), once per recorded call, each call
timed by itself and summed (the smaller of two such passes): what the epoch's products cost
at the speed of this machine's own kernels, with no framework, gathers, activations or
optimizer around them. The headline is

    achieved fraction = (sum of the plain kernels' times) / (measured epoch time)

(1.0 would mean the epoch does nothing but its products, each as fast as alone; target
>= 0.5). The epoch is timed without the recording mode, minimum over ``--repeats`` epochs.

**Options.** With ``--options`` the same epoch is timed with ``train.compile=true``
(``torch.compile`` of the loss), ``train.precision=bf16`` (autocast; on this CPU through
AVX512-BF16 where the kernels have it; the GPU figures are ``benchmarks/gpu.py``'s) and a
4x larger batch (fewer, larger steps). ``--quality`` trains ``mmgcn`` (the TikTok
benchmark's settings, seed 0) to early stopping at batch 2048 / lr 1e-4 and at batch 8192
with the learning rate scaled by sqrt(4) = 2, and prints both validation and test Recall@20.

Every figure is wall-clock on whatever else runs on the machine: the load average is
printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mmgcn.data.registry import load_dataset
from mmgcn.models.base import build_model
from mmgcn.train.config import TrainConfig
from mmgcn.train.sampling import BPRSampler
from mmgcn.train.step import step_module
from mmgcn.train.trainer import run_epoch

aten = torch.ops.aten
#: the TikTok benchmark's settings of the correct mode (benchmarks/configs/tiktok.yaml)
MODEL_CONFIGS = {"mmgcn": {"num_layers": 3, "latent_dim": 256, "project_modalities": ["image"]}, "mmgcn-faithful": {}}
LEARNING_RATES = {"mmgcn": 1e-4, "mmgcn-faithful": 1e-4}


class ProductLog(TorchDispatchMode):
    """Records every matrix product dispatched while active: ``(kind, shapes, sparse operand)``."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[str, tuple, Any]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (aten.mm.default, aten.addmm.default, aten.bmm.default):
            operands = args[1:] if func is aten.addmm.default else args[:2]
            a, b = operands
            if a.layout == torch.sparse_csr:
                self.records.append(("sparse", (tuple(a.shape), tuple(b.shape)), a))
            else:
                kind = "addmm" if func is aten.addmm.default else ("bmm" if func is aten.bmm.default else "mm")
                self.records.append((kind, (tuple(a.shape), tuple(b.shape)), None))
        return func(*args, **kwargs)


def flops(kind: str, shapes: tuple, sparse: Any) -> float:
    (m, k), (_, n) = shapes[0][-2:], shapes[1][-2:]
    if kind == "sparse":
        return 2.0 * sparse.values().numel() * n
    batch = shapes[0][0] if kind == "bmm" else 1
    return 2.0 * batch * m * k * n


def plain_kernel(kind: str, shapes: tuple, sparse: Any):
    """The product alone, as a callable on fresh contiguous fp32 operands of the same shapes."""
    if kind == "sparse":
        dense = torch.randn(shapes[1])
        fn = lambda: torch.mm(sparse, dense)  # noqa: E731
    elif kind == "bmm":
        a, b = torch.randn(shapes[0]), torch.randn(shapes[1])
        fn = lambda: torch.bmm(a, b)  # noqa: E731
    else:
        a, b = torch.randn(shapes[0]), torch.randn(shapes[1])
        bias = torch.randn(shapes[1][-1])
        fn = (lambda: torch.addmm(bias, a, b)) if kind == "addmm" else (lambda: torch.mm(a, b))  # noqa: E731
    return fn


def plain_seconds(kind: str, shapes: tuple, sparse: Any, calls: int = 1) -> float:
    """Seconds of ``calls`` executions of the product alone (after one untimed warm-up), each
    timed by itself and summed: a sum of single runs, as the epoch is."""
    fn = plain_kernel(kind, shapes, sparse)
    fn()
    total = 0.0
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        total += time.perf_counter() - start
    return total


def make_model(dataset, name: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(name, dataset, MODEL_CONFIGS[name])


def time_epoch(dataset, name: str, batch_size: int, repeats: int, options: dict[str, Any] | None = None,
               record: bool = False) -> tuple[float, list]:
    """Minimum seconds of one training epoch over ``repeats`` (and, with ``record``, the products
    of one more, recorded)."""
    config = TrainConfig(batch_size=batch_size, lr=LEARNING_RATES[name], **(options or {}))
    model = make_model(dataset, name)
    step = step_module(model, config, torch.device("cpu"))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    sampler = BPRSampler(dataset.train, seed=0)
    if options:  # a compiled step compiles on its first call: warm up outside the timing
        run_epoch(step, optimizer, _FirstBatches(sampler, batch_size, 2), batch_size)
    seconds = [run_epoch(step, optimizer, sampler, batch_size)["seconds"] for _ in range(repeats)]
    records: list = []
    if record:
        log = ProductLog()
        with log:
            run_epoch(step, optimizer, sampler, batch_size)
        records = log.records
    return min(seconds), records


class _FirstBatches:
    def __init__(self, sampler: BPRSampler, batch_size: int, n: int) -> None:
        iterator = sampler.batches(batch_size)
        self._batches = [next(iterator) for _ in range(n)]

    def n_batches(self, batch_size: int) -> int:
        return len(self._batches)

    def batches(self, batch_size: int):
        yield from self._batches


def bound(records: list, passes: int = 2) -> dict[str, Any]:
    """Work and plain-kernel time of the recorded products, per kind.

    Every recorded product is run again alone, once per recorded call, each call timed by
    itself (products of identical shapes share their operands, built before the timing);
    the epoch's total is the smaller of ``passes`` such sums, as the epoch's own time is the
    minimum over its repeats.
    """
    groups: dict[tuple, list] = {}
    for kind, shapes, sparse in records:
        groups.setdefault((kind, shapes, None if sparse is None else id(sparse)), []).append((kind, shapes, sparse))
    out: dict[str, Any] = {k: {"calls": 0, "gflop": 0.0, "seconds": 0.0} for k in ("dense", "sparse")}
    totals = {k: [0.0] * passes for k in ("dense", "sparse")}
    for members in groups.values():
        kind, shapes, sparse = members[0]
        name = "sparse" if kind == "sparse" else "dense"
        out[name]["calls"] += len(members)
        out[name]["gflop"] += len(members) * flops(kind, shapes, sparse) / 1e9
        for p in range(passes):
            totals[name][p] += plain_seconds(kind, shapes, sparse, calls=len(members))
    for name in ("dense", "sparse"):
        out[name]["seconds"] = min(totals[name])
    out["distinct_shapes"] = len(groups)
    return out


def quality(dataset, batch_size: int, lr: float) -> dict[str, Any]:
    from mmgcn.train.trainer import Trainer

    config = TrainConfig(epochs=300, patience=20, batch_size=batch_size, lr=lr, seed=0, progress=False)
    model = make_model(dataset, "mmgcn")
    result = Trainer(model, dataset, config).fit()
    return {"batch_size": batch_size, "lr": lr, "best_epoch": result.best_epoch, "epochs": result.epochs_run,
            "valid_recall@20": result.valid["recall@20"], "test_recall@20": result.test.metrics["recall@20"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mmgcn-faithful", choices=sorted(MODEL_CONFIGS))
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--options", action="store_true", help="also time torch.compile, bf16 and a 4x batch")
    parser.add_argument("--quality", action="store_true", help="train mmgcn at batch 2048 and 8192 to early stop")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_dataset("tiktok", convention="files")
    steps = -(-dataset.train.nnz // args.batch_size)
    print(f"# {dataset}; {args.model} {MODEL_CONFIGS[args.model] or '(defaults: 3 layers, visual -> 256-d, 64-d)'}")
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"{platform.machine()}; load average before {os.getloadavg()[0]:.2f}")
    epoch_s, records = time_epoch(dataset, args.model, args.batch_size, args.repeats, record=True)
    work = bound(records)
    kernels = work["dense"]["seconds"] + work["sparse"]["seconds"]
    fraction = kernels / epoch_s
    kinds = Counter(kind for kind, _, _ in records)
    print(f"\n{args.model} training epoch on TikTok: {dataset.train.nnz:,} triples, {steps} steps of "
          f"{args.batch_size}: {epoch_s:.2f} s (min of {args.repeats})")
    print(f"{'products per epoch':<22}{'calls':>7}{'GFLOP':>9}{'plain s':>9}{'GFLOP/s':>9}   (plain = the same "
          f"shapes alone, this run)")
    for name in ("dense", "sparse"):
        g = work[name]
        rate = g["gflop"] / g["seconds"] if g["seconds"] else float("nan")
        print(f"{name + ' transforms' if name == 'dense' else name + ' products':<22}{g['calls']:>7}"
              f"{g['gflop']:>9.2f}{g['seconds']:>9.2f}{rate:>9.1f}")
    total = work["dense"]["gflop"] + work["sparse"]["gflop"]
    print(f"{'all products':<22}{len(records):>7}{total:>9.2f}{kernels:>9.2f}{total / kernels:>9.1f}   "
          f"({dict(kinds)}; {work['distinct_shapes']} distinct shapes)")
    print(f"achieved: {total / epoch_s:.1f} GFLOP/s over the whole epoch; the rest of the epoch "
          f"({epoch_s - kernels:.2f} s) is gathers, activations, normalisation, the sampler and Adam")
    out: dict[str, Any] = {"model": args.model, "batch_size": args.batch_size, "steps": steps, "epoch_s": epoch_s,
                           "work": work, "plain_kernels_s": kernels, "achieved_fraction": fraction,
                           "threads": torch.get_num_threads()}
    if args.options:
        print(f"\noptions (the same epoch, {args.model}; min of {args.repeats})")
        rows = [("fp32, eager (baseline)", epoch_s, args.batch_size)]
        for label, options, batch in (("train.compile=true", {"compile": True}, args.batch_size),
                                      ("train.precision=bf16", {"precision": "bf16"}, args.batch_size),
                                      (f"batch {4 * args.batch_size}", {}, 4 * args.batch_size)):
            try:
                seconds, _ = time_epoch(dataset, args.model, batch, args.repeats, options or {"compile": False})
                rows.append((label, seconds, batch))
            except Exception as exc:  # an option this machine / torch cannot run: say so
                rows.append((label, float("nan"), batch))
                print(f"  {label}: failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        for label, seconds, batch in rows:
            print(f"  {label:<26}{seconds:>8.2f} s/epoch   x{epoch_s / seconds:>5.2f}   ({-(-dataset.train.nnz // batch)} steps)")
        out["options"] = {label: {"epoch_s": s, "batch_size": b} for label, s, b in rows}
    if args.quality:
        print("\nquality of the larger batch (mmgcn, TikTok settings, seed 0, early stopping on valid Recall@20)")
        runs = [quality(dataset, 2048, 1e-4), quality(dataset, 8192, 2e-4)]
        for r in runs:
            print(f"  batch {r['batch_size']:>5}, lr {r['lr']:.0e}: valid R@20 {r['valid_recall@20']:.4f}, test R@20 "
                  f"{r['test_recall@20']:.4f} (best epoch {r['best_epoch']} of {r['epochs']})")
        out["quality"] = runs
    print(f"\n# load average after: {os.getloadavg()[0]:.2f}")
    print(f"achieved_fraction_of_plain_kernels={fraction:.2f}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2, default=float) + "\n")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
