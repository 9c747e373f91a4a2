"""Extract zip / tar archives without trusting their member names.

An archive from the internet can hold members named ``../../.bashrc`` or ``/etc/x``,
symbolic or hard links pointing anywhere, device files, or far more bytes than it
claims. :func:`check_members` refuses every such member *before* anything is written;
:func:`safe_extract` extracts the rest member by member under ``target`` (each through a
temporary file and a rename, so a failure leaves no partial file).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from mmgcn.errors import DataError, UnsafeInputError

#: refuse a member larger than this (a zip bomb, or the wrong archive)
MAX_MEMBER_BYTES = 1 << 30
CHUNK = 1 << 16


@dataclass(frozen=True)
class Member:
    """One archive entry: its name, size, and what kind of entry it is."""

    name: str
    size: int
    kind: str  # "file", "dir", "symlink", "hardlink", "other"


def zip_members(archive: zipfile.ZipFile) -> Iterator[Member]:
    for info in archive.infolist():
        mode = (info.external_attr >> 16) & 0o170000
        kind = "dir" if info.is_dir() else "symlink" if mode == stat.S_IFLNK else "file"
        if mode and mode not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
            kind = "other"
        yield Member(info.filename, info.file_size, kind)


def tar_members(archive: tarfile.TarFile) -> Iterator[Member]:
    for info in archive.getmembers():
        kind = ("file" if info.isreg() else "dir" if info.isdir() else "symlink" if info.issym()
                else "hardlink" if info.islnk() else "other")
        yield Member(info.name, info.size, kind)


def member_target(target: Path, name: str, archive: str | os.PathLike = "archive") -> Path:
    """Where member ``name`` would land under ``target``; refuses names that escape it.

    Raises:
        UnsafeInputError: an absolute name, a drive letter, a ``..`` part, or a name that
            resolves outside ``target``.
    """
    pure = PurePosixPath(name.replace("\\", "/"))
    if not name or pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
        raise UnsafeInputError(f"{archive}: member {name!r} would be written outside {target}; refused")
    base = target.resolve()
    path = (base / pure).resolve()
    if path != base and base not in path.parents:
        raise UnsafeInputError(f"{archive}: member {name!r} resolves outside {target}; refused")
    return path


def check_members(members: list[Member], target: Path, archive: str | os.PathLike) -> None:
    """Refuse links, special files, escaping names and oversized members (nothing written)."""
    for member in members:
        if member.kind in ("symlink", "hardlink"):
            raise UnsafeInputError(f"{archive}: member {member.name!r} is a {member.kind}; archives may hold only "
                                   f"plain files and folders -- refused")
        if member.kind == "other":
            raise UnsafeInputError(f"{archive}: member {member.name!r} is a device, FIFO or other special file; refused")
        if member.size > MAX_MEMBER_BYTES:
            raise UnsafeInputError(f"{archive}: member {member.name!r} claims {member.size:,} bytes, more than "
                                   f"{MAX_MEMBER_BYTES:,}; refused")
        member_target(target, member.name, archive)


@contextlib.contextmanager
def _open_archive(path: Path) -> Iterator[tuple[str, zipfile.ZipFile | tarfile.TarFile]]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            yield "zip", archive
        return
    try:
        archive = tarfile.open(path)
    except (tarfile.TarError, OSError) as exc:
        raise UnsafeInputError(f"{path}: neither a zip nor a tar archive ({exc})") from None
    with archive:
        yield "tar", archive


def _copy_limited(source: IO[bytes], dest: Path, limit: int, label: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        written = 0
        with os.fdopen(fd, "wb") as handle:
            for chunk in iter(lambda: source.read(CHUNK), b""):
                written += len(chunk)
                if written > limit:
                    raise UnsafeInputError(f"{label}: holds more bytes than its header's {limit:,}; refused")
                handle.write(chunk)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def safe_extract(archive_path: str | os.PathLike, target: str | os.PathLike) -> list[Path]:
    """Extract every member of a zip or tar archive under ``target``; returns the files written.

    Raises:
        UnsafeInputError: a member escapes ``target``, is a link or a special file, or is
            larger than :data:`MAX_MEMBER_BYTES`; the archive is not a zip or tar.
    """
    archive_path, target = Path(archive_path), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    try:
        return _extract(archive_path, target)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as exc:
        raise DataError(f"{archive_path}: corrupt archive ({type(exc).__name__}: {exc}); re-download it") from None


def _extract(archive_path: Path, target: Path) -> list[Path]:
    written = []
    with _open_archive(archive_path) as (kind, archive):
        members = list(zip_members(archive) if kind == "zip" else tar_members(archive))
        check_members(members, target, archive_path)
        for member in members:
            path = member_target(target, member.name, archive_path)
            if member.kind == "dir":
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            label = f"{archive_path}!{member.name}"
            if kind == "zip":
                with archive.open(member.name) as source:
                    _copy_limited(source, path, member.size, label)
            else:
                source = archive.extractfile(member.name)
                if source is None:
                    raise UnsafeInputError(f"{label}: not a regular file; refused")
                with source:
                    _copy_limited(source, path, member.size, label)
            written.append(path)
    return written


__all__ = ["MAX_MEMBER_BYTES", "Member", "check_members", "member_target", "safe_extract", "tar_members", "zip_members"]
