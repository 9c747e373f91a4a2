"""Trainer: early stopping, test isolation, resume equivalence, run directory contents."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import yaml
from torch import nn

import mmgcn.train.trainer as trainer_module
from mmgcn.config import ConfigError, from_dict
from mmgcn.data.dataset import Dataset
from mmgcn.eval.evaluator import EvalResult
from mmgcn.graph import degree_sensitive_prune
from mmgcn.models.base import Embeddings, ModelConfig, Recommender
from mmgcn.nn import BipartitePropagation, LayerMean
from mmgcn.nn.losses import bpr_loss, l2_reg
from mmgcn.train import run_dir as rd
from mmgcn.train.checkpoint import load_checkpoint
from mmgcn.train.trainer import TrainConfig, Trainer
from mmgcn.utils.seed import seed_everything


@dataclass(frozen=True)
class TinyMFConfig(ModelConfig):
    dim: int = 8
    reg_weight: float = 1e-3
    dropout: float = 0.1


class TinyMF(Recommender):
    """Matrix factorisation with dropout on the user vectors (so training consumes torch RNG)."""

    name = "tiny-mf-trainer-test"
    Config = TinyMFConfig

    def __init__(self, config: TinyMFConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        self.users = nn.Embedding(self.n_users, config.dim)
        self.items = nn.Embedding(self.n_items, config.dim)
        self.dropout = nn.Dropout(config.dropout)
        nn.init.normal_(self.users.weight, std=0.1)
        nn.init.normal_(self.items.weight, std=0.1)

    def embed(self) -> Embeddings:
        return Embeddings(self.users.weight, self.items.weight)

    def loss(self, users, pos, neg):
        u = self.dropout(self.users(users))
        p, n = self.items(pos), self.items(neg)
        return bpr_loss((u * p).sum(1), (u * n).sum(1)) + self.config.reg_weight * l2_reg(u, p, n)


class TinyPruned(Recommender):
    """LightGCN on a degree-pruned graph redrawn at every epoch start (FREEDOM's denoising)."""

    name = "tiny-pruned-trainer-test"
    Config = TinyMFConfig

    def __init__(self, config: TinyMFConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        self.users = nn.Parameter(torch.randn(self.n_users, config.dim) * 0.1)
        self.items = nn.Parameter(torch.randn(self.n_items, config.dim) * 0.1)
        self.full_graph = BipartitePropagation(dataset.train, "sym")
        self.pruned_graph = BipartitePropagation(dataset.train, "sym")
        self.layer_mean = LayerMean(2)
        self.drawn: list[tuple[int, bytes]] = []

    def on_epoch_start(self, epoch, rng):
        pruned = degree_sensitive_prune(self._train_csr, 0.5, rng)
        self.pruned_graph.set_graph(pruned)
        self.drawn.append((epoch, pruned.indptr.tobytes() + pruned.indices.tobytes()))

    def embed(self) -> Embeddings:
        graph = self.pruned_graph if self.training else self.full_graph
        users, items = self.layer_mean(graph, self.users, self.items)
        return Embeddings(users, items)

    def loss(self, users, pos, neg):
        emb = self.embed()
        u = emb.users[users]
        return bpr_loss((u * emb.items[pos]).sum(1), (u * emb.items[neg]).sum(1)) + self.config.reg_weight * l2_reg(
            self.users[users], self.items[pos], self.items[neg])


class Popularity(Recommender):
    name = "popularity-trainer-test"
    trainable: ClassVar[bool] = False

    def __init__(self, config: ModelConfig, dataset: Dataset) -> None:
        super().__init__(config, dataset)
        counts = np.asarray(dataset.train.sum(0)).ravel()
        self.register_buffer("counts", torch.as_tensor(counts, dtype=torch.float32))

    def embed(self) -> Embeddings:
        return Embeddings(torch.ones(self.n_users, 1), self.counts[:, None])


def synthetic(n_users=60, n_items=30, seed=0) -> Dataset:
    """Users prefer items of their own cluster, so a model can learn something."""
    rng = np.random.default_rng(seed)
    clusters_u, clusters_i = rng.integers(0, 3, n_users), rng.integers(0, 3, n_items)
    prob = np.where(clusters_u[:, None] == clusters_i[None, :], 0.5, 0.05)
    dense = rng.random((n_users, n_items)) < prob
    split = rng.choice(3, size=dense.shape, p=[0.7, 0.15, 0.15]) * dense + dense  # 1 train 2 valid 3 test
    split[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1
    train, valid, test = (sp.csr_matrix((split == s).astype(np.float32)) for s in (1, 2, 3))
    return Dataset("synthetic", n_users, n_items, train, valid, test)


def build(dataset: Dataset, seed: int = 0) -> TinyMF:
    seed_everything(seed)
    return TinyMF(TinyMFConfig(), dataset)


def config(**kwargs) -> TrainConfig:
    defaults = dict(epochs=6, batch_size=64, lr=0.01, patience=100, ks=(5, 10), metric="recall@10",
                    seed=3, progress=False)
    return TrainConfig(**{**defaults, **kwargs})


def test_trains_and_writes_the_run_directory(tmp_path):
    dataset = synthetic()
    run_dir = tmp_path / "run"
    model = build(dataset)
    result = Trainer(model, dataset, config(), run_dir, run_config={"dataset": {"split": "x"}}).fit()
    assert result.epochs_run == 6 and not result.stopped_early
    losses = [r["loss"] for r in result.history]
    assert losses[-1] < losses[0]
    assert result.valid[result.metric] == result.best_value == max(r["valid"]["recall@10"] for r in result.history)
    records = rd.read_jsonl(run_dir / rd.METRICS_FILE)
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "valid", "train_seconds", "eval_seconds", "peak_rss_mb", "best_epoch"} <= set(records[0])
    resolved = yaml.safe_load((run_dir / rd.CONFIG_FILE).read_text())
    assert resolved["train"]["epochs"] == 6 and resolved["model"]["dim"] == 8
    assert resolved["run"]["model"] == TinyMF.name and resolved["dataset"] == {"split": "x"}
    assert from_dict(TrainConfig, resolved["train"]) == config()  # the recorded config round-trips
    env = json.loads((run_dir / rd.ENVIRONMENT_FILE).read_text())
    assert env["torch"] == torch.__version__ and "hostname" in env
    best = load_checkpoint(run_dir / rd.BEST_CHECKPOINT)
    assert best["epoch"] == result.best_epoch and {"optimizer", "sampler", "rng", "bad_evals"} <= set(best)
    test_json = json.loads((run_dir / rd.TEST_METRICS_FILE).read_text())
    assert test_json["split"] == "test" and test_json["best_epoch"] == result.best_epoch
    assert test_json["metrics"] == pytest.approx(result.test.metrics)
    assert set(test_json["groups"]) == {"warm", "cold"}
    with np.load(run_dir / rd.TEST_PER_USER_FILE, allow_pickle=False) as arrays:
        assert np.array_equal(arrays["users"], result.test.users)
    assert (run_dir / rd.LOG_FILE).is_file()
    # after fit the model holds the best epoch's state, not the last one's
    assert all(torch.equal(v, best["model"][k]) for k, v in model.state_dict().items())
    if result.best_epoch != 6:
        last = load_checkpoint(run_dir / rd.LAST_CHECKPOINT)["model"]
        assert not all(torch.equal(v, last[k]) for k, v in model.state_dict().items())


def test_deterministic_for_a_seed():
    dataset = synthetic()
    a = Trainer(build(dataset), dataset, config(epochs=3)).fit()
    b = Trainer(build(dataset), dataset, config(epochs=3)).fit()
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    assert a.test.metrics == b.test.metrics


def test_early_stopping_with_patience_restores_the_best_epoch(monkeypatch):
    dataset = synthetic()
    scripted = iter([0.1, 0.3, 0.2, 0.25, 0.3, 0.9, 0.9])
    real_evaluate = trainer_module.evaluate
    states: dict[int, dict] = {}

    def fake_evaluate(model, data, split, **kwargs):
        if split != "valid":
            return real_evaluate(model, data, split, **kwargs)
        value = next(scripted)
        return EvalResult(split, (5, 10), ("train",), {"recall@10": value, "recall@5": value},
                          np.zeros(0, np.int64), {}, np.zeros(0, np.int64), 0, 30)

    monkeypatch.setattr(trainer_module, "evaluate", fake_evaluate)
    model = build(dataset)
    record_state = lambda record: states.__setitem__(record["epoch"], {k: v.clone() for k, v in model.state_dict().items()})  # noqa: E731
    result = Trainer(model, dataset, config(epochs=20, patience=3), callbacks=[record_state]).fit()
    # best 0.3 at epoch 2; epochs 3, 4, 5 do not beat it (0.3 is not > 0.3): stop after 5
    assert result.best_epoch == 2 and result.best_value == 0.3
    assert result.stopped_early and result.epochs_run == 5
    assert [r["bad_evals"] for r in result.history] == [0, 0, 1, 2, 3]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in states[2].items())
    assert not all(torch.equal(model.state_dict()[k], v) for k, v in states[5].items())


def test_eval_every_and_min_delta(monkeypatch):
    dataset = synthetic()
    calls = []
    real = trainer_module.evaluate

    def counting(model, data, split, **kwargs):
        calls.append(split)
        return real(model, data, split, **kwargs)

    monkeypatch.setattr(trainer_module, "evaluate", counting)
    result = Trainer(build(dataset), dataset, config(epochs=5, eval_every=2)).fit()
    assert calls == ["valid", "valid", "valid", "test"]  # epochs 2, 4, and the last one (5)
    assert ["valid" in r for r in result.history] == [False, True, False, True, True]


class CountingDataset(Dataset):
    """A dataset that counts every read of its test split after construction."""

    test_reads: ClassVar[list[int]] = [0]
    armed: ClassVar[list[bool]] = [False]

    def __getattribute__(self, name):
        if name == "test" and type(self).armed[0]:
            type(self).test_reads[0] += 1
        return super().__getattribute__(name)


def test_test_split_is_never_read_before_the_final_evaluation(tmp_path):
    base = synthetic()
    dataset = CountingDataset(base.name, base.n_users, base.n_items, base.train, base.valid, base.test)
    CountingDataset.armed[0] = True
    CountingDataset.test_reads[0] = 0
    try:
        reads_per_epoch = []
        trainer = Trainer(build(dataset), dataset, config(epochs=4), tmp_path / "run",
                          callbacks=[lambda record: reads_per_epoch.append(CountingDataset.test_reads[0])])
        # the run's data fingerprint hashes every split once, at construction (no metric is computed)
        CountingDataset.test_reads[0] = 0
        trainer.fit()
        assert reads_per_epoch == [0, 0, 0, 0]
        assert CountingDataset.test_reads[0] > 0  # the final report did read it (so the counter works)
        untested = Trainer(build(dataset), dataset, config(epochs=2))
        CountingDataset.test_reads[0] = 0
        untested.fit(evaluate_test=False)
        assert CountingDataset.test_reads[0] == 0
    finally:
        CountingDataset.armed[0] = False


class Crash(Exception):
    pass


def crash_after(epoch: int):
    def callback(record):
        if record["epoch"] == epoch:
            raise Crash

    return callback


def test_resume_reaches_the_uninterrupted_result(tmp_path):
    dataset = synthetic()
    cfg = config(epochs=7, patience=100)
    straight = Trainer(build(dataset), dataset, cfg, tmp_path / "straight").fit()

    with pytest.raises(Crash):
        Trainer(build(dataset), dataset, cfg, tmp_path / "resumed", callbacks=[crash_after(3)]).fit()
    assert load_checkpoint(tmp_path / "resumed" / rd.LAST_CHECKPOINT)["epoch"] == 3
    # a fresh process would build the model from another random init; resume overwrites it
    resumed = Trainer(build(dataset, seed=123), dataset, cfg, tmp_path / "resumed", resume=True).fit()

    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]
    assert [r["valid"] for r in resumed.history] == [r["valid"] for r in straight.history]
    assert resumed.best_epoch == straight.best_epoch
    assert resumed.test.metrics == straight.test.metrics
    a = load_checkpoint(tmp_path / "straight" / rd.LAST_CHECKPOINT)["model"]
    b = load_checkpoint(tmp_path / "resumed" / rd.LAST_CHECKPOINT)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(rd.read_jsonl(tmp_path / "resumed" / rd.METRICS_FILE)) == 7
    env = json.loads((tmp_path / "resumed" / rd.ENVIRONMENT_FILE).read_text())
    assert len(env["resumes"]) == 1


