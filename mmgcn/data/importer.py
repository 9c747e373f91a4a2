"""Import your own interaction table (and item table) as a dataset with a card.

:func:`import_table` is ``mmgcn datasets import`` as a function::

    from mmgcn.datasets import import_table
    dataset = import_table("shop", "interactions.csv", items="items.csv", split="temporal")

It reads the interactions (user, item, optional rating and time) and the optional item
table (title, text columns, image paths or URLs; :mod:`mmgcn.data.item_table`) with pandas
(:mod:`mmgcn.data.tables`),
keeps interactions with ``rating >= min_rating``, takes the k-core, re-indexes users and
items to ``0 .. n - 1`` (sorted by original id; the maps are kept), splits (seeded), and
writes, under ``<data root>/<name>/``:

* ``<name>.inter`` + ``<name>.json`` -- MMRec's atomic layout with the split in
  ``x_label`` and the event times in ``timestamp`` (:mod:`mmgcn.data.readers.mmrec`);
* ``items.tsv`` -- per item index: original id, title, text, image path (relative to the
  folder; empty where the item has none); ``users.tsv`` -- per user index: original id
  (:mod:`mmgcn.data.readers.content`);
* ``images/<index>.<ext>`` -- the item images, copied (or fetched from their URLs) so the
  folder is self-contained;

and the card ``<data root>/cards/<name>.yaml`` (format ``mmrec`` with a ``content``
section, SHA-256 pins of the written files, the import's settings and report, statistics),
which :func:`mmgcn.data.registry.load_dataset` finds by name. Everything is written to a
temporary folder first and moved into place at the end, so a failed import leaves nothing
half-written. Items without an image or text are recorded as such (empty cells), never as
made-up content; ``mmgcn extract`` then marks them in its mask file.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mmgcn import __version__
from mmgcn.data import paths
from mmgcn.data.catalog import CARDS_DIRNAME, NAME_PATTERN, is_builtin
from mmgcn.data.dataset import DataError, Dataset
from mmgcn.data.item_table import id_keys, item_content
from mmgcn.data.log import InteractionLog
from mmgcn.data.prepare import k_core as take_k_core
from mmgcn.data.prepare import make_dataset, reindex
from mmgcn.data.readers.mmrec import write_mmrec
from mmgcn.data.splits import METHODS, check_ratios
from mmgcn.data.tables import parse_times, pick_column, read_table
from mmgcn.utils.io import atomic_write, sha256_file

log = logging.getLogger(__name__)

ITEMS_FILE = "items.tsv"
USERS_FILE = "users.tsv"


def _source_label(table: Any, what: str) -> Path:
    return Path(os.fspath(table)) if isinstance(table, (str, os.PathLike)) else Path(f"<{what} DataFrame>")


def _load(table: Any, what: str, sep: str | None, header: bool, encoding: str) -> tuple[Any, Path]:
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        frame = table.copy()
        frame.columns = [str(c) for c in frame.columns]
        return frame, _source_label(table, what)
    if not isinstance(table, (str, os.PathLike)):
        raise TypeError(f"{what} must be a file path or a pandas DataFrame, got {type(table).__name__}")
    return read_table(table, sep=sep, header=header, encoding=encoding), Path(os.fspath(table))


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Distinct ids, numerically sorted when all are integers, else as strings."""
    import pandas as pd

    uniques = pd.unique(keys)
    try:
        order = np.argsort(np.array(uniques, dtype=np.int64), kind="stable")
    except (ValueError, OverflowError):
        order = np.argsort(np.array(uniques, dtype=str), kind="stable")
    return np.asarray(uniques, dtype=object)[order]


def _codes(keys: np.ndarray, uniques: np.ndarray) -> np.ndarray:
    import pandas as pd

    return pd.Index(uniques).get_indexer(keys).astype(np.int64)


def _check_name(name: str, root: Path, overwrite: bool) -> Path:
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or name == CARDS_DIRNAME:
        raise DataError(f"dataset name {name!r}: use letters, digits, '.', '_' and '-' (and not {CARDS_DIRNAME!r})")
    if is_builtin(name):
        raise DataError(f"dataset name {name!r} is a built-in dataset; choose another name for your data")
    target = root / name
    card = root / CARDS_DIRNAME / f"{name}.yaml"
    if (target.exists() or card.exists()) and not overwrite:
        raise DataError(
            f"{target if target.exists() else card}: dataset {name!r} exists already; choose another name or "
            f"replace it (CLI --force, Python overwrite=True)"
        )
    return target


def _write_tsv(path: Path, frame: Any) -> None:
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, sep="\t", index=False, lineterminator="\n")


