"""Validation-only hyper-parameter grids: train every point, print its best VALID metrics.

Each grid point is one model config (+ trainer settings) and one seed, trained with the
project's trainer (early stopping on validation Recall@20 by default) through
``Trainer.fit(evaluate_test=False)``: the test split is never evaluated, not even for the
winner (the benchmark harness, ``mmgcn bench``, reports test once, on the selected
settings). This script has no option that reads test, and refuses any setting that would
select on it.

Examples::

    # one model, a 2 x 3 grid, seed 0, two points trained at a time (1 thread each)
    python benchmarks/tune.py --dataset tiktok --model mmgcn \\
        --grid reg_weight=1e-4,1e-3 --grid dim=32,64,128 --train epochs=40 patience=5 \\
        --jobs 2 --log benchmarks/tuning/tiktok.md --note "MMGCN width x reg"

    # the same from a YAML file (keys: dataset, model, set, grid, train, seeds, dataset_kwargs)
    python benchmarks/tune.py --config my_grid.yaml

``--variant "k1=v1 k2=v2"`` (repeatable) adds hand-picked combinations, each crossed with
the grid. Grid, variant and ``--set`` keys are model-config fields (``reg_weight``), or trainer fields with a
``train.`` prefix (``train.lr``). Values are parsed as YAML (``1e-3``, ``true``, ``[a, b]``,
``null``); a grid's values are split on commas outside brackets.

Output: a table of every point (best valid Recall@20 / NDCG@20, best epoch, epochs run,
training seconds per epoch) on stdout, in grid order; with ``--log`` the same rows are
appended to a Markdown tuning log under a heading with the command and the date, and with
``--jsonl`` one JSON record per point (including its validation curve) is appended.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import multiprocessing as mp
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import yaml

FORBIDDEN_TRAIN_KEYS = ("test_mask", "warm_cold")
_WORKER_STATE: dict[str, Any] = {}


def parse_value(text: str) -> Any:
    """A YAML scalar or list: ``"1e-3"`` -> ``0.001``, ``"[a, b]"`` -> ``["a", "b"]``."""
    value = yaml.safe_load(text)
    # YAML 1.1 reads "1e-3" as a string (no dot): accept it as a float
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def split_values(text: str) -> list[Any]:
    """``"1e-3,[a, b],null"`` -> ``[0.001, ["a", "b"], None]`` (commas inside brackets kept)."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [parse_value(p.strip()) for p in parts if p.strip()]


def parse_assignments(items: list[str], grid: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"expected key=value, got {item!r}")
        key, text = item.split("=", 1)
        out[key.strip()] = split_values(text) if grid else parse_value(text)
    return out