def test_epoch_hook_redraws_per_epoch_and_resume_redraws_the_same_graphs(tmp_path):
    dataset = synthetic()
    cfg = config(epochs=6, patience=100)
    seed_everything(0)
    model = TinyPruned(TinyMFConfig(), dataset)
    straight = Trainer(model, dataset, cfg, tmp_path / "straight").fit()
    assert [epoch for epoch, _ in model.drawn] == [1, 2, 3, 4, 5, 6]
    assert len({graph for _, graph in model.drawn}) == 6  # a new pruned graph every epoch

    seed_everything(0)
    with pytest.raises(Crash):
        Trainer(TinyPruned(TinyMFConfig(), dataset), dataset, cfg, tmp_path / "resumed",
                callbacks=[crash_after(2)]).fit()
    seed_everything(5)  # a fresh process: another init and other global random states
    again = TinyPruned(TinyMFConfig(), dataset)
    resumed = Trainer(again, dataset, cfg, tmp_path / "resumed", resume=True).fit()
    assert again.drawn == model.drawn[2:]  # epochs 3..6 drew the uninterrupted run's graphs
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]
    assert [r["valid"] for r in resumed.history] == [r["valid"] for r in straight.history]
    assert resumed.test.metrics == straight.test.metrics
    a = load_checkpoint(tmp_path / "straight" / rd.LAST_CHECKPOINT)["model"]
    b = load_checkpoint(tmp_path / "resumed" / rd.LAST_CHECKPOINT)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the hook's generator depends on the run seed: another seed draws other graphs
    seed_everything(0)
    other = TinyPruned(TinyMFConfig(), dataset)
    Trainer(other, dataset, config(epochs=1, seed=4), None).fit(evaluate_test=False)
    assert other.drawn[0][1] != model.drawn[0][1]


