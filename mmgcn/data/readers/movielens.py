"""Reader for MovieLens 100K with IMDb plots and posters as item content.

Files under the dataset folder (GroupLens layout, see its ``README``):

* ``u.data`` -- ``user \\t item \\t rating \\t timestamp``, 1-based ids (required);
* ``u.item`` -- latin-1, ``|``-separated: id, title, release date, video release date,
  IMDb URL, 19 genre flags (required);
* ``u.genre`` -- ``name|index`` for the 19 genre flags (required);
* ``u.user`` -- ``id|age|gender|occupation|zip`` (required);
* ``movielens100k_details.json`` -- IMDb details per ``movie_id``; its ``description`` is
  the plot (optional). Skipped: IMDb's "no plot summary" placeholder (51 records), and
  records whose IMDb year is more than ``PLOT_YEAR_TOLERANCE`` years from the year in the
  MovieLens title -- the scraper matched a remake or a namesake (e.g. ``Conan the
  Barbarian (1981)`` -> the 2011 film, the placeholder movie ``unknown`` -> ``Unknown``
  (2011)). Both counts are reported in ``info["content"]``;
* ``posters/<movie_id>.jpg`` -- poster images (optional; 1,618 of 1,682 movies).

Ids: item ``i`` is ``movie_id - 1``, user ``u`` is ``user_id - 1``. Every item gets a text
(``title. Genres: a, b.`` plus the plot where there is one), so the text modality covers
all items; posters cover those with a file.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmgcn.data.dataset import DataError, ItemContent
from mmgcn.data.log import InteractionLog
from mmgcn.data.readers.common import file_hashes, fingerprint, verify_pins

logger = logging.getLogger(__name__)

REQUIRED_FILES = ("u.data", "u.item", "u.genre", "u.user")
DETAILS_FILE = "movielens100k_details.json"
POSTER_DIR = "posters"
# IMDb's text for a title without a plot (51 entries of the details file start with it)
PLOT_PLACEHOLDER = "It looks like we don't have any Plot Summaries for this title yet."
_POSTER_NAME = re.compile(r"^(\d+)\.jpg$")
_TITLE_YEAR = re.compile(r"\((\d{4})\)\s*$")
_LEADING_YEAR = re.compile(r"^\s*(\d{4})")
# a details record whose release year is further than this from the MovieLens title's year
# describes another film (IMDb search hit a remake or a namesake), so its plot is skipped
PLOT_YEAR_TOLERANCE = 3


@dataclass(frozen=True, eq=False)
class MovieLensData:
    """What the reader produces before splitting.

    Attributes:
        log: the ratings as events (``n = 100,000``), with timestamps and ratings.
        content: titles, texts and poster paths, one entry per item (``n_items``).
        item_meta: ``genres`` ``(n_items, 19)`` uint8 flags, ``year`` ``(n_items,)`` int64
            (``-1`` = unknown), ``release_date`` and ``imdb_url`` strings.
        user_meta: ``age`` int64, ``gender``, ``occupation``, ``zip_code`` strings ``(n_users,)``.
        info: provenance: ``format``, ``genre_names``, ``content`` counts, ``files``
            (sha256 per file read), ``fingerprint``.
    """

    log: InteractionLog
    content: ItemContent
    item_meta: dict[str, np.ndarray]
    user_meta: dict[str, np.ndarray]
    info: dict[str, Any]


def _split_lines(path: Path, sep: str, n_fields: int, encoding: str) -> list[list[str]]:
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not {encoding} text ({exc})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(sep)
        if len(fields) != n_fields:
            raise DataError(
                f"{path}: line {number} has {len(fields)} '{sep}'-separated fields, expected {n_fields}; "
                f"the file is truncated or corrupt -- re-download it (`mmgcn datasets download ml-100k --force`)"
            )
        rows.append(fields)
    return rows


def _dense_ids(ids: list[str], path: Path, field: str) -> None:
    """The id column must be 1, 2, ..., n so that ``id - 1`` is a dense index."""
    for row, value in enumerate(ids):
        if value.strip() != str(row + 1):
            raise DataError(
                f"{path}: field '{field}' on row {row + 1} is {value!r}, expected {row + 1}; ids must "
                f"run 1..n in file order"
            )


def _read_genres(path: Path) -> list[str]:
    rows = _split_lines(path, "|", 2, "latin-1")
    names = [name for name, _ in rows]
    if [idx for _, idx in rows] != [str(i) for i in range(len(rows))]:
        raise DataError(f"{path}: field 'index' must run 0..{len(rows) - 1} in order")
    return names


def _read_items(path: Path, genre_names: list[str]) -> dict[str, Any]:
    n_genres = len(genre_names)
    rows = _split_lines(path, "|", 5 + n_genres, "latin-1")
    _dense_ids([r[0] for r in rows], path, "movie id")
    try:
        genres = np.array([[int(f) for f in r[5:]] for r in rows], dtype=np.uint8).reshape(len(rows), n_genres)
    except ValueError as exc:
        raise DataError(f"{path}: field 'genre flags' must be 0/1 integers ({exc})") from None
    if genres.size and genres.max() > 1:
        raise DataError(f"{path}: field 'genre flags' holds values other than 0/1")
    years, title_years = [], []
    for _, title, date, *_rest in rows:
        match = _TITLE_YEAR.search(title)
        title_years.append(int(match.group(1)) if match else -1)
        release = int(date[-4:]) if len(date) >= 4 and date[-4:].isdigit() else -1
        years.append(title_years[-1] if title_years[-1] >= 0 else release)
    return {
        "title_year": np.array(title_years, dtype=np.int64),
        "titles": [r[1] for r in rows],
        "genres": genres,
        "year": np.array(years, dtype=np.int64),
        "release_date": np.array([r[2] for r in rows], dtype=str),
        "imdb_url": np.array([r[4] for r in rows], dtype=str),
    }


def _read_users(path: Path) -> dict[str, np.ndarray]:
    rows = _split_lines(path, "|", 5, "latin-1")
    _dense_ids([r[0] for r in rows], path, "user id")
    try:
        age = np.array([int(r[1]) for r in rows], dtype=np.int64)
    except ValueError as exc:
        raise DataError(f"{path}: field 'age' must be an integer ({exc})") from None
    return {
        "age": age,
        "gender": np.array([r[2] for r in rows], dtype=str),
        "occupation": np.array([r[3] for r in rows], dtype=str),
        "zip_code": np.array([r[4] for r in rows], dtype=str),
    }


def _read_ratings(path: Path, n_users: int, n_items: int) -> InteractionLog:
    try:
        table = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2, comments=None)
    except ValueError as exc:
        raise DataError(
            f"{path}: not a table of 4 tab-separated integers (user, item, rating, timestamp): {exc}; "
            f"the file is truncated or corrupt -- re-download it"
        ) from None
    if table.shape[1] != 4:
        raise DataError(f"{path}: rows have {table.shape[1]} fields, expected 4 (user, item, rating, timestamp)")
    for col, field, n in ((0, "user id", n_users), (1, "item id", n_items)):
        bad = (table[:, col] < 1) | (table[:, col] > n)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: field '{field}' on line {row + 1} is {table[row, col]}, outside 1..{n} "
                f"(the ids of u.user / u.item); the files do not belong together"
            )
    return InteractionLog(
        users=table[:, 0] - 1,
        items=table[:, 1] - 1,
        n_users=n_users,
        n_items=n_items,
        timestamps=table[:, 3],
        ratings=table[:, 2].astype(np.float32),
        source=str(path),
    )


def _read_plots(path: Path, title_years: np.ndarray) -> tuple[list[str | None], dict[str, int]]:
    n_items = len(title_years)
    plots: list[str | None] = [None] * n_items
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); the file is truncated or corrupt -- re-download it") from None
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON list of movie records, got {type(entries).__name__}")
    placeholders = other_film = 0
    seen = set()
    for entry in entries:
        movie_id = entry.get("movie_id") if isinstance(entry, dict) else None
        if not isinstance(movie_id, int) or not 1 <= movie_id <= n_items:
            raise DataError(f"{path}: field 'movie_id' is {movie_id!r}, expected an integer in 1..{n_items}")
        if movie_id in seen:
            raise DataError(f"{path}: field 'movie_id' {movie_id} appears twice")
        seen.add(movie_id)
        description = entry.get("description")
        if description is not None and not isinstance(description, str):
            raise DataError(f"{path}: field 'description' of movie {movie_id} is not a string")
        description = (description or "").strip()
        match = _LEADING_YEAR.match(str(entry.get("year") or ""))
        details_year = int(match.group(1)) if match else None
        title_year = int(title_years[movie_id - 1])
        if description.startswith(PLOT_PLACEHOLDER):
            placeholders += 1
        elif description and details_year is not None and (
            title_year < 0 or abs(details_year - title_year) > PLOT_YEAR_TOLERANCE
        ):
            other_film += 1
        elif description:
            plots[movie_id - 1] = description
    counts = {
        "details_entries": len(entries),
        "plot_placeholders_skipped": placeholders,
        "plots_of_another_film_skipped": other_film,
    }
    return plots, counts


def _list_posters(directory: Path, n_items: int) -> tuple[list[Path | None], int]:
    paths: list[Path | None] = [None] * n_items
    ignored = 0
    directory = directory.resolve()  # once: resolving 1,618 paths one by one costs ~0.3 s
    with os.scandir(directory) as entries:
        for entry in entries:
            match = _POSTER_NAME.match(entry.name)
            if match and 1 <= int(match.group(1)) <= n_items and entry.is_file():
                paths[int(match.group(1)) - 1] = directory / entry.name
            else:
                ignored += 1
    if ignored:
        logger.warning("%s: %d entries are not <movie_id>.jpg for a known movie; ignored", directory, ignored)
    return paths, ignored


def read_movielens100k(
    directory: str | os.PathLike, *, pins: Mapping[str, str] | None = None, verify: bool = True
) -> MovieLensData:
    """Read MovieLens 100K (+ IMDb plots and posters when present).

    Args:
        directory: the ``ml-100k`` folder.
        pins: ``{file name: sha256}`` expected hashes (from the card); unpinned files
            (posters) are not checked.
        verify: a pin mismatch raises (default ``True``) or, when ``False``, warns.

    Returns:
        the :class:`MovieLensData` (log, content, metadata, info).

    Raises:
        DataError: a missing required file, malformed rows, ids outside the id space,
            an unreadable details file, a pin mismatch.
    """
    directory = Path(directory)
    missing = [f for f in REQUIRED_FILES if not (directory / f).is_file()]
    if missing:
        raise DataError(
            f"{directory}: missing {', '.join(missing)}; download MovieLens 100K with "
            f"`mmgcn datasets download ml-100k`"
        )
    details = directory / DETAILS_FILE
    hashes = file_hashes(directory, [*REQUIRED_FILES, DETAILS_FILE])
    verify_pins(directory, hashes, pins, verify, "ml-100k")

    genre_names = _read_genres(directory / "u.genre")
    items = _read_items(directory / "u.item", genre_names)
    user_meta = _read_users(directory / "u.user")
    n_items, n_users = len(items["titles"]), len(user_meta["age"])
    log = _read_ratings(directory / "u.data", n_users, n_items)

    counts: dict[str, int] = {}
    if details.is_file():
        plots, counts = _read_plots(details, items["title_year"])
    else:
        logger.warning("%s: not found; item texts are title + genres only", details)
        plots = [None] * n_items
    poster_dir = directory / POSTER_DIR
    if poster_dir.is_dir():
        posters, counts["poster_entries_ignored"] = _list_posters(poster_dir, n_items)
    else:
        logger.warning("%s: not found; no item has a poster (see the ml-100k card)", poster_dir)
        posters = [None] * n_items

    texts = []
    for title, flags, plot in zip(items["titles"], items["genres"], plots):
        genres = ", ".join(g for g, on in zip(genre_names, flags) if on)
        texts.append(f"{title}. Genres: {genres}." + (f" {plot}" if plot else ""))
    counts["plots"] = sum(p is not None for p in plots)
    counts["posters"] = sum(p is not None for p in posters)
    info = {
        "format": "movielens-100k",
        "genre_names": genre_names,
        "content": counts,
        "ratings": "explicit 1-5 ratings; every rating counts as an implicit positive",
        "files": hashes,
        "fingerprint": fingerprint(hashes),
    }
    return MovieLensData(
        log=log,
        content=ItemContent(titles=tuple(items["titles"]), texts=tuple(texts), image_paths=tuple(posters)),
        item_meta={k: items[k] for k in ("genres", "year", "release_date", "imdb_url")},
        user_meta=user_meta,
        info=info,
    )
