"""The catalog of dataset cards: where they are found, what they must hold, and reading one.

A card is a YAML file ``<name>.yaml`` (schema: ``docs/cards.md``). Search order, first match
of a name wins: an explicit file (``card=``), ``$MMGCN_CARDS`` (card files or folders,
``os.pathsep``-separated), ``<data root>/cards/`` (where ``mmgcn datasets import`` writes),
the built-in cards (``datasets/``, shipped as ``mmgcn/data/cards/``). Only ``name``,
``format`` and ``files`` are required; a malformed card is one :class:`DataError` naming
the file and the field. :mod:`mmgcn.data.registry` loads datasets from them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mmgcn.data import paths
from mmgcn.data.dataset import DataError
from mmgcn.data.readers.mmssl import CONVENTIONS
from mmgcn.data.splits import METHODS
from mmgcn.errors import ConfigError

FORMATS = ("mmssl", "movielens", "mmrec")
CARDS_ENV = "MMGCN_CARDS"
CARDS_DIRNAME = "cards"
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_REQUIRED_KEYS = ("name", "format", "files")
_OPTIONAL_MAPPINGS = ("statistics", "split", "modalities", "archives", "manual", "content", "source")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: key of the card dict that records which file it was read from (not a YAML field)
CARD_FILE_KEY = "_card_file"


def cards_dir() -> Path:
    """The folder of the built-in dataset cards (``mmgcn/data/cards`` -> top-level ``datasets/``)."""
    return Path(__file__).resolve().parent / "cards"


def card_sources(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Card files and card folders in search order (first match wins; see the module doc)."""
    sources = [Path(p).expanduser() for p in os.environ.get(CARDS_ENV, "").split(os.pathsep) if p.strip()]
    sources.append(paths.data_root(data_dir) / CARDS_DIRNAME)
    sources.append(cards_dir())
    return sources


def card_paths(data_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """``{name: card file}`` of every card found (the first of each name wins), sorted by name."""
    found: dict[str, Path] = {}
    for source in card_sources(data_dir):
        if source.is_file() and source.suffix in (".yaml", ".yml"):
            candidates = [source]
        elif source.is_dir():
            candidates = sorted([*source.glob("*.yaml"), *source.glob("*.yml")])
        else:
            continue
        for path in candidates:
            found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def is_builtin(name: str) -> bool:
    """Whether a built-in card of this name exists."""
    return (cards_dir() / f"{name}.yaml").is_file()


def list_datasets(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the datasets that have a card (built-in, in ``<data root>/cards`` or
    ``$MMGCN_CARDS``), sorted."""
    return list(card_paths(data_dir))


def read_card(path: str | os.PathLike, name: str | None = None) -> dict[str, Any]:
    """Read and validate one card file.

    Args:
        path: the YAML file.
        name: the name the card must carry (default: not checked).

    Returns:
        the card as a dict; ``card[CARD_FILE_KEY]`` is the file it was read from.

    Raises:
        DataError: unreadable YAML, a missing required field (``name``, ``format``,
            ``files``), a field of the wrong type, an unknown format, a name other than
            ``name`` -- the message names the file and the field.
    """
    path = Path(path)
    try:
        # the C build of the *safe* loader when available (5x faster); same semantics as safe_load
        card = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except FileNotFoundError:
        raise DataError(f"{path}: card file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(card, dict):
        raise DataError(f"{path}: a dataset card must be a YAML mapping (see docs/cards.md)")
    missing = [k for k in _REQUIRED_KEYS if k not in card]
    if missing:
        raise DataError(f"{path}: missing required field(s) {missing}; a card needs name, format and files (docs/cards.md)")
    if not isinstance(card["name"], str) or not NAME_PATTERN.match(card["name"]):
        raise DataError(f"{path}: field 'name' is {card['name']!r}; use letters, digits, '.', '_' and '-'")
    if name is not None and card["name"] != name:
        raise DataError(f"{path}: field 'name' is {card['name']!r}; it must equal the file name {name!r}")
    if card["format"] not in FORMATS:
        raise DataError(f"{path}: field 'format' is {card['format']!r}; expected one of {FORMATS}")
    for key in _OPTIONAL_MAPPINGS:
        if card.get(key) is not None and not isinstance(card[key], dict):
            raise DataError(f"{path}: field '{key}' must be a mapping, got {type(card[key]).__name__}")
    if not isinstance(card["files"], dict) or not card["files"]:
        raise DataError(f"{path}: field 'files' must map file names to their url / sha256 (an empty entry is allowed)")
    card["files"] = {fname: entry or {} for fname, entry in card["files"].items()}
    for fname, entry in card["files"].items():
        if not isinstance(entry, dict):
            raise DataError(f"{path}: files.{fname} must be a mapping (url, sha256, bytes, optional) or empty")
        if entry.get("archive") and entry["archive"] not in (card.get("archives") or {}):
            raise DataError(f"{path}: files.{fname} names archive {entry['archive']!r}, not listed under 'archives'")
    split = card.get("split") or {}
    conventions = split.get("conventions") or {}
    if not isinstance(conventions, dict):
        raise DataError(f"{path}: field 'split.conventions' must map convention names to their files")
    for conv, spec in conventions.items():
        if isinstance(spec, dict):
            absent = [k for k in ("valid", "test") if not spec.get(k)]
            if absent:
                raise DataError(f"{path}: split.conventions.{conv} needs file names for {absent}")
        elif conv not in CONVENTIONS:
            raise DataError(
                f"{path}: split.conventions.{conv} is a sentence, which only the built-in conventions "
                f"{sorted(CONVENTIONS)} may be; give its files: {{train: ..., valid: ..., test: ..., note: ...}}"
            )
    if split.get("default_convention") and conventions and split["default_convention"] not in conventions:
        raise DataError(
            f"{path}: split.default_convention {split['default_convention']!r} is not one of "
            f"split.conventions {sorted(conventions)}"
        )
    method = (split.get("default") or {}).get("method")
    if method is not None and method not in METHODS:
        raise DataError(f"{path}: split.default.method {method!r} is not one of {METHODS}")
    card[CARD_FILE_KEY] = str(path)
    return card


def _load_card(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    found = card_paths(data_dir)
    if name not in found:
        raise ConfigError(
            f"unknown dataset {name!r}; known datasets: {', '.join(found)} (cards are read from "
            f"${CARDS_ENV}, {paths.data_root(data_dir) / CARDS_DIRNAME} and the built-in cards; "
            f"`mmgcn datasets import` makes one)"
        )
    return read_card(found[name], name)


def dataset_card(
    name: str, data_dir: str | os.PathLike | None = None, card: str | os.PathLike | None = None
) -> dict[str, Any]:
    """The card of dataset ``name`` as a dict (a fresh copy).

    Args:
        name: the dataset name.
        data_dir: raw data root, whose ``cards/`` folder is searched (default ``$MMGCN_DATA``).
        card: an explicit card file, used instead of the search (its ``name`` must be ``name``).

    Raises:
        ValueError: no card of that name (the message lists the known datasets).
        DataError: the card is malformed.
    """
    if card is not None:
        return read_card(card, name)
    return _load_card(name, data_dir)


def dataset_root(card: Mapping[str, Any], data_dir: str | os.PathLike | None = None) -> Path:
    """The folder of a card's files: its ``path`` field (relative to the card file), else
    ``<data root>/<name>``."""
    if card.get("path"):
        base = Path(card.get(CARD_FILE_KEY, ".")).parent
        return (base / Path(str(card["path"])).expanduser()).resolve()
    return paths.dataset_dir(card["name"], data_dir)