def test_resume_of_early_stopped_run_only_reports(tmp_path, monkeypatch):
    dataset = synthetic()
    cfg = config(epochs=30, patience=2)
    first = Trainer(build(dataset), dataset, cfg, tmp_path / "run").fit()
    again = Trainer(build(dataset, seed=9), dataset, cfg, tmp_path / "run", resume=True).fit()
    assert again.epochs_run == first.epochs_run and again.test.metrics == first.test.metrics


def test_resume_refuses_a_changed_config_and_new_run_refuses_an_existing_dir(tmp_path):
    dataset = synthetic()
    Trainer(build(dataset), dataset, config(epochs=2), tmp_path / "run").fit()
    with pytest.raises(ValueError, match=r"different train config for \['lr'\]"):
        Trainer(build(dataset), dataset, config(epochs=4, lr=0.5), tmp_path / "run", resume=True).fit()
    assert yaml.safe_load((tmp_path / "run" / rd.CONFIG_FILE).read_text())["train"]["lr"] == 0.01
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(build(dataset), dataset, config(), tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="no checkpoints/last.pt"):
        Trainer(build(dataset), dataset, config(), tmp_path / "empty", resume=True)
    # more epochs is an allowed change: the run continues from epoch 2
    longer = Trainer(build(dataset), dataset, config(epochs=4), tmp_path / "run", resume=True).fit()
    assert [r["epoch"] for r in longer.history] == [1, 2, 3, 4]


