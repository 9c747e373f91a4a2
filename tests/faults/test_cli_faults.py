"""Every bad input reaches the CLI user as one line with exit code 2 -- never a traceback,
never a silent wrong result -- and unexpected errors say where their traceback is."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

import mmgcn.cli.train as cli_train
from mmgcn.cli import main
from mmgcn.train import binding
from mmgcn.train import run_dir as rd
from mmgcn.train.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.fault_timeout(60)


def train(run_dir, *extra):
    return main(["train", "--model", "bpr", "--dataset", "synthetic", "--run-dir", str(run_dir),
                 "--set", "train.epochs=2", "--set", "train.progress=false", "--set", "train.batch_size=64",
                 "--set", "model.dim=8", *extra])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("mmgcn: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture
def run(world, tmp_path):
    run_dir = tmp_path / "run"
    assert train(run_dir) == 0
    return run_dir


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train.lr=.inf", "finite number"),
        ("train.lr=1e12", "not a usable Adam learning rate"),
        ("train.lr=0", "train.lr must be positive"),
        ("train.lr=-1e-3", "train.lr must be positive"),
        ("train.lr=-1.0e-3", "train.lr must be positive"),
        ("train.lr=.nan", "finite number"),
        ("train.weight_decay=-1", "weight_decay"),
        ("model.reg_weight=-0.1", "reg_weight"),
        ("model.num_layers=-1", "unknown key"),
        ("model.dim=0", "dim"),
        ("train.lr=[", "not valid YAML"),
        ("train..lr=1", "empty key"),
        ("train.lr", "expected key=value"),
        ("=3", "empty key"),
        ("train.epochs=1e999", "expected an integer"),
        ("train.device=tpu", "train.device"),
    ],
)
def test_bad_values_are_refused_before_training(world, tmp_path, capsys, override, needle):
    assert train(tmp_path / "run", "--set", override) == 2
    assert needle in one_line_error(capsys)
    assert not (tmp_path / "run" / rd.LAST_CHECKPOINT).exists()


def test_exponent_without_a_dot_is_a_number(world, tmp_path):
    # YAML 1.1 reads 5e-3 as a string; a float field takes it as the number it means
    assert train(tmp_path / "run", "--set", "train.lr=5e-3") == 0
    assert yaml.safe_load((tmp_path / "run" / rd.CONFIG_FILE).read_text())["train"]["lr"] == 0.005


def test_generic_model_ranges(world_dataset):
    from mmgcn.errors import ConfigError
    from mmgcn.models.base import build_config

    for model in ("mmgcn", "mmgcn-faithful", "lightgcn", "bpr", "vbpr", "concat", "attention", "popular"):
        with pytest.raises(ConfigError, match="reg_weight"):
            build_config(model, {"reg_weight": -1.0})
    with pytest.raises(ConfigError, match="dropout"):
        build_config("mmgcn", {"dropout": 1.0})
    with pytest.raises(ConfigError, match="num_layers"):
        build_config("mmgcn", {"num_layers": -1})
    assert build_config("mmgcn", {"id_init_std": 0.0}).id_init_std == 0.0  # zero-init is a real setting


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_refused_before_loading_data(world, tmp_path, capsys, monkeypatch):
    loads = []
    monkeypatch.setattr(cli_train, "load_dataset", lambda *a, **k: loads.append(a))
    assert train(tmp_path / "run", "--set", "train.device=cuda") == 2
    assert "no CUDA GPU is usable here" in one_line_error(capsys)
    assert loads == []


def test_resume_with_another_split_is_refused_then_accepted_and_recorded(run, capsys):
    assert main(["train", "--resume", "--run-dir", str(run), "--set", "dataset.split=random",
                 "--set", "train.epochs=3"]) == 2
    err = one_line_error(capsys)
    assert "refusing to resume" in err and "dataset.split" in err and "--allow-data-change" in err
    assert [r["epoch"] for r in rd.read_jsonl(run / rd.METRICS_FILE)] == [1, 2]  # untouched
    assert main(["train", "--resume", "--run-dir", str(run), "--set", "dataset.split=random",
                 "--set", "train.epochs=3", "--allow-data-change"]) == 0
    record = json.loads((run / binding.DATASET_FILE).read_text())
    assert record["overrides"][-1]["action"] == "resume"
    assert any(d.startswith("interactions_sha256") for d in record["overrides"][-1]["differences"])


def test_resume_with_another_model_config_is_refused(run, capsys):
    assert main(["train", "--resume", "--run-dir", str(run), "--set", "model.dim=16"]) == 2
    assert "model.dim: 8 in the run, 16 now" in one_line_error(capsys)


def test_evaluate_on_other_data_is_refused_unless_overridden(run, capsys):
    assert main(["evaluate", str(run), "--data-dir", "/other"]) == 2
    err = one_line_error(capsys)
    assert "refusing to evaluate" in err and "interactions_sha256" in err
    assert main(["evaluate", str(run), "--data-dir", "/other", "--json", "--allow-data-change"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["accepted_with"] == "--allow-data-change" and out["data_differences"]
    assert json.loads((run / binding.DATASET_FILE).read_text())["uses"][-1]["action"] == "evaluate"
    assert main(["evaluate", str(run), "--json"]) == 0  # the run's own data: fine, nothing recorded
    assert "data_differences" not in json.loads(capsys.readouterr().out)


def test_recommend_on_other_data_is_refused(run, capsys):
    assert main(["recommend", str(run), "--user", "1", "--data-dir", "/other"]) == 2
    assert "refusing to recommend" in one_line_error(capsys)


def test_recommend_on_non_finite_weights_is_an_error(run, capsys):
    path = run / rd.BEST_CHECKPOINT
    state = load_checkpoint(path)
    name = next(iter(state["model"]))
    state["model"][name] = torch.full_like(state["model"][name], float("nan"))
    save_checkpoint(path, {k: v for k, v in state.items() if k != "format"})
    assert main(["recommend", str(run), "--user", "1"]) == 2
    assert "hold NaN/inf" in one_line_error(capsys)


# the pickle-payload case: torch warns that the hostile file's pickle protocol is not its default
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "pickle-payload"])
def test_damaged_checkpoint_is_a_clear_error(run, capsys, damage, tmp_path):
    path = run / rd.BEST_CHECKPOINT
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00garbage" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        import pickle

        class Payload:
            def __reduce__(self):
                return (print, ("PAYLOAD RAN",))

        path.write_bytes(pickle.dumps(Payload()))  # a plain pickle that would run print() if unpickled
    assert main(["evaluate", str(run)]) == 2
    err = one_line_error(capsys)
    assert "not a readable mmgcn checkpoint" in err and "PAYLOAD RAN" not in capsys.readouterr().out


def test_checkpoint_of_another_shape_is_a_clear_error(run, capsys):
    config = yaml.safe_load((run / rd.CONFIG_FILE).read_text())
    config["model"]["dim"] = 16
    (run / rd.CONFIG_FILE).write_text(yaml.safe_dump(config))
    assert main(["evaluate", str(run)]) == 2
    err = one_line_error(capsys)
    assert "do not fit the model" in err and "(25, 8) in the file vs (25, 16) in the model" in err


def test_diverging_training_stops_and_keeps_the_last_good_checkpoint(world, tmp_path, capsys, monkeypatch):
    from mmgcn.models.mf import BPRMF

    original = BPRMF.loss
    calls = {"n": 0}

    def exploding(self, users, pos, neg):
        calls["n"] += 1
        loss = original(self, users, pos, neg)
        return loss * float("inf") if calls["n"] > 3 else loss  # batches of epoch 1 are fine

    monkeypatch.setattr(BPRMF, "loss", exploding)
    run_dir = tmp_path / "run"
    assert train(run_dir, "--set", "train.epochs=5", "--set", "train.batch_size=100") == 2
    err = one_line_error(capsys)
    assert "training diverged" in err and "(epoch 1)" in err and "are kept" in err
    kept = load_checkpoint(run_dir / rd.LAST_CHECKPOINT)
    assert kept["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in kept["model"].values())


def test_unexpected_errors_say_where_the_traceback_is(world, tmp_path, capsys, monkeypatch):
    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_train, "run_train", broken)
    import mmgcn.cli as cli

    parser = cli.build_parser()
    assert parser  # the parser binds run_train at build time; patch the built default instead
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser, broken))
    assert main(["train"]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: boom" in err and "mmgcn-traceback-" in err and "Traceback" not in err
    path = err.split("saved to ")[1].split(";")[0]
    assert "RuntimeError: boom" in open(path, encoding="utf-8").read()
    assert main(["--debug", "train"]) == 1
    assert "Traceback" in capsys.readouterr().err


def _with_func(parser, func):
    for action in parser._subparsers._group_actions:
        action.choices["train"].set_defaults(func=func)
    return parser
