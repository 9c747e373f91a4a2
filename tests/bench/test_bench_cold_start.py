"""``mmgcn bench --protocol cold-start``: items held out entirely, all-items and cold-only
rankings, and ID-only models marked unable rather than shown with chance-level figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmgcn.bench.cells import load_per_user
from mmgcn.bench.config import BenchConfig, ModelSpec
from mmgcn.bench.harness import dataset_arguments, run_benchmark
from mmgcn.bench.readme import cold_start_table
from mmgcn.bench.runner import TrainerRunner
from mmgcn.bench.tables import UNABLE, to_markdown
from mmgcn.data.synthetic import make_synthetic
from mmgcn.eval.floors import cold_only_floors


@pytest.fixture(scope="module")
def cold_synthetic():
    return make_synthetic(80, 50, modalities={"image": 6, "text": 3}, interactions_per_user=8,
                          cold_item_fraction=0.2, seed=0, progress=False)


def test_cold_start_protocol_loads_the_cold_items_split_unless_a_split_is_named():
    assert dataset_arguments(BenchConfig()) == {}
    assert dataset_arguments(BenchConfig(protocol="cold-start")) == {"split": "cold_items"}
    tiktok = BenchConfig(protocol="cold-start", dataset_kwargs={"convention": "files"})
    assert dataset_arguments(tiktok) == {"convention": "files", "split": "cold_items"}
    files_split = BenchConfig(protocol="cold-start", dataset_kwargs={"split": None})
    assert dataset_arguments(files_split) == {"split": None}


def test_cold_start_cells_keep_held_out_items_out_of_training():
    # cold-start: negatives only among train items, held-out items scored from content;
    # the standard protocol keeps the defaults and its cells' identity (hash) unchanged
    runner = TrainerRunner(progress=False)
    cold = runner.train_config({}, BenchConfig(protocol="cold-start"))
    assert cold.negatives == "train-items"
    standard = runner.train_config({}, BenchConfig())
    assert standard.negatives == "all"
    resolved = runner.resolve(ModelSpec.parse("bpr"), {}, {}, BenchConfig())["train"]
    assert "negatives" not in resolved
    resolved = runner.resolve(ModelSpec.parse("vbpr"), {}, {}, BenchConfig(protocol="cold-start"))
    assert resolved["train"]["negatives"] == "train-items"
    # content models represent held-out items from content (a model setting, saved with the run);
    # ID-only models keep their own (they have nothing else)
    assert resolved["model"]["edgeless_items"] == "content"
    bpr = runner.resolve(ModelSpec.parse("bpr"), {}, {}, BenchConfig(protocol="cold-start"))
    assert bpr["model"]["edgeless_items"] == "own"
    assert runner.resolve(ModelSpec.parse("vbpr"), {}, {}, BenchConfig())["model"]["edgeless_items"] == "own"
    # a config may still choose otherwise
    assert runner.train_config({"negatives": "all"}, BenchConfig(protocol="cold-start")).negatives == "all"


@pytest.mark.slow
def test_cold_start_table_marks_id_only_models_unable(tmp_path: Path, cold_synthetic) -> None:
    n_cold = cold_synthetic.cold_items("test").size
    assert n_cold >= 2
    config = BenchConfig(
        dataset="synthetic", models=("vbpr", "bpr"), seeds=1, protocol="cold-start", baseline="vbpr",
        ks=(5, 10), metric="recall@10", significance_metrics=("recall@10",),
        train={"epochs": 1, "patience": 1, "batch_size": 128}, out=str(tmp_path),
    )
    run = run_benchmark(config, dataset=cold_synthetic, progress=False, plots=False)
    assert run.failed == 0
    cells = {c.model: c for c in run.results.cells}
    vbpr, bpr = cells["vbpr"], cells["bpr"]
    assert vbpr.n_test_users["cold-only"] == vbpr.n_test_users["cold"] > 0
    assert 0.0 <= vbpr.test["cold-only/recall@10"] <= 1.0
    assert "cold-only/recall@10" not in bpr.test and "cold-only" not in bpr.n_test_users
    folder = tmp_path / "synthetic-cold-start-quick"
    per_user = load_per_user(folder / "cells" / "vbpr" / "seed-0" / "per_user.npz")
    assert per_user["cold-only/recall@10"].mean() == pytest.approx(vbpr.test["cold-only/recall@10"])
    test_file = json.loads((folder / "cells" / "vbpr" / "seed-0" / "run" / "test_metrics.json").read_text())
    assert test_file["cold_only"]["n_candidates"] == n_cold

    # the README block: cold-only, the overall figure, warm and cold of the all-items ranking
    block = cold_start_table(run.results).splitlines()
    assert block[0] == ("| model | seeds | cold-only Recall@10 | all items Recall@10 | warm (all items) Recall@10 "
                        "| cold (all items) Recall@10 |")
    rows = {line.split(" | ")[0]: line.split(" | ") for line in block[2:]}
    assert rows["| `vbpr`"][3].startswith(f"{vbpr.test['recall@10']:.4f}")
    assert rows["| `vbpr`"][2].startswith(f"{vbpr.test['cold-only/recall@10']:.4f}")
    assert rows["| `bpr`"][2] == "unable (ID only)" and rows["| `bpr`"][3].startswith(f"{bpr.test['recall@10']:.4f}")
    # the floors: computed from the split the cells were tested on (same users), shown as rows
    floors = run.results.breakdowns["cold_only_floors"]
    assert floors == cold_only_floors(cold_synthetic, "test", (5, 10), ("train", "valid"))
    assert floors["n_users"] == vbpr.n_test_users["cold-only"] and floors["n_candidates"] == n_cold
    assert rows["| *random ranking (expected)*"][2] == f"{floors['random']['recall@10']:.4f}"
    assert rows["| *item-id order (no model)*"][2] == f"{floors['item_order']['recall@10']:.4f}"
    assert json.loads((folder / "results.json").read_text())["breakdowns"]["cold_only_floors"] == floors

    markdown = to_markdown(run.results)
    assert f"among the {n_cold} cold test items only" in markdown
    section = markdown[markdown.index("## Warm and cold test items"):]
    section = section[: section.index("\n## ", 3)] if "\n## " in section[3:] else section
    header = next(line for line in section.splitlines() if line.startswith("| model"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| vbpr") or line.startswith("| bpr")}
    for name in ("cold Recall@10", "cold-only Recall@10"):
        assert rows["bpr"][columns.index(name)] == UNABLE
        assert rows["vbpr"][columns.index(name)] != UNABLE
    assert rows["bpr"][columns.index("warm Recall@10")] == f"{bpr.test['warm/recall@10']:.4f}"
    assert rows["vbpr"][columns.index("cold-only Recall@10")] == f"{vbpr.test['cold-only/recall@10']:.4f}"
    assert rows["bpr"][columns.index("uses content")] == "no (ID only)"
    assert f"Cold-only floors ({floors['n_users']} users, {n_cold} cold test items; masked: train, valid)" in section
    assert f"| item-id order (no model) | {floors['item_order']['recall@5']:.4f} | " in section


def test_cells_keep_the_calibration_chosen_on_validation(tmp_path: Path, cold_synthetic) -> None:
    """An MMGCN+ cell under cold-start records its calibration (values, validation before and
    after, candidates) as its run's calibration.json has it, results.md lists it, and a cell
    finished before the record existed gets it back from that file."""
    from mmgcn.bench.cells import load_cell

    config = BenchConfig(
        dataset="synthetic", models=("mmgcn-plus", "vbpr"), seeds=1, protocol="cold-start", baseline="vbpr",
        ks=(5, 10), metric="recall@10", significance_metrics=("recall@10",),
        train={"epochs": 2, "patience": 2, "batch_size": 128}, out=str(tmp_path),
        model_configs={"mmgcn-plus": {"dim": 8, "item_graph_k": 2, "calibrate_new_items": [0.0, 0.5],
                                      "calibrate_new_scales": [1.0, 2.0]}},
    )
    run = run_benchmark(config, dataset=cold_synthetic, progress=False, plots=False)
    assert run.failed == 0
    cells = {c.model: c for c in run.results.cells}
    assert cells["vbpr"].calibration is None
    record = cells["mmgcn-plus"].calibration
    cell_dir = tmp_path / "synthetic-cold-start-quick" / "cells" / "mmgcn-plus" / "seed-0"
    trainer_file = json.loads((cell_dir / "run" / "calibration.json").read_text())
    assert record["values"] == trainer_file["chosen"]["values"]
    assert record["valid"] == pytest.approx(trainer_file["chosen"]["valid"])
    assert record["valid_uncalibrated"] == pytest.approx(trainer_file["tried"][0]["valid"])
    assert record["candidates"] == len(trainer_file["tried"]) == 4
    assert record["valid"] >= record["valid_uncalibrated"]  # the neutral candidate wins ties
    assert "tolerance" not in record
    markdown = to_markdown(run.results)
    section = markdown[markdown.index("## Post-training calibration"):]
    row = next(line for line in section.splitlines() if line.startswith("| mmgcn-plus"))
    assert f"| {record['valid_uncalibrated']:.4f} | {record['valid']:.4f} |" in row and "| 4 |" in row
    assert "| vbpr" not in section

    # a cell.json written before the field existed: the record comes from the run's file
    stored = json.loads((cell_dir / "cell.json").read_text())
    del stored["calibration"]
    (cell_dir / "cell.json").write_text(json.dumps(stored))
    assert load_cell(cell_dir).calibration == record
    (cell_dir / "run" / "calibration.json").write_text("{not json")
    assert load_cell(cell_dir).calibration is None  # unreadable: left out, with a warning
