"""Atomic writes leave the previous file intact on failure; hashing matches hashlib."""

from __future__ import annotations

import hashlib
import json

import pytest

from mmgcn.utils.io import atomic_write, atomic_write_json, sha256_file


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write('{"a": 2')
        raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left behind


def test_sha256_file(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 3_000_001)
    assert sha256_file(path, chunk_size=1 << 16) == hashlib.sha256(b"x" * 3_000_001).hexdigest()


def test_atomic_write_uses_umask_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "perm.json", {})
    finally:
        os.umask(old)
    assert (tmp_path / "perm.json").stat().st_mode & 0o777 == 0o644
