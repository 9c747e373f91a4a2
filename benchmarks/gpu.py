"""Training and evaluation on GPUs: epoch time, evaluation time, peak GPU memory.

    python benchmarks/gpu.py                                   # every GPU here: TikTok + the 20M synthetic graph
    python benchmarks/gpu.py --datasets tiktok --ranks 1       # one GPU, TikTok only
    python benchmarks/gpu.py --device cpu --datasets tiktok --max-steps 3 --ranks 1 2   # the same code on CPU

For each dataset (TikTok's files split; ``synthetic-<size>`` from ``benchmarks/scale.py``'s
sizes, default ``20m``: 1M users x 100k items x ~16M train edges, generated once and cached
under ``--cache``), model (MMGCN with the TikTok benchmark's settings, LightGCN 3 layers,
and the strongest model of the registry: ``freedom`` when registered, else
``attention-graph``), precision (``fp32``; ``bf16``: ``train.precision=bf16``, autocast)
and number of ranks (1 and every GPU here; DistributedDataParallel over NCCL, the same
global batch, launched with :func:`mmgcn.train.distributed.launch`):

* **epoch**: seconds of one training epoch (batch ``--batch-size``, Adam, the trainer's
  ``run_epoch``) after one warm-up step; with ``--max-steps`` only that many steps are
  timed and the epoch is extrapolated (printed with a ``~``);
* **eval**: seconds of a full-ranking evaluation of the valid split on one GPU (all items,
  train masked; embed + score + top-k in user blocks);
* **peak**: ``torch.cuda.max_memory_allocated`` over the epoch (per rank) and over the
  evaluation, in GiB (CPU runs: the process's peak RSS).

One JSON line per cell is printed as it finishes, then the table; ``--out`` writes them all.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmgcn.data.registry import load_dataset  # noqa: E402
from mmgcn.eval.evaluator import evaluate  # noqa: E402
from mmgcn.models.base import available_models, build_model  # noqa: E402
from mmgcn.train.config import TrainConfig  # noqa: E402
from mmgcn.train.distributed import launch  # noqa: E402
from mmgcn.train.sampling import BPRSampler  # noqa: E402
from mmgcn.train.step import step_module  # noqa: E402
from mmgcn.train.trainer import run_epoch  # noqa: E402

GIB = 2**30
MODEL_CONFIGS = {
    "mmgcn": {"num_layers": 3, "latent_dim": 256, "project_modalities": ["image"]},
    "lightgcn": {"num_layers": 3},
    "freedom": {},
    "attention-graph": {},
}


def _scale_module():
    spec = importlib.util.spec_from_file_location("scale_benchmark", Path(__file__).with_name("scale.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def get_dataset(name: str, cache: Path):
    if name == "tiktok":
        return load_dataset("tiktok", convention="files")
    if not name.startswith("synthetic-"):
        raise SystemExit(f"--datasets: {name!r}; use tiktok or synthetic-<size> with a size of benchmarks/scale.py")
    scale, size = _scale_module(), name.removeprefix("synthetic-")
    if size not in scale.SIZES:
        raise SystemExit(f"--datasets {name}: sizes are {sorted(scale.SIZES)}")
    if not (scale._dataset_path(cache, size) / "DONE").is_file():
        print(f"# generating {name} into {cache} (once)", flush=True)
        scale._make_data(size, cache)
    return scale._load_data(size, cache)


class _Steps:
    """The first ``n`` batches of an epoch (what run_epoch iterates), or all of them."""

    def __init__(self, sampler: BPRSampler, batch_size: int, n: int | None) -> None:
        self.sampler, self.n = sampler, n

    def n_batches(self, batch_size: int) -> int:
        total = self.sampler.n_batches(batch_size)
        return total if self.n is None else min(self.n, total)

    def batches(self, batch_size: int):
        for k, batch in enumerate(self.sampler.batches(batch_size)):
            if self.n is not None and k >= self.n:
                return
            yield batch


def _peak(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / GIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def train_cell(context, dataset, model_name: str, precision: str, args: dict[str, Any]) -> dict[str, Any]:
    """One rank's timed epoch (``context`` None: a single process). Returns seconds and peak."""
    if context is None:
        device = torch.device(args["device"])
    else:
        device = context.device(torch.device(args["device"]))
    torch.manual_seed(0)
    model = build_model(model_name, dataset, MODEL_CONFIGS[model_name]).to(device)
    config = TrainConfig(batch_size=args["batch_size"], precision=precision, device=args["device"])
    step = step_module(model, config, device, context)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    sampler = BPRSampler(dataset.train, seed=0)
    if context is not None:
        sampler = context.shard(sampler)
    run_epoch(step, optimizer, _Steps(sampler, config.batch_size, 1), config.batch_size, device=device)  # warm-up
    _reset_peak(device)
    steps = _Steps(sampler, config.batch_size, args["max_steps"])
    stats = run_epoch(step, optimizer, steps, config.batch_size, device=device)
    total = sampler.n_batches(config.batch_size)
    epoch_s = stats["seconds"] * total / stats["batches"]
    return {"epoch_s": epoch_s, "extrapolated": stats["batches"] < total, "steps_timed": stats["batches"],
            "steps": total, "train_peak_gib": _peak(device), "loss": stats["loss"]}