def import_table(
    name: str,
    interactions: str | os.PathLike | Any,
    items: str | os.PathLike | Any | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    sep: str | None = None,
    items_sep: str | None = None,
    header: bool = True,
    encoding: str = "utf-8",
    user_col: str | int | None = None,
    item_col: str | int | None = None,
    rating_col: str | int | None = None,
    timestamp_col: str | int | None = None,
    item_id_col: str | int | None = None,
    title_col: str | int | None = None,
    text_cols: Sequence[str | int] | None = None,
    image_col: str | int | None = None,
    image_root: str | os.PathLike | None = None,
    min_rating: float | None = None,
    k_core: int | tuple[int, int] = 0,
    split: str = "random",
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    cold_item_fraction: float = 0.1,
    copy_images: bool = True,
    fetch_timeout: float = 30.0,
    title: str | None = None,
    description: str | None = None,
    licence: str | None = None,
    citation: str | Sequence[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Dataset:
    """Import an interaction table (and an item table) as dataset ``name``; returns it loaded.

    Args:
        name: dataset name (letters, digits, ``.``, ``_``, ``-``; not a built-in name).
        interactions: CSV / TSV / any-separator text file / parquet, or a pandas DataFrame:
            one row per interaction.
        items: optional item table (file or DataFrame): one row per item with its id and
            content columns.
        data_dir: data root to write ``<name>/`` and ``cards/<name>.yaml`` into (default
            ``$MMGCN_DATA``, else the user data dir).
        cache_dir: feature cache root (default ``$MMGCN_CACHE``); stale features of an
            earlier import of ``name`` are removed from it.
        sep, items_sep: separators of the two tables (default: guessed; any string, e.g. ``"::"``).
        header: the tables' first line holds column names (default ``True``; without,
            refer to columns by 0-based position).
        encoding: text encoding of the tables (default UTF-8).
        user_col, item_col: the id columns, by name or 0-based position (default: guessed
            from usual names: ``user``/``user_id``/``userId``..., ``item``/``item_id``/...).
        rating_col: the rating column (default: guessed; needed by ``min_rating``).
        timestamp_col: the time column, epoch seconds (ms/us recognised) or dates (default:
            guessed: ``timestamp``/``time``/``date``...). Needed by temporal splits; kept
            in the ``.inter`` file.
        item_id_col: the item table's id column (default: the interactions' item column
            name, else guessed).
        title_col: the item table's title column (default: guessed: ``title``/``name``...).
        text_cols: the columns joined (``". "``) into each item's text (default: the title
            and any of ``description``/``tags``/``genres``/``plot``/...; ``[]`` for none).
        image_col: the column of image paths or http(s) URLs (default: guessed:
            ``image``/``image_path``/``image_url``/``poster``...).
        image_root: folder that relative image paths start from (default: the item
            table's folder, or the current folder for a DataFrame).
        min_rating: keep interactions with ``rating >= min_rating`` (default: keep all).
        k_core: keep the k-core, ``k`` or ``(k_user, k_item)`` (default ``0``: no filter).
        split: ``"random"`` (per user, 8:1:1 by default), ``"temporal"`` (per user, by
            time), ``"global_temporal"``, ``"loo"`` (leave-one-out: last item test, second
            last valid; by time when there are times) or ``"cold_items"``
            (:mod:`mmgcn.data.splits`).
        ratios: ``(train, valid, test)`` fractions (default ``(0.8, 0.1, 0.1)``).
        seed: seed of the split (default ``0``).
        cold_item_fraction: items held out by ``split="cold_items"`` (default ``0.1``).
        copy_images: copy local images into the dataset folder (default ``True``); ``False``
            records their absolute paths instead (URLs are always fetched).
        fetch_timeout: seconds per image URL (default ``30``).
        title, description, licence, citation: card fields (optional).
        overwrite: replace an existing dataset of that name (default ``False``).
        progress: progress bars (default ``True``).

    Returns:
        the dataset, loaded back from the written files (``dataset.info["id_maps"]`` maps
        indices to original ids; ``dataset.content`` holds titles, texts and image paths).

    Raises:
        DataError: a missing or unreadable table, an unknown or unguessable column, empty
            ids or times, duplicated item ids in the item table, a filter or split that
            leaves nothing -- each naming the file and the field.
        ValueError: bad split settings.
    """
    import pandas as pd

    root = paths.data_root(data_dir)
    target = _check_name(name, root, overwrite)
    if split not in METHODS:
        raise ValueError(f"unknown split {split!r}; expected one of {METHODS}")
    ratios = check_ratios(ratios)
    k_user, k_item = (k_core, k_core) if isinstance(k_core, (int, np.integer)) else tuple(k_core)

    # ------------------------------------------------------------ interactions
    frame, inter_path = _load(interactions, "interactions", sep, header, encoding)
    if len(frame) == 0:
        raise DataError(f"{inter_path}: the interaction table has no rows")
    columns = list(frame.columns)
    used = {
        "user": pick_column(columns, user_col, "user", inter_path),
        "item": pick_column(columns, item_col, "item", inter_path),
        "rating": pick_column(columns, rating_col, "rating", inter_path, required=min_rating is not None),
        "timestamp": pick_column(columns, timestamp_col, "timestamp", inter_path, required=split in ("temporal", "global_temporal")),
    }
    if used["user"] == used["item"]:
        raise DataError(f"{inter_path}: the user and item columns are both {used['user']!r}; name them with --user-col / --item-col")
    user_keys = id_keys(frame[used["user"]], inter_path, used["user"], header)
    item_keys = id_keys(frame[used["item"]], inter_path, used["item"], header)
    ratings = None
    if used["rating"] is not None:
        ratings = pd.to_numeric(frame[used["rating"]], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(ratings).any():
            row = int(np.flatnonzero(np.isnan(ratings))[0])
            raise DataError(
                f"{inter_path}: field '{used['rating']}' at line {row + (2 if header else 1)} is "
                f"{frame[used['rating']].iloc[row]!r}, not a number; fix it or choose another --rating-col"
            )
    times = None
    if used["timestamp"] is not None:
        times = parse_times(frame[used["timestamp"]], inter_path, used["timestamp"], header)
    report: dict[str, Any] = {"rows": len(frame)}
    keep = np.ones(len(frame), dtype=bool)
    if min_rating is not None:
        keep &= ratings >= float(min_rating)
        report["below_min_rating"] = int((~keep).sum())
        if not keep.any():
            raise DataError(f"{inter_path}: no interaction has {used['rating']} >= {min_rating}; lower --min-rating")
    del frame
    user_ids_all = _sorted_unique(user_keys[keep])
    item_ids_all = _sorted_unique(item_keys[keep])
    events = InteractionLog(
        users=_codes(user_keys[keep], user_ids_all),
        items=_codes(item_keys[keep], item_ids_all),
        n_users=len(user_ids_all),
        n_items=len(item_ids_all),
        timestamps=None if times is None else times[keep],
        ratings=None if ratings is None else ratings[keep],
        source=str(inter_path),
    )
    filtering = None
    if k_user > 1 or k_item > 1:
        events, filtering = take_k_core(events, int(k_user), int(k_item))
        if len(events) == 0:
            raise DataError(f"{inter_path}: the ({k_user}, {k_item})-core is empty; lower --k-core")
    events, user_index, item_index = reindex(events)
    user_ids, item_ids = user_ids_all[user_index], item_ids_all[item_index]
    dataset = make_dataset(
        events, name=name, method=split, ratios=ratios, seed=seed, cold_item_fraction=cold_item_fraction,
        filtering=filtering, source=str(inter_path),
    )
    report.update(
        interactions=int(len(events)),
        users=int(dataset.n_users),
        items=int(dataset.n_items),
        duplicates_removed=int(dataset.info["split"]["duplicates_removed"]),
    )

    # ------------------------------------------------------------ items
    item_table = pd.DataFrame({"item": np.arange(dataset.n_items), "item_id": item_ids.astype(str)})
    content_report: dict[str, Any] = {}
    item_columns: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix=f".{name}.import-", dir=_writable(root)) as tmp:
        work = Path(tmp) / name
        work.mkdir()
        if items is not None:
            table, items_path = _load(items, "items", items_sep, header, encoding)
            item_columns, content_report = item_content(
                table, items_path, item_ids, used["item"], header,
                item_id_col, title_col, text_cols, image_col,
                Path(image_root) if image_root is not None else (
                    items_path.parent if isinstance(items, (str, os.PathLike)) else Path.cwd()
                ),
                work, copy_images, fetch_timeout, progress,
            )
            for column, values in item_columns.items():
                item_table[column] = ["" if v is None else v for v in values]
        write_mmrec(dataset, work, name=name)
        _write_tsv(work / ITEMS_FILE, item_table)
        _write_tsv(work / USERS_FILE, pd.DataFrame({"user": np.arange(dataset.n_users), "user_id": user_ids.astype(str)}))
        card = _card(
            name, dataset, work, used, report, content_report, item_columns,
            sources={"interactions": inter_path, "items": items_path if items is not None else None},
            settings={
                "sep": sep, "items_sep": items_sep, "header": header, "min_rating": min_rating,
                "k_core": [int(k_user), int(k_item)], "split": split, "ratios": list(ratios), "seed": int(seed),
            },
            title=title, description=description, licence=licence, citation=citation,
        )
        _move_into_place(work, target)
    card_path = root / "cards" / f"{name}.yaml"
    with atomic_write(card_path, "w", encoding="utf-8") as handle:
        handle.write(
            f"# Dataset card written by `mmgcn datasets import` (mmgcn {__version__}); schema: docs/cards.md.\n"
            f"# The files live in {target}; edit title / description / licence / citation freely.\n"
        )
        yaml.safe_dump(card, handle, sort_keys=False, allow_unicode=True, width=100)
    log.info("imported %s: %d users x %d items, %d interactions -> %s (card %s)",
             name, dataset.n_users, dataset.n_items, len(events), target, card_path)
    from mmgcn.data.registry import load_dataset

    loaded = load_dataset(name, data_dir=root, cache_dir=cache_dir, cached_features=False)
    _drop_stale_features(name, cache_dir, loaded.info.get("fingerprint"))
    return load_dataset(name, data_dir=root, cache_dir=cache_dir)


def _writable(root: Path) -> Path:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{root}: cannot create the data root ({exc}); pass a writable --data-dir") from None
    if not os.access(root, os.W_OK):
        raise DataError(f"{root}: the data root is not writable; pass a writable --data-dir (or set ${paths.DATA_ENV})")
    return root


def _move_into_place(work: Path, target: Path) -> None:
    """Replace ``target`` by ``work`` with renames (same file system): never half a dataset."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(work, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _drop_stale_features(name: str, cache_dir: str | os.PathLike | None, fingerprint: str | None) -> None:
    """Remove cached features extracted from an earlier import of ``name`` (other data)."""
    import json

    feature_dir = paths.feature_cache_dir(name, cache_dir)
    for manifest in feature_dir.glob("*_feat.json") if feature_dir.is_dir() else ():
        try:
            stamp = json.loads(manifest.read_text(encoding="utf-8")).get("dataset_fingerprint")
        except (OSError, ValueError):
            stamp = None
        if stamp != fingerprint:
            modality = manifest.name[: -len("_feat.json")]
            for path in (manifest, feature_dir / f"{modality}_feat.npy", feature_dir / f"{modality}_mask.npy"):
                path.unlink(missing_ok=True)
            log.info("%s: removed %s features extracted from an earlier import of %s", feature_dir, modality, name)


def _card(
    name: str,
    dataset: Dataset,
    folder: Path,
    used: dict[str, str | None],
    report: dict[str, Any],
    content_report: dict[str, Any],
    item_columns: dict[str, Any],
    *,
    sources: dict[str, Path | None],
    settings: dict[str, Any],
    title: str | None,
    description: str | None,
    licence: str | None,
    citation: str | Sequence[str] | None,
) -> dict[str, Any]:
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file():
            files[path.name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    split = dataset.info["split"]
    modalities = {}
    if "image" in item_columns:
        modalities["image"] = {
            "extract": f"mmgcn extract {name} --modality image",
            "what": f"item images (column {content_report['columns']['image']!r})",
        }
    if "text" in item_columns:
        modalities["text"] = {
            "extract": f"mmgcn extract {name} --modality text",
            "what": " + ".join(content_report["columns"]["text"]) or "text",
        }
    source_entry = {}
    for what, path in sources.items():
        if path is None:
            continue
        entry: dict[str, Any] = {"file": str(path.resolve()) if path.is_file() else str(path)}
        if path.is_file():
            entry["sha256"] = sha256_file(path)
        source_entry[what] = entry
    source_entry["columns"] = {k: v for k, v in used.items() if v is not None}
    source_entry["settings"] = settings
    source_entry["imported_by"] = f"mmgcn {__version__}"
    card: dict[str, Any] = {
        "name": name,
        "title": title or f"{name} (imported from {sources['interactions'].name})",
        "description": description or (
            f"Imported with `mmgcn datasets import` from {sources['interactions'].name}"
            + (f" and {sources['items'].name}" if sources.get("items") else "")
            + f": every row an implicit interaction; split {split['method']} {'/'.join(map(str, split['ratios']))}, seed {split['seed']}."
        ),
        "format": "mmrec",
        "inter_name": name,
        "files": files,
        "content": {"items": ITEMS_FILE, "users": USERS_FILE},
        "modalities": modalities,
        "split": {
            "method": split["method"],
            "ratios": split["ratios"],
            "seed": split["seed"],
            "note": "stored in x_label of the .inter file (0 train, 1 valid, 2 test); "
            "`--split METHOD` re-splits all interactions at load time",
        },
        "source": source_entry,
        "import_report": {**report, **({"content": content_report} if content_report else {}),
                          **({"filtering": dataset.info["filtering"]} if "filtering" in dataset.info else {})},
        "statistics": {
            "n_users": int(dataset.n_users),
            "n_items": int(dataset.n_items),
            "interactions": {s: int(dataset.split(s).nnz) for s in ("train", "valid", "test")},
            "timestamps": dataset.timestamps is not None,
        },
    }
    if licence:
        card["licence"] = licence
    if citation:
        card["citation"] = [citation] if isinstance(citation, str) else list(citation)
    return card
