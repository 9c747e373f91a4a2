"""``mmgcn datasets``: list the datasets, show one's statistics, import your own, download, convert.

::

    mmgcn datasets list [--data-dir DIR]
    mmgcn datasets info NAME [--data-dir DIR] [--card FILE] [--convention NAME] [--split METHOD] [--seed N]
    mmgcn datasets import NAME --interactions FILE [--items FILE] [--sep SEP] [--user-col C] ...
    mmgcn datasets download NAME [--data-dir DIR] [--mirror URL] [--force]
    mmgcn datasets convert NAME --to mmrec OUT_DIR [--data-dir DIR] [--convention ...] [--split ...]

``list``, ``info`` and ``--help`` do not import torch (they stay light; a test checks it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from mmgcn.cli.importing import add_import_parser
from mmgcn.data import paths
from mmgcn.data.dataset import DataError, Dataset
from mmgcn.data.registry import (
    CARDS_DIRNAME,
    CARDS_ENV,
    card_paths,
    cards_dir,
    dataset_card,
    dataset_root,
    load_dataset,
    read_card,
)
from mmgcn.data.splits import METHODS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("datasets", help="list, inspect, download and convert datasets")
    sub = parser.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)

    def data_dir_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir",
            help=f"raw data root holding NAME/ (default: ${paths.DATA_ENV}, else {paths.data_root(None)})",
        )

    def load_args(p: argparse.ArgumentParser) -> None:
        data_dir_arg(p)
        p.add_argument("--card", help="read this card file instead of searching the cards (docs/cards.md)")
        p.add_argument("--cache-dir", help=f"cache root for extracted features (default: ${paths.CACHE_ENV})")
        p.add_argument("--convention", help="pre-split data: which file is valid / test (a name from the card's "
                                            "split.conventions; `mmgcn datasets info NAME` shows the one used)")
        p.add_argument("--split", choices=METHODS, help="re-split with this method (default: the card's split)")
        p.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
        p.add_argument("--no-verify", action="store_true", help="warn instead of failing on sha256 mismatches")

    p_list = sub.add_parser(
        "list", help="datasets with a card and whether their files are present",
        description=f"Cards are read from ${CARDS_ENV} (files or folders, '{os.pathsep}'-separated), "
        f"<data root>/{CARDS_DIRNAME}/ and the built-in cards; the first card of a name wins. "
        "A card that cannot be read shows as an error line.",
    )
    data_dir_arg(p_list)
    p_list.set_defaults(func=_list)

    p_info = sub.add_parser("info", help="load a dataset and print its statistics")
    p_info.add_argument("name")
    load_args(p_info)
    p_info.add_argument("--json", action="store_true", help="print the stats as JSON")
    p_info.set_defaults(func=_info)

    add_import_parser(sub, data_dir_arg)

    p_dl = sub.add_parser("download", help="fetch missing files from their upstream URLs (sha256-verified)")
    p_dl.add_argument("name")
    data_dir_arg(p_dl)
    p_dl.add_argument("--mirror", help="base URL serving the same file names instead of the card's URLs")
    p_dl.add_argument("--force", action="store_true", help="re-download files that are present")
    p_dl.set_defaults(func=_download)

    p_conv = sub.add_parser("convert", help="write a dataset in another layout")
    p_conv.add_argument("name")
    p_conv.add_argument("--to", required=True, choices=["mmrec"], help="target layout")
    p_conv.add_argument("out_dir", metavar="DIR", help="output folder")
    load_args(p_conv)
    p_conv.add_argument("--force", action="store_true", help="overwrite an existing <name>.inter")
    p_conv.set_defaults(func=_convert)


def _load(args: argparse.Namespace) -> tuple[Dataset, float]:
    start = time.perf_counter()
    dataset = load_dataset(
        args.name,
        args.data_dir,
        args.cache_dir,
        convention=args.convention,
        split=args.split,
        seed=args.seed,
        verify=not args.no_verify,
        card=args.card,
    )
    return dataset, time.perf_counter() - start


def _size(stats: Any) -> str:
    if isinstance(stats, dict) and isinstance(stats.get("n_users"), int) and isinstance(stats.get("n_items"), int):
        return f"{stats['n_users']:,} x {stats['n_items']:,}"
    return "?"


def _origin(path: Path, data_dir: str | None) -> str:
    if path.parent.resolve() == cards_dir().resolve():
        return "built-in"
    if path.parent == paths.data_root(data_dir) / CARDS_DIRNAME:
        return "data root"
    return str(path)


def _list(args: argparse.Namespace) -> int:
    rows = [("name", "format", "users x items", "modalities", "card", f"files in {paths.data_root(args.data_dir)}")]
    errors = []
    for name, path in card_paths(args.data_dir).items():
        try:
            card = read_card(path, name)
        except DataError as exc:  # one bad card must not hide the others
            errors.append(f"{name}: error: {exc}")
            rows.append((name, "?", "?", "?", _origin(path, args.data_dir), "error: card unreadable (below)"))
            continue
        root = dataset_root(card, args.data_dir)
        missing = [f for f, e in card["files"].items() if not e.get("optional") and not (root / f).is_file()]
        status = "present" if not missing else f"missing {len(missing)} of {len(card['files'])}"
        modalities = ", ".join(card.get("modalities") or {}) or "-"
        rows.append((name, card["format"], _size(card.get("statistics")), modalities,
                     _origin(path, args.data_dir), status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for line in errors:
        print(line)
    return 0


def _quantiles(q: dict[str, float]) -> str:
    labels = {"0.0": "min", "0.25": "25%", "0.5": "median", "0.75": "75%", "0.9": "90%", "0.99": "99%", "1.0": "max"}
    return " / ".join(f"{labels.get(k, k)} {v:.4g}" for k, v in q.items())


def format_stats(stats: dict[str, Any], title: str | None = None) -> list[str]:
    """The ``info`` table as lines of text."""
    inter = stats["interactions"]
    lines = [f"{stats['name']}" + (f" -- {title}" if title else "")]

    def row(label: str, text: str) -> None:
        lines.append(f"  {label:<18}{text}")

    row("users", f"{stats['n_users']:,}")
    row("items", f"{stats['n_items']:,}")
    row(
        "interactions",
        f"train {inter['train']:,} / valid {inter['valid']:,} / test {inter['test']:,} "
        f"(total {stats['total_interactions']:,})",
    )
    row("density", f"{100 * stats['density']:.4f}%")
    if "timestamps" in stats:
        row("event times", "yes (kept in every split)" if stats["timestamps"] else "no")
    split = stats.get("split")
    if isinstance(split, dict):
        detail = ", ".join(
            f"{k.replace('_', ' ')} {'/'.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in split.items()
            if k not in ("method", "interactions")
        )
        row("split", f"{split.get('method')}" + (f" ({detail})" if detail else ""))
    if stats.get("split_convention"):
        row("split convention", str(stats["split_convention"]))
    row("train degree", "users: " + _quantiles(stats["train_user_degree"]))
    row("", "items: " + _quantiles(stats["train_item_degree"]))
    row(
        "cold users",
        f"{stats['users_without_train']:,} users without a train interaction; "
        + ", ".join(
            f"{s}: {stats[s]['cold_users']:,} of {stats[s]['users']:,} {s} users" for s in ("valid", "test")
        ),
    )
    row(
        "cold items",
        f"{stats['items_without_train']:,} items without a train edge; "
        + ", ".join(
            f"{s}: {stats[s]['cold_items']:,} items ({stats[s]['interactions_on_cold_items']:,} interactions)"
            for s in ("valid", "test")
        ),
    )
    overlaps = {k: v for k, v in stats["split_overlaps"].items() if v}
    if overlaps:
        row("split overlaps", ", ".join(f"{k} {v:,}" for k, v in overlaps.items()))
    modalities = stats["modalities"]
    row(
        "modalities",
        f"{len(modalities)}: " + ", ".join(f"{m} {d}-d" for m, d in modalities.items()) if modalities else "none",
    )
    missing = {m: n for m, n in (stats.get("items_without_content") or {}).items() if n}
    if missing:
        row("no content", ", ".join(f"{m}: {n:,} items (masked)" for m, n in missing.items()))
    if "content" in stats:
        row("content", " / ".join(f"{k} {v:,}" for k, v in stats["content"].items()) + f" of {stats['n_items']:,} items")
    return lines


def _jsonable(obj: Any) -> Any:
    return obj.tolist() if hasattr(obj, "tolist") else str(obj)


def _info(args: argparse.Namespace) -> int:
    dataset, seconds = _load(args)
    stats = dataset.stats()
    if args.json:
        print(json.dumps({**stats, "load_seconds": seconds}, indent=2, default=_jsonable))
        return 0
    card = dataset_card(args.name, args.data_dir, args.card)
    for line in format_stats(stats, card.get("title")):
        print(line)
    extra = dataset.info.get("content")
    if isinstance(extra, dict):
        print("  " + f"{'content detail':<18}" + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in extra.items()))
    absent = {m: spec for m, spec in (card.get("modalities") or {}).items() if m not in stats["modalities"]}
    hints = [spec.get("extract") for spec in absent.values() if isinstance(spec, dict) and spec.get("extract")]
    if hints:
        print(f"  {'extract features':<18}" + "; ".join(hints))
    id_maps = dataset.info.get("id_maps")
    if isinstance(id_maps, dict) and len(id_maps.get("item_ids", ())):
        users, items = id_maps["user_ids"], id_maps["item_ids"]
        print(f"  {'original ids':<18}users {users[0]} .. {users[-1]}, items {items[0]} .. {items[-1]}")
    print(f"  {'source':<18}{dataset.source}")
    print(f"  {'loaded in':<18}{seconds:.2f} s (read, sha256 check, split)")
    return 0


def _download(args: argparse.Namespace) -> int:
    from mmgcn.data.download import download_dataset, manual_steps

    root = download_dataset(args.name, args.data_dir, mirror=args.mirror, force=args.force)
    print(f"{args.name}: all downloadable files present and verified in {root}")
    for item, note in manual_steps(args.name).items():
        print(f"  not downloadable automatically: {item} -- {note}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from mmgcn.data.readers.mmrec import write_mmrec

    dataset, _ = _load(args)
    try:
        inter = write_mmrec(dataset, args.out_dir, overwrite=args.force)
    except FileExistsError as exc:  # (mmgcn.cli.main reports OSErrors the same way, exit 2)
        print(f"mmgcn: error: {exc}", file=sys.stderr)
        return 2
    files = [inter.name] + [f"{m}_feat.npy" for m in dataset.features] + [f"{inter.stem}.json"]
    total = sum(dataset.split(s).nnz for s in ("train", "valid", "test"))
    print(f"wrote {inter.parent}: {', '.join(files)} ({total:,} interactions, x_label 0/1/2 = train/valid/test)")
    if dataset.info.get("split_convention"):
        print(f"  split convention: {dataset.info['split_convention']}")
    return 0
