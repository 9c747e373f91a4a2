"""``mmgcn bench --seeds N`` against a config's per-model seed counts (``model_seeds``)."""

from __future__ import annotations

import re

import pytest

from mmgcn.cli import main

CONFIG = """\
dataset: tiktok
models: [bpr, popular]
seeds: 2
full:
  seeds: 5
  model_seeds: {bpr: 3, popular: 1}
"""


def dry_run_seeds(tmp_path, capsys, *extra: str) -> dict[str, list[int]]:
    # a dry run loads the dataset (to resolve every cell) but trains nothing
    path = tmp_path / "b.yaml"
    path.write_text(CONFIG)
    assert main(["bench", "--config", str(path), "--full", "--out", str(tmp_path / "o"), "--dry-run", *extra]) == 0
    seeds: dict[str, list[int]] = {}
    for model, seed in re.findall(r"^\s+runs\s+(\S+) seed (\d+)$", capsys.readouterr().out, flags=re.M):
        seeds.setdefault(model, []).append(int(seed))
    return seeds


def test_model_seeds_apply_without_the_flag(tmp_path, capsys, data_root, monkeypatch):
    monkeypatch.setenv("MMGCN_DATA", str(data_root))
    assert dry_run_seeds(tmp_path, capsys) == {"bpr": [0, 1, 2], "popular": [0]}


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        # --seeds 1 runs one seed of every model (was: bpr's model_seeds 3 outvoted it)
        ("1", {"bpr": [0], "popular": [0]}),
        ("2", {"bpr": [0, 1], "popular": [0]}),
        # a larger --seeds does not raise a model's lowered count (popular is deterministic)
        ("4", {"bpr": [0, 1, 2], "popular": [0]}),
    ],
)
def test_explicit_seeds_cap_model_seeds(tmp_path, capsys, data_root, monkeypatch, flag, expected):
    monkeypatch.setenv("MMGCN_DATA", str(data_root))
    assert dry_run_seeds(tmp_path, capsys, "--seeds", flag) == expected


def test_set_seeds_does_not_cap(tmp_path, capsys, data_root, monkeypatch):
    # --set seeds=N is the config key (the default count), not the flag: model_seeds still win
    monkeypatch.setenv("MMGCN_DATA", str(data_root))
    assert dry_run_seeds(tmp_path, capsys, "--set", "seeds=1") == {"bpr": [0, 1, 2], "popular": [0]}
