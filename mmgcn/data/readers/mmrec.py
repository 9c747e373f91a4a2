"""Reader and writer for MMRec's atomic layout.

A folder holds ``<name>.inter``, a tab-separated file with the header
``userID itemID rating timestamp x_label`` (``x_label`` 0 / 1 / 2 = train / valid / test;
ids dense from 0), and any number of ``<modality>_feat.npy`` arrays of shape
``(n_items, d)`` whose row ``i`` is item ``i`` -- the layout MMRec (enoche/MMRec) trains
from. ``userID``, ``itemID`` and ``x_label`` are required; ``rating`` is optional and not used
(the toolkit treats every row as an implicit positive); ``timestamp`` is optional and, when
it holds real times, kept as the dataset's event times (``Dataset.timestamps``), so that a
temporal re-split of a converted or imported dataset works.

The writer adds a sidecar ``<name>.json`` (MMRec ignores it) with the id-space sizes, the
per-split counts and the SHA-256 of every file it wrote, so users / items without any
interaction survive a round trip and a truncated, edited or corrupted file is detected. It
writes the dataset's event times into ``timestamp`` when it has them (``"timestamps": true``
in the sidecar), else ``0`` as a placeholder.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mmgcn import __version__
from mmgcn.data.dataset import SPLITS, DataError, Dataset
from mmgcn.data.limits import check_id_space
from mmgcn.data.readers.common import (
    feature_files,
    file_hashes,
    fingerprint,
    load_feature_file,
    verify_pins,
)
from mmgcn.utils.io import atomic_write, atomic_write_json

logger = logging.getLogger(__name__)

HEADER = ("userID", "itemID", "rating", "timestamp", "x_label")
REQUIRED = ("userID", "itemID", "x_label")
_HEADER_FIX = "expected the tab-separated header 'userID\\titemID\\trating\\ttimestamp\\tx_label'"


def find_inter_file(directory: Path, name: str | None = None) -> Path:
    """``<directory>/<name>.inter``, or the folder's only ``.inter`` file when ``name`` is None."""
    if name is not None:
        path = directory / f"{name}.inter"
        if not path.is_file():
            raise DataError(f"{path}: file not found; an MMRec folder holds <name>.inter plus *_feat.npy")
        return path
    candidates = sorted(directory.glob("*.inter"))
    if len(candidates) != 1:
        raise DataError(
            f"{directory}: expected exactly one .inter file, found {len(candidates)} "
            f"({', '.join(p.name for p in candidates) or 'none'}); pass the dataset name"
        )
    return candidates[0]


def _parse_int_column(values: np.ndarray, field: str, path: Path) -> np.ndarray:
    try:
        return values.astype(np.int64)
    except (ValueError, OverflowError):
        for row, value in enumerate(values):
            try:
                if not -(2**63) <= int(value) < 2**63:
                    raise ValueError
            except ValueError:
                raise DataError(
                    f"{path}: field '{field}' at line {row + 2} is {str(value)!r}, not an integer id (int64); "
                    f"ids must be dense integers from 0 (re-index the data)"
                ) from None
        raise  # pragma: no cover - astype failed but every value parses


def read_inter(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse an ``.inter`` file into ``(users, items, x_label)`` int64 arrays of shape ``(n,)``.

    Raises:
        DataError: wrong header, a row with the wrong number of fields (e.g. a truncated
            file), non-integer ids, negative ids, ``x_label`` outside 0..2.
    """
    columns = read_inter_columns(path, timestamps=False)
    return columns["userID"], columns["itemID"], columns["x_label"]


def read_inter_columns(path: str | os.PathLike, timestamps: bool = True) -> dict[str, np.ndarray]:
    """Parse an ``.inter`` file into ``{"userID", "itemID", "x_label"[, "timestamp"]}`` int64
    arrays of shape ``(n,)``; ``timestamp`` (seconds) is there when asked for and the header
    has the column. Times may be numbers or ISO dates (``2014-01-01``, ``2014-01-01T10:00``).

    Raises:
        DataError: as :func:`read_inter`, and a ``timestamp`` that is neither.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc}); an .inter file is a UTF-8 TSV") from None
    lines = text.split("\n")
    header = lines[0].rstrip("\r").split("\t")
    missing = [c for c in REQUIRED if c not in header]
    if missing or len(set(header)) != len(header):
        raise DataError(f"{path}: header is {header}, missing columns {missing} or repeated names; {_HEADER_FIX}")
    body = lines[1:]
    while body and not body[-1].strip():
        body.pop()
    wanted = REQUIRED + (("timestamp",) if timestamps and "timestamp" in header else ())
    if not body:
        return {field: np.zeros(0, dtype=np.int64) for field in wanted}
    # the C parser skips blank lines, which would shift the line numbers in error messages
    simple = "\r" not in text and "\n\n" not in text.rstrip("\n")
    columns = _parse_fast(text, header, wanted) if simple else None
    if columns is None:
        columns = _parse_checked(body, header, path, wanted)
    for field in ("userID", "itemID"):
        if columns[field].min() < 0:
            raise DataError(f"{path}: field '{field}' has negative id {columns[field].min()}; ids start at 0")
    labels = columns["x_label"]
    bad = (labels < 0) | (labels > 2)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: field 'x_label' at line {row + 2} is {labels[row]}; x_label must be 0 (train), "
            f"1 (valid) or 2 (test)"
        )
    return columns


