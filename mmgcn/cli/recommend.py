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
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recommend", help="explained top-k items for a user, or the users for a new item",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by 'mmgcn train'")
    parser.add_argument("--user", type=int, action="append", help="user id (repeatable)")
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
    parser.set_defaults(func=run_recommend)


def _title(dataset: Any, item: int) -> str:
    titles = dataset.content.titles if dataset.content is not None else None
    if not titles or titles[item] is None:
        return ""
    return titles[item]


def _part_cells(explanation: Any, parts: Sequence[str]) -> list[str]:
    shares = explanation.shares
    return [f"{explanation.contributions[p]:+.3f} ({100 * shares[p]:+.0f}%)" for p in parts]


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
        raise ValueError(f"--mask {text!r}: may name train and valid (joined by '+') or 'none', not {bad}")
    return splits


def _print_user(run: Any, user: int, k: int, mask: tuple[str, ...]) -> None:
    from mmgcn.eval.explain import explain_user

    model, dataset = run.model, run.dataset
    explanations = explain_user(model, dataset, user, k=k, exclude=mask)
    parts = list(explanations[0].contributions) if explanations else []
    known = sum(int(dataset.split(s)[user].nnz) for s in mask)
    masked = f"the user's {known} {'+'.join(mask)} items left out" if mask else "nothing masked"
    print(f"top {len(explanations)} for user {user} ({model.name} on {dataset.name}, {run.checkpoint} checkpoint, "
          f"epoch {run.epoch}; {masked}; items without train edges represented as "
          f"{'new items, from content' if model.config.edgeless_items == 'content' else 'their own embedding'})")
    for line in _definitions(parts, model):
        print(f"  {line}")
    with_content = any(e.content_only is not None for e in explanations)
    with_titles = any(_title(dataset, e.item) for e in explanations)
    header = ["rank", "item", *(["title"] if with_titles else []), "score", *parts]
    if with_content:
        header += ["content-only", "ID+graph"]
    rows = []
    for e in explanations:
        row = [str(e.rank), str(e.item), *([_title(dataset, e.item)] if with_titles else []), f"{e.score:.3f}",
               *_part_cells(e, parts)]
        if with_content:
            row += [f"{e.content_only:.3f}", f"{e.score - e.content_only:+.3f}"]
        rows.append(row)
    for line in _table(header, rows, left=2 if with_titles else -1):
        print(f"  {line}")
    if with_content:
        print("  content-only: the item's score from its features alone, as if it were a new item; "
              "ID+graph = score - content-only, what its ID embedding and train interactions add")


def _print_new_item(run: Any, args: argparse.Namespace) -> None:
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
    print(f"new item for {model.name} on {dataset.name} ({run.checkpoint} checkpoint, epoch {run.epoch}):")
    for modality, source in encoded.sources.items():
        print(f"  {modality}: {source}")
    for kind in encoded.ignored:
        print(f"  {kind}: ignored (the model reads no {kind} features)")
    print(f"top {len(explanations)} users for it (content only: no ID embedding, no interactions)")
    for line in _definitions(parts, model, content_only_column=False):
        print(f"  {line}")
    header = ["rank", "user", "score", *parts, "place among the user's unseen items"]
    rows = [[str(e.rank), str(e.user), f"{e.score:.3f}", *_part_cells(e, parts), str(e.catalogue_rank)]
            for e in explanations]
    for line in _table(header, rows, left=-1):
        print(f"  {line}")


def run_recommend(args: argparse.Namespace) -> int:
    from mmgcn.train.loading import load_run

    new_item = any(v is not None for v in (args.new_item, args.text, args.audio))
    if new_item == bool(args.user):
        raise ValueError("give either --user ID (explained top-k) or a new item (--new-item IMAGE, --text, --audio)")
    if args.k < 1:
        raise ValueError(f"-k must be positive, got {args.k}")
    mask = parse_mask(args.mask)
    run = load_run(args.run_dir, args.checkpoint, data_dir=args.data_dir, device=args.device)
    if new_item:
        _print_new_item(run, args)
        return 0
    for index, user in enumerate(args.user):
        if not 0 <= user < run.dataset.n_users:
            raise ValueError(f"--user {user}: {run.dataset.name} has user ids 0..{run.dataset.n_users - 1}")
        if index:
            print()
        _print_user(run, user, args.k, mask)
    return 0
