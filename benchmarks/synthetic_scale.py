"""Time and peak memory of the synthetic generator at scale (default 1M users x 100k items).

Usage::

    python benchmarks/synthetic_scale.py                      # 1M x 100k, 20 per user
    python benchmarks/synthetic_scale.py --users 100000 --no-dataset

Prints, per phase, wall time and the process's peak RSS (``resource.getrusage``; the
peak never goes down, so each line is the peak so far). Phases: importing the package
(torch dominates), generating the log and features (:func:`synthetic_log`), and splitting
+ building the validated :class:`Dataset` (:func:`make_dataset`).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time


def peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--per-user", type=float, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="random")
    parser.add_argument("--no-dataset", action="store_true", help="stop after generating the log")
    args = parser.parse_args()

    start = time.perf_counter()
    from mmgcn.data.prepare import make_dataset
    from mmgcn.data.synthetic import synthetic_log

    print(f"import            {time.perf_counter() - start:8.2f} s   peak RSS {peak_rss_mib():8.0f} MiB")
    start = time.perf_counter()
    log, features, planted = synthetic_log(
        args.users, args.items, interactions_per_user=args.per_user, seed=args.seed
    )
    gen_s = time.perf_counter() - start
    feat_mib = sum(f.nbytes for f in features.values()) / 2**20
    print(
        f"generate log      {gen_s:8.2f} s   peak RSS {peak_rss_mib():8.0f} MiB   "
        f"{len(log):,} interactions ({len(log) / gen_s / 1e6:.2f} M/s), features {feat_mib:.0f} MiB, "
        f"user tastes stored: {planted['user_tastes'] is not None}"
    )
    if args.no_dataset:
        return
    start = time.perf_counter()
    dataset = make_dataset(
        log, name="synthetic", method="cold_items", warm_method=args.split, seed=args.seed,
        cold_item_fraction=0.05, features=features, info={"planted": planted},
    )
    build_s = time.perf_counter() - start
    print(f"split + Dataset   {build_s:8.2f} s   peak RSS {peak_rss_mib():8.0f} MiB   {dataset!r}")
    start = time.perf_counter()
    stats = dataset.stats()
    print(
        f"stats()           {time.perf_counter() - start:8.2f} s   peak RSS {peak_rss_mib():8.0f} MiB   "
        f"cold items valid/test {stats['valid']['cold_items']}/{stats['test']['cold_items']}, "
        f"train item degree median {stats['train_item_degree']['0.5']:.0f} max {stats['train_item_degree']['1.0']:.0f}"
    )


if __name__ == "__main__":
    main()
