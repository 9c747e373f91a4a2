"""``mmgcn datasets list | info | download | convert``, run in-process."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading

import numpy as np
import pytest

from mmgcn.cli import main
from mmgcn.data.readers import read_mmrec
from mmgcn.data.registry import load_dataset


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list(capsys, data_root):
    code, out, _ = _run(capsys, "datasets", "list", "--data-dir", str(data_root))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["name", "format", "users", "x"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"amazon-baby", "ml-100k", "tiktok"}
    assert "9,308 x 6,710" in rows["tiktok"] and rows["tiktok"].endswith("present")


def test_list_reports_missing_files(capsys, tmp_path):
    code, out, _ = _run(capsys, "datasets", "list", "--data-dir", str(tmp_path))
    assert code == 0
    assert "missing 5 of 5" in [line for line in out.splitlines() if line.startswith("tiktok")][0]


def test_info_tiktok(capsys, data_root):
    code, out, _ = _run(capsys, "datasets", "info", "tiktok", "--data-dir", str(data_root))
    assert code == 0
    assert "users             9,308" in out
    assert "items             6,710" in out
    assert "train 59,541 / valid 3,051 / test 6,130 (total 68,722)" in out
    assert "modalities        2: image 128-d, audio 128-d" in out
    assert "465 items without a train edge" in out
    assert "10 users without a train interaction" in out
    assert "test: 340 items (449 interactions)" in out
    assert "files: valid = valMat.pkl" in out
    assert "loaded in" in out


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ((), "mmrec: valid = tstMat.pkl (20,559 interactions), test = valMat.pkl (21,682)"),
        (("--convention", "files"), "files: valid = valMat.pkl (21,682 interactions), test = tstMat.pkl (20,559)"),
    ],
)
def test_info_baby_conventions(capsys, data_root, flags, expected):
    code, out, _ = _run(capsys, "datasets", "info", "amazon-baby", "--data-dir", str(data_root), *flags)
    assert code == 0
    assert "users             19,445" in out
    assert expected in out
    assert "modalities        none" in out


def test_info_ml100k(capsys, data_root):
    code, out, _ = _run(capsys, "datasets", "info", "ml-100k", "--data-dir", str(data_root))
    assert code == 0
    assert "users             943" in out and "items             1,682" in out
    assert "(total 100,000)" in out
    assert "content           titles 1,682 / texts 1,682 / image_paths 1,618 of 1,682 items" in out
    assert "split             temporal (ratios 0.8/0.1/0.1, seed 0" in out
    assert "mmgcn extract ml-100k --modality text" in out


def test_info_json_and_split_flags(capsys, data_root):
    code, out, _ = _run(
        capsys, "datasets", "info", "ml-100k", "--data-dir", str(data_root), "--split", "loo", "--seed", "1", "--json"
    )
    assert code == 0
    stats = json.loads(out)
    assert stats["split"]["method"] == "loo" and stats["split"]["seed"] == 1
    assert stats["interactions"]["test"] == 943
    assert stats["load_seconds"] > 0


def test_info_without_data_is_a_clear_error(capsys, tmp_path):
    code, _, err = _run(capsys, "datasets", "info", "tiktok", "--data-dir", str(tmp_path))
    assert code == 2
    assert "mmgcn: error:" in err and "mmgcn datasets download tiktok" in err


def test_info_unknown_dataset(capsys):
    code, _, err = _run(capsys, "datasets", "info", "netflix")
    assert code == 2
    assert "unknown dataset 'netflix'" in err


def test_convert_to_mmrec(capsys, data_root, tmp_path):
    out_dir = tmp_path / "mmrec"
    code, out, _ = _run(
        capsys, "datasets", "convert", "amazon-baby", "--to", "mmrec", str(out_dir), "--data-dir", str(data_root)
    )
    assert code == 0
    assert "amazon-baby.inter" in out and "160,792 interactions" in out
    back = read_mmrec(out_dir)
    original = load_dataset("amazon-baby", data_root)
    for split in ("train", "valid", "test"):
        assert (back.split(split) != original.split(split)).nnz == 0
    # a second run refuses to overwrite, --force overwrites
    code, _, err = _run(capsys, "datasets", "convert", "amazon-baby", "--to", "mmrec", str(out_dir),
                        "--data-dir", str(data_root))
    assert code == 2 and "already exists" in err
    code, _, _ = _run(capsys, "datasets", "convert", "amazon-baby", "--to", "mmrec", str(out_dir),
                      "--data-dir", str(data_root), "--force")
    assert code == 0


@pytest.mark.network
def test_download_command(capsys, data_root, tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    for name in ("trnMat.pkl", "valMat.pkl", "tstMat.pkl"):
        shutil.copyfile(data_root / "amazon-baby" / name, www / name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        mirror = f"http://127.0.0.1:{server.server_address[1]}"
        code, out, _ = _run(capsys, "datasets", "download", "amazon-baby", "--data-dir", str(tmp_path / "d"),
                            "--mirror", mirror)
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0
    assert "all downloadable files present and verified" in out
    baby = load_dataset("amazon-baby", tmp_path / "d")
    assert np.diff(baby.train.indptr).min() >= 1
