"""``mmgcn recommend`` on an imported dataset: original ids, titles, --format json / csv."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch

from mmgcn.cli import main
from mmgcn.datasets import import_table, write_demo_shop
from mmgcn.train.loading import load_run


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory):
    """A 2-epoch LightGCN run on an imported demo shop (ids like u007 / sku-0012)."""
    root = tmp_path_factory.mktemp("shop")
    raw = write_demo_shop(root / "raw", n_users=40, n_items=25, interactions_per_user=6, seed=2)
    import_table("shop", raw["interactions"], items=raw["items"], data_dir=root / "data", progress=False)
    run_dir = root / "run"
    torch.manual_seed(0)
    code = main(["train", "--model", "lightgcn", "--dataset", "shop", "--data-dir", str(root / "data"),
                 "--set", "train.epochs=2", "--set", "train.batch_size=64", "--set", "train.progress=false",
                 "--run-dir", str(run_dir)])
    assert code == 0
    return run_dir


def _expected(run_dir, user: int, k: int) -> list[int]:
    run = load_run(run_dir)
    _, items = run.model.recommend([user], k=k)
    return items[0].tolist()


def test_table_shows_original_ids_and_titles(shop_run, capsys):
    capsys.readouterr()
    assert main(["recommend", str(shop_run), "--user", "u003", "-k", "5"]) == 0
    out = capsys.readouterr().out
    run = load_run(shop_run)
    user = list(run.dataset.info["id_maps"]["user_ids"]).index("u003")
    assert f"top 5 for user u003 (index {user})" in out
    for item in _expected(shop_run, user, 5):
        line = next(li for li in out.splitlines() if f" {run.dataset.info['id_maps']['item_ids'][item]} " in li)
        assert run.dataset.content.titles[item] in line


def test_json_and_csv_list_the_same_recommendations(shop_run, capsys):
    run = load_run(shop_run)
    ids = run.dataset.info["id_maps"]
    capsys.readouterr()
    assert main(["recommend", str(shop_run), "--user", "u010", "--user-index", "0", "-k", "4", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["user_id"] for r in records] == ["u010"] * 4 + [str(ids["user_ids"][0])] * 4
    user = list(ids["user_ids"]).index("u010")
    assert [r["item"] for r in records[:4]] == _expected(shop_run, user, 4)
    assert all(r["item_id"] == ids["item_ids"][r["item"]] and r["title"] == run.dataset.content.titles[r["item"]]
               for r in records)
    assert [r["rank"] for r in records] == [1, 2, 3, 4] * 2
    assert main(["recommend", str(shop_run), "--user", "u010", "--user-index", "0", "-k", "4", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["user_id"], r["item_id"], r["title"]) for r in rows] == [
        (r["user_id"], r["item_id"], r["title"]) for r in records
    ]
    assert [float(r["score"]) for r in rows] == pytest.approx([r["score"] for r in records])


def test_unknown_original_id_is_one_clear_error(shop_run, capsys):
    assert main(["recommend", str(shop_run), "--user", "nobody"]) == 2  # a usage error
    err = capsys.readouterr().err
    assert "--user 'nobody': no such user id in shop" in err and "--user-index" in err
