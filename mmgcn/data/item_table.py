"""The item table of an import: each item's title, text and image, by the dataset's item index.

:func:`item_content` matches the rows of an item table (file or DataFrame, read by
:mod:`mmgcn.data.tables`) to the imported items by original id, joins the text columns
into one text per item, and copies local images (or fetches http(s) URLs) into the new
dataset folder. An item without a row, an empty cell, a missing file or a failed fetch
leaves that item without that content -- recorded and counted, never made up.
Used by :func:`mmgcn.data.importer.import_table`.
"""

from __future__ import annotations

import concurrent.futures
import logging
import shutil
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mmgcn import __version__
from mmgcn.data.dataset import DataError
from mmgcn.data.tables import GUESSES, pick_column

log = logging.getLogger(__name__)

IMAGE_DIR = "images"
#: most bytes fetched for one image URL
MAX_IMAGE_BYTES = 50 * 2**20
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")


def id_keys(values: Any, path: Path, column: str, header: bool) -> np.ndarray:
    """Original ids as strings (integral floats such as ``12.0`` become ``"12"``)."""
    import pandas as pd

    series = pd.Series(values)
    empty = series.isna().to_numpy()
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise DataError(
            f"{path}: field '{column}' is empty at line {row + (2 if header else 1)}; every interaction "
            f"needs a user and an item id (drop such rows first)"
        )
    if pd.api.types.is_float_dtype(series) and np.all(np.mod(series.to_numpy(), 1) == 0):
        series = series.astype(np.int64)
    return series.astype(str).str.strip().to_numpy(dtype=object)


def _is_url(value: str) -> bool:
    return urllib.parse.urlsplit(value).scheme in ("http", "https")


def _suffix(value: str) -> str:
    path = urllib.parse.urlsplit(value).path if _is_url(value) else value
    suffix = Path(path).suffix.lower()
    return suffix if suffix in _IMAGE_SUFFIXES else ".img"


def _fetch(url: str, target: Path, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": f"mmgcn/{__version__}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http/https only)
        data = response.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise OSError(f"larger than {MAX_IMAGE_BYTES // 2**20} MiB")
    if not data:
        raise OSError("empty response")
    target.write_bytes(data)


def _gather_images(
    values: list[str | None],
    image_root: Path,
    out_dir: Path,
    copy: bool,
    timeout: float,
    progress: bool,
) -> tuple[list[str | None], dict[str, Any]]:
    """Copy / fetch each item's image into ``out_dir/images``; ``(paths per item, report)``.

    A path that does not exist or a URL that fails leaves the item without an image (counted
    and listed in the report), not the import.
    """
    images = out_dir / IMAGE_DIR
    result: list[str | None] = [None] * len(values)
    missing: dict[str, str] = {}
    jobs: list[tuple[int, str]] = []
    for index, value in enumerate(values):
        if value is None:
            continue
        if _is_url(value):
            jobs.append((index, value))
            continue
        source = Path(urllib.parse.urlsplit(value).path) if value.startswith("file://") else Path(value).expanduser()
        if not source.is_absolute():
            source = image_root / source
        if not source.is_file():
            missing[str(index)] = f"no such file: {source}"
            continue
        if copy:
            images.mkdir(exist_ok=True)
            name = f"{index}{source.suffix.lower() or '.img'}"
            shutil.copyfile(source, images / name)
            result[index] = f"{IMAGE_DIR}/{name}"
        else:
            result[index] = str(source.resolve())
    if jobs:
        images.mkdir(exist_ok=True)

        def fetch(job: tuple[int, str]) -> tuple[int, str | None]:
            index, url = job
            name = f"{index}{_suffix(url)}"
            try:
                _fetch(url, images / name, timeout)
            except (OSError, ValueError) as exc:  # URLError / HTTPError / timeouts are OSErrors
                return index, f"{url}: {exc}"
            return index, None

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            bar = tqdm(pool.map(fetch, jobs), total=len(jobs), desc="fetch images", unit="image", disable=not progress)
            for (index, url), (_, error) in zip(jobs, bar):
                if error is None:
                    result[index] = f"{IMAGE_DIR}/{index}{_suffix(url)}"
                else:
                    missing[str(index)] = error
    if missing:
        first = list(missing.items())[:3]
        log.warning("%d item image(s) not found or not fetched (first: %s); those items have no image",
                    len(missing), "; ".join(f"item {i}: {why}" for i, why in first))
    report = {
        "given": int(sum(v is not None for v in values)),
        "stored": int(sum(v is not None for v in result)),
        "urls": len(jobs),
        "missing": len(missing),
        "missing_items": dict(list(missing.items())[:20]),
        "copied": bool(copy),
    }
    return result, report


