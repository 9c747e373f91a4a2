"""A benchmark folder is safe to share and to interrupt: one writer at a time (a second
bench fails at once naming the holder, stale locks are taken over), cells appear complete
or not at all, and damaged cells are named and re-run -- never trusted, never a traceback."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
from pathlib import Path

import pytest

from mmgcn.bench import cells as cells_mod
from mmgcn.bench.config import BenchConfig
from mmgcn.bench.harness import run_benchmark
from mmgcn.bench.lock import LOCK_FILE, BenchLock
from mmgcn.cli import main
from mmgcn.errors import BenchLockedError

pytestmark = pytest.mark.fault_timeout(90)


def config(tmp_path: Path, **extra) -> BenchConfig:
    return BenchConfig(dataset="synthetic", models=("bpr", "popular"), seeds=2, baseline="bpr",
                       train={"epochs": 2, "patience": 2, "batch_size": 128, "progress": False},
                       out=str(tmp_path / "results"), **extra)


def stable(results: dict) -> dict:
    """results.json without wall-clock figures (times, memory, creation time)."""
    text = json.dumps(results, sort_keys=True)
    data = json.loads(text)
    data["header"].pop("created_utc", None)
    for cell in data["cells"]:
        for key in ("train_s_per_epoch", "eval_s", "peak_mem_mb"):
            cell.pop(key, None)
    for summary in data["summaries"]:
        for table in ("mean", "std"):
            for key in ("train_s_per_epoch", "eval_s", "peak_mem_mb"):
                summary[table].pop(key, None)
    return data


@pytest.fixture(scope="module")
def reference(world_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    run = run_benchmark(config(tmp), dataset=world_dataset, progress=False, plots=False)
    assert (run.ran, run.failed) == (4, 0)
    return stable(json.loads((run.folder / "results.json").read_text()))


def _hold_lock(folder: str, ready, release) -> None:
    with BenchLock(folder):
        ready.set()
        release.wait(60)


def test_second_bench_on_the_same_folder_fails_at_once_naming_the_holder(world_dataset, tmp_path, capsys):
    folder = tmp_path / "results" / "synthetic-quick"
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(folder), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(BenchLockedError) as info:
            run_benchmark(config(tmp_path), dataset=world_dataset, progress=False, plots=False)
        assert f"pid {holder.pid} on host {socket.gethostname()!r}" in str(info.value)
        assert not (folder / "cells").exists()  # nothing was written
    finally:
        release.set()
        holder.join(30)
    run = run_benchmark(config(tmp_path), dataset=world_dataset, progress=False, plots=False)
    assert run.ran == 4 and not (folder / LOCK_FILE).exists()  # released after the run


def test_stale_lock_of_a_dead_process_is_taken_over(world_dataset, tmp_path, caplog, reference):
    folder = tmp_path / "results" / "synthetic-quick"
    folder.mkdir(parents=True)
    child = multiprocessing.get_context("fork").Process(target=os._exit, args=(0,))
    child.start()
    child.join()  # a pid that no longer runs
    (folder / LOCK_FILE).write_text(json.dumps({"pid": child.pid, "host": socket.gethostname(), "released": False}))
    run = run_benchmark(config(tmp_path), dataset=world_dataset, progress=False, plots=False)
    assert run.ran == 4 and "took over a stale lock" in caplog.text
    assert stable(json.loads((folder / "results.json").read_text())) == reference


def test_lock_recorded_by_another_host_is_not_taken_over(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "released": False}))
    with pytest.raises(BenchLockedError, match="'elsewhere.example'.*delete"):
        BenchLock(folder).acquire()


def _damage(path: Path, how: str) -> None:
    if how == "truncate":
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])
    elif how == "delete":
        path.unlink()
    elif how == "garbage":
        path.write_bytes(b"\x00\xffnot what was written" * 10)
    elif how == "flip":
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        path.write_bytes(bytes(raw))
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("name", ["per_user.npz", "cell.json", "DONE.json", "run/test_metrics.json"])
@pytest.mark.parametrize("how", ["truncate", "delete", "garbage", "flip", "empty"])
def test_damaged_cell_is_named_and_rerun(world_dataset, tmp_path, caplog, reference, name, how):
    cfg = config(tmp_path)
    run_benchmark(cfg, dataset=world_dataset, progress=False, plots=False)
    cell = tmp_path / "results" / "synthetic-quick" / "cells" / "bpr" / "seed-1"
    _damage(cell / name, how)
    again = run_benchmark(cfg, dataset=world_dataset, progress=False, plots=False)
    if name == "DONE.json" and how in ("flip",):
        # a flipped bit in the marker may leave valid JSON with another hash: re-run either way
        assert again.ran == 1
    else:
        assert (again.ran, again.skipped) == (1, 3)
    if name != "DONE.json" or how != "delete":
        assert "bpr seed 1: the finished cell" in caplog.text and "damaged" in caplog.text
    assert cells_mod.cell_problem(cell, json.loads((cell / "DONE.json").read_text())["config_hash"]) is None
    assert stable(json.loads((cell.parents[2] / "results.json").read_text())) == reference


def test_crash_while_rerunning_leaves_the_finished_cell_intact(world_dataset, tmp_path, monkeypatch):
    cfg = config(tmp_path)
    run_benchmark(cfg, dataset=world_dataset, progress=False, plots=False)
    cell = tmp_path / "results" / "synthetic-quick" / "cells" / "bpr" / "seed-0"
    before = {p.name: p.read_bytes() for p in cell.iterdir() if p.is_file()}
    from mmgcn.bench.runner import TrainerRunner

    def crash(self, task, dataset, config, resume=False):
        raise RuntimeError("crash during a forced re-run")

    monkeypatch.setattr(TrainerRunner, "run", crash)
    run = run_benchmark(cfg, dataset=world_dataset, progress=False, plots=False, force=True)
    assert run.failed == 4
    assert {p.name: p.read_bytes() for p in cell.iterdir() if p.is_file()} == before
    assert not (cell / "error.txt").exists()
    assert "crash during a forced re-run" in (cell.parent / ".seed-0.partial" / "error.txt").read_text()


def test_cli_bench_with_no_cells_or_bad_specs_is_one_line(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    assert main(["bench", "--config", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "is empty, so the benchmark has no cells" in capsys.readouterr().err
    good = tmp_path / "b.yaml"
    good.write_text("dataset: synthetic\nmodels: [bpr]\n")
    for models, needle in (("bpr[text]", "reads no item content"), ("nosuch", "unknown model"),
                           ("mmgcn[", "expected a registry name")):
        assert main(["bench", "--config", str(good), "--models", models, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and err.count("\n") == 0 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cli_bench_set_value_that_yaml_reads_as_a_mapping_is_one_line(tmp_path, capsys, monkeypatch, data_root):
    # met while working: an unquoted "--set budget_note=cold-start protocol: 3 seeds" is YAML
    # for a mapping, not a string; the run must stop with one line naming the key
    good = tmp_path / "b.yaml"
    good.write_text("dataset: synthetic\nmodels: [bpr]\n")
    args = ["bench", "--config", str(good), "--set", "budget_note=cold-start protocol: 3 seeds",
            "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "budget_note: expected a string" in err and err.count("\n") == 0 and "Traceback" not in err
    assert not (tmp_path / "o").exists()
    # quoted, the same value is a string and the config is accepted (dry run: nothing trains)
    monkeypatch.setenv("MMGCN_DATA", str(data_root))
    real = tmp_path / "tiktok.yaml"
    real.write_text("dataset: tiktok\nmodels: [bpr]\n")
    args[2], args[4] = str(real), 'budget_note="cold-start protocol: 3 seeds"'
    assert main([*args, "--dry-run"]) == 0
    assert "dry run: 3 runs" in capsys.readouterr().out


def test_cli_bench_bad_fanout_is_one_line(tmp_path, capsys):
    # met while working: train.num_neighbors takes positive fan-outs or -1 (every neighbour)
    good = tmp_path / "b.yaml"
    good.write_text("dataset: synthetic\nmodels: [lightgcn]\n")
    for value in ("[0]", "[-2, 10, 10]"):
        args = ["bench", "--config", str(good), "--set", f"train.num_neighbors={value}", "--out", str(tmp_path / "o")]
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert "train.num_neighbors must be positive integers or -1" in err and value in err
        assert err.count("\n") == 0 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cli_bench_dataset_kwargs_without_a_space_after_the_colon_is_one_line(tmp_path, capsys):
    # met while working: "--set dataset_kwargs={convention:files}" is YAML for one key
    # "convention:files"; it reached load_dataset as a keyword and ended in an internal TypeError
    good = tmp_path / "b.yaml"
    good.write_text("dataset: synthetic\nmodels: [bpr]\n")
    args = ["bench", "--config", str(good), "--set", "dataset_kwargs={convention:files}", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "dataset_kwargs ['convention:files'] are not load_dataset arguments" in err
    assert "space after each colon" in err and err.count("\n") == 0 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cli_bench_models_leaving_out_a_configured_comparison_is_one_line(tmp_path, capsys):
    # met while working: `--models lgmrec` with a config whose comparisons name other models
    cfg = tmp_path / "b.yaml"
    cfg.write_text("dataset: synthetic\nmodels: [bpr, popular]\ncomparisons: [[bpr, popular]]\n")
    args = ["bench", "--config", str(cfg), "--models", "bpr", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "comparisons ['bpr', 'popular'] name ['popular'], not in models ['bpr']" in err
    assert err.count("\n") == 0 and "Traceback" not in err
    assert not (tmp_path / "o").exists()
