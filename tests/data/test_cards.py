"""Cards outside the package, optional fields, file names from the card, one bad card in a list."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp

from mmgcn.data.dataset import DataError
from mmgcn.data.registry import CARDS_ENV, dataset_card, list_datasets, load_dataset, read_card

BUILTIN = ["amazon-baby", "ml-100k", "tiktok"]


def _mmssl_folder(folder, names=("train.pkl", "va.pkl", "te.pkl")):
    """4 users x 3 items in MMSSL pickles under custom file names."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = {
        names[0]: [(0, 0), (1, 1), (2, 2), (3, 0), (0, 1)],
        names[1]: [(1, 2)],
        names[2]: [(2, 0), (3, 1)],
    }
    for fname, pairs in parts.items():
        rows, cols = zip(*pairs)
        matrix = sp.coo_matrix((np.ones(len(pairs), np.float32), (rows, cols)), shape=(4, 3))
        (folder / fname).write_bytes(pickle.dumps(matrix))
    np.save(folder / "look.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
    return folder


MINIMAL = """\
name: mine
format: mmssl
path: ../files/mine
files:
  train.pkl:
  va.pkl: {}
  te.pkl: {}
  look.npy: {}
modalities:
  image: {file: look.npy}
split:
  default_convention: ours
  conventions:
    ours: {train: train.pkl, valid: va.pkl, test: te.pkl, note: our own cut}
"""


def test_a_minimal_card_with_its_own_file_names(tmp_path):
    _mmssl_folder(tmp_path / "files" / "mine")
    card = tmp_path / "cards" / "mine.yaml"
    card.parent.mkdir()
    card.write_text(MINIMAL)  # no title, url, sha256, statistics, licence: all optional
    dataset = load_dataset("mine", card=card)
    assert (dataset.train.nnz, dataset.valid.nnz, dataset.test.nnz) == (5, 1, 2)
    assert dataset.valid[1, 2] == 1 and dataset.test[3, 1] == 1
    np.testing.assert_array_equal(dataset.features.array("image"), np.arange(6).reshape(3, 2))
    assert dataset.info["split_convention"] == "ours: valid = va.pkl (1 interactions), test = te.pkl (2) -- our own cut"


def test_cards_from_the_environment_and_the_data_root(tmp_path, monkeypatch):
    _mmssl_folder(tmp_path / "files" / "mine")
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "mine.yaml").write_text(MINIMAL)
    assert "mine" not in list_datasets(tmp_path / "elsewhere")
    monkeypatch.setenv(CARDS_ENV, str(tmp_path / "cards"))
    assert list_datasets(tmp_path / "elsewhere") == sorted([*BUILTIN, "mine"])
    assert load_dataset("mine").train.nnz == 5
    monkeypatch.delenv(CARDS_ENV)
    # <data root>/cards: the card's default folder is <data root>/<name>
    root = tmp_path / "root"
    _mmssl_folder(root / "mine")
    (root / "cards").mkdir()
    (root / "cards" / "mine.yaml").write_text(MINIMAL.replace("path: ../files/mine\n", ""))
    assert "mine" in list_datasets(root)
    assert load_dataset("mine", data_dir=root).test.nnz == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nformat: mmssl\n", r"missing required field\(s\) \['files'\]"),
        ("name: x\nformat: csv\nfiles: {a: {}}\n", r"field 'format' is 'csv'"),
        ("name: x\nformat: mmrec\nfiles: {a: {}}\nstatistics: 3\n", r"field 'statistics' must be a mapping"),
        ("name: y\nformat: mmrec\nfiles: {a: {}}\n", r"field 'name' is 'y'; it must equal the file name 'x'"),
        ("name: x\nformat: mmssl\nfiles: {a: {}}\nsplit: {conventions: {mine: a sentence}}\n", r"split.conventions.mine is a sentence"),
        ("name: x\nformat: mmssl\nfiles: {a: {}}\nsplit: {conventions: {c: {valid: v.pkl}}}\n", r"split.conventions.c needs file names for \['test'\]"),
        ("name: [x\n", "not valid YAML"),
    ],
)
def test_bad_cards_name_the_file_and_field(tmp_path, text, message):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as info:
        read_card(path, "x")
    assert str(path) in str(info.value)


def test_one_bad_card_is_an_error_line_in_the_list(tmp_path, capsys):
    from mmgcn.cli import main

    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "broken.yaml").write_text("name: broken\ntitle: no statistics, no format\n")
    (tmp_path / "cards" / "fine.yaml").write_text("name: fine\nformat: mmrec\nfiles: {fine.inter: {}}\n")
    assert main(["datasets", "list", "--data-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:6]] == ["amazon-baby", "broken", "fine", "ml-100k", "tiktok"]
    fine = next(line for line in lines if line.startswith("fine "))
    assert "?" in fine and "missing 1 of 1" in fine  # no statistics in the card: shown as '?'
    assert any(line.startswith("broken: error:") and "missing required field(s) ['format', 'files']" in line
               for line in lines)


def test_builtin_cards_name_their_mmssl_files():
    card = dataset_card("amazon-baby")
    assert card["split"]["conventions"]["mmrec"]["valid"] == "tstMat.pkl"
    assert card["split"]["conventions"]["files"]["test"] == "tstMat.pkl"
    assert dataset_card("tiktok")["modalities"]["audio"]["file"] == "audio_feat.npy"


def test_help_texts_list_only_conventions_that_exist():
    from mmgcn.cli import build_parser

    parser = build_parser()
    texts = []
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            texts.append(sub.format_help())
            for inner in sub._actions:
                if hasattr(inner, "choices") and isinstance(inner.choices, dict):
                    texts.extend(p.format_help() for p in inner.choices.values())
    known = {c for name in BUILTIN for c in (dataset_card(name).get("split") or {}).get("conventions", {})}
    assert known == {"files", "mmrec"}
    named = {m for text in texts for m in re.findall(r"convention[:=]?\s*\{?\s*convention:\s*(\w+)|convention[:=]\s*(\w+)", text) for m in m if m}
    assert named and named <= known, named
    assert not any("hkuds" in text for text in texts)


LIGHT = textwrap.dedent(
    """
    import sys
    from mmgcn.cli import main
    for argv in {argvs!r}:
        try:
            main(argv)
        except SystemExit:
            pass
    heavy = sorted(m for m in ("torch", "torchvision", "transformers", "torch_geometric", "pandas") if m in sys.modules)
    print("HEAVY", heavy)
    """
)


@pytest.mark.parametrize(
    "argvs",
    [[["--help"]], [["datasets", "list"]], [["datasets", "info", "tiktok"]], [["datasets", "info", "ml-100k"]]],
    ids=["help", "list", "info-tiktok", "info-ml-100k"],
)
def test_light_commands_do_not_import_torch(argvs, data_root):
    """A fresh interpreter runs the command; torch (and pandas) must not have been imported."""
    result = subprocess.run(
        [sys.executable, "-c", LIGHT.format(argvs=argvs)], capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "MMGCN_DATA": str(data_root)},
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