def _text_of(frame: Any, columns: Sequence[str]) -> list[str | None]:
    """Per row: the non-empty values of ``columns`` joined with ``". "`` (``None`` if all empty)."""
    import pandas as pd

    parts = []
    for column in columns:
        values = frame[column]
        parts.append(["" if pd.isna(v) else str(v).strip() for v in values.tolist()])
    out: list[str | None] = []
    for row in zip(*parts):
        out.append(". ".join(p.rstrip(".") for p in row if p) or None)
    return out if parts else [None] * len(frame)


def item_content(
    table: Any,
    path: Path,
    item_ids: np.ndarray,
    inter_item_col: str,
    header: bool,
    item_id_col: str | int | None,
    title_col: str | int | None,
    text_cols: Sequence[str | int] | None,
    image_col: str | int | None,
    image_root: Path,
    work: Path,
    copy_images: bool,
    fetch_timeout: float,
    progress: bool,
) -> tuple[dict[str, list[str | None]], dict[str, Any]]:
    """``({"title", "text", "image"} -> per item index, report)`` from the item table."""
    import pandas as pd

    columns = list(table.columns)
    if item_id_col is None and inter_item_col in columns:
        item_id_col = inter_item_col
    key_col = pick_column(columns, item_id_col, "item", path)
    keys = id_keys(table[key_col], path, key_col, header)
    duplicated = pd.Series(keys).duplicated().to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise DataError(
            f"{path}: item id {keys[row]!r} appears twice in field '{key_col}' (line {row + (2 if header else 1)}); "
            f"the item table needs one row per item"
        )
    rows = pd.Index(keys).get_indexer(item_ids.astype(str))
    has_row = rows >= 0
    title = pick_column(columns, title_col, "title", path, required=False)
    if text_cols is None:
        guesses = [c for c in columns if c.lower().strip() in set(GUESSES["text"]) and c not in (key_col,)]
        texts = ([title] if title else []) + [c for c in guesses if c != title]
    else:
        texts = [pick_column(columns, c, "text", path) for c in text_cols]
    image = pick_column(columns, image_col, "image", path, required=False)
    picked = table.iloc[np.where(has_row, rows, 0)].reset_index(drop=True)

    def per_item(values: list[Any]) -> list[str | None]:
        return [v if ok else None for v, ok in zip(values, has_row)]

    out: dict[str, list[str | None]] = {}
    if title:
        out["title"] = per_item([None if pd.isna(v) or not str(v).strip() else str(v).strip() for v in picked[title].tolist()])
    if texts:
        out["text"] = per_item(_text_of(picked, texts))
    image_report = None
    if image:
        raw = per_item([None if pd.isna(v) or not str(v).strip() else str(v).strip() for v in picked[image].tolist()])
        out["image"], image_report = _gather_images(raw, image_root, work, copy_images, fetch_timeout, progress)
    report = {
        "item_table_rows": len(table),
        "items_with_a_row": int(has_row.sum()),
        "items_without_a_row": int((~has_row).sum()),
        "columns": {"item": key_col, "title": title, "text": texts, "image": image},
        "items_with_title": int(sum(v is not None for v in out.get("title", []))),
        "items_with_text": int(sum(v is not None for v in out.get("text", []))),
    }
    if image_report is not None:
        report["images"] = image_report
    if (~has_row).any():
        log.warning("%s: %d of %d items have no row in the item table (no content for them)",
                    path, int((~has_row).sum()), len(item_ids))
    return out, report
