"""Validation-only tuning: a thin front end over the benchmark's own grid engine.

Every point of the grid is trained by ``mmgcn.bench.harness.run_benchmark(grids_only=True)``
-- the same engine that selects a model's grid inside ``mmgcn bench`` (``mmgcn.bench.grid``):
early stopping on validation, the test split never evaluated, selection by the best mean
over the grid seeds. Trials are cached like bench cells (``--out``, default
``benchmarks/tuning/runs/``, not committed), so a rerun only trains new points.

Each run appends one JSON record to ``benchmarks/tuning/<dataset>/`` (the command, the
fixed settings, every point's per-seed validation metrics, best epoch, epochs run, seconds
per epoch, the selection) and re-renders ``benchmarks/tuning/<dataset>.md`` from all the
records there: the tuning log is generated, never hand-written.

Examples::

    # MMGCN learning rate x depth, seeds 0 and 1, at most 40 epochs
    python benchmarks/tune.py --dataset tiktok --model mmgcn --set latent_dim=256 \\
        --grid train.lr=1e-4,1e-3 --grid num_layers=2,3 --seeds 0 1 \\
        --train epochs=40 patience=5 --note "MMGCN rate x depth"

    # hand-picked combinations, each crossed with the grid
    python benchmarks/tune.py --dataset tiktok --model vbpr --grid reg_weight=0.01,0.1 \\
        --variant "item_bias=true" --variant "item_bias=false"

    python benchmarks/tune.py --render tiktok      # re-render the log from the records

Grid, variant and ``--set`` keys are model-config fields (``reg_weight``), or trainer
fields with a ``train.`` prefix (``train.lr``); values are parsed as YAML (``1e-3``,
``true``, ``[a, b]``, ``null``); a grid's values are split on commas outside brackets.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

TUNING_DIR = Path(__file__).resolve().parent / "tuning"
# the test split concerns no tuning: settings about it are refused
FORBIDDEN_TRAIN_KEYS = ("test_mask", "warm_cold")


def parse_value(text: str) -> Any:
    """A YAML scalar or list: ``"1e-3"`` -> ``0.001``, ``"[a, b]"`` -> ``["a", "b"]``."""
    value = yaml.safe_load(text)
    if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            return value
    return value


def split_values(text: str) -> list[Any]:
    """``"1e-3,[a, b],null"`` -> ``[0.001, ["a", "b"], None]`` (commas inside brackets kept)."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
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


def render(dataset: str, directory: Path = TUNING_DIR) -> Path:
    """Re-render ``<directory>/<dataset>.md`` from the records in ``<directory>/<dataset>/``."""
    from mmgcn.bench.grid import render_tuning_log
    from mmgcn.utils.io import atomic_write

    records = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((directory / dataset).glob("*.json"))]
    path = directory / f"{dataset}.md"
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(render_tuning_log(dataset, records))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="tiktok", help="dataset name (default tiktok)")
    parser.add_argument("--convention", help="split convention of a pre-split dataset (files / mmrec)")
    parser.add_argument("--model", help="registry name of the model (a modality subset works: mmgcn[image])")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="fixed settings")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="a grid axis (repeat)")
    parser.add_argument("--variant", action="append", default=[], metavar='"K1=V1 K2=V2"',
                        help="a hand-picked combination, crossed with the grid (repeat)")
    parser.add_argument("--train", nargs="*", default=[], metavar="KEY=VALUE", help="trainer settings")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0], help="grid seeds (default 0)")
    parser.add_argument("--note", default="", help="heading of the log entry")
    parser.add_argument("--out", default=str(TUNING_DIR / "runs"), help="where trials are cached")
    parser.add_argument("--log-dir", type=Path, default=TUNING_DIR, help="where records and logs go")
    parser.add_argument("--render", metavar="DATASET", help="only re-render DATASET's log from its records")
    args = parser.parse_args(argv)
    if args.render:
        print(f"wrote {render(args.render, args.log_dir)}")
        return 0
    if not args.model:
        raise SystemExit("name a model (--model)")

    from mmgcn.bench.config import BenchConfig, GridConfig, ModelSpec
    from mmgcn.bench.grid import split_point
    from mmgcn.bench.harness import run_benchmark
    from mmgcn.utils.io import atomic_write_json

    fixed = parse_assignments(args.set, grid=False)
    params = parse_assignments(args.grid, grid=True)
    variants = [parse_assignments(shlex.split(v), grid=False) for v in args.variant]
    train = parse_assignments(args.train, grid=False)
    fixed_model, fixed_train = split_point(fixed)
    for values in (train, fixed_train, *(split_point(p)[1] for p in [params, *variants])):
        bad = [k for k in values if k in FORBIDDEN_TRAIN_KEYS]
        if bad:
            raise SystemExit(f"trainer settings {bad} concern the test split, which tuning never evaluates")
    if not params and not variants:
        raise SystemExit("give a grid (--grid KEY=V1,V2) or variants (--variant)")
    spec = ModelSpec.parse(args.model)
    config = BenchConfig(
        dataset=args.dataset, models=(spec.name,), seeds=1, first_seed=args.seeds[0],
        train={**train, **fixed_train}, model_configs={spec.name: fixed_model},
        grids={spec.name: GridConfig(params=params, variants=tuple(variants), seeds=tuple(args.seeds))},
        dataset_kwargs={"convention": args.convention} if args.convention else {},
        out=args.out, budget_note=args.note,
    )
    run = run_benchmark(config, progress=True, plots=False, grids_only=True,
                        echo=lambda line: print(f"  {line}", flush=True))
    rows = run.results.grids[spec.name]
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    name = re.sub(r"[^a-z0-9]+", "-", f"{spec.name}-{args.note or 'grid'}".lower()).strip("-")[:60]
    record = {
        "name": name, "created": created, "note": args.note, "dataset": args.dataset, "model": spec.name,
        "command": " ".join(shlex.quote(a) for a in ["python", "benchmarks/tune.py", *(argv or sys.argv[1:])]),
        "fixed": fixed, "train": train, "params": params, "variants": variants, "seeds": list(args.seeds),
        "metric": config.metric, "rows": rows,
    }
    path = args.log_dir / args.dataset / f"{created.replace(':', '')}-{name}.json"
    atomic_write_json(path, record)
    print(f"wrote {path} and {render(args.dataset, args.log_dir)}")
    for row in rows:
        mark = "  <- selected" if row["selected"] else ""
        valid = "failed" if row["valid"] is None else f"{row['valid']:.4f}"
        print(f"  {json.dumps(row['params'], sort_keys=True)}: valid {config.metric} {valid} (mean over seeds){mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
