"""Fetch a dataset's files from the upstream URLs in its card, verified against SHA-256 pins.

Each missing file is streamed (with a tqdm progress bar) to a temporary file beside its
destination while being hashed; only a file whose hash equals its pin is moved into
place (``os.replace``), so a failed or tampered download never leaves a file that a
reader would pick up. Files that come from an archive (MovieLens' ``ml-100k.zip``) are
extracted member by member, and each member is verified against its own pin; when the
archive cannot be fetched or a member does not match, the file's direct ``url`` (a
mirror at a fixed commit) is tried next.

Nothing a server does can hang a download or fill the disk: every file has an overall
deadline (a watchdog shuts the socket down when it passes, so a server trickling one byte a
second, or trickling its headers, fails in time), the bytes accepted are capped by the
card's ``bytes`` or else the announced ``Content-Length`` (a server that sends more is cut
off), a connection that drops early fails, and the ``.part`` file is removed on every
failure. Archive members that are links or special files are refused.

This is the only code that writes into the raw data directory.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import http.client
import logging
import os
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tqdm.auto import tqdm

from mmgcn.data import paths
from mmgcn.data.dataset import DataError
from mmgcn.data.registry import dataset_card
from mmgcn.errors import DownloadError, UnsafeInputError
from mmgcn.utils.archives import check_members, member_target, zip_members
from mmgcn.utils.io import sha256_file

logger = logging.getLogger(__name__)

CHUNK = 1 << 16
#: seconds one file may take from connecting to its last byte (``deadline=`` overrides)
DEFAULT_DEADLINE = 1800.0
#: accept at most this many bytes from a server that announces no length for a file whose
#: card gives no size
MAX_UNSIZED_BYTES = 4 << 30


def _mirrored(url: str, mirror: str | None) -> str:
    """``url`` itself, or ``<mirror>/<file name of url>`` when a mirror is given."""
    if not mirror:
        return url
    return mirror.rstrip("/") + "/" + url.rsplit("/", 1)[-1]


def _remove_stale_parts(path: Path, older_than: float) -> None:
    """Remove ``.part`` files of ``path`` left by a killed process (older than any live download)."""
    now = time.time()
    for part in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        with contextlib.suppress(OSError):
            if now - part.stat().st_mtime > older_than:
                part.unlink()


@contextlib.contextmanager
def _temporary_sibling(path: Path, stale_after: float = 2 * DEFAULT_DEADLINE) -> Iterator[tuple[IO[bytes], Path]]:
    """A temp file beside ``path``; removed on exit unless it was moved away."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(path, stale_after)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle, Path(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