def split_train_keys(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``{"train.lr": 1e-3, "dim": 64}`` -> ``({"dim": 64}, {"lr": 1e-3})``."""
    model = {k: v for k, v in values.items() if not k.startswith("train.")}
    train = {k[len("train."):]: v for k, v in values.items() if k.startswith("train.")}
    return model, train


def check_no_test(train: dict[str, Any]) -> None:
    bad = [k for k in train if k in FORBIDDEN_TRAIN_KEYS]
    if bad:
        raise SystemExit(f"train settings {bad} concern the test split, which this script never evaluates")


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _dataset(name: str, kwargs: dict[str, Any]):
    from mmgcn.data.registry import load_dataset

    key = json.dumps([name, kwargs], sort_keys=True)
    if key not in _WORKER_STATE:
        _WORKER_STATE.clear()  # one dataset per worker at a time
        _WORKER_STATE[key] = load_dataset(name, **kwargs)
    return _WORKER_STATE[key]


def run_point(job: dict[str, Any]) -> dict[str, Any]:
    """Train one point; returns its validation summary (never a test figure)."""
    from mmgcn.config import from_dict, to_dict
    from mmgcn.models.base import build_model
    from mmgcn.train.config import TrainConfig
    from mmgcn.train.trainer import Trainer
    from mmgcn.utils.seed import seed_everything

    dataset = _dataset(job["dataset"], job["dataset_kwargs"])
    train = from_dict(TrainConfig, {**job["train"], "seed": job["seed"], "progress": False}, where="train")
    seed_everything(job["seed"], deterministic=train.deterministic)
    model = build_model(job["model"], dataset, job["model_config"])
    started = time.perf_counter()
    result = Trainer(model, dataset, train, None).fit(evaluate_test=False)
    if result.test is not None:  # pragma: no cover - fit(evaluate_test=False) never tests
        raise RuntimeError("the trainer evaluated the test split; refusing to report it")
    epochs = [r for r in result.history if r.get("epoch", 0) >= 1]
    metric_k = train.metric.split("@")[1]
    return {
        "dataset": job["dataset"],
        "model": job["model"],
        "point": job["point"],
        "seed": job["seed"],
        "model_config": to_dict(model.config),
        "train": {k: v for k, v in to_dict(train).items() if k in ("epochs", "patience", "lr", "batch_size",
                                                                   "weight_decay", "metric")},
        "metric": train.metric,
        "best_valid": result.best_value,
        "best_ndcg": result.valid.get(f"ndcg@{metric_k}"),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "s_per_epoch": sum(r["train_seconds"] for r in epochs) / max(len(epochs), 1),
        "wall_s": time.perf_counter() - started,
        # per evaluation: epoch, valid metric, catalogue coverage of the top-k lists
        "curve": [[r["epoch"], round(r["valid"][train.metric], 5), round(r["valid"].get(f"coverage@{metric_k}", -1), 4)]
                  for r in result.history if "valid" in r],
        "loss": [round(r["loss"], 5) for r in epochs if r.get("loss") is not None],
    }


def format_point(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "(defaults)"


def table(rows: list[dict[str, Any]], fixed: str) -> str:
    metric = rows[0]["metric"] if rows else "recall@20"
    lines = [
        f"| point ({fixed}) | seed | valid {metric} | valid ndcg | best epoch | epochs run | s/epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ndcg = "-" if r["best_ndcg"] is None else f"{r['best_ndcg']:.4f}"
        lines.append(f"| {format_point(r['point'])} | {r['seed']} | {r['best_valid']:.4f} | {ndcg} | "
                     f"{r['best_epoch']} | {r['epochs_run']} | {r['s_per_epoch']:.2f} |")
    return "\n".join(lines)


def load_spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {"dataset": "tiktok", "model": None, "set": {}, "grid": {}, "variants": [],
                            "train": {}, "seeds": [0], "dataset_kwargs": {}}
    if args.config:
        with open(args.config, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
        unknown = set(data) - set(spec)
        if unknown:
            raise SystemExit(f"{args.config}: unknown keys {sorted(unknown)}; allowed: {sorted(spec)}")
        spec.update(data)
    if args.dataset:
        spec["dataset"] = args.dataset
    if args.model:
        spec["model"] = args.model
    spec["set"] = {**spec["set"], **parse_assignments(args.set, grid=False)}
    spec["grid"] = {**spec["grid"], **parse_assignments(args.grid, grid=True)}
    spec["variants"] = [*spec["variants"], *(parse_assignments(shlex.split(v), grid=False) for v in args.variant)]
    spec["train"] = {**spec["train"], **parse_assignments(args.train, grid=False)}
    if args.seeds is not None:
        spec["seeds"] = args.seeds
    if args.convention:
        spec["dataset_kwargs"] = {**spec["dataset_kwargs"], "convention": args.convention}
    if not spec["model"]:
        raise SystemExit("name a model (--model or 'model:' in --config)")
    check_no_test(spec["train"])
    for values in (spec["set"], spec["grid"], *spec["variants"]):
        check_no_test(split_train_keys(values)[1])
    return spec


def jobs_of(spec: dict[str, Any]) -> list[dict[str, Any]]:
    jobs = []
    variants = spec["variants"] or [{}]
    points = [{**variant, **point} for variant in variants for point in grid_points(spec["grid"])]
    for point in points:
        model_config, train_over = split_train_keys({**spec["set"], **point})
        for seed in spec["seeds"]:
            jobs.append({
                "dataset": spec["dataset"], "dataset_kwargs": spec["dataset_kwargs"], "model": spec["model"],
                "model_config": model_config, "train": {**spec["train"], **train_over},
                "point": point, "seed": int(seed),
            })
    return jobs


def append_log(path: Path, spec: dict[str, Any], rows: list[dict[str, Any]], note: str, fixed: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(shlex.quote(a) for a in ["python", "benchmarks/tune.py", *sys.argv[1:]])
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    header = f"\n### {spec['model']}: {note or format_point(spec['grid']) or 'defaults'} ({stamp})\n\n"
    body = f"`{command}`\n\n{table(rows, fixed)}\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(header + body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="YAML file with dataset/model/set/grid/train/seeds/dataset_kwargs")
    parser.add_argument("--dataset", help="dataset name (default tiktok)")
    parser.add_argument("--convention", help="split convention of a pre-split dataset (files / mmrec)")
    parser.add_argument("--model", help="registry name of the model")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="fixed settings")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="a grid axis (repeat for a product)")
    parser.add_argument("--variant", action="append", default=[], metavar='"K1=V1 K2=V2"',
                        help="one named combination of settings (repeat; each is crossed with the grid)")
    parser.add_argument("--train", nargs="*", default=[], metavar="KEY=VALUE", help="TrainConfig settings")
    parser.add_argument("--seeds", nargs="*", type=int, help="seeds (default 0)")
    parser.add_argument("--jobs", type=int, default=1, help="points trained at once (processes)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per process (default: 1 with --jobs > 1, else torch's default)")
    parser.add_argument("--log", type=Path, help="append the table to this Markdown file")
    parser.add_argument("--jsonl", type=Path, help="append one JSON record per point to this file")
    parser.add_argument("--note", default="", help="heading of the log entry")
    args = parser.parse_args(argv)
    spec = load_spec(args)
    jobs = jobs_of(spec)
    threads = args.threads or (1 if args.jobs > 1 else torch_default_threads())
    fixed = format_point(spec["set"]) if spec["set"] else "defaults"
    train_note = ", ".join(f"{k}={v}" for k, v in spec["train"].items())
    fixed = f"{fixed}; train {train_note}" if train_note else fixed
    print(f"{spec['model']} on {spec['dataset']}: {len(jobs)} runs, {args.jobs} at a time, "
          f"{threads} thread(s) each; validation only", flush=True)
    rows: list[dict[str, Any]] = []
    if args.jobs > 1:
        context = mp.get_context("spawn")
        with context.Pool(args.jobs, initializer=_init_worker, initargs=(threads,)) as pool:
            for row in pool.imap(run_point, jobs):
                rows.append(row)
                print(f"  {format_point(row['point'])} seed {row['seed']}: valid {row['metric']} "
                      f"{row['best_valid']:.4f} @ {row['best_epoch']}", flush=True)
    else:
        _init_worker(threads)
        for job in jobs:
            row = run_point(job)
            rows.append(row)
            print(f"  {format_point(row['point'])} seed {row['seed']}: valid {row['metric']} "
                  f"{row['best_valid']:.4f} @ {row['best_epoch']}", flush=True)
    print(table(rows, fixed))
    if args.log:
        append_log(args.log, spec, rows, args.note, fixed)
    if args.jsonl:
        args.jsonl.parent.mkdir(parents=True, exist_ok=True)
        with open(args.jsonl, "a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps({**row, "note": args.note}) + "\n")
    return 0


def torch_default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 2))


if __name__ == "__main__":
    sys.exit(main())