def test_untrainable_model_is_only_evaluated(tmp_path):
    dataset = synthetic()
    model = Popularity(ModelConfig(), dataset)
    result = Trainer(model, dataset, config(), tmp_path / "run").fit()
    assert result.best_epoch == 0 and result.epochs_run == 0 and len(result.history) == 1
    assert result.history[0]["loss"] is None
    assert load_checkpoint(tmp_path / "run" / rd.BEST_CHECKPOINT)["optimizer"] is None
    assert result.test.n_users > 0


def test_nan_loss_is_reported():
    class Diverging(TinyMF):
        def loss(self, users, pos, neg):
            return super().loss(users, pos, neg) * float("nan")

    dataset = synthetic()
    seed_everything(0)
    with pytest.raises(FloatingPointError, match="mean loss is nan"):
        Trainer(Diverging(TinyMFConfig(), dataset), dataset, config(epochs=1)).fit()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"metric": "recall@7"}, "k in train.ks"),
        ({"metric": "auc@10"}, "name in"),
        ({"test_mask": ["train", "test"]}, "test_mask"),
        ({"valid_mask": ["train", "bogus"]}, "unknown split"),
        ({"patience": 0}, "patience must be positive"),
        ({"device": "gpu"}, "device"),
        ({"epochs": 5, "bogus": 1}, "unknown key"),
    ],
)
def test_train_config_validation(overrides, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(TrainConfig, overrides, where="train")


def test_empty_valid_split_fails_before_training():
    base = synthetic()
    no_valid = Dataset("novalid", base.n_users, base.n_items, base.train, sp.csr_matrix(base.valid.shape), base.test)
    with pytest.raises(ValueError, match="novalid: the valid split is empty"):
        Trainer(build(no_valid), no_valid, config()).fit()
