"""Benchmark config: schema, --full section, model specs, and the refusal to select on test."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from mmgcn.bench.config import (
    _DATASET_KWARGS,
    FULL_DEFAULTS,
    BenchConfig,
    GridConfig,
    ModelSpec,
    config_hash,
    load_bench_config,
    parse_model_list,
)
from mmgcn.bench.grid import split_point
from mmgcn.bench.runner import TrainerRunner
from mmgcn.config import ConfigError
from mmgcn.data.registry import load_dataset

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_grid_refuses_select_on_test(tmp_path: Path) -> None:
    path = write(tmp_path, "grids:\n  lightgcn:\n    params: {num_layers: [1, 2]}\n    select_on: test\n")
    with pytest.raises(ConfigError, match="select_on='test' is refused"):
        load_bench_config(path)
    with pytest.raises(ConfigError, match="refused"):
        GridConfig(params={"dim": [32]}, select_on="test")


def test_top_level_refuses_select_on_test(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="refused"):
        load_bench_config(write(tmp_path, "select_on: test\n"))
    # a --full section cannot sneak it in either
    with pytest.raises(ConfigError, match="refused"):
        load_bench_config(write(tmp_path, "full:\n  select_on: test\n"), full=True)


def test_grid_points_and_valid_selection(tmp_path: Path) -> None:
    path = write(tmp_path, "grids:\n  lightgcn:\n    params: {num_layers: [1, 2], reg_weight: [0.1, 0.01]}\n")
    config = load_bench_config(path)
    grid = config.grid_for(ModelSpec.parse("lightgcn"))
    assert grid is not None and grid.select_on == "valid"
    assert grid.points() == [
        {"num_layers": 1, "reg_weight": 0.1},
        {"num_layers": 1, "reg_weight": 0.01},
        {"num_layers": 2, "reg_weight": 0.1},
        {"num_layers": 2, "reg_weight": 0.01},
    ]
    with pytest.raises(ConfigError, match="non-empty list"):
        GridConfig(params={"dim": []})


def test_spec_name_grid_wins_and_null_disables(tmp_path: Path) -> None:
    path = write(tmp_path, "grids:\n  mmgcn:\n    params: {num_layers: [1, 2]}\n"
                           "  mmgcn[text]:\n    params: {dim: [32]}\n  mmgcn[image]: null\n")
    config = load_bench_config(path)
    assert config.grid_for(ModelSpec.parse("mmgcn")).points() == [{"num_layers": 1}, {"num_layers": 2}]
    assert config.grid_for(ModelSpec.parse("mmgcn[audio]")).points() == [{"num_layers": 1}, {"num_layers": 2}]
    assert config.grid_for(ModelSpec.parse("mmgcn[text]")).points() == [{"dim": 32}]
    assert config.grid_for(ModelSpec.parse("mmgcn[image]")) is None
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_bench_config(write(tmp_path, "grids:\n  mmgcn: [1, 2]\n"))


def test_full_section_and_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "dataset: tiktok\nseeds: 1\ntrain: {epochs: 5, patience: 2, lr: 0.01}\n"
                           "full:\n  seeds: 3\n  train: {epochs: 300}\n")
    quick = load_bench_config(path)
    assert (quick.seeds, quick.train, quick.mode) == (1, {"epochs": 5, "patience": 2, "lr": 0.01}, "quick")
    full = load_bench_config(path, full=True, overrides={"models": ["bpr", "popular"]})
    assert (full.seeds, full.mode, full.models) == (3, "full", ("bpr", "popular"))
    assert full.train == {"epochs": 300, "patience": 2, "lr": 0.01}  # nested merge keeps the rest
    # no full: section -> the built-in complete protocol
    plain = load_bench_config(write(tmp_path, "seeds: 1\n"), full=True)
    assert plain.seeds == FULL_DEFAULTS["seeds"] and plain.train == FULL_DEFAULTS["train"]


def test_cold_start_section_applies_under_that_protocol_only(tmp_path: Path) -> None:
    path = write(tmp_path, "dataset: tiktok\nseeds: 1\nmodel_configs: {mmgcn-plus: {item_graph_k: 10, dim: 32}}\n"
                           "cold-start:\n  model_configs: {mmgcn-plus: {item_graph_k: 0}}\n  seeds: 2\n"
                           "full:\n  seeds: 5\n  cold-start: {seeds: 3}\n")
    assert load_bench_config(path).model_configs == {"mmgcn-plus": {"item_graph_k": 10, "dim": 32}}
    assert load_bench_config(path, full=True).seeds == 5
    cold = load_bench_config(path, overrides={"protocol": "cold-start"})
    # nested merge: only the named field changes; the full: section's cold-start part is --full's
    assert cold.model_configs == {"mmgcn-plus": {"item_graph_k": 0, "dim": 32}} and cold.seeds == 2
    cold_full = load_bench_config(path, full=True, overrides={"protocol": "cold-start"})
    assert cold_full.seeds == 3 and cold_full.model_configs["mmgcn-plus"]["item_graph_k"] == 0
    # the command line wins over the section
    assert load_bench_config(path, full=True, overrides={"protocol": "cold-start", "seeds": 1}).seeds == 1
    # the protocol may come from the file too
    in_file = write(tmp_path, "protocol: cold-start\nseeds: 1\ncold-start: {seeds: 4}\n")
    assert load_bench_config(in_file).seeds == 4
    with pytest.raises(ConfigError, match="'cold-start' must be a mapping"):
        load_bench_config(write(tmp_path, "seeds: 1\ncold-start: [1]\n"))
    with pytest.raises(ConfigError, match="cannot set 'protocol'"):
        load_bench_config(write(tmp_path, "seeds: 1\ncold-start: {protocol: standard}\n"))


def test_a_later_sections_grid_replaces_the_models_grid_whole(tmp_path: Path) -> None:
    path = write(tmp_path, "dataset: tiktok\nseeds: 1\n"
                           "grids:\n  bpr: {params: {reg_weight: [0.01, 0.1]}}\n"
                           "  lightgcn: {params: {num_layers: [1, 2]}}\n"
                           "full:\n  grids:\n    bpr: {params: {train.lr: [0.001, 0.005]}}\n"
                           "  cold-start:\n    grids: {lightgcn: null, vbpr: {params: {dim: [32, 64]}}}\n")
    plain = load_bench_config(path)
    assert plain.grids["bpr"].points() == [{"reg_weight": 0.01}, {"reg_weight": 0.1}]
    full = load_bench_config(path, full=True)
    # the full: grid of bpr is its grid, not 2 x 2 points; lightgcn's grid stays
    assert full.grids["bpr"].points() == [{"train.lr": 0.001}, {"train.lr": 0.005}]
    assert full.grids["lightgcn"].points() == [{"num_layers": 1}, {"num_layers": 2}]
    cold = load_bench_config(path, full=True, overrides={"protocol": "cold-start"})
    assert cold.grids["lightgcn"] is None and cold.grids["vbpr"].points() == [{"dim": 32}, {"dim": 64}]
    assert cold.grids["bpr"].points() == [{"train.lr": 0.001}, {"train.lr": 0.005}]
    # the other fields still merge field by field
    assert cold.seeds == 1
    # a command-line value edits one field of a grid: it merges
    seeded = load_bench_config(path, full=True, overrides={"grids": {"bpr": {"seeds": [0, 1]}}})
    assert seeded.grids["bpr"].points() == [{"train.lr": 0.001}, {"train.lr": 0.005}]
    assert list(seeded.grids["bpr"].seeds) == [0, 1]
    # a section whose grids are not a mapping is refused, naming the field
    with pytest.raises(ConfigError, match=r"grids: expected a mapping, got \[1\]"):
        load_bench_config(write(tmp_path, "dataset: tiktok\nseeds: 1\nfull:\n  grids: [1]\n"), full=True)


def test_unknown_keys_and_bad_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        load_bench_config(write(tmp_path, "epochs: 3\n"))
    with pytest.raises(ConfigError, match="protocol"):
        load_bench_config(write(tmp_path, "protocol: sampled\n"))
    with pytest.raises(ConfigError, match="seeds must be >= 1"):
        BenchConfig(seeds=0)
    with pytest.raises(ConfigError, match="twice"):
        BenchConfig(models=("bpr", "bpr"))
    with pytest.raises(ConfigError, match="mode"):
        load_bench_config(write(tmp_path, "mode: full\n"))


def test_dataset_kwargs_must_be_loader_arguments(tmp_path: Path) -> None:
    """A misspelt --set (YAML without a space after the colon parses as one key) is a config
    error naming the key and the fix, not a TypeError from the loader; the accepted names
    are load_dataset's keyword-only arguments."""
    with pytest.raises(ConfigError, match=r"\['convention:files'\] are not load_dataset arguments.*space"):
        load_bench_config(write(tmp_path, "dataset: tiktok\n"), overrides={"dataset_kwargs": {"convention:files": None}})
    with pytest.raises(ConfigError, match="must be a mapping"):
        BenchConfig(dataset_kwargs=["files"])
    assert BenchConfig(dataset_kwargs={"convention": "files", "split": None}).dataset_kwargs["convention"] == "files"
    keyword_only = {n for n, p in inspect.signature(load_dataset).parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert _DATASET_KWARGS == keyword_only


def test_model_specs() -> None:
    spec = ModelSpec.parse("mmgcn[visual+acoustic]")
    assert (spec.base, spec.modalities) == ("mmgcn", ("visual", "acoustic"))
    assert ModelSpec.parse("mmgcn-faithful").modalities is None
    assert parse_model_list("mmgcn, mmgcn[visual],popular") == ("mmgcn", "mmgcn[visual]", "popular")
    for bad in ("mmgcn[]", "MMGCN", "mmgcn[a+a]", "../x", "mmgcn[visual"):
        with pytest.raises(ConfigError):
            ModelSpec.parse(bad)


def test_per_model_layering_spec_over_base() -> None:
    config = BenchConfig(
        models=("mmgcn", "mmgcn[visual]"),
        train={"epochs": 10, "patience": 3},
        model_train={"mmgcn": {"lr": 0.01}, "mmgcn[visual]": {"epochs": 4}},
        model_configs={"mmgcn": {"dim": 32}, "mmgcn[visual]": {"dim": 16}},
    )
    full_spec, visual = config.specs
    assert config.model_config_for(full_spec) == {"dim": 32}
    assert config.model_config_for(visual) == {"dim": 16}
    assert config.train_config_for(visual) == {"epochs": 4, "patience": 3, "lr": 0.01}
    # a quick preview never writes into the folder of a full run
    assert config.results_name == "tiktok-quick"
    assert BenchConfig(mode="full").results_name == "tiktok"
    assert BenchConfig(protocol="cold-start").results_name == "tiktok-cold-start-quick"
    assert BenchConfig(protocol="cold-start", mode="full").results_name == "tiktok-cold-start"


def test_config_hash_is_canonical() -> None:
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": (1, 2), "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


@pytest.mark.parametrize("name", ["tiktok.yaml", "amazon-baby.yaml", "ml-100k.yaml"])
def test_shipped_configs_load(name: str) -> None:
    path = REPO / "benchmarks" / "configs" / name
    quick = load_bench_config(path)
    full = load_bench_config(path, full=True)
    assert quick.mode == "quick" and full.mode == "full"
    assert "popular" in quick.models
    assert full.seeds >= 3 and quick.budget_note


@pytest.mark.parametrize("name", ["tiktok.yaml", "amazon-baby.yaml", "ml-100k.yaml"])
def test_shipped_configs_resolve_against_the_registry(name: str) -> None:
    from mmgcn.bench.runner import TrainerRunner

    runner = TrainerRunner(progress=False)
    for full in (False, True):
        config = load_bench_config(REPO / "benchmarks" / "configs" / name, full=full)
        for spec in config.specs:
            grid = config.grid_for(spec)
            for point in grid.points() if grid else [{}]:
                model_point, train_point = split_point(point)
                resolved = runner.resolve(spec, {**config.model_config_for(spec), **model_point},
                                          {**config.train_config_for(spec), **train_point}, config)
                assert resolved["train"]["metric"] == config.metric
                assert resolved["model"].items() >= model_point.items()
                assert resolved["train"].items() >= train_point.items()


def test_variant_specs_layer_their_own_settings():
    from mmgcn.bench.config import BenchConfig, ModelSpec

    spec = ModelSpec.parse("mmgcn[image]:linear")
    assert (spec.base, spec.modalities, spec.variant, spec.dirname) == ("mmgcn", ("image",), "linear", "mmgcn[image]@linear")
    config = BenchConfig(
        models=("mmgcn", "mmgcn:linear", "mmgcn[image]:linear"),
        model_configs={"mmgcn": {"dim": 32, "num_layers": 3}, "mmgcn:linear": {"num_layers": 1},
                       "mmgcn[image]": {"dim": 16}, "mmgcn[image]:linear": {"num_layers": 2}},
        grids={"mmgcn": {"params": {"reg_weight": [0.1, 0.2]}}, "mmgcn:linear": None},
    )
    specs = {s.name: s for s in config.specs}
    assert config.model_config_for(specs["mmgcn:linear"]) == {"dim": 32, "num_layers": 1}
    assert config.model_config_for(specs["mmgcn[image]:linear"]) == {"dim": 16, "num_layers": 2}
    assert config.grid_for(specs["mmgcn:linear"]) is None
    assert config.grid_for(specs["mmgcn[image]:linear"]) is not None  # the registry name's
    with pytest.raises(ConfigError, match="variant label after a colon"):
        ModelSpec.parse("mmgcn:Bad Label")


def test_num_neighbors_leaves_existing_bench_cells_unchanged():
    runner, config = TrainerRunner(progress=False), BenchConfig()
    default = runner.resolve(ModelSpec.parse("lightgcn"), {}, {}, config)
    assert "num_neighbors" not in default["train"]  # finished cells keep their hash
    sampled = runner.resolve(ModelSpec.parse("lightgcn"), {}, {"num_neighbors": [10, 5]}, config)
    assert sampled["train"]["num_neighbors"] == [10, 5]
