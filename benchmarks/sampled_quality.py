"""Sampled-subgraph vs full-graph training on TikTok: the same models, seeds and protocol.

    python benchmarks/sampled_quality.py                       # mmgcn + lightgcn, 3 seeds, fan-out 10
    python benchmarks/sampled_quality.py --models mmgcn --num-neighbors -1 10 10   # the batch's hop whole
    python benchmarks/sampled_quality.py --models lightgcn --seeds 0 1 --num-neighbors 5
    python benchmarks/sampled_quality.py --report               # print the table from finished runs

Each (model, mode, seed) is trained with the project's trainer under the TikTok benchmark's
protocol (files' own split, visual + acoustic, batch 2048, Adam, at most 300 epochs,
early stopping on validation Recall@20 with patience 20, test once on the selected
checkpoint) and the benchmark's validation-selected settings (``benchmarks/configs/tiktok.yaml``:
MMGCN 3 layers with visual projected to 256-d at lr 1e-4, LightGCN 3 layers at lr 5e-3);
the two modes differ only in ``train.num_neighbors`` (sampled: the batch's 3-hop
neighbourhood with ``--num-neighbors`` neighbours per node and hop -- one value for every
hop, or one per hop from the batch outwards, ``-1`` for every neighbour; full: every edge at
every step). Evaluation always ranks all items over the full graph.

Each finished run writes ``<out>/runs/<model>-<mode>-seed<k>.json`` (metrics, epochs, time;
sampled modes are named ``sampled<fan-outs>``, e.g. ``sampled10`` or ``sampledall-10-10``)
and ``.npz`` (per-user valid and test Recall@20 of the selected checkpoint); a re-run skips
finished runs. The table compares sampled against full per model with the seed-aware
hierarchical bootstrap of :func:`mmgcn.eval.significance.compare` (training runs, then
users, paired): the difference of means, its 95% interval, and the interval relative to the
full-graph mean; "within 5%" means the whole interval lies above -5% of the full-graph mean
(sampled is not more than 5% worse). The two modes of one seed share their initialisation
and their BPR batches (only the propagation differs), so the verdict's interval pairs the
seeds (``paired_seeds``): the seed-to-seed spread that both modes share cancels. The
unpaired interval (each mode's runs resampled independently) is printed beside it.
``<out>/sampled_quality-n<fan-outs>.json`` holds the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

CONFIGS = {
    "mmgcn": ({"num_layers": 3, "latent_dim": 256, "project_modalities": ["image"]}, {"lr": 1.0e-4}),
    "lightgcn": ({"num_layers": 3, "reg_weight": 1.0e-4}, {"lr": 5.0e-3}),
}
PROTOCOL = {"epochs": 300, "patience": 20, "batch_size": 2048, "metric": "recall@20", "ks": [10, 20, 50]}
METRIC = "recall@20"
MARGIN = 0.05


def run_one(model_name: str, mode: str, seed: int, fanouts: list[int], out: Path, threads: int) -> dict:
    import torch

    from mmgcn.data.registry import load_dataset
    from mmgcn.eval.evaluator import evaluate
    from mmgcn.models.base import build_model
    from mmgcn.train.config import TrainConfig
    from mmgcn.train.trainer import Trainer
    from mmgcn.utils.io import atomic_write_json
    from mmgcn.utils.seed import seed_everything

    torch.set_num_threads(threads)
    dataset = load_dataset("tiktok", convention="files")
    model_config, train_extra = CONFIGS[model_name]
    sampled = {"num_neighbors": list(fanouts)} if mode == "sampled" else {}
    config = TrainConfig(**{**PROTOCOL, "ks": tuple(PROTOCOL["ks"]), **train_extra, **sampled, "seed": seed,
                            "progress": False})
    seed_everything(seed)
    model = build_model(model_name, dataset, model_config)
    started = time.perf_counter()
    result = Trainer(model, dataset, config).fit()
    seconds = time.perf_counter() - started
    valid = evaluate(model, dataset, split="valid", ks=config.ks, mask=config.valid_mask)  # the selected model
    record = {
        "model": model_name, "mode": mode, "seed": seed, "num_neighbors": sampled.get("num_neighbors"),
        "model_config": model_config, "train": {**PROTOCOL, **train_extra, **sampled},
        "best_epoch": result.best_epoch, "epochs": result.epochs_run, "seconds": seconds,
        "train_s_per_epoch": float(np.mean([r["train_seconds"] for r in result.history])),
        "valid": valid.metrics, "test": result.test.metrics,
        "machine": {"host": platform.node(), "threads": threads, "load_avg_end": os.getloadavg()},
    }
    stem = run_stem(out, model_name, mode, seed, fanouts)
    np.savez(f"{stem}.npz", valid_users=valid.users, valid=valid.per_user[METRIC],
             test_users=result.test.users, test=result.test.per_user[METRIC])
    atomic_write_json(f"{stem}.json", record)
    return record


def fanout_tag(num_neighbors: list[int]) -> str:
    """``[10]`` -> ``"10"``, ``[-1, 10, 10]`` -> ``"all-10-10"``."""
    return "-".join("all" if k < 0 else str(k) for k in num_neighbors)


def run_stem(out: Path, model: str, mode: str, seed: int, num_neighbors: list[int]) -> Path:
    """Where one run's files live: the sampled runs carry their fan-outs in the name, so that
    a run with other fan-outs is never mistaken for a finished one."""
    tag = f"sampled{fanout_tag(num_neighbors)}" if mode == "sampled" else mode
    return out / "runs" / f"{model}-{tag}-seed{seed}"


def report(out: Path, models: list[str], seeds: list[int], num_neighbors: list[int]) -> dict:
    from mmgcn.eval.significance import compare

    table = {}
    for model in models:
        runs = {mode: [] for mode in ("full", "sampled")}
        records = {mode: [] for mode in ("full", "sampled")}
        for mode in runs:
            for seed in seeds:
                stem = run_stem(out, model, mode, seed, num_neighbors)
                if not Path(f"{stem}.json").is_file():
                    continue
                records[mode].append(json.loads(Path(f"{stem}.json").read_text()))
                runs[mode].append(np.load(f"{stem}.npz"))
        if not (runs["full"] and runs["sampled"]):
            continue
        row = {"seeds": {m: [r["seed"] for r in records[m]] for m in records},
               "num_neighbors": records["sampled"][0]["num_neighbors"],
               "epochs": {m: [r["epochs"] for r in records[m]] for m in records},
               "best_epoch": {m: [r["best_epoch"] for r in records[m]] for m in records},
               "train_s_per_epoch": {m: float(np.mean([r["train_s_per_epoch"] for r in records[m]])) for m in records}}
        paired = row["seeds"]["full"] == row["seeds"]["sampled"]
        for split in ("valid", "test"):
            pairs = ([(r[f"{split}_users"], r[split]) for r in runs["sampled"]],
                     [(r[f"{split}_users"], r[split]) for r in runs["full"]])
            unpaired = compare(f"{model} sampled", f"{model} full", f"{split} {METRIC}", *pairs)
            comparison = compare(f"{model} sampled", f"{model} full", f"{split} {METRIC}", *pairs,
                                 paired_seeds=True) if paired else unpaired
            base = comparison.mean_reference
            row[split] = {
                "full": comparison.mean_reference, "sampled": comparison.mean_model,
                "full_seed_means": comparison.seed_means_reference, "sampled_seed_means": comparison.seed_means_model,
                "diff": comparison.diff, "ci": [comparison.ci_low, comparison.ci_high], "p": comparison.p,
                "relative": comparison.diff / base, "relative_ci": [comparison.ci_low / base, comparison.ci_high / base],
                "within_5pct": comparison.ci_low / base > -MARGIN, "n_users": comparison.n_users,
                "seeds_paired": paired,
                "unpaired_relative_ci": [unpaired.ci_low / base, unpaired.ci_high / base],
            }
        table[model] = row
    return table


def print_table(table: dict) -> None:
    print(f"TikTok (files split, visual+acoustic), {METRIC}, mean over seeds; sampled vs full: seed-aware "
          f"hierarchical bootstrap (mmgcn.eval.significance.compare), 95% interval, seeds paired (both modes "
          f"of a seed share init and batches); unpaired: each mode's runs resampled independently")
    print(f"{'model':<10} {'split':<6} {'full':>8} {'sampled':>8} {'diff':>8} {'rel.':>7}  {'95% CI (rel.)':<18} "
          f"{'p':>6}  within 5%  {'unpaired CI (rel.)':<18}  seeds  epochs full/sampled  s/epoch full/sampled")
    for model, row in table.items():
        for split in ("valid", "test"):
            r = row[split]
            lo, hi = r["relative_ci"]
            ulo, uhi = r["unpaired_relative_ci"]
            print(f"{model:<10} {split:<6} {r['full']:>8.4f} {r['sampled']:>8.4f} {r['diff']:>+8.4f} "
                  f"{r['relative']:>+7.1%}  [{lo:+.1%}, {hi:+.1%}]".ljust(76)
                  + f" {r['p']:>6.3f}  {'yes' if r['within_5pct'] else 'NO':<9}  "
                  + f"[{ulo:+.1%}, {uhi:+.1%}]".ljust(18) + f"  {len(row['seeds']['full'])}/"
                  f"{len(row['seeds']['sampled'])}    {np.mean(row['epochs']['full']):.0f}/"
                  f"{np.mean(row['epochs']['sampled']):.0f}"
                  f"              {row['train_s_per_epoch']['full']:.1f}/{row['train_s_per_epoch']['sampled']:.1f}")
        hops = "per hop (3 hops)" if len(row["num_neighbors"]) == 1 else "for hops 1-3 from the batch (-1: all)"
        print(f"{'':<10} sampled: num_neighbors={row['num_neighbors']} {hops}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lightgcn", "mmgcn"], choices=sorted(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--num-neighbors", type=int, nargs="+", default=[10],
                        help="neighbours per node and hop (sampled mode): one for all hops or one per hop, -1 = all")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scale"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report", action="store_true", help="only print the table of finished runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    (args.out / "runs").mkdir(parents=True, exist_ok=True)
    if not args.report:
        for model in args.models:
            for seed in args.seeds:
                for mode in ("full", "sampled"):
                    stem = run_stem(args.out, model, mode, seed, args.num_neighbors)
                    if Path(f"{stem}.json").is_file():
                        continue
                    record = run_one(model, mode, seed, args.num_neighbors, args.out, args.threads)
                    print(f"{model} {mode} seed {seed}: valid {record['valid'][METRIC]:.4f} test "
                          f"{record['test'][METRIC]:.4f} (best epoch {record['best_epoch']} of {record['epochs']}, "
                          f"{record['seconds']:.0f} s)", flush=True)
    table = report(args.out, args.models, args.seeds, args.num_neighbors)
    from mmgcn.utils.io import atomic_write_json

    atomic_write_json(args.out / f"sampled_quality-n{fanout_tag(args.num_neighbors)}.json", table)
    print_table(table)


if __name__ == "__main__":
    main()
