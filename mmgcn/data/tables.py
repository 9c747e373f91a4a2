"""Reading interaction and item tables (CSV, TSV, any separator, parquet) with pandas.

:func:`read_table` reads one table; :func:`pick_column` resolves a column given by name,
by position, or guessed from usual names; :func:`parse_times` turns a time column (epoch
numbers or date strings) into int64 seconds. :mod:`mmgcn.data.importer` builds a dataset
from them.

Separators: ``sep=None`` guesses from the file name (``.csv`` -> ``,``; ``.tsv`` / ``.tab``
-> tab; ``.parquet`` / ``.pq`` -> parquet), else from the first lines (tab, ``,``, ``;``,
``|``, ``::``). Any string works as a separator; a multi-character one such as
MovieLens-1M's ``::`` is read by pandas' C parser after swapping it for a character the
file does not hold (pandas would otherwise fall back to its slow Python parser).
Compressed files (``.gz``, ``.bz2``, ``.zip``, ``.xz``, ``.zst``) are read as pandas infers.
Parquet needs ``pyarrow`` (``pip install 'mmgcn[parquet]'``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmgcn.data.dataset import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")
_SNIFF_SEPARATORS = ("\t", "::", ",", ";", "|")
# a character that never occurs in text files in practice: stands in for a multi-char separator
_STAND_IN = "\x1f"

#: usual column names, tried in order (case-insensitive) when a column is not given
GUESSES: dict[str, tuple[str, ...]] = {
    "user": ("user", "user_id", "userid", "uid", "user id", "customer_id", "reviewerid", "visitorid"),
    "item": ("item", "item_id", "itemid", "iid", "item id", "product_id", "productid", "movie_id", "movieid", "asin"),
    "rating": ("rating", "ratings", "score", "stars", "overall"),
    "timestamp": ("timestamp", "time", "ts", "datetime", "date", "unixreviewtime", "event_time", "created_at"),
    "title": ("title", "name", "item_name", "product_name"),
    "text": ("description", "desc", "tags", "genres", "genre", "categories", "category", "plot", "overview", "summary", "text"),
    "image": ("image", "image_path", "image_url", "imageurl", "img", "poster", "poster_path", "thumbnail", "picture", "photo"),
}


def _base_suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def is_parquet(path: str | os.PathLike) -> bool:
    return _base_suffix(Path(path)) in PARQUET_SUFFIXES


def guess_separator(path: Path, sample: str | None = None) -> str:
    """The separator of a text table: by suffix, else the candidate that splits the first
    lines into the same number (> 1) of fields."""
    suffix = _base_suffix(path)
    if suffix == ".csv":
        return ","
    if suffix in (".tsv", ".tab"):
        return "\t"
    if sample is None:
        sample = _head(path)
    lines = [line for line in sample.splitlines()[:20] if line.strip()]
    if len(lines) > 1:
        lines = lines[:-1]  # the last line of a sample may be cut short
    for sep in _SNIFF_SEPARATORS:
        counts = {line.count(sep) for line in lines}
        if lines and len(counts) == 1 and counts.pop() > 0:
            return sep
    raise DataError(
        f"{path}: cannot tell the column separator from the first lines; give it (CLI --sep, "
        f"Python sep=), e.g. ',' or '\\t' or '::'"
    )


def _head(path: Path, n_bytes: int = 65536) -> str:
    import pandas as pd

    try:
        with pd.io.common.get_handle(path, "r", compression="infer", encoding="utf-8", errors="replace") as handles:
            return handles.handle.read(n_bytes)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def read_table(
    path: str | os.PathLike,
    *,
    sep: str | None = None,
    header: bool = True,
    usecols: Sequence[str | int] | None = None,
    encoding: str = "utf-8",
) -> Any:
    """Read a table into a pandas ``DataFrame`` with string column names.

    Args:
        path: a CSV / TSV / ``sep``-separated text file (optionally compressed) or a parquet file.
        sep: the separator (default ``None``: guessed, see the module doc); any string.
        header: the first line holds column names (default ``True``); without one, the
            columns are named ``"0"``, ``"1"``, ...
        usecols: read only these columns (names, or positions when there is no header).
        encoding: text encoding (default UTF-8).

    Raises:
        DataError: the file is missing, unreadable, or parquet without pyarrow installed --
            the message names the file and the fix.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if is_parquet(path):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise DataError(
                f"{path}: reading parquet needs pyarrow, which is not installed; install it with "
                f"`pip install 'mmgcn[parquet]'` (or `pip install pyarrow`), or save the table as CSV"
            ) from None
        try:
            frame = pd.read_parquet(path, columns=[str(c) for c in usecols] if usecols else None)
        except Exception as exc:  # pyarrow raises its own error types
            raise DataError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from None
        frame.columns = [str(c) for c in frame.columns]
        return frame
    sample = _head(path)
    if sep is None:
        sep = guess_separator(path, sample)
    if sep == "":
        raise DataError(f"{path}: the separator is empty; give one, e.g. ',' or '\\t' or '::'")
    source: Any = path
    read_sep = sep
    if len(sep) > 1:
        text = _read_text(path, encoding)
        if _STAND_IN in text:
            read_sep = None  # pandas' Python parser takes a multi-char separator as a regex
        else:
            source, read_sep = io.StringIO(text.replace(sep, _STAND_IN)), _STAND_IN
    options: dict[str, Any] = {"header": 0 if header else None, "encoding": encoding}
    if read_sep is None:
        import re

        options.update(sep=re.escape(sep), engine="python")
    else:
        options.update(sep=read_sep, engine="c")
    if usecols is not None:
        options["usecols"] = list(usecols)
    try:
        frame = pd.read_csv(source, **options, low_memory=False)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not {encoding} text ({exc}); give the encoding (CLI --encoding)") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot parse as a {sep!r}-separated table ({exc}); check --sep and --no-header") from None
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _read_text(path: Path, encoding: str) -> str:
    import pandas as pd

    try:
        with pd.io.common.get_handle(path, "r", compression="infer", encoding=encoding) as handles:
            return handles.handle.read()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not {encoding} text ({exc}); give the encoding (CLI --encoding)") from None