class _Watchdog:
    """Shuts down every socket it was given once ``seconds`` have passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def register(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            self._shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, watchdog: _Watchdog, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watchdog = watchdog

    def connect(self) -> None:
        super().connect()
        self._watchdog.register(self.sock)


class _WatchedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, watchdog: _Watchdog, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watchdog = watchdog

    def connect(self) -> None:
        super().connect()
        self._watchdog.register(self.sock)


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watchdog: _Watchdog) -> None:
        super().__init__()
        self.watchdog = watchdog

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_WatchedHTTPConnection, watchdog=self.watchdog), req)


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, watchdog: _Watchdog) -> None:
        super().__init__()
        self.watchdog = watchdog

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_WatchedHTTPSConnection, watchdog=self.watchdog), req,
                            context=self._context)


def _announced_length(response: Any) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.strip().isdigit() else None


def _fetch(
    url: str,
    handle: IO[bytes],
    timeout: float,
    label: str,
    expected_bytes: int | None = None,
    deadline: float = DEFAULT_DEADLINE,
) -> str:
    """Stream ``url`` into ``handle``; return the hex SHA-256 of the bytes written.

    Args:
        url: what to fetch.
        handle: the open ``.part`` file.
        timeout: seconds a connection attempt or one read may wait.
        label: progress-bar text.
        expected_bytes: the exact size from the card, when it gives one.
        deadline: seconds the whole transfer may take.

    Raises:
        DownloadError: unreachable, an HTTP error, the deadline passed, more bytes than
            expected or announced, fewer bytes than announced (dropped connection), or no
            room on the disk.
    """
    digest = hashlib.sha256()
    written = 0
    fix = ("check the network connection, or pass a mirror that serves the same file names "
           "(`--mirror URL`)")
    watchdog = _Watchdog(deadline)
    opener = urllib.request.build_opener(_WatchedHTTPHandler(watchdog), _WatchedHTTPSHandler(watchdog))
    try:
        with watchdog, opener.open(url, timeout=min(timeout, deadline)) as response:
            announced = _announced_length(response)
            if expected_bytes is not None and announced is not None and announced != expected_bytes:
                raise DownloadError(
                    f"{url}: the server announces {announced:,} bytes but the dataset card expects "
                    f"{expected_bytes:,}; refused before downloading -- {fix}"
                )
            cap = expected_bytes if expected_bytes is not None else announced if announced is not None else MAX_UNSIZED_BYTES
            if expected_bytes is not None or announced is not None:
                stats = os.fstatvfs(handle.fileno())
                free = stats.f_bavail * stats.f_frsize
                if cap > free:
                    raise DownloadError(f"{url}: needs {cap:,} bytes but only {free:,} are free on the target disk; "
                                        f"free some space or pass another --data-dir")
            read = getattr(response, "read1", response.read)
            with tqdm(total=cap if cap != MAX_UNSIZED_BYTES else None, unit="B", unit_scale=True, desc=label,
                      leave=False, disable=None) as bar:  # no bar when stderr is not a terminal (CI logs)
                while True:
                    chunk = read(CHUNK)
                    if watchdog.expired:
                        raise TimeoutError("deadline")
                    if not chunk:
                        break
                    written += len(chunk)
                    if written > cap:
                        raise DownloadError(
                            f"{url}: the server sent more than the {cap:,} bytes "
                            f"{'the dataset card expects' if expected_bytes is not None else 'it announced'}; "
                            f"stopped and removed the partial file -- {fix}"
                        )
                    handle.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except DownloadError:
        raise
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        if watchdog.expired:
            raise DownloadError(
                f"could not fetch {url} within the overall deadline of {deadline:g} s ({written:,} bytes "
                f"received); the server is too slow or stalled -- {fix}"
            ) from None
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        raise DownloadError(f"could not fetch {url} ({reason}); {fix}") from None
    short_of = announced if announced is not None else expected_bytes
    if short_of is not None and written < short_of:
        raise DownloadError(
            f"{url}: the connection ended after {written:,} of {short_of:,} bytes; removed the partial "
            f"file -- retry, or {fix}"
        )
    handle.flush()
    os.fsync(handle.fileno())
    return digest.hexdigest()


def _mismatch(path: Path, url: str, expected: str, actual: str) -> DownloadError:
    return DownloadError(
        f"{path}: refused the file downloaded from {url}: sha256 {actual} does not match the pin "
        f"{expected} in the dataset card; nothing was written. The upstream file changed or the "
        f"transfer was corrupted -- retry, or use a mirror with the pinned bytes"
    )


def download_file(
    url: str,
    path: Path,
    sha256: str | None,
    timeout: float = 60.0,
    *,
    expected_bytes: int | None = None,
    deadline: float = DEFAULT_DEADLINE,
) -> Path:
    """Download ``url`` to ``path`` atomically, refusing bytes whose hash is not ``sha256``.

    The SHA-256 is checked before the ``.part`` file is renamed to ``path``; the ``.part``
    file is removed on every failure.

    Raises:
        DownloadError: the URL cannot be fetched in ``deadline`` seconds, sends more than
            ``expected_bytes`` (or its ``Content-Length``), drops the connection, or the
            hash differs (``path`` is then left as it was: absent or the previous file).
    """
    with _temporary_sibling(path, stale_after=2 * deadline) as (handle, tmp):
        actual = _fetch(url, handle, timeout, path.name, expected_bytes, deadline)
        if sha256 and actual != sha256:
            raise _mismatch(path, url, sha256, actual)
        if not sha256:
            logger.warning("%s: no sha256 pin in the card; fetched unverified from %s (sha256 %s)", path, url, actual)
        os.replace(tmp, path)
    return path


def _card_target(root: Path, fname: str) -> Path:
    """``root / fname`` for a card's file name; names that leave ``root`` are refused."""
    return member_target(root, fname, f"dataset card file name {fname!r}")


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
            try:
                check_members([m for m in zip_members(zf) if m.name == info.filename], root, url)
            except UnsafeInputError as exc:
                failed[fname] = str(exc)
                continue
            target = _card_target(root, fname)
            with _temporary_sibling(target) as (handle, tmp):
                digest = hashlib.sha256()
                try:
                    with zf.open(info) as member:
                        for chunk in iter(lambda m=member: m.read(CHUNK), b""):
                            handle.write(chunk)
                            digest.update(chunk)
                except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                    failed[fname] = f"{url}: member {entry['member']!r} is corrupt ({type(exc).__name__}: {exc})"
                    continue
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
    deadline: float = DEFAULT_DEADLINE,
) -> Path:
    """Fetch the files of dataset ``name`` that are missing from ``<data_dir>/<name>/``.

    Args:
        name: a registered dataset.
        data_dir: raw data root (default ``$MMGCN_DATA``, else the user data dir); must be
            writable.
        mirror: a base URL serving the same file names (``<mirror>/<file name>``) instead
            of the card's URLs (default ``None``); the pins still apply.
        force: re-download files that are already present (default ``False``).
        timeout: seconds per connection attempt or read (default ``60``).
        deadline: seconds one file may take in all (default :data:`DEFAULT_DEADLINE`).

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
        target = _card_target(root, fname)
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
                actual = _fetch(url, handle, timeout, archive_name, _size(spec), deadline)
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
            download_file(url, _card_target(root, fname), entry.get("sha256"), timeout,
                          expected_bytes=_size(entry), deadline=deadline)
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


def _size(entry: dict[str, Any]) -> int | None:
    """The card's ``bytes`` for a file or archive, when it gives a positive integer."""
    value = entry.get("bytes")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def manual_steps(name: str) -> dict[str, str]:
    """``{path: note}`` for the parts of ``name`` that cannot be downloaded automatically."""
    return {k: " ".join(str(v).split()) for k, v in dataset_card(name).get("manual", {}).items()}
