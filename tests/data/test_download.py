"""Download against a local HTTP server on 127.0.0.1: verified, atomic, refusing mismatches."""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import threading
import zipfile
from pathlib import Path

import pytest

from mmgcn.data import registry
from mmgcn.data.dataset import DataError
from mmgcn.data.download import DownloadError, download_dataset
from mmgcn.data.registry import dataset_card, load_dataset, pins
from mmgcn.utils.io import sha256_file

pytestmark = pytest.mark.network

TIKTOK_FILES = ["trnMat.pkl", "valMat.pkl", "tstMat.pkl", "image_feat.npy", "audio_feat.npy"]
ML_FILES = ["u.data", "u.item", "u.user", "u.genre", "u.occupation", "u.info", "README"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def serve(tmp_path):
    """``serve(folder) -> base URL`` of a threading HTTP server on 127.0.0.1 (random port)."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _copy(src: Path, dst: Path, names) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(src / name, dst / name)
    return dst


def _leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_tiktok_download_success(serve, tmp_path, data_root):
    mirror = serve(_copy(data_root / "tiktok", tmp_path / "www", TIKTOK_FILES))
    root = download_dataset("tiktok", tmp_path / "data", mirror=mirror)
    assert root == tmp_path / "data" / "tiktok"
    card_pins = pins(dataset_card("tiktok"))
    assert {p.name: sha256_file(p) for p in root.iterdir()} == card_pins
    assert load_dataset("tiktok", tmp_path / "data").train.nnz == 59541


def test_hash_mismatch_is_refused(serve, tmp_path, data_root):
    www = _copy(data_root / "tiktok", tmp_path / "www", TIKTOK_FILES)
    raw = bytearray((www / "trnMat.pkl").read_bytes())
    raw[5000] ^= 0xFF
    (www / "trnMat.pkl").write_bytes(bytes(raw))
    mirror = serve(www)
    with pytest.raises(DownloadError) as info:
        download_dataset("tiktok", tmp_path / "data", mirror=mirror)
    message = str(info.value)
    target = tmp_path / "data" / "tiktok"
    assert f"{mirror}/trnMat.pkl" in message
    assert pins(dataset_card("tiktok"))["trnMat.pkl"] in message  # expected
    assert sha256_file(www / "trnMat.pkl") in message  # actual
    assert not (target / "trnMat.pkl").exists()
    assert _leftovers(target) == []  # no temp file left behind
    assert (target / "valMat.pkl").is_file()  # the good files did arrive


def test_unreachable_server(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once we leave: connection refused
    with pytest.raises(DownloadError, match=rf"could not fetch http://127\.0\.0\.1:{port}/trnMat\.pkl"):
        download_dataset("amazon-baby", tmp_path / "data", mirror=f"http://127.0.0.1:{port}", timeout=5)
    assert list((tmp_path / "data" / "amazon-baby").iterdir()) == []


def test_present_file_with_wrong_hash_needs_force(serve, tmp_path, data_root):
    mirror = serve(_copy(data_root / "amazon-baby", tmp_path / "www", ["trnMat.pkl", "valMat.pkl", "tstMat.pkl"]))
    target = tmp_path / "data" / "amazon-baby"
    target.mkdir(parents=True)
    (target / "tstMat.pkl").write_bytes(b"stale")
    with pytest.raises(DataError, match=r"tstMat\.pkl: present but its sha256 differs.*--force"):
        download_dataset("amazon-baby", tmp_path / "data", mirror=mirror)
    download_dataset("amazon-baby", tmp_path / "data", mirror=mirror, force=True)
    assert sha256_file(target / "tstMat.pkl") == pins(dataset_card("amazon-baby"))["tstMat.pkl"]


def _ml_zip(data_root: Path, path: Path, corrupt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name in ML_FILES:
            data = (data_root / "ml-100k" / name).read_bytes()
            zf.writestr(f"ml-100k/{name}", data + (b"x" if name == corrupt else b""))
        zf.writestr("ml-100k/u1.base", b"not needed\n")


def test_ml100k_from_the_archive(serve, tmp_path, data_root, caplog):
    www = tmp_path / "www"
    _ml_zip(data_root, www / "ml-100k.zip")
    _copy(data_root / "ml-100k", www, ["movielens100k_details.json"])
    root = download_dataset("ml-100k", tmp_path / "data", mirror=serve(www))
    card_pins = pins(dataset_card("ml-100k"))
    assert {p.name: sha256_file(p) for p in root.iterdir()} == card_pins
    assert not (root / "u1.base").exists() and not (root / "ml-100k.zip").exists()
    assert "cannot be fetched automatically" in caplog.text  # posters
    ds = load_dataset("ml-100k", tmp_path / "data")
    assert ds.stats()["content"]["texts"] == 1682
    assert ds.stats()["content"]["image_paths"] == 0


def test_ml100k_bad_member_falls_back_to_the_file_url(serve, tmp_path, data_root, caplog):
    www = tmp_path / "www"
    _ml_zip(data_root, www / "ml-100k.zip", corrupt="u.item")
    _copy(data_root / "ml-100k", www, ["movielens100k_details.json", "u.item"])
    root = download_dataset("ml-100k", tmp_path / "data", mirror=serve(www))
    assert sha256_file(root / "u.item") == pins(dataset_card("ml-100k"))["u.item"]
    assert "u.item" in caplog.text and "does not match" in caplog.text


def test_ml100k_bad_member_without_fallback_is_refused(serve, tmp_path, data_root):
    www = tmp_path / "www"
    _ml_zip(data_root, www / "ml-100k.zip", corrupt="u.user")
    _copy(data_root / "ml-100k", www, ["movielens100k_details.json"])
    with pytest.raises(DownloadError, match=r"could not obtain 1 file\(s\) of ml-100k:\n  u\.user: .*does not match"):
        download_dataset("ml-100k", tmp_path / "data", mirror=serve(www))
    root = tmp_path / "data" / "ml-100k"
    assert not (root / "u.user").exists()
    assert (root / "u.data").is_file()
    assert _leftovers(root) == []


def test_load_dataset_can_download(serve, tmp_path, data_root, monkeypatch):
    import mmgcn.data.download as download

    mirror = serve(_copy(data_root / "amazon-baby", tmp_path / "www", ["trnMat.pkl", "valMat.pkl", "tstMat.pkl"]))
    monkeypatch.setattr(download, "download_dataset", functools.partial(download.download_dataset, mirror=mirror))
    with pytest.raises(DataError, match="mmgcn datasets download amazon-baby"):
        registry.load_dataset("amazon-baby", tmp_path / "data")
    ds = registry.load_dataset("amazon-baby", tmp_path / "data", download=True)
    assert ds.test.nnz == 21682


def test_optional_file_failure_is_a_warning(serve, tmp_path, data_root, caplog):
    www = tmp_path / "www"
    _ml_zip(data_root, www / "ml-100k.zip")  # no details json served
    root = download_dataset("ml-100k", tmp_path / "data", mirror=serve(www))
    assert (root / "u.data").is_file() and not (root / "movielens100k_details.json").exists()
    assert "optional file not obtained" in caplog.text
