"""``mmgcn recommend``: explained top-k lists from a trained run, and cold-start for a new item.

Examples::

    mmgcn recommend runs/ml-100k-mmgcn --user 42 -k 10
    mmgcn recommend runs/ml-100k-mmgcn --new-item poster.jpg --text "Toy Story (1995) Animation"

``--user`` prints the user's top-k items -- exactly ``Recommender.recommend``'s list: the
run's item-representation policy, the user's train and valid items masked (``--mask`` to
change it), ties broken by the lower item id as in the evaluator -- with, per item, each
part's signed contribution to the score and
its share, ``contribution / sum of |contributions|`` (signed; the absolute shares add up to
100%), and the item's content-only score (no ID embedding, no graph edges).
``--new-item IMAGE`` / ``--text TEXT`` / ``--audio FILE`` embeds an unseen item with the
encoders that produced the dataset's features (read from the feature-cache manifests) and
prints the users it would be recommended to most strongly. Definitions:
:mod:`mmgcn.eval.explain`.

Ids: for a dataset with id maps (e.g. one made by ``mmgcn datasets import``) ``--user``
takes the original user id (``--user-index`` the dataset's index) and the lists show the
original item ids beside the indices; titles are shown where the dataset has them.
``--format json`` / ``csv`` print the same lists as records (one per recommended item or
user), for scripts.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmgcn.errors import ConfigError

FORMATS = ("table", "json", "csv")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recommend", help="explained top-k items for a user, or the users for a new item",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by 'mmgcn train'")
    parser.add_argument("--user", action="append",
                        help="user id (repeatable): the original id for datasets with id maps (imported ones), "
                             "else the user index")
    parser.add_argument("--user-index", type=int, action="append", help="user index 0..n_users-1 (repeatable)")
    parser.add_argument("--new-item", metavar="IMAGE", help="image file (e.g. a poster) of an unseen item")
    parser.add_argument("--text", help="text of an unseen item (as the dataset's texts: title, genres, plot)")
    parser.add_argument("--audio", metavar="FILE", help="audio file of an unseen item")
    parser.add_argument("-k", type=int, default=10, help="list length (default 10)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")
    parser.add_argument("--mask", default="train+valid", metavar="SPLITS",
                        help="splits whose items of the user are left out, joined by '+' "
                             "(default 'train+valid', as the evaluator at test time; 'none' keeps them)")
    parser.add_argument("--data-dir", help="raw data root (default: the one the run recorded)")
    parser.add_argument("--device", help="torch device (default: the run's)")
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="table (default, with explanations), json (a list of records) or csv (one row per entry)")
    parser.add_argument("--allow-data-change", action="store_true",
                        help="recommend even though the data differ from the run's (a warning is printed)")
    parser.set_defaults(func=run_recommend)


def _title(dataset: Any, item: int) -> str:
    titles = dataset.content.titles if dataset.content is not None else None
    if not titles or titles[item] is None:
        return ""
    return titles[item]


def _id_maps(dataset: Any) -> tuple[Any, Any] | None:
    """``(user_ids, item_ids)``: original id per index, or ``None`` when the dataset has no maps."""
    maps = dataset.info.get("id_maps")
    if not isinstance(maps, dict) or maps.get("user_ids") is None or maps.get("item_ids") is None:
        return None
    return maps["user_ids"], maps["item_ids"]


def resolve_users(dataset: Any, users: Sequence[str] | None, indices: Sequence[int] | None) -> list[int]:
    """User indices from ``--user`` (original ids where the dataset has id maps, else indices)
    and ``--user-index``, in the order given."""
    out = []
    maps = _id_maps(dataset)
    lookup = None
    if maps is not None and users:
        lookup = {str(original): index for index, original in enumerate(maps[0])}
    for value in users or ():
        if lookup is not None:
            if str(value) not in lookup:
                example = ", ".join(str(u) for u in maps[0][:3])
                raise ConfigError(
                    f"--user {value!r}: no such user id in {dataset.name} (its ids look like {example}, ...; "
                    f"--user-index N takes an index 0..{dataset.n_users - 1})"
                )
            out.append(lookup[str(value)])
            continue
        try:
            index = int(value)
        except ValueError:
            raise ConfigError(f"--user {value!r}: {dataset.name} has no id maps; give a user index "
                             f"0..{dataset.n_users - 1}") from None
        out.append(index)
    out.extend(indices or ())
    for index in out:
        if not 0 <= index < dataset.n_users:
            raise ConfigError(f"--user {index}: {dataset.name} has user ids 0..{dataset.n_users - 1} (indices)")
    return out


def _table(header: list[str], rows: list[list[str]], left: int) -> list[str]:
    """Aligned text columns: column ``left`` (a title) left-aligned, the others right-aligned."""
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [str(v).ljust(w) if c == left else str(v).rjust(w) for c, (v, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return lines


def _definitions(parts: Sequence[str], model: Any, content_only_column: bool = True) -> list[str]:
    model_name = model.name
    if not parts:
        return [f"({model_name} is not additive over parts -- hidden layers after concatenation or an MLP "
                f"score head -- so its scores cannot be split by modality)"]
    lines = [
        "per part: contribution <user part, item part> (the contributions sum to the score) and its signed "
        "share, contribution / sum of |contributions| (absolute shares add up to 100%)",
    ]
    if "id" not in parts and model.uses_content and content_only_column:
        lines.append(f"({model_name} adds the ID embeddings inside every modality's layers: there is no separate "
                     f"ID part; 'content-only' below scores the item without its ID embedding and graph edges)")
    return lines


def parse_mask(text: str) -> tuple[str, ...]:
    """``"train+valid"`` -> ``("train", "valid")``; ``"none"`` -> ``()``; the test split may not be masked."""
    if text.strip().lower() in ("none", ""):
        return ()
    splits = tuple(s.strip() for s in text.split("+") if s.strip())
    bad = [s for s in splits if s not in ("train", "valid")]
    if bad:
        raise ConfigError(f"--mask {text!r}: may name train and valid (joined by '+') or 'none', not {bad}")
    return splits


def user_records(run: Any, user: int, k: int, mask: tuple[str, ...]) -> tuple[list[dict[str, Any]], list[str]]:
    """The explained top-``k`` of ``user`` as records (one per item) and the part names."""
    from mmgcn.eval.explain import explain_user

    model, dataset = run.model, run.dataset
    explanations = explain_user(model, dataset, user, k=k, exclude=mask)
    parts = list(explanations[0].contributions) if explanations else []
    maps = _id_maps(dataset)
    records = []
    for e in explanations:
        record: dict[str, Any] = {"user": int(user)}
        if maps is not None:
            record["user_id"] = str(maps[0][user])
        record.update(rank=int(e.rank), item=int(e.item))
        if maps is not None:
            record["item_id"] = str(maps[1][e.item])
        record.update(title=_title(dataset, e.item), score=float(e.score),
                      contributions={p: float(v) for p, v in e.contributions.items()},
                      shares={p: float(v) for p, v in e.shares.items()} if parts else {},
                      content_only=None if e.content_only is None else float(e.content_only))
        records.append(record)
    return records, parts


def _print_user(run: Any, user: int, records: list[dict[str, Any]], parts: list[str], mask: tuple[str, ...]) -> None:
    model, dataset = run.model, run.dataset
    maps = _id_maps(dataset)
    known = sum(int(dataset.split(s)[user].nnz) for s in mask)
    masked = f"the user's {known} {'+'.join(mask)} items left out" if mask else "nothing masked"
    who = f"user {maps[0][user]} (index {user})" if maps is not None else f"user {user}"
    print(f"top {len(records)} for {who} ({model.name} on {dataset.name}, {run.checkpoint} checkpoint, "
          f"epoch {run.epoch}; {masked}; items without train edges represented as "
          f"{'new items, from content' if model.config.edgeless_items == 'content' else 'their own embedding'})")
    for line in _definitions(parts, model):
        print(f"  {line}")
    with_content = any(r["content_only"] is not None for r in records)
    with_titles = any(r["title"] for r in records)
    with_ids = maps is not None
    header = ["rank", "item", *(["id"] if with_ids else []), *(["title"] if with_titles else []), "score", *parts]
    if with_content:
        header += ["content-only", "ID+graph"]
    rows = []
    for r in records:
        row = [str(r["rank"]), str(r["item"]), *([r["item_id"]] if with_ids else []),
               *([r["title"]] if with_titles else []), f"{r['score']:.3f}",
               *(f"{r['contributions'][p]:+.3f} ({100 * r['shares'][p]:+.0f}%)" for p in parts)]
        if with_content:
            row += [f"{r['content_only']:.3f}", f"{r['score'] - r['content_only']:+.3f}"]
        rows.append(row)
    title_column = header.index("title") if with_titles else -1
    for line in _table(header, rows, left=title_column):
        print(f"  {line}")
    if with_content:
        print("  content-only: the item's score from its features alone, as if it were a new item; "
              "ID+graph = score - content-only, what its ID embedding and train interactions add")


def _flat(record: dict[str, Any], parts: Sequence[str]) -> dict[str, Any]:
    """A record as one CSV row: the contributions and shares in columns of their own."""
    row = {k: v for k, v in record.items() if k not in ("contributions", "shares")}
    for p in parts:
        row[f"{p}_contribution"] = record["contributions"].get(p)
        row[f"{p}_share"] = record["shares"].get(p)
    return row


def _emit(records: list[dict[str, Any]], parts: Sequence[str], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(records, indent=2))
        return
    rows = [_flat(r, parts) for r in records]
    columns = list(dict.fromkeys(c for row in rows for c in row))
    writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def _new_item(run: Any, args: argparse.Namespace) -> tuple[Any, list[Any], list[str]]:
    from mmgcn.eval.explain import explain_new_item, model_modalities
    from mmgcn.features.new_items import encode_new_item

    model, dataset = run.model, run.dataset
    if not model.uses_content:
        from mmgcn.models.base import NewItemsUnsupportedError

        raise NewItemsUnsupportedError(
            f"{run.run_dir}: model '{model.name}' reads no item content (ID only): it cannot represent a new item; "
            f"train a content model (mmgcn, vbpr, concat, attention) for cold-start recommendations"
        )
    device = str(next(model.parameters()).device)
    encoded = encode_new_item(dataset, {"image": args.new_item, "text": args.text, "audio": args.audio},
                              model_modalities(model, dataset), device=device)
    explanations = explain_new_item(model, dataset, encoded.features, k=args.k)
    parts = list(explanations[0].contributions) if explanations else []
    return encoded, explanations, parts


def new_item_records(run: Any, explanations: list[Any], parts: list[str]) -> list[dict[str, Any]]:
    maps = _id_maps(run.dataset)
    records = []
    for e in explanations:
        record: dict[str, Any] = {"rank": int(e.rank), "user": int(e.user)}
        if maps is not None:
            record["user_id"] = str(maps[0][e.user])
        record.update(score=float(e.score), contributions={p: float(v) for p, v in e.contributions.items()},
                      shares={p: float(v) for p, v in e.shares.items()} if parts else {},
                      catalogue_rank=None if e.catalogue_rank is None else int(e.catalogue_rank))
        records.append(record)
    return records


def _print_new_item(run: Any, encoded: Any, records: list[dict[str, Any]], parts: list[str]) -> None:
    model, dataset = run.model, run.dataset
    maps = _id_maps(dataset)
    print(f"new item for {model.name} on {dataset.name} ({run.checkpoint} checkpoint, epoch {run.epoch}):")
    for modality, source in encoded.sources.items():
        print(f"  {modality}: {source}")
    for kind in encoded.ignored:
        print(f"  {kind}: ignored (the model reads no {kind} features)")
    print(f"top {len(records)} users for it (content only: no ID embedding, no interactions)")
    for line in _definitions(parts, model, content_only_column=False):
        print(f"  {line}")
    header = ["rank", "user", *(["id"] if maps is not None else []), "score", *parts,
              "place among the user's unseen items"]
    rows = [[str(r["rank"]), str(r["user"]), *([r["user_id"]] if maps is not None else []), f"{r['score']:.3f}",
             *(f"{r['contributions'][p]:+.3f} ({100 * r['shares'][p]:+.0f}%)" for p in parts), str(r["catalogue_rank"])]
            for r in records]
    for line in _table(header, rows, left=-1):
        print(f"  {line}")


def run_recommend(args: argparse.Namespace) -> int:
    from mmgcn.train.loading import load_run

    new_item = any(v is not None for v in (args.new_item, args.text, args.audio))
    users_given = bool(args.user) or bool(args.user_index)
    if new_item == users_given:
        raise ConfigError("give either --user ID / --user-index N (explained top-k) or a new item "
                         "(--new-item IMAGE, --text, --audio)")
    if args.k < 1:
        raise ConfigError(f"-k must be positive, got {args.k}")
    mask = parse_mask(args.mask)
    for path in (args.new_item, args.audio):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
    run = load_run(args.run_dir, args.checkpoint, data_dir=args.data_dir, device=args.device,
                   action="recommend", allow_data_change=args.allow_data_change)
    if run.data_differences:
        # on stderr for json / csv, whose stdout must stay parseable
        print("WARNING: recommending from data that differ from the run's (--allow-data-change): "
              + "; ".join(run.data_differences), file=sys.stdout if args.format == "table" else sys.stderr)
    if new_item:
        encoded, explanations, parts = _new_item(run, args)
        records = new_item_records(run, explanations, parts)
        if args.format == "table":
            _print_new_item(run, encoded, records, parts)
        else:
            _emit(records, parts, args.format)
        return 0
    everything, all_parts = [], []
    for index, user in enumerate(resolve_users(run.dataset, args.user, args.user_index)):
        records, parts = user_records(run, user, args.k, mask)
        if args.format == "table":
            if index:
                print()
            _print_user(run, user, records, parts, mask)
        everything.extend(records)
        all_parts.extend(p for p in parts if p not in all_parts)
    if args.format != "table":
        _emit(everything, all_parts, args.format)
    return 0
