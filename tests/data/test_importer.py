"""``import_table`` / ``mmgcn datasets import``: tables in, a dataset directory with a card out."""

from __future__ import annotations

import functools
import http.server
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from mmgcn.data.dataset import DataError
from mmgcn.data.readers.mmrec import read_inter_columns
from mmgcn.data.registry import list_datasets, load_dataset
from mmgcn.datasets import import_table, write_demo_shop


def _pairs(dataset, split=None):
    """Set of (original user id, original item id) of a split (or all)."""
    users, items = dataset.info["id_maps"]["user_ids"], dataset.info["id_maps"]["item_ids"]
    out = set()
    for s in [split] if split else ("train", "valid", "test"):
        coo = dataset.split(s).tocoo()
        out |= {(users[u], items[i]) for u, i in zip(coo.row, coo.col)}
    return out


def test_csv_with_items_and_images(tmp_path):
    paths = write_demo_shop(tmp_path / "raw", n_users=40, n_items=25, interactions_per_user=6, seed=3)
    raw = pd.read_csv(paths["interactions"])
    items = pd.read_csv(paths["items"], keep_default_na=False)
    dataset = import_table("shop", paths["interactions"], items=paths["items"], data_dir=tmp_path / "data",
                           progress=False)
    assert (dataset.n_users, dataset.n_items) == (raw.user_id.nunique(), raw.item_id.nunique())
    # every row of the table is an interaction between the same original ids, nothing else
    assert _pairs(dataset) == set(zip(raw.user_id, raw.item_id))
    # ids are sorted originals: index 0 is the smallest id
    assert list(dataset.info["id_maps"]["user_ids"]) == sorted(raw.user_id.unique())
    # content per item index, from the item table row of its original id
    by_id = items.set_index("item_id")
    for index, original in enumerate(dataset.info["id_maps"]["item_ids"]):
        row = by_id.loc[original]
        assert dataset.content.titles[index] == row.title
        assert dataset.content.texts[index] == f"{row.title}. {row.description.rstrip('.')}"
        path = dataset.content.image_paths[index]
        if row.image:
            assert path.is_file() and path.parent == tmp_path / "data" / "shop" / "images"
            assert path.read_bytes() == (paths["items"].parent / row.image).read_bytes()
        else:
            assert path is None  # missing, not made up
    # the card: found by name, pins the written files, records the columns used
    assert "shop" in list_datasets(tmp_path / "data")
    card = yaml.safe_load((tmp_path / "data" / "cards" / "shop.yaml").read_text())
    assert card["source"]["columns"] == {"user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "timestamp"}
    assert set(card["files"]) == {"shop.inter", "shop.json", "items.tsv", "users.tsv"}
    assert card["statistics"]["interactions"] == {s: dataset.split(s).nnz for s in ("train", "valid", "test")}
    assert set(card["modalities"]) == {"image", "text"}


def test_double_colon_separator_numbered_columns_rating_and_k_core(tmp_path):
    # MovieLens-1M style: user::item::rating::time, no header
    rows = [
        (1, 10, 5, 100), (1, 11, 4, 101), (1, 12, 2, 102),  # (1, 12) below the threshold
        (2, 10, 4, 100), (2, 11, 5, 103),
        (3, 10, 5, 104), (3, 13, 5, 105),                    # item 13 has one user: out of the 2-core
        (4, 10, 1, 100),                                     # user 4 has no rating >= 4
    ]
    (tmp_path / "ratings.dat").write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in rows))
    dataset = import_table(
        "ml", tmp_path / "ratings.dat", data_dir=tmp_path / "data", header=False, sep="::",
        user_col=0, item_col="1", rating_col=2, timestamp_col=3, min_rating=4, k_core=2, split="loo",
    )
    # after rating >= 4: (1,10) (1,11) (2,10) (2,11) (3,10) (3,13); the 2-core drops item 13,
    # then user 3 has one item and goes, leaving users 1, 2 and items 10, 11
    assert _pairs(dataset) == {("1", "10"), ("1", "11"), ("2", "10"), ("2", "11")}
    report = yaml.safe_load((tmp_path / "data" / "cards" / "ml.yaml").read_text())["import_report"]
    assert report["below_min_rating"] == 2 and report["rows"] == 8
    assert report["filtering"]["users_removed"] == 1 and report["filtering"]["items_removed"] == 1
    # leave-one-out with times: the latest item of each user is test
    assert _pairs(dataset, "test") == {("1", "11"), ("2", "11")}


