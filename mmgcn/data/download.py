"""Fetch a dataset's files from the upstream URLs in its card, verified against SHA-256 pins.

Each missing file is streamed (with a tqdm progress bar) to a temporary file beside its
destination while being hashed; only a file whose hash equals its pin is moved into
place (``os.replace``), so a failed or tampered download never leaves a file that a
reader would pick up. Files that come from an archive (MovieLens' ``ml-100k.zip``) are
extracted member by member, and each member is verified against its own pin; when the
archive cannot be fetched or a member does not match, the file's direct ``url`` (a
mirror at a fixed commit) is tried next.

This is the only code that writes into the raw data directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tqdm.auto import tqdm

from mmgcn.data import paths
from mmgcn.data.dataset import DataError
from mmgcn.data.registry import dataset_card
from mmgcn.errors import DownloadError
from mmgcn.utils.io import sha256_file

logger = logging.getLogger(__name__)

CHUNK = 1 << 16
# refuse archive members larger than this (a zip bomb, or the wrong archive)
MAX_MEMBER_BYTES = 1 << 30




def _mirrored(url: str, mirror: str | None) -> str:
    """``url`` itself, or ``<mirror>/<file name of url>`` when a mirror is given."""
    if not mirror:
        return url
    return mirror.rstrip("/") + "/" + url.rsplit("/", 1)[-1]


@contextlib.contextmanager
def _temporary_sibling(path: Path) -> Iterator[tuple[IO[bytes], Path]]:
    """A temp file beside ``path``; removed on exit unless it was moved away."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle, Path(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _fetch(url: str, handle: IO[bytes], timeout: float, label: str) -> str:
    """Stream ``url`` into ``handle``; return the hex SHA-256 of the bytes written."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            with tqdm(
                total=int(total) if total and total.isdigit() else None,
                unit="B",
                unit_scale=True,
                desc=label,
                leave=False,
                disable=None,  # no bar when stderr is not a terminal (CI logs)
            ) as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    handle.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"could not fetch {url} ({reason}); check the network connection, or pass a mirror "
            f"that serves the same file names (`--mirror URL`)"
        ) from None
    handle.flush()
    os.fsync(handle.fileno())
    return digest.hexdigest()


def _mismatch(path: Path, url: str, expected: str, actual: str) -> DownloadError:
    return DownloadError(
        f"{path}: refused the file downloaded from {url}: sha256 {actual} does not match the pin "
        f"{expected} in the dataset card; nothing was written. The upstream file changed or the "
        f"transfer was corrupted -- retry, or use a mirror with the pinned bytes"
    )


def download_file(url: str, path: Path, sha256: str | None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``path`` atomically, refusing bytes whose hash is not ``sha256``.

    Raises:
        DownloadError: the URL cannot be fetched, or the hash differs (``path`` is then
            left as it was: absent or the previous file).
    """
    with _temporary_sibling(path) as (handle, tmp):
        actual = _fetch(url, handle, timeout, path.name)
        if sha256 and actual != sha256:
            raise _mismatch(path, url, sha256, actual)
        if not sha256:
            logger.warning("%s: no sha256 pin in the card; fetched unverified from %s (sha256 %s)", path, url, actual)
        os.replace(tmp, path)
    return path


def _extract_members(archive: Path, url: str, wanted: dict[str, dict[str, Any]], root: Path) -> dict[str, str]:
    """Extract the ``wanted`` files from ``archive``; returns ``{file: why it failed}``."""
    failed = {}
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        return {fname: f"{url} is not a readable zip archive ({exc})" for fname in wanted}
    with zf:
        for fname, entry in wanted.items():
            try:
                info = zf.getinfo(entry["member"])
            except KeyError:
                failed[fname] = f"{url} has no member {entry['member']!r}"
                continue
            if info.file_size > MAX_MEMBER_BYTES:
                failed[fname] = f"{url}: member {entry['member']!r} is {info.file_size} bytes, implausibly large"
                continue
            target = root / fname
            with _temporary_sibling(target) as (handle, tmp):
                digest = hashlib.sha256()
                with zf.open(info) as member:
                    for chunk in iter(lambda m=member: m.read(CHUNK), b""):
                        handle.write(chunk)
                        digest.update(chunk)
                handle.flush()
                actual = digest.hexdigest()
                if entry.get("sha256") and actual != entry["sha256"]:
                    failed[fname] = str(_mismatch(target, f"{url}!{entry['member']}", entry["sha256"], actual))
                    continue
                os.replace(tmp, target)
    return failed


