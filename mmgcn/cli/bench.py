"""``mmgcn bench`` (models x seeds on one dataset) and ``mmgcn report`` (rebuild tables and plots).

Examples::

    mmgcn bench --config benchmarks/configs/tiktok.yaml            # quick default run
    mmgcn bench --dataset tiktok --models mmgcn,lightgcn,popular --seeds 3 --full
    mmgcn bench --dataset tiktok --models "mmgcn,mmgcn[image],mmgcn[audio]"   # ablation
    mmgcn bench --dataset amazon-baby --models lightgcn,bpr,popular
    mmgcn report benchmarks/results/

Without ``--config``, ``benchmarks/configs/<dataset>.yaml`` is used when it exists under
the current directory (the dataset defaults to ``tiktok``), else the built-in defaults.
Flags override the file; ``--set key=value`` reaches any config key (dotted for nested
ones, e.g. ``--set train.epochs=5``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from mmgcn.config import apply_overrides

CONFIG_DIR = Path("benchmarks") / "configs"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="benchmark models x seeds on a dataset: tables (md/csv/json), significance, plots",
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("--config", type=Path, help="benchmark YAML (default: benchmarks/configs/<dataset>.yaml if present)")
    bench.add_argument("--dataset", help="dataset name (tiktok, amazon-baby, ml-100k, ...)")
    bench.add_argument("--models", help="comma-separated model specs, e.g. mmgcn,lightgcn,popular or mmgcn[image]")
    bench.add_argument(
        "--seeds", type=int,
        help="seeds per model; also caps the config's per-model counts (model_seeds), so that "
        "--seeds 1 runs one seed of every model",
    )
    bench.add_argument("--full", action="store_true", help="the complete protocol (the config's full: section)")
    bench.add_argument("--force", action="store_true", help="re-run finished cells too")
    bench.add_argument("--out", help="results root (default benchmarks/results)")
    bench.add_argument("--protocol", choices=("standard", "cold-start"), help="evaluation protocol")
    bench.add_argument("--data-dir", help="raw data root (default $MMGCN_DATA)")
    bench.add_argument("--device", help="torch device: cpu, cuda, cuda:N, auto")
    bench.add_argument("--nproc", type=int, default=1,
                       help="data-parallel ranks per cell on this machine (DistributedDataParallel; gloo on CPU, "
                            "NCCL on GPUs); default 1")
    bench.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override any config key (repeatable), e.g. --set train.epochs=5")
    bench.add_argument("--no-grids", action="store_true", help="ignore the config's grids (model configs as given)")
    bench.add_argument("--dry-run", action="store_true",
                       help="list every cell and whether it is finished, resumes or runs; train nothing")
    bench.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    bench.add_argument("--no-progress", action="store_true", help="no progress bars")
    bench.add_argument("--keep-checkpoints", action="store_true", help="keep each cell's model checkpoints")
    bench.set_defaults(func=run_bench)

    report = subparsers.add_parser(
        "report",
        help="rebuild benchmark tables and plots from results.json files",
        description="Rebuild results.md, results.csv and the PNG figures of every benchmark folder "
        "(DIR itself or its sub-folders) from their results.json.",
    )
    report.add_argument("directory", nargs="?", type=Path, default=Path("benchmarks") / "results",
                        help="results root or one dataset folder (default benchmarks/results)")
    report.add_argument("--no-plots", action="store_true", help="tables only")
    report.add_argument("--recompute", action="store_true",
                        help="recompute the seed-aware comparisons from each folder's per_user.npz")
    report.add_argument("--quiet", action="store_true", help="do not print the tables")
    report.add_argument("--readme", type=Path, metavar="FILE",
                        help="also regenerate FILE's marked result blocks (<!-- mmgcn:results FOLDER -->)")
    report.add_argument("--published", type=Path, default=Path("benchmarks") / "published.yaml",
                        help="published figures shown beside ours (default benchmarks/published.yaml)")
    report.set_defaults(func=run_report)


def _config_path(args: argparse.Namespace) -> Path | None:
    if args.config is not None:
        if not args.config.is_file():
            raise FileNotFoundError(f"--config {args.config}: no such file")
        return args.config
    candidate = CONFIG_DIR / f"{args.dataset or 'tiktok'}.yaml"
    return candidate if candidate.is_file() else None


def _cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    from mmgcn.bench.config import parse_model_list

    values: dict[str, Any] = apply_overrides({}, args.overrides)
    flags = {
        "dataset": args.dataset,
        "models": list(parse_model_list(args.models)) if args.models is not None else None,
        "seeds": args.seeds,
        "out": args.out,
        "protocol": args.protocol,
        "data_dir": args.data_dir,
        "device": args.device,
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    return values


def run_bench(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from mmgcn.bench.config import load_bench_config
    from mmgcn.bench.harness import run_benchmark
    from mmgcn.bench.runner import TrainerRunner
    from mmgcn.bench.tables import to_markdown

    path = _config_path(args)
    config = load_bench_config(path, full=args.full, overrides=_cli_overrides(args))
    from mmgcn.train.config import check_device

    check_device(config.device)  # a missing GPU fails now, not after the dataset has loaded
    if args.no_grids:
        # an empty mapping cannot replace one through --set (command-line mappings merge), hence the flag
        config = dataclasses.replace(config, grids={})
    if args.seeds is not None:
        # model_seeds lowers a model's count below the run's (a deterministic model, an
        # ablation): an explicit --seeds caps those counts instead of being outvoted by them
        capped = {name: min(count, args.seeds) for name, count in config.model_seeds.items()}
        config = dataclasses.replace(config, model_seeds=capped)
    print(f"mmgcn bench: {config.dataset}, {len(config.models)} models x {config.seeds} seeds "
          f"({config.mode} run; config: {path or 'built-in defaults'})", flush=True)
    runner = TrainerRunner(progress=not args.no_progress, keep_checkpoints=args.keep_checkpoints, nproc=args.nproc)
    _resolve_every_cell(config, runner)  # bad model / trainer keys fail before the dataset loads
    if args.dry_run:
        from collections import Counter

        from mmgcn.bench.harness import dataset_arguments, plan_benchmark
        from mmgcn.data.registry import load_dataset

        dataset = load_dataset(config.dataset, data_dir=config.data_dir, **dataset_arguments(config))
        plan = plan_benchmark(config, runner, dataset)
        for label, state in plan:
            print(f"  {state:<10} {label}")
        counts = Counter(state for _, state in plan)
        print("dry run: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
        return 0
    with logging_redirect_tqdm():
        run = run_benchmark(
            config,
            runner=runner,
            force=args.force,
            progress=not args.no_progress,
            plots=not args.no_plots,
            echo=lambda line: print(f"  {line}", flush=True),
        )
    print()
    print(to_markdown(run.results))
    print(f"cells: {run.ran} ran, {run.skipped} skipped (finished earlier), {run.restored} restored "
          f"(from the committed results.json), {run.failed} failed; "
          f"results in {run.folder}/")
    if run.failed:
        print(f"mmgcn bench: {run.failed} cell(s) failed; see the 'Failed cells' section and the "
              f"error.txt in each failed cell's staging folder (cells/<model>/.seed-<k>.partial/)", file=sys.stderr)
        return 1
    return 0


def _resolve_every_cell(config: Any, runner: Any) -> None:
    """Resolve each model's config and grid point now, as the harness will (ConfigError on a bad key)."""
    from mmgcn.bench.grid import split_point
    from mmgcn.config import merge

    for spec in config.specs:
        grid = config.grid_for(spec)
        base = config.model_config_for(spec)
        for point in grid.points() if grid is not None else [{}]:
            model_overrides, train_overrides = split_point(point)
            runner.resolve(spec, {**base, **model_overrides}, merge(config.train_config_for(spec), train_overrides), config)


def run_report(args: argparse.Namespace) -> int:
    from mmgcn.bench.report import rebuild
    from mmgcn.bench.tables import to_markdown

    reports = rebuild(args.directory, plots=not args.no_plots, recompute=args.recompute)
    if args.readme is not None:
        from mmgcn.bench.readme import update_readme

        # blocks name folders under the results root: DIR itself, or DIR's parent when DIR is one folder
        root = args.directory.parent if (args.directory / "results.json").is_file() else args.directory
        changed = update_readme(args.readme, root, args.published)
        print(f"{args.readme}: generated blocks {'rewritten' if changed else 'already up to date'}")
    for report in reports:
        if not args.quiet:
            print(to_markdown(report.results))
        print(f"rebuilt {report.folder}: " + ", ".join(sorted(p.name for p in report.files.values())))
    return 0
