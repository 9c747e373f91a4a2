"""Downloads against a misbehaving local server: nothing hangs, nothing fills the disk,
no ``.part`` file survives a failure, and only bytes with the pinned SHA-256 land."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
from fault_server import FaultServer

from mmgcn.data import download
from mmgcn.data.download import DownloadError, download_file
from mmgcn.errors import UnsafeInputError

pytestmark = [pytest.mark.network, pytest.mark.fault_timeout(30)]

BODY = bytes(range(256)) * 64  # 16 KiB
PIN = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def server():
    with FaultServer(trickle_s=0.05) as srv:
        srv.add("file.bin", BODY)
        yield srv


def _nothing_left(folder: Path) -> bool:
    return not any(folder.iterdir()) if folder.exists() else True


def test_good_server_gives_the_pinned_bytes(server, tmp_path):
    target = tmp_path / "d" / "file.bin"
    download_file(server.url("ok", "file.bin"), target, PIN, timeout=5, expected_bytes=len(BODY))
    assert target.read_bytes() == BODY
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


@pytest.mark.parametrize("mode", ["trickle", "trickle-headers"])
def test_trickling_server_hits_the_overall_deadline(server, tmp_path, mode):
    # each byte arrives well within the 5 s read timeout: only an overall deadline stops it
    target = tmp_path / "d" / "file.bin"
    with pytest.raises(DownloadError, match="overall deadline of 1 s"):
        download_file(server.url(mode, "file.bin"), target, PIN, timeout=5, deadline=1.0)
    assert _nothing_left(target.parent)


def test_stalled_server_times_out(server, tmp_path):
    target = tmp_path / "d" / "file.bin"
    with pytest.raises(DownloadError):
        download_file(server.url("stall", "file.bin"), target, PIN, timeout=0.5, deadline=10)
    assert _nothing_left(target.parent)


def test_server_sending_more_than_the_card_size_is_cut_off(server, tmp_path):
    # no Content-Length and junk forever after the body: the card's size stops it
    target = tmp_path / "d" / "file.bin"
    with pytest.raises(DownloadError, match="sent more than the 16,384 bytes the dataset card expects"):
        download_file(server.url("no-length", "file.bin"), target, PIN, timeout=5, expected_bytes=len(BODY), deadline=20)
    assert _nothing_left(target.parent)


def test_lying_content_length_is_refused_or_capped(server, tmp_path):
    # the server claims 1000x the real size: with the card's size it is refused at once;
    # without it the announced length caps the transfer and the pin refuses the bytes
    target = tmp_path / "d" / "file.bin"
    with pytest.raises(DownloadError, match="but the dataset card expects 16,384"):
        download_file(server.url("lie-long", "file.bin"), target, PIN, timeout=5, expected_bytes=len(BODY))
    assert _nothing_left(target.parent)
    with pytest.raises(DownloadError, match="does not match the pin"):
        download_file(server.url("lie-long", "file.bin"), target, PIN, timeout=5, deadline=20)
    assert _nothing_left(target.parent)


def test_card_size_disagreeing_with_content_length_is_refused_before_downloading(server, tmp_path):
    target = tmp_path / "d" / "file.bin"
    with pytest.raises(DownloadError, match="announces 16,384 bytes but the dataset card expects 1,000"):
        download_file(server.url("ok", "file.bin"), target, PIN, timeout=5, expected_bytes=1000)
    assert _nothing_left(target.parent)


def test_dropped_connection_fails_and_cleans_up(server, tmp_path):
    target = tmp_path / "d" / "file.bin"
    with pytest.raises(DownloadError):
        download_file(server.url("drop", "file.bin"), target, PIN, timeout=5, deadline=20)
    assert _nothing_left(target.parent)


def test_http_error_and_wrong_hash_leave_the_previous_file(server, tmp_path):
    target = tmp_path / "d" / "file.bin"
    target.parent.mkdir()
    target.write_bytes(b"previous")
    with pytest.raises(DownloadError, match="500"):
        download_file(server.url("status-500", "file.bin"), target, PIN, timeout=5)
    with pytest.raises(DownloadError, match="does not match the pin"):
        download_file(server.url("ok", "file.bin"), target, "0" * 64, timeout=5)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_stale_part_files_of_killed_downloads_are_removed(server, tmp_path):
    import os
    import time

    target = tmp_path / "d" / "file.bin"
    target.parent.mkdir()
    stale = target.parent / ".file.bin.abc123.part"
    stale.write_bytes(b"x" * 100)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    download_file(server.url("ok", "file.bin"), target, PIN, timeout=5, deadline=60)
    assert not stale.exists() and target.read_bytes() == BODY


def _zip_with_symlink(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("data/u.data")
        info.external_attr = (0o120777 << 16)  # a symbolic link to /etc/passwd
        zf.writestr(info, "/etc/passwd")


def test_archive_links_and_escaping_names_are_refused(tmp_path):
    from mmgcn.utils.archives import safe_extract

    link_zip = tmp_path / "link.zip"
    _zip_with_symlink(link_zip)
    with pytest.raises(UnsafeInputError, match="symlink"):
        safe_extract(link_zip, tmp_path / "out")
    escape_zip = tmp_path / "escape.zip"
    with zipfile.ZipFile(escape_zip, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../../evil.txt", "pwned")
    with pytest.raises(UnsafeInputError, match="outside"):
        safe_extract(escape_zip, tmp_path / "out")
    assert not (tmp_path / "out" / "ok.txt").exists()  # checked before anything is written
    assert not (tmp_path.parent / "evil.txt").exists()


def test_tar_links_and_absolute_names_are_refused(tmp_path):
    import io
    import tarfile

    from mmgcn.utils.archives import safe_extract

    for name, kind in (("/abs.txt", tarfile.REGTYPE), ("link", tarfile.SYMTYPE), ("hard", tarfile.LNKTYPE)):
        path = tmp_path / f"{kind!r}.tar"
        with tarfile.open(path, "w") as tf:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd"
            tf.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
        with pytest.raises(UnsafeInputError):
            safe_extract(path, tmp_path / "out")
    good = tmp_path / "good.tar"
    with tarfile.open(good, "w") as tf:
        data = b"hello"
        info = tarfile.TarInfo("sub/a.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    assert [p.read_bytes() for p in safe_extract(good, tmp_path / "out2")] == [b"hello"]


def test_download_refuses_a_symlink_member_of_the_card_archive(tmp_path, monkeypatch):
    archive = tmp_path / "www" / "bundle.zip"
    archive.parent.mkdir()
    _zip_with_symlink(archive)
    failed = download._extract_members(archive, "http://x/bundle.zip", {"u.data": {"member": "data/u.data"}},
                                       tmp_path / "root")
    assert "symlink" in failed["u.data"]
    assert not (tmp_path / "root" / "u.data").exists()


def test_card_file_names_cannot_leave_the_dataset_folder(tmp_path):
    with pytest.raises(UnsafeInputError):
        download._card_target(tmp_path, "../outside.bin")
    with pytest.raises(UnsafeInputError):
        download._card_target(tmp_path, "/etc/passwd")
