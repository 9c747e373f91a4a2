"""An exclusive lock on a benchmark output directory.

Two ``mmgcn bench`` runs writing one results folder would race on ``results.json`` and on
the cells, so :class:`BenchLock` makes the second one fail at once, naming the holder.

The lock is ``<folder>/.bench.lock``, held with ``flock(LOCK_EX | LOCK_NB)`` on an open
descriptor and holding JSON with the holder's pid, host, process start time, command line
and start time. The kernel drops an ``flock`` when its process dies (even by SIGKILL),
so a lock file left by a dead process on this host is *stale* and is taken over (with a
warning naming the dead holder). A lock file recorded by another host -- a shared file
system, where ``flock`` may not reach across machines -- that was never released is not
taken over: the message names that host and says how to clear it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from mmgcn.errors import BenchLockedError

log = logging.getLogger(__name__)

LOCK_FILE = ".bench.lock"


def _holder_record() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "argv": list(sys.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "released": False,
    }


def _describe(record: dict[str, Any]) -> str:
    command = " ".join(str(a) for a in record.get("argv") or [])[:160]
    return (f"pid {record.get('pid')} on host {record.get('host')!r} since {record.get('started')}"
            + (f" ({command})" if command else ""))


class BenchLock:
    """``with BenchLock(folder): ...`` -- the folder is ours until the block ends.

    Raises:
        BenchLockedError: another live process holds the folder, or a lock recorded by
            another host was never released.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None
        self._created = False

    def acquire(self) -> BenchLock:
        self._created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(5):  # retried only when the file was replaced between open and flock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                previous = self._read(fd)
                os.close(fd)
                raise BenchLockedError(
                    f"{self.folder}: another mmgcn bench is writing this results folder ({_describe(previous)}); "
                    f"wait for it to finish, or pass another --out"
                ) from None
            try:
                same_file = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # the holder released (unlinked) it between our open and flock
                os.close(fd)
                continue
            previous = self._read(fd)
            if previous and not previous.get("released"):
                if previous.get("host") not in (None, socket.gethostname()):
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                    raise BenchLockedError(
                        f"{self.folder}: locked by {_describe(previous)}, which this host cannot check; if no "
                        f"bench runs there any more, delete {self.path}"
                    )
                log.warning("%s: took over a stale lock of %s (that process is gone)", self.folder, _describe(previous))
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(_holder_record(), indent=2).encode("utf-8"), 0)
            os.fsync(fd)
            self._fd = fd
            return self
        raise BenchLockedError(f"{self.folder}: could not take the lock (the lock file keeps changing)")

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # while still holding the flock: a waiter re-checks the inode
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        if self._created:  # a run that wrote nothing (refused config) leaves no folder behind
            with contextlib.suppress(OSError):
                self.folder.rmdir()

    @property
    def held(self) -> bool:
        return self._fd is not None

    @staticmethod
    def _read(fd: int) -> dict[str, Any]:
        try:
            data = json.loads(os.pread(fd, 1 << 16, 0).decode("utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def __enter__(self) -> BenchLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_lock(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The holder record of ``folder``'s lock file, if there is one (for messages and tests)."""
    path = Path(folder) / LOCK_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


__all__ = ["LOCK_FILE", "BenchLock", "read_lock"]
