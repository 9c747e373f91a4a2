"""SGL, SimGCL, BM3 and DiffMM train on the tiny and the synthetic dataset; resume is exact."""

from __future__ import annotations

import pytest
import torch

from mmgcn.data.synthetic import make_synthetic
from mmgcn.models import available_models, build_model
from mmgcn.train import run_dir as rd
from mmgcn.train.checkpoint import load_checkpoint
from mmgcn.train.trainer import TrainConfig, Trainer
from mmgcn.utils.seed import seed_everything

TRIPLES = (torch.tensor([0, 0, 1, 1, 2, 2, 3]), torch.tensor([0, 1, 1, 2, 2, 3, 0]), torch.tensor([4, 3, 0, 4, 0, 1, 2]))
MODELS = [
    ("sgl", {"dim": 8, "ssl_weight": 0.05}),
    ("simgcl", {"dim": 8, "ssl_weight": 0.05}),
    ("bm3", {"dim": 8, "dropout": 0.2}),
    ("diffmm", {"dim": 8, "denoiser_dims": [8]}),
]


class Crash(RuntimeError):
    pass


def _crash_after(epoch):
    def callback(record):
        if record["epoch"] == epoch:
            raise Crash

    return callback


def _fixed_loss(model, batch):
    """The loss on ``batch`` in eval mode (no epoch clock) with fixed random draws."""
    model.eval()
    torch.manual_seed(1234)
    with torch.no_grad():
        value = model.loss(*batch).item()
    model.train()
    return value


def test_registered():
    assert {"sgl", "simgcl", "bm3", "diffmm"} <= set(available_models())


@pytest.mark.parametrize(("name", "config"), MODELS, ids=[m for m, _ in MODELS])
def test_training_steps_lower_the_loss_on_the_tiny_dataset(tiny_dataset, name, config):
    def run():
        torch.manual_seed(0)
        model = build_model(name, tiny_dataset, config)
        before = _fixed_loss(model, TRIPLES)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(15):
            optimizer.zero_grad()
            loss = model.loss(*TRIPLES)
            assert torch.isfinite(loss)
            loss.backward()
            optimizer.step()
        return before, _fixed_loss(model, TRIPLES), model.score(torch.arange(4)).detach()

    before, after, scores = run()
    assert after < before
    assert scores.shape == (4, 5)
    again = run()
    assert again[1] == after and torch.equal(again[2], scores)  # deterministic for a seed


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic(60, 40, modalities={"image": 6, "text": 4}, interactions_per_user=8, seed=0,
                          progress=False)


def _config(**kwargs):
    return TrainConfig(**{"epochs": 4, "batch_size": 64, "lr": 0.01, "patience": 100, "ks": (5, 10),
                          "metric": "recall@10", "seed": 3, "progress": False, **kwargs})


@pytest.mark.parametrize(("name", "config"), MODELS, ids=[m for m, _ in MODELS])
def test_trainer_runs_on_the_synthetic_dataset(synthetic, name, config):
    seed_everything(0)
    model = build_model(name, synthetic, config)
    result = Trainer(model, synthetic, _config(epochs=3)).fit()
    assert result.epochs_run == 3 and result.test is not None
    batch = tuple(torch.as_tensor(a) for a in (synthetic.train.tocoo().row[:64], synthetic.train.tocoo().col[:64],
                                               (synthetic.train.tocoo().col[:64] + 1) % synthetic.n_items))
    trained = _fixed_loss(model, batch)
    seed_everything(0)
    assert trained < _fixed_loss(build_model(name, synthetic, config), batch)


@pytest.mark.parametrize(("name", "config"), [MODELS[0], MODELS[3]], ids=["sgl", "diffmm"])
def test_resume_redraws_the_same_epochs(tmp_path, synthetic, name, config):
    """Per-epoch state (SGL's views; DiffMM's user order, generated graphs, edge dropout)
    comes back bit for bit after a crash and --resume."""
    def build(seed=0):
        seed_everything(seed)
        return build_model(name, synthetic, config)

    cfg = _config(epochs=4)
    straight = Trainer(build(), synthetic, cfg, tmp_path / "straight").fit()
    with pytest.raises(Crash):
        Trainer(build(), synthetic, cfg, tmp_path / "resumed", callbacks=[_crash_after(2)]).fit()
    resumed = Trainer(build(seed=77), synthetic, cfg, tmp_path / "resumed", resume=True).fit()
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]
    assert [r["valid"] for r in resumed.history] == [r["valid"] for r in straight.history]
    assert resumed.test.metrics == straight.test.metrics
    a = load_checkpoint(tmp_path / "straight" / rd.LAST_CHECKPOINT)["model"]
    b = load_checkpoint(tmp_path / "resumed" / rd.LAST_CHECKPOINT)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
