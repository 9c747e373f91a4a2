"""``mmgcn datasets import``: your own interaction table (and item table) as a dataset.

Example (a CSV of interactions, a CSV of items with a title, a description and an image
path per item)::

    mmgcn datasets import shop --interactions interactions.csv --items items.csv \\
        --split temporal --k-core 2

writes ``$MMGCN_DATA/shop/`` (the split ``.inter`` file with times, ``items.tsv`` with the
titles, texts and copied images, ``users.tsv`` with the original ids) and the card
``$MMGCN_DATA/cards/shop.yaml``. Then ``mmgcn extract shop --modality image`` (and
``text``) encodes the content, and ``mmgcn bench --dataset shop`` compares models.
Columns are found by their usual names (``user``/``user_id``/``userId``, ``item``/...,
``rating``, ``timestamp``/``time``/``date``, ``title``, ``description``/``tags``/...,
``image``/``image_path``/``image_url``...) or given by name or 0-based position.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from mmgcn.data.splits import METHODS


def _ratios(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.replace(":", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--ratios {text!r}: three numbers, e.g. 0.8,0.1,0.1") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"--ratios {text!r}: three numbers (train, valid, test), e.g. 0.8,0.1,0.1")
    return values  # type: ignore[return-value]


def _k_core(text: str) -> tuple[int, int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k-core {text!r}: K, or K_USER,K_ITEM") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 0:
        raise argparse.ArgumentTypeError(f"--k-core {text!r}: K, or K_USER,K_ITEM (non-negative)")
    return values[0], values[1]


def _separator(text: str) -> str:
    # shells make typing a tab awkward: accept the escapes people write
    return {"\\t": "\t", "tab": "\t", "TAB": "\t", "space": " ", "\\s": " "}.get(text, text)


def add_import_parser(sub: argparse._SubParsersAction, data_dir_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = sub.add_parser(
        "import", help="import your own interaction table (+ item table with texts and images) as a dataset",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", help="name of the new dataset (letters, digits, '.', '_', '-')")
    parser.add_argument("--interactions", required=True, metavar="FILE",
                        help="interaction table: CSV, TSV, any separator, or parquet (pyarrow)")
    parser.add_argument("--items", metavar="FILE", help="item table: one row per item with its id, texts and image")
    data_dir_arg(parser)
    parser.add_argument("--cache-dir", help="feature cache root (stale features of an earlier import are removed)")
    table = parser.add_argument_group("reading the tables")
    table.add_argument("--sep", type=_separator, help="interactions separator, e.g. ',' '\\t' '::' (default: guessed)")
    table.add_argument("--items-sep", type=_separator, help="item table separator (default: guessed)")
    table.add_argument("--no-header", action="store_true", help="the tables have no header line: give columns by position")
    table.add_argument("--encoding", default="utf-8", help="text encoding (default utf-8)")
    cols = parser.add_argument_group("columns (a name, or a 0-based position; default: guessed from usual names)")
    cols.add_argument("--user-col", help="user id column of the interactions")
    cols.add_argument("--item-col", help="item id column of the interactions")
    cols.add_argument("--rating-col", help="rating column (needed by --min-rating)")
    cols.add_argument("--timestamp-col", help="time column: epoch seconds (ms/us recognised) or dates")
    cols.add_argument("--item-id-col", help="item id column of the item table (default: as --item-col)")
    cols.add_argument("--title-col", help="title column of the item table")
    cols.add_argument("--text-cols", help="comma-separated columns joined into the item text "
                                          "(default: title + description/tags/genres/...; '' for none)")
    cols.add_argument("--image-col", help="column of image paths (relative to --image-root) or http(s) URLs")
    cols.add_argument("--image-root", help="folder relative image paths start from (default: the item table's folder)")
    cols.add_argument("--keep-image-paths", action="store_true",
                      help="record local images by absolute path instead of copying them into the dataset")
    prep = parser.add_argument_group("filtering and splitting")
    prep.add_argument("--min-rating", type=float, help="keep interactions with rating >= this")
    prep.add_argument("--k-core", type=_k_core, default=(0, 0), metavar="K[,K_ITEM]",
                      help="keep the k-core: users and items with at least K interactions (default: no filter)")
    prep.add_argument("--split", choices=METHODS, default="random",
                      help="random: per user, seeded; temporal: per user by time; global_temporal: one time cut; "
                           "loo: leave-one-out (last item test, second last valid); cold_items: hold out items "
                           "(default random)")
    prep.add_argument("--ratios", type=_ratios, default=(0.8, 0.1, 0.1), help="train,valid,test (default 0.8,0.1,0.1)")
    prep.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    card = parser.add_argument_group("card fields (optional)")
    card.add_argument("--title", help="one-line title")
    card.add_argument("--description", help="what the data is")
    card.add_argument("--licence", help="licence / terms of use")
    card.add_argument("--citation", action="append", help="a reference to cite (repeatable)")
    parser.add_argument("--force", action="store_true", help="replace an existing dataset of that name")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    import time

    from mmgcn.data.importer import import_table
    from mmgcn.data.registry import dataset_card, dataset_root

    started = time.perf_counter()
    text_cols: Any = None
    if args.text_cols is not None:
        text_cols = [c.strip() for c in args.text_cols.split(",") if c.strip()]
    dataset = import_table(
        args.name, args.interactions, args.items,
        data_dir=args.data_dir, cache_dir=args.cache_dir, sep=args.sep, items_sep=args.items_sep,
        header=not args.no_header, encoding=args.encoding,
        user_col=args.user_col, item_col=args.item_col, rating_col=args.rating_col,
        timestamp_col=args.timestamp_col, item_id_col=args.item_id_col, title_col=args.title_col,
        text_cols=text_cols, image_col=args.image_col, image_root=args.image_root,
        min_rating=args.min_rating, k_core=args.k_core, split=args.split, ratios=args.ratios, seed=args.seed,
        copy_images=not args.keep_image_paths, title=args.title, description=args.description,
        licence=args.licence, citation=args.citation, overwrite=args.force, progress=not args.no_progress,
    )
    seconds = time.perf_counter() - started
    card = dataset_card(args.name, args.data_dir)
    report = card["import_report"]
    columns = card["source"]["columns"]
    print(f"imported {args.name} in {seconds:.1f} s: {dataset.n_users:,} users x {dataset.n_items:,} items")
    print(f"  read       {report['rows']:,} rows of {args.interactions} (columns: "
          + ", ".join(f"{k} = {v!r}" for k, v in columns.items()) + ")")
    dropped = []
    if "below_min_rating" in report:
        dropped.append(f"{report['below_min_rating']:,} below rating {args.min_rating:g}")
    if "filtering" in report:
        f = report["filtering"]
        dropped.append(f"{f['interactions_removed']:,} by the ({f['k_user']}, {f['k_item']})-core")
    if report.get("duplicates_removed"):
        dropped.append(f"{report['duplicates_removed']:,} repeated (user, item) pairs")
    print(f"  kept       {report['interactions']:,} interactions" + (f" (dropped {'; '.join(dropped)})" if dropped else ""))
    split = card["split"]
    counts = card["statistics"]["interactions"]
    print(f"  split      {split['method']} {'/'.join(f'{r:g}' for r in split['ratios'])}, seed {split['seed']}: "
          f"train {counts['train']:,} / valid {counts['valid']:,} / test {counts['test']:,}"
          + (", with event times" if dataset.timestamps is not None else ""))
    content = report.get("content")
    if content:
        parts = [f"title {content['items_with_title']:,}", f"text {content['items_with_text']:,}"]
        if "images" in content:
            images = content["images"]
            parts.append(f"image {images['stored']:,}" + (f" ({images['missing']:,} not found or not fetched)"
                                                          if images["missing"] else ""))
        print(f"  content    {' / '.join(parts)} of {dataset.n_items:,} items"
              + (f"; {content['items_without_a_row']:,} items have no row in {args.items}"
                 if content["items_without_a_row"] else ""))
    print(f"  wrote      {dataset_root(card, args.data_dir)} and its card {card['_card_file']}")
    hints = [spec["extract"] for spec in (card.get("modalities") or {}).values() if spec.get("extract")]
    if hints:
        print("  next       " + "; ".join(hints))
    print(f"             mmgcn bench --dataset {args.name}")
    return 0