def pick_column(
    columns: Sequence[str], given: str | int | None, role: str, path: Path, required: bool = True
) -> str | None:
    """Resolve the column for ``role`` (``"user"``, ``"item"``, ``"rating"``, ...).

    ``given`` is a column name, or a 0-based position (an int, or a string of digits that is
    not itself a column name); ``None`` tries the usual names of :data:`GUESSES`.

    Raises:
        DataError: the named column does not exist, the position is out of range, or a
            required column cannot be guessed -- listing the table's columns.
    """
    columns = [str(c) for c in columns]
    flag = f"--{role.replace('_', '-')}-col"
    if given is not None:
        text = str(given)
        if text in columns:
            return text
        if text.lstrip("-").isdigit():
            position = int(text)
            if 0 <= position < len(columns):
                return columns[position]
            raise DataError(f"{path}: {role} column position {position} is out of range; the table has {len(columns)} columns {columns}")
        raise DataError(f"{path}: no column {text!r} for the {role}; the columns are {columns} ({flag} NAME or a 0-based position)")
    lowered = {c.lower().strip(): c for c in columns}
    for name in GUESSES.get(role, ()):
        if name in lowered:
            return lowered[name]
    if required:
        raise DataError(
            f"{path}: cannot tell which column holds the {role}; the columns are {columns} -- "
            f"name it with {flag} NAME (or a 0-based position)"
        )
    return None


def parse_times(values: Any, path: Path, column: str, header: bool = True) -> np.ndarray:
    """A time column as int64 seconds since the epoch: numbers are taken as seconds (milli-
    and microseconds are recognised by their size), strings are parsed as dates (UTC).

    Raises:
        DataError: an empty cell or an unparseable value, naming its line.
    """
    import pandas as pd

    series = pd.Series(values)
    offset = 2 if header else 1
    missing = series.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DataError(f"{path}: field '{column}' is empty at line {row + offset}; every interaction needs a time, or drop --timestamp-col")
    numeric = pd.to_numeric(series, errors="coerce")
    if not numeric.isna().any():
        seconds = numeric.to_numpy(dtype=np.float64)
        magnitude = np.nanmax(np.abs(seconds)) if seconds.size else 0.0
        if magnitude > 1e17:
            seconds = seconds / 1e9  # nanoseconds
        elif magnitude > 1e14:
            seconds = seconds / 1e6  # microseconds
        elif magnitude > 1e11:
            seconds = seconds / 1e3  # milliseconds
        return np.floor(seconds).astype(np.int64)
    try:
        parsed = pd.to_datetime(series.astype(str), utc=True, format="mixed")
    except (ValueError, TypeError, OverflowError):
        bad = next(i for i, v in enumerate(series.astype(str)) if _unparseable(v))
        raise DataError(
            f"{path}: field '{column}' at line {bad + offset} is {series.iloc[bad]!r}, neither a number "
            f"(seconds since the epoch) nor a date; fix the value or choose another --timestamp-col"
        ) from None
    # resolution-independent (pandas 3 stores dates in s / ms / us / ns as it sees fit)
    return ((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


def _unparseable(value: str) -> bool:
    import pandas as pd

    try:
        pd.to_datetime(value, utc=True)
    except (ValueError, TypeError, OverflowError):
        return True
    return False
