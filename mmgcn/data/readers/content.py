"""Reader of the item and user tables that ``mmgcn datasets import`` writes beside an ``.inter`` file.

``items.tsv`` -- one row per item, in item-index order, tab-separated with a header::

    item    item_id    title    text    image

``item`` is the dataset's item index (``0 .. n_items - 1``, in order), ``item_id`` the
original id from the imported table, ``title`` a display title, ``text`` the text a text
encoder reads, ``image`` a path relative to the dataset folder (or absolute). Empty cells
mean "no content" and become ``None``. ``users.tsv`` has ``user`` and ``user_id``.
Fields with tabs or line breaks are quoted (CSV rules), so any text survives.

Extra columns of ``items.tsv`` are kept as string ``item_meta``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from mmgcn.data.dataset import DataError, ItemContent

ITEM_COLUMNS = ("item", "item_id", "title", "text", "image")
USER_COLUMNS = ("user", "user_id")


def read_tsv(path: Path) -> dict[str, list[str]]:
    """A table written by the importer as ``{column: values}``, every cell a string (``""`` where
    empty). Read with the standard library (no pandas: loading a dataset stays light)."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t", strict=True))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (named by the card's 'content' section)") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable UTF-8 TSV ({exc}); re-run `mmgcn datasets import`") from None
    if not rows:
        raise DataError(f"{path}: empty file; expected a header line; re-run `mmgcn datasets import`")
    header, body = rows[0], rows[1:]
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(
                f"{path}: row {number} has {len(row)} fields, the header has {len(header)}; the file is "
                f"truncated or was edited -- re-run `mmgcn datasets import`"
            )
    return {name: [row[i] for row in body] for i, name in enumerate(header)}


def _check_index(table: dict[str, list[str]], column: str, n: int, path: Path) -> None:
    if column not in table:
        raise DataError(f"{path}: no column '{column}' (header: {list(table)}); re-run `mmgcn datasets import`")
    values = table[column]
    if len(values) != n or values != [str(i) for i in range(n)]:
        raise DataError(
            f"{path}: field '{column}' must run 0..{n - 1} in order, one row per {column} of the dataset "
            f"({len(values)} rows found); the table does not belong to this .inter file -- re-import"
        )


def _optional(values: list[str]) -> tuple[str | None, ...]:
    return tuple(v if v != "" else None for v in values)


def read_content(
    root: str | os.PathLike,
    n_users: int,
    n_items: int,
    *,
    items: str | None = "items.tsv",
    users: str | None = "users.tsv",
) -> tuple[ItemContent | None, np.ndarray | None, np.ndarray | None, dict[str, np.ndarray]]:
    """Read ``items.tsv`` / ``users.tsv`` under ``root``.

    Returns:
        ``(content, item_ids, user_ids, item_meta)``: the titles, texts and image paths
        (absolute, ``None`` where missing), the original ids as string arrays ``(n_items,)``
        / ``(n_users,)`` (``None`` when the table is not given), and extra item columns.

    Raises:
        DataError: a missing or unreadable table, rows that are not the dataset's index in
            order.
    """
    root = Path(root)
    content, item_ids, user_ids, meta = None, None, None, {}
    if items:
        path = root / items
        table = read_tsv(path)
        _check_index(table, "item", n_items, path)
        if "item_id" in table:
            item_ids = np.array(table["item_id"], dtype=str)
        fields: dict[str, tuple] = {}
        if "title" in table:
            fields["titles"] = _optional(table["title"])
        if "text" in table:
            fields["texts"] = _optional(table["text"])
        if "image" in table:
            fields["image_paths"] = tuple(None if v == "" else root / v for v in table["image"])
        content = ItemContent(**fields) if fields else None
        meta = {c: np.array(v, dtype=str) for c, v in table.items() if c not in ITEM_COLUMNS}
    if users:
        path = root / users
        table = read_tsv(path)
        _check_index(table, "user", n_users, path)
        if "user_id" in table:
            user_ids = np.array(table["user_id"], dtype=str)
    return content, item_ids, user_ids, meta