def test_temporal_split_and_times_survive_into_the_inter_file(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({
        "who": rng.integers(0, 20, n), "what": rng.integers(0, 30, n),
        "when": pd.Timestamp("2021-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10**7, n), unit="s"),
    })
    frame = frame.drop_duplicates(["who", "what"])
    frame.assign(when=frame.when.dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(tmp_path / "log.tsv", sep="\t", index=False)
    dataset = import_table("log", tmp_path / "log.tsv", data_dir=tmp_path / "data", user_col="who",
                           item_col="what", timestamp_col="when", split="temporal")
    assert dataset.timestamps is not None
    seconds = {(str(u), str(i)): int(t.timestamp()) for u, i, t in zip(frame.who, frame.what, frame.when)}
    users, items = dataset.info["id_maps"]["user_ids"], dataset.info["id_maps"]["item_ids"]
    latest_train = np.full(dataset.n_users, -1)
    for split in ("train", "valid", "test"):
        coo = dataset.split(split).tocoo()
        times = dataset.split_times(split)
        # dataset times are the table's (date strings parsed as UTC seconds), pair by pair
        assert [seconds[(users[u], items[i])] for u, i in zip(coo.row, coo.col)] == times.tolist()
        if split == "train":
            np.maximum.at(latest_train, coo.row, times)
        else:  # per-user temporal: no held-out event before the user's last train event
            assert np.all(times >= latest_train[coo.row])
    # the .inter file holds the times, and re-splitting on load can use them
    columns = read_inter_columns(tmp_path / "data" / "log" / "log.inter")
    assert sorted(columns["timestamp"].tolist()) == sorted(seconds.values())
    again = load_dataset("log", data_dir=tmp_path / "data", split="global_temporal")
    assert again.split_times("test").min() >= again.split_times("train").max()


def test_random_split_is_seeded(tmp_path):
    paths = write_demo_shop(tmp_path / "raw", n_users=30, n_items=20, interactions_per_user=8, seed=1)
    a = import_table("a", paths["interactions"], data_dir=tmp_path / "d", seed=5)
    b = import_table("b", paths["interactions"], data_dir=tmp_path / "d", seed=5)
    c = import_table("c", paths["interactions"], data_dir=tmp_path / "d", seed=6)
    assert (a.test != b.test).nnz == 0
    assert (a.test != c.test).nnz > 0
    assert a.timestamps is not None  # the 'timestamp' column was found by its name


def test_parquet_and_the_error_without_pyarrow(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"user": ["x", "y", "x", "z"], "item": [1, 2, 2, 1]})
    frame.to_parquet(tmp_path / "t.parquet")
    dataset = import_table("pq", tmp_path / "t.parquet", data_dir=tmp_path / "data", split="random")
    assert _pairs(dataset) == {("x", "1"), ("y", "2"), ("x", "2"), ("z", "1")}
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    with pytest.raises(DataError, match=r"t\.parquet: reading parquet needs pyarrow.*mmgcn\[parquet\]"):
        import_table("pq2", tmp_path / "t.parquet", data_dir=tmp_path / "data")


@pytest.mark.parametrize(
    ("table", "kwargs", "message"),
    [
        ("u,i\na,b\n", {"user_col": "customer"}, r"in\.csv: no column 'customer' for the user; the columns are \['u', 'i'\]"),
        ("a,b\n1,2\n", {}, r"in\.csv: cannot tell which column holds the user; the columns are \['a', 'b'\].*--user-col"),
        ("user,item\nx,1\n,2\n", {}, r"in\.csv: field 'user' is empty at line 3"),
        ("user,item,rating\nx,1,4\ny,2,bad\n", {"min_rating": 3}, r"field 'rating' at line 3 is 'bad', not a number"),
        ("user,item,time\nx,1,2020-01-01\ny,2,someday\n", {}, r"field 'time' at line 3 is 'someday'"),
        ("user,item\nx,1\n", {"split": "temporal"}, r"cannot tell which column holds the timestamp"),
    ],
)
def test_bad_tables_name_file_field_and_fix(tmp_path, table, kwargs, message):
    (tmp_path / "in.csv").write_text(table)
    with pytest.raises(DataError, match=message):
        import_table("bad", tmp_path / "in.csv", data_dir=tmp_path / "data", **kwargs)
    assert not (tmp_path / "data" / "bad").exists()  # nothing half-written
    assert not list((tmp_path / "data").glob(".bad*"))


def test_item_table_errors_and_items_without_rows(tmp_path):
    (tmp_path / "in.csv").write_text("user,item\nx,1\nx,2\ny,2\ny,3\n")
    (tmp_path / "items.csv").write_text("item,title\n1,one\n1,uno\n")
    with pytest.raises(DataError, match=r"items\.csv: item id '1' appears twice in field 'item' \(line 3\)"):
        import_table("t", tmp_path / "in.csv", items=tmp_path / "items.csv", data_dir=tmp_path / "data")
    (tmp_path / "items.csv").write_text("item,title\n1,one\n3,three\n99,unused\n")
    dataset = import_table("t", tmp_path / "in.csv", items=tmp_path / "items.csv", data_dir=tmp_path / "data")
    assert dataset.content.titles == ("one", None, "three")  # item 2 has no row: no content


def test_names_and_overwrite(tmp_path):
    (tmp_path / "in.csv").write_text("user,item\nx,1\nx,2\ny,2\n")
    with pytest.raises(DataError, match="'tiktok' is a built-in dataset"):
        import_table("tiktok", tmp_path / "in.csv", data_dir=tmp_path / "data")
    with pytest.raises(DataError, match="use letters"):
        import_table("../up", tmp_path / "in.csv", data_dir=tmp_path / "data")
    import_table("t", tmp_path / "in.csv", data_dir=tmp_path / "data")
    with pytest.raises(DataError, match="exists already.*--force"):
        import_table("t", tmp_path / "in.csv", data_dir=tmp_path / "data")
    (tmp_path / "in.csv").write_text("user,item\nx,1\nx,3\ny,2\nz,3\n")
    dataset = import_table("t", tmp_path / "in.csv", data_dir=tmp_path / "data", overwrite=True)
    assert dataset.n_users == 3 and not list((tmp_path / "data").glob(".t*"))


def test_reimport_drops_features_extracted_from_the_old_data(tmp_path, isolated_cache):
    from mmgcn.data.paths import feature_cache_dir
    from mmgcn.utils.io import atomic_write_json

    (tmp_path / "in.csv").write_text("user,item\nx,1\nx,2\ny,2\n")
    old = import_table("t", tmp_path / "in.csv", data_dir=tmp_path / "data")
    folder = feature_cache_dir("t")
    folder.mkdir(parents=True)
    np.save(folder / "text_feat.npy", np.ones((old.n_items, 4), np.float32))
    atomic_write_json(folder / "text_feat.json", {"n_items": old.n_items, "dim": 4, "dataset_fingerprint": old.info["fingerprint"]})
    assert load_dataset("t", data_dir=tmp_path / "data").modalities == ("text",)
    (tmp_path / "in.csv").write_text("user,item\nx,1\nx,3\ny,2\n")
    new = import_table("t", tmp_path / "in.csv", data_dir=tmp_path / "data", overwrite=True)
    assert new.modalities == () and not (folder / "text_feat.npy").exists()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.network
def test_image_urls_are_fetched_and_failures_recorded_as_missing(tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(served / "a.png")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        (tmp_path / "in.csv").write_text("user,item\nx,1\nx,2\ny,2\n")
        (tmp_path / "items.csv").write_text(f"item,image_url\n1,{base}/a.png\n2,{base}/gone.png\n")
        dataset = import_table("web", tmp_path / "in.csv", items=tmp_path / "items.csv", data_dir=tmp_path / "data")
    finally:
        server.shutdown()
        server.server_close()
    first, second = dataset.content.image_paths
    assert first.read_bytes() == (served / "a.png").read_bytes()
    assert second is None
    card = yaml.safe_load((tmp_path / "data" / "cards" / "web.yaml").read_text())
    assert card["import_report"]["content"]["images"]["missing"] == 1


def test_cli_import_prints_what_it_did(tmp_path, capsys):
    from mmgcn.cli import main

    paths = write_demo_shop(tmp_path, n_users=30, n_items=20, interactions_per_user=6)
    code = main(["datasets", "import", "shop", "--interactions", str(paths["interactions"]), "--items",
                 str(paths["items"]), "--data-dir", str(tmp_path / "data"), "--split", "loo", "--k-core", "2",
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "imported shop" in out and "split      loo" in out and "mmgcn extract shop --modality image" in out
    assert Path(tmp_path / "data" / "cards" / "shop.yaml").is_file()