def eval_cell(dataset, model_name: str, args: dict[str, Any]) -> dict[str, Any]:
    device = torch.device(args["device"])
    torch.manual_seed(0)
    model = build_model(model_name, dataset, MODEL_CONFIGS[model_name]).to(device)
    _reset_peak(device)
    started = time.perf_counter()
    result = evaluate(model, dataset, split="valid", ks=(10, 20, 50))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {"eval_s": time.perf_counter() - started, "eval_users": result.n_users, "eval_peak_gib": _peak(device)}


def _rank_cell(context, dataset, model_name: str, precision: str, args: dict[str, Any]) -> dict[str, Any]:
    return train_cell(context, dataset, model_name, precision, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (the same code, for a dry run)")
    parser.add_argument("--datasets", nargs="+", default=["tiktok", "synthetic-20m"])
    parser.add_argument("--models", nargs="+", default=None, help="default: mmgcn lightgcn and the strongest model")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--ranks", nargs="+", type=int, default=None, help="default: 1 and every GPU here")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--max-steps", type=int, default=None, help="time this many steps and extrapolate the epoch")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "mmgcn-scale")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here; run with --device cpu for the same code on CPU (GPU figures need a GPU)")
    n_gpus = torch.cuda.device_count() if args.device.startswith("cuda") else 1
    ranks = args.ranks or sorted({1, n_gpus})
    models = args.models or ["mmgcn", "lightgcn", "freedom" if "freedom" in available_models() else "attention-graph"]
    settings = {"device": args.device, "batch_size": args.batch_size, "max_steps": args.max_steps}
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(f"# {name} x {n_gpus}; torch {torch.__version__}; ranks {ranks}; models {models}; batch {args.batch_size}")
    rows = []
    for dataset_name in args.datasets:
        dataset = get_dataset(dataset_name, args.cache)
        print(f"# {dataset}", flush=True)
        for model_name in models:
            evaluation = eval_cell(dataset, model_name, settings)
            for precision in args.precisions:
                for n in ranks:
                    if n == 1:
                        cell = train_cell(None, dataset, model_name, precision, settings)
                    else:
                        device = "cuda" if args.device.startswith("cuda") else "cpu"
                        cell = launch(_rank_cell, n, dataset, model_name, precision, settings, device=device)[0]
                    row = {"dataset": dataset_name, "model": model_name, "precision": precision, "ranks": n,
                           **cell, **evaluation}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print(f"\n{'dataset':<18}{'model':<17}{'prec.':<6}{'ranks':>6}{'epoch s':>10}{'train peak GiB':>16}"
          f"{'eval s':>8}{'eval peak GiB':>15}")
    for r in rows:
        epoch = f"{'~' if r['extrapolated'] else ''}{r['epoch_s']:.2f}"
        print(f"{r['dataset']:<18}{r['model']:<17}{r['precision']:<6}{r['ranks']:>6}{epoch:>10}"
              f"{r['train_peak_gib']:>16.2f}{r['eval_s']:>8.2f}{r['eval_peak_gib']:>15.2f}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"device": name, "n_gpus": n_gpus, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