def _parse_fast(text: str, header: list[str], wanted: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """All-numeric files through numpy's C parser; ``None`` when anything looks off."""
    try:
        table = np.loadtxt(io.StringIO(text), delimiter="\t", dtype=np.float64, skiprows=1, ndmin=2, comments=None)
    except ValueError:
        return None
    if table.shape[1] != len(header) or not np.all(np.isfinite(table)):
        return None
    columns = {field: table[:, header.index(field)] for field in wanted}
    if any(np.any(col != np.floor(col)) or np.any(np.abs(col) >= 2**53) for col in columns.values()):
        return None
    return {field: col.astype(np.int64) for field, col in columns.items()}


def _parse_checked(body: list[str], header: list[str], path: Path, wanted: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Line by line, so that an error names the line and the field."""
    cells = [line.rstrip("\r").split("\t") for line in body]
    for row, fields in enumerate(cells):
        if len(fields) != len(header):
            raise DataError(
                f"{path}: line {row + 2} has {len(fields)} fields, the header has {len(header)}; the "
                f"file is truncated or corrupt (re-write it with `mmgcn datasets convert`)"
            )
    table = np.array(cells, dtype=str).reshape(len(cells), len(header))
    out = {field: _parse_int_column(table[:, header.index(field)], field, path) for field in REQUIRED}
    if "timestamp" in wanted:
        out["timestamp"] = _parse_time_column(table[:, header.index("timestamp")], path)
    return out


def _parse_time_column(values: np.ndarray, path: Path) -> np.ndarray:
    try:
        times = values.astype(np.float64)
    except ValueError:
        try:
            return values.astype("datetime64[s]").astype(np.int64)
        except ValueError:
            row = next(r for r, v in enumerate(values) if not _is_time(v))
            raise DataError(
                f"{path}: field 'timestamp' at line {row + 2} is {str(values[row])!r}, neither a number nor "
                f"an ISO date; timestamps are seconds since the epoch (or 0 when unknown)"
            ) from None
    if not np.all(np.isfinite(times)):
        raise DataError(f"{path}: field 'timestamp' holds NaN or inf; use 0 when a time is unknown")
    return np.floor(times).astype(np.int64)


def _is_time(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        try:
            np.datetime64(value, "s")
        except ValueError:
            return False
    return True


def _read_sidecar(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable JSON sidecar ({exc}); delete it or re-convert the dataset") from None
    for key in ("n_users", "n_items"):
        if not isinstance(meta.get(key), int) or meta[key] <= 0:
            raise DataError(f"{path}: field '{key}' must be a positive integer, got {meta.get(key)!r}")
    return meta


def read_mmrec(
    directory: str | os.PathLike,
    name: str | None = None,
    *,
    modalities: Sequence[str] | None = None,
    pins: Mapping[str, str] | None = None,
    verify: bool = True,
) -> Dataset:
    """Read an MMRec folder (``<name>.inter`` + ``<modality>_feat.npy``) into a :class:`Dataset`.

    ``n_users`` / ``n_items`` come from the sidecar ``<name>.json`` when present, else
    from the largest id + 1 and the feature row count.

    Args:
        directory: the folder.
        name: the ``.inter`` file stem (default: the folder's only ``.inter`` file).
        modalities: feature modalities to load (default ``None``: every ``*_feat.npy``).
        pins: ``{file name: sha256}`` expected hashes; files without a pin are not checked.
        verify: a pin mismatch raises (default ``True``) or, when ``False``, warns.

    Raises:
        DataError: see :func:`read_inter`; feature rows that differ from the item count,
            NaN features, a sidecar that disagrees with the file, overlapping splits.
    """
    directory = Path(directory)
    inter = find_inter_file(directory, name)
    name = inter.stem
    available = feature_files(directory)
    if modalities is not None:
        absent = [m for m in modalities if m not in available]
        if absent:
            raise DataError(f"{directory}: no <modality>_feat.npy for {absent}; available: {list(available)}")
        available = {m: available[m] for m in modalities}
    hashes = file_hashes(directory, [inter.name] + [p.name for p in available.values()])
    verify_pins(directory, hashes, pins, verify, name)
    sidecar_path = directory / f"{name}.json"
    sidecar = _read_sidecar(sidecar_path)
    columns = read_inter_columns(inter)
    users, items, labels = columns["userID"], columns["itemID"], columns["x_label"]
    times = columns.get("timestamp")
    if times is not None and (
        (sidecar is not None and not sidecar.get("timestamps", False)) or not np.any(times)
    ):
        times = None  # the writer's placeholder zeros (or a column of zeros): no event times
    if sidecar and isinstance(sidecar.get("modality_order"), list):
        # the writer's modality order; files it did not write go last
        order = [m for m in sidecar["modality_order"] if m in available]
        available = {m: available[m] for m in order + [m for m in available if m not in order]}
    features = {m: load_feature_file(p) for m, p in available.items()}
    feature_rows = {m: f.shape[0] for m, f in features.items()}
    if not sidecar and len(set(feature_rows.values())) > 1:
        raise DataError(f"{directory}: feature files disagree in row count {feature_rows}; each row must be one item")
    max_user = int(users.max()) + 1 if users.size else 0
    max_item = int(items.max()) + 1 if items.size else 0
    if sidecar:
        for key in ("n_users", "n_items"):
            check_id_space(sidecar[key], key, sidecar_path)
    else:
        check_id_space(max_user, "userID", inter, rows=users.size)
        check_id_space(max_item, "itemID", inter, rows=items.size)
        if feature_rows:
            # the feature files declare the catalogue (row i = item i): an id beyond it is an error,
            # not a reason to grow the catalogue
            modality, declared = next(iter(feature_rows.items()))
            outside = np.flatnonzero(items >= declared)
            if outside.size:
                row = int(outside[0])
                raise DataError(
                    f"{inter}: field 'itemID' at line {row + 2} is {int(items[row])}, outside the catalogue of "
                    f"{declared} items that {available[modality].name} declares (one row per item); the files "
                    f"do not belong together -- fix the id or re-extract the features"
                )
    n_users = sidecar["n_users"] if sidecar else max_user
    n_items = sidecar["n_items"] if sidecar else max(max_item, *feature_rows.values(), 0)
    if max_user > n_users or max_item > n_items:
        raise DataError(
            f"{inter}: ids reach user {max_user - 1} / item {max_item - 1} but the dataset has "
            f"{n_users} users / {n_items} items ({sidecar_path.name if sidecar else 'feature rows'}); "
            f"the files do not belong together"
        )
    for m, rows in feature_rows.items():
        if rows != n_items:
            raise DataError(
                f"{available[m]}: features have {rows} rows but the dataset has {n_items} items; "
                f"row i must be item i (re-extract or re-convert the features)"
            )
    counts = {split: int((labels == code).sum()) for code, split in enumerate(SPLITS)}
    if sidecar and "interactions" in sidecar and sidecar["interactions"] != counts:
        raise DataError(
            f"{inter}: holds {counts} interactions but {sidecar_path.name} records "
            f"{sidecar['interactions']}; the .inter file is truncated or was edited -- re-convert it"
        )
    if sidecar and isinstance(sidecar.get("sha256"), dict):
        # last gate: the writer's record of its own files catches edits the checks above cannot see
        changed = sorted(f for f, digest in sidecar["sha256"].items() if f in hashes and hashes[f] != digest)
        if changed:
            message = (f"{directory}: {', '.join(changed)} differ from the sha256 recorded in {sidecar_path.name} "
                       f"(changed or corrupted since `write_mmrec` wrote them); re-convert the dataset, or "
                       f"delete the sidecar to read the files as they are")
            if verify:
                raise DataError(message)
            logger.warning("%s", message)

    matrices, split_times = {}, {}
    for code, split in enumerate(SPLITS):
        pick = labels == code
        matrices[split] = _binary_csr(users[pick], items[pick], n_users, n_items)
        if times is not None:
            split_times[split] = csr_ordered_times(users[pick], items[pick], times[pick], n_items)
    info = dict(sidecar.get("info", {})) if sidecar else {}
    origin = info.get("source_split_convention")
    info.update(
        format="mmrec",
        split_convention="x_label 0 / 1 / 2 = train / valid / test"
        + (f" (converted from {info.get('source_name', name)}, {origin})" if origin else ""),
        split={"method": "given by x_label", "train": "x_label=0", "valid": "x_label=1", "test": "x_label=2"},
        files=hashes,
        fingerprint=fingerprint(hashes),
    )
    return Dataset(
        name=sidecar.get("name", name) if sidecar else name,
        n_users=n_users,
        n_items=n_items,
        **matrices,
        features=features,
        info=info,
        source=str(inter),
        timestamps=split_times or None,
    )


def _binary_csr(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    data = np.ones(users.size, dtype=np.float32)
    return sp.csr_matrix((data, (users, items)), shape=(n_users, n_items))


def csr_ordered_times(users: np.ndarray, items: np.ndarray, times: np.ndarray, n_items: int) -> np.ndarray:
    """Event times in the CSR order of the binary matrix of ``(users, items)``: rows by user,
    items ascending; a repeated pair keeps its earliest time (as the splits' deduplication).

    Returns:
        ``(n_distinct_pairs,)`` int64.
    """
    key = users.astype(np.int64) * np.int64(n_items) + items.astype(np.int64)
    order = np.lexsort((times, key))
    sorted_key = key[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = sorted_key[1:] != sorted_key[:-1]
    return np.asarray(times, dtype=np.int64)[order[first]]


def write_mmrec(
    dataset: Dataset, directory: str | os.PathLike, *, name: str | None = None, overwrite: bool = False
) -> Path:
    """Write ``dataset`` in MMRec's layout under ``directory``; returns the ``.inter`` path.

    Writes ``<name>.inter`` (rows sorted by split, user, item; ``rating`` 1 as a
    placeholder, since a :class:`Dataset` holds implicit feedback only; ``timestamp`` the
    event time where the dataset has times, else 0), ``<modality>_feat.npy`` (float32) and
    the sidecar ``<name>.json``. Each file is written atomically.

    Raises:
        FileExistsError: ``<name>.inter`` exists and ``overwrite`` is False.
    """
    directory = Path(directory)
    name = name or dataset.name
    inter = directory / f"{name}.inter"
    if inter.exists() and not overwrite:
        raise FileExistsError(f"{inter}: already exists; choose another folder or pass overwrite=True (--force)")
    directory.mkdir(parents=True, exist_ok=True)
    blocks = []
    for code, split in enumerate(SPLITS):
        csr = dataset.split(split)  # sorted indices: rows come out user-major, items ascending
        users = np.repeat(np.arange(dataset.n_users, dtype=np.int64), np.diff(csr.indptr))
        times = dataset.split_times(split)
        times = np.zeros(csr.nnz, dtype=np.int64) if times is None else times
        blocks.append(np.column_stack([users, csr.indices.astype(np.int64), times, np.full(csr.nnz, code)]))
    rows = np.concatenate(blocks) if blocks else np.zeros((0, 4), dtype=np.int64)
    with atomic_write(inter, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("\t".join(HEADER) + "\n")
        handle.writelines(f"{u}\t{i}\t1\t{t}\t{x}\n" for u, i, t, x in rows.tolist())
    for modality in dataset.features:
        with atomic_write(directory / f"{modality}_feat.npy", "wb") as handle:
            np.save(handle, dataset.features.array(modality).astype(np.float32, copy=False), allow_pickle=False)
    kept_info = {
        k: v for k, v in dataset.info.items() if k in ("split_convention", "convention", "split", "fingerprint")
    }
    written = [inter.name, *(f"{modality}_feat.npy" for modality in dataset.features)]
    atomic_write_json(
        directory / f"{name}.json",
        {
            "format": "mmrec",
            "sha256": file_hashes(directory, written),
            "name": dataset.name,
            "n_users": dataset.n_users,
            "n_items": dataset.n_items,
            "interactions": {s: int(dataset.split(s).nnz) for s in SPLITS},
            "modalities": dataset.features.dims,
            "modality_order": list(dataset.features),
            "timestamps": dataset.timestamps is not None,
            "columns": "rating = 1 is a placeholder (implicit feedback); timestamp = "
            + ("the event time (seconds)" if dataset.timestamps is not None else "0, a placeholder (no event times)"),
            "written_by": f"mmgcn {__version__}",
            "info": {"source_name": dataset.name, **{"source_" + k: v for k, v in kept_info.items()}},
        },
    )
    logger.info("wrote %s (%d interactions, modalities %s)", inter, len(rows), list(dataset.features))
    return inter