def download_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    mirror: str | None = None,
    force: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Fetch the files of dataset ``name`` that are missing from ``<data_dir>/<name>/``.

    Args:
        name: a registered dataset.
        data_dir: raw data root (default ``$MMGCN_DATA``, else the user data dir); must be
            writable.
        mirror: a base URL serving the same file names (``<mirror>/<file name>``) instead
            of the card's URLs (default ``None``); the pins still apply.
        force: re-download files that are already present (default ``False``).
        timeout: seconds per connection attempt (default ``60``).

    Returns:
        the dataset folder ``<data_dir>/<name>``.

    Raises:
        DownloadError: a required file could not be fetched from any of its sources, or no
            source gave the pinned bytes; the message lists every attempt. An optional file
            (``optional: true`` in the card) that fails is logged as a warning instead.
        DataError: a file already present differs from its pin (re-run with ``force``).
    """
    card = dataset_card(name)
    root = paths.dataset_dir(name, data_dir)
    root.mkdir(parents=True, exist_ok=True)
    todo: dict[str, dict[str, Any]] = {}
    for fname, entry in card["files"].items():
        target = root / fname
        if target.is_file() and not force:
            if entry.get("sha256") and sha256_file(target) != entry["sha256"]:
                raise DataError(
                    f"{target}: present but its sha256 differs from the card's pin; re-download it "
                    f"with `mmgcn datasets download {name} --force`"
                )
            continue
        todo[fname] = entry
    errors: dict[str, list[str]] = {fname: [] for fname in todo}
    done: set[str] = set()

    # archives first: one fetch gives many files
    by_archive: dict[str, dict[str, dict[str, Any]]] = {}
    for fname, entry in todo.items():
        if entry.get("archive"):
            by_archive.setdefault(entry["archive"], {})[fname] = entry
    for archive_name, wanted in by_archive.items():
        spec = card["archives"][archive_name]
        url = _mirrored(spec["url"], mirror)
        logger.info("fetching %s for %s", url, ", ".join(wanted))
        try:
            with _temporary_sibling(root / archive_name) as (handle, tmp):
                actual = _fetch(url, handle, timeout, archive_name)
                if spec.get("sha256") and actual != spec["sha256"]:
                    raise _mismatch(root / archive_name, url, spec["sha256"], actual)
                handle.close()
                failed = _extract_members(tmp, url, wanted, root)
        except DownloadError as exc:
            failed = {fname: str(exc) for fname in wanted}
        for fname, why in failed.items():
            errors[fname].append(why)
        done.update(set(wanted) - set(failed))

    for fname, entry in todo.items():
        if fname in done or not entry.get("url"):
            continue
        if errors[fname]:
            logger.warning("%s: %s; trying %s", fname, errors[fname][-1], entry["url"])
        url = _mirrored(entry["url"], mirror)
        try:
            download_file(url, root / fname, entry.get("sha256"), timeout)
            errors[fname] = []
            done.add(fname)
        except DownloadError as exc:
            errors[fname].append(str(exc))

    failed = {f: why or ["the card gives no source for it"] for f, why in errors.items() if f not in done}
    for fname in [f for f in failed if todo[f].get("optional")]:
        # the dataset loads without it (ml-100k: texts without plots); say so, do not fail
        logger.warning("%s: optional file not obtained: %s", root / fname, " | ".join(failed.pop(fname)))
    if failed:
        detail = "\n".join(f"  {f}: " + " | then: ".join(why) for f, why in failed.items())
        raise DownloadError(f"{root}: could not obtain {len(failed)} file(s) of {name}:\n{detail}")
    for item, note in card.get("manual", {}).items():
        logger.warning("%s: %s", root / item, " ".join(str(note).split()))
    return root


def manual_steps(name: str) -> dict[str, str]:
    """``{path: note}`` for the parts of ``name`` that cannot be downloaded automatically."""
    return {k: " ".join(str(v).split()) for k, v in dataset_card(name).get("manual", {}).items()}
