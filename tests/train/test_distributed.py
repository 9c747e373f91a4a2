"""Data-parallel training: sharding, gradient averaging, rank-0 selection, kill and resume.

The multi-process tests start real ranks with the elastic launcher (2 CPU processes, gloo,
rendezvous on 127.0.0.1), as ``mmgcn bench --nproc`` does, and one runs ``torchrun -m
mmgcn train`` itself.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmgcn.data.synthetic import make_synthetic
from mmgcn.models.base import available_models, build_model, model_class
from mmgcn.train import run_dir as rd
from mmgcn.train.distributed import DistributedContext, ShardedBPRSampler, launch
from mmgcn.train.sampling import BPRSampler
from mmgcn.train.subgraph import SubgraphTraining
from mmgcn.train.trainer import TrainConfig, Trainer, run_epoch
from mmgcn.utils.seed import epoch_generator, seed_everything

REPO = Path(__file__).resolve().parents[2]
#: |valid recall@20 (2 ranks) - valid recall@20 (1 rank)| allowed at every epoch: the two runs
#: take the same steps and differ only in the order of floating-point sums
RANK_TOLERANCE = 1e-3


def small_dataset():
    return make_synthetic(120, 60, interactions_per_user=8, cold_item_fraction=0.0, seed=3, progress=False)


# ---------------------------------------------------------------------- sharding (one process)
def test_shards_partition_every_global_batch():
    train = small_dataset().train
    plain = list(BPRSampler(train, seed=5).batches(64))
    shards = [list(ShardedBPRSampler(BPRSampler(train, seed=5), r, 4).batches(64)) for r in range(4)]
    assert all(len(s) == len(plain) for s in shards)  # every rank takes every step
    for b, (users, pos, neg) in enumerate(plain):
        parts = [shards[r][b] for r in range(4)]
        assert len({p[0].numel() for p in parts}) == 1  # equal sizes, as DDP needs
        joined = [torch.cat([p[k] for p in parts]) for k in range(3)]
        if users.numel() % 4 == 0:  # full batches: an exact partition, in order
            for got, want in zip(joined, (users, pos, neg)):
                assert torch.equal(got, want)
        else:  # the short last batch: all triples, the first ones repeated as padding
            n = users.numel()
            assert torch.equal(joined[0][:n], users) and torch.equal(joined[2][:n], neg)
            assert torch.equal(joined[0][n:], users[: joined[0].numel() - n])


def test_one_rank_shard_is_the_plain_sampler():
    train = small_dataset().train
    a = list(BPRSampler(train, seed=1).batches(50))
    b = list(ShardedBPRSampler(BPRSampler(train, seed=1), 0, 1).batches(50))
    assert all(torch.equal(x, y) for bx, by in zip(a, b) for x, y in zip(bx, by))


def test_short_batch_smaller_than_world_still_feeds_every_rank():
    sampler = ShardedBPRSampler(BPRSampler(small_dataset().train, seed=0), 2, 3)
    n = sampler.n_interactions
    last = list(sampler.batches(n - 1))[-1]  # a last batch of exactly one triple
    assert last[0].numel() == 1


def test_from_env(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert DistributedContext.from_env() is None  # a plain process
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29999")
    assert DistributedContext.from_env() is None  # alone: nothing to synchronise
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_PORT")
    with pytest.raises(ValueError, match="MASTER_PORT"):
        DistributedContext.from_env()
    with pytest.raises(ValueError, match="outside"):
        DistributedContext(rank=2, world_size=2)


def test_dataset_pickles_for_the_ranks():
    data = small_dataset()
    copy = pickle.loads(pickle.dumps(data))
    assert copy.n_users == data.n_users and (copy.train != data.train).nnz == 0
    assert list(copy.features) == list(data.features)
    assert torch.equal(copy.features["image"], data.features["image"])
    with pytest.raises(TypeError):
        copy.features["image"] = None  # still read-only


# ---------------------------------------------------------------------- workers (run in the ranks)
def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _steps_worker(context, data, names):
    """One epoch of DDP steps per trainable model (``name+sampled``: on sampled subgraphs);
    each rank returns its parameters and Adam moments."""
    torch.set_num_threads(1)
    out = {}
    for name in names:
        seed_everything(0)
        model = build_model(name.removesuffix("+sampled"), data, {})
        context.seed(0)  # rank-distinct neighbour draws, as the trainer does
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        sampler = context.shard(BPRSampler(data.train, seed=0))
        step = SubgraphTraining(model, [3]) if name.endswith("+sampled") else model
        model.on_epoch_start(1, epoch_generator(0, 1))  # the trainer's per-epoch hook, same draw on every rank
        run_epoch(context.wrap(step, torch.device("cpu")), optimizer, sampler, 32)
        moments = {f"{i}.{k}": v.clone() for i, state in optimizer.state_dict()["state"].items()
                   for k, v in state.items()}
        out[name] = (_params(model), moments)
    return out


def _fit_worker(context, data, config, run_dir, resume=False, kill_after=None):
    """Train lightgcn with the Trainer; rank 0 may SIGKILL itself after epoch ``kill_after``."""
    torch.set_num_threads(1)
    seed_everything(config.seed)
    model = build_model("lightgcn", data, {"num_layers": 2})

    def die(record):
        if record["epoch"] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    trainer = Trainer(model, data, config, run_dir, resume=resume, distributed=context,
                      callbacks=[die] if kill_after else [])
    result = trainer.fit(evaluate_test=False)
    return {"history": [(r["epoch"], r["loss"], r.get("valid")) for r in result.history],
            "best_epoch": result.best_epoch, "params": _params(model)}


# ---------------------------------------------------------------------- multi-process
@pytest.mark.slow
def test_every_model_keeps_parameters_identical_across_ranks():
    data = make_synthetic(40, 30, interactions_per_user=6, cold_item_fraction=0.0, seed=0, progress=False)
    # the package's models (test modules register their own, which the fresh rank processes lack)
    names = [n for n in available_models()
             if model_class(n).trainable and model_class(n).__module__.startswith("mmgcn.models")]
    assert {"lattice", "sgl", "diffmm"} <= set(names)
    names += ["lightgcn+sampled", "mmgcn+sampled"]
    ranks = launch(_steps_worker, 2, data, names)
    for name in names:
        (params0, adam0), (params1, adam1) = ranks[0][name], ranks[1][name]
        assert params0.keys() == params1.keys()
        for key in params0:
            assert torch.equal(params0[key], params1[key]), (name, key)
        # the Adam moments saw the same (averaged) gradients on both ranks
        assert adam0 and all(torch.equal(adam0[k], adam1[k]) for k in adam0), name
        # and they moved: the step did something
        seed_everything(0)
        fresh = build_model(name.removesuffix("+sampled"), data, {})
        assert any(not torch.equal(v, params0[k]) for k, v in fresh.state_dict().items()), name


#: the settings of the multi-process Trainer runs below (global batch 128)
FIT_CONFIG = TrainConfig(epochs=5, batch_size=128, lr=0.01, patience=10, progress=False, seed=2)


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    """An uninterrupted 2-rank run: the reference of the 1-rank and the kill-and-resume tests."""
    run_dir = tmp_path_factory.mktemp("ddp") / "two"
    return run_dir, launch(_fit_worker, 2, small_dataset(), FIT_CONFIG, run_dir)


@pytest.mark.slow
def test_two_ranks_reach_the_single_process_validation_metric(tmp_path, two_rank_run):
    run_dir, double = two_rank_run
    single = _fit_worker(None, small_dataset(), FIT_CONFIG, tmp_path / "one")
    curve_1 = [valid["recall@20"] for _, _, valid in single["history"]]
    curve_2 = [valid["recall@20"] for _, _, valid in double[0]["history"]]
    assert len(curve_1) == len(curve_2) == FIT_CONFIG.epochs
    np.testing.assert_allclose(curve_2, curve_1, atol=RANK_TOLERANCE, rtol=0)
    np.testing.assert_allclose([loss for _, loss, _ in double[0]["history"]],
                               [loss for _, loss, _ in single["history"]], rtol=1e-4)
    # rank 1 followed rank 0's decisions and ended with the selected model
    assert double[1]["history"] == double[0]["history"] and double[1]["best_epoch"] == double[0]["best_epoch"]
    for key, value in double[0]["params"].items():
        assert torch.equal(value, double[1]["params"][key])
    # only rank 0 wrote a run directory
    assert (run_dir / rd.LAST_CHECKPOINT).is_file()


@pytest.mark.slow
def test_kill_and_resume_under_ddp_reproduces_the_uninterrupted_run(tmp_path, two_rank_run):
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    data, uninterrupted = small_dataset(), two_rank_run[1][0]
    with pytest.raises(ChildFailedError):
        launch(_fit_worker, 2, data, FIT_CONFIG, tmp_path / "killed", False, 2)  # SIGKILL after epoch 2
    saved = torch.load(tmp_path / "killed" / rd.LAST_CHECKPOINT, weights_only=True)
    assert saved["epoch"] == 2 and len(saved["rng_ranks"]) == 2
    resumed = launch(_fit_worker, 2, data, FIT_CONFIG, tmp_path / "killed", True)
    assert resumed[0]["history"] == uninterrupted["history"]  # losses and metrics, bit for bit
    for key, value in uninterrupted["params"].items():
        assert torch.equal(resumed[0]["params"][key], value) and torch.equal(resumed[1]["params"][key], value)


@pytest.mark.slow
def test_torchrun_trains_through_the_cli(data_root, tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "MMGCN_DATA": str(data_root), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "mmgcn", "train", "--model", "bpr", "--dataset", "ml-100k", "--run-dir", str(run_dir),
               "--set", "train.epochs=2", "--set", "train.progress=false"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run directory:") == 1 and "(2 ranks, gloo)" in done.stdout  # rank 0 prints
    assert "test, mask train+valid" in done.stdout
    history = rd.read_jsonl(run_dir / rd.METRICS_FILE)
    assert [r["epoch"] for r in history] == [1, 2]
    assert json.loads((run_dir / rd.TEST_METRICS_FILE).read_text())["best_epoch"] in (1, 2)


@pytest.mark.slow
def test_bench_nproc_trains_each_cell_on_two_ranks(tmp_path):
    import yaml

    from mmgcn.bench.config import BenchConfig
    from mmgcn.bench.harness import run_benchmark
    from mmgcn.bench.runner import TrainerRunner

    data = small_dataset()
    results = {}
    for nproc in (1, 2):
        config = BenchConfig(dataset="synthetic", models=("lightgcn",), seeds=1, baseline="lightgcn",
                             train={"epochs": 3, "patience": 3, "batch_size": 128}, out=str(tmp_path / str(nproc)))
        run = run_benchmark(config, runner=TrainerRunner(progress=False, nproc=nproc), dataset=data,
                            progress=False, plots=False)
        assert (run.ran, run.failed) == (1, 0)
        cell = tmp_path / str(nproc) / "synthetic-quick" / "cells" / "lightgcn" / "seed-0"
        recorded = yaml.safe_load((cell / "run" / "config.yaml").read_text())
        assert recorded["bench"].get("ranks") == (2 if nproc == 2 else None)
        results[nproc] = json.loads((cell / "cell.json").read_text())
    for split in ("best_valid_metrics", "test"):
        np.testing.assert_allclose(results[2][split]["recall@20"], results[1][split]["recall@20"], atol=RANK_TOLERANCE)
