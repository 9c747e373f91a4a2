"""LGMRec, DRAGON and GRCN through the trainer: they learn, and a resumed run is bit-identical."""

from __future__ import annotations

import pytest
import torch

from mmgcn.data.synthetic import make_synthetic
from mmgcn.models import build_model
from mmgcn.train import run_dir as rd
from mmgcn.train.checkpoint import load_checkpoint
from mmgcn.train.trainer import TrainConfig, Trainer

MODELS = {"lgmrec": {"dim": 8}, "dragon": {"dim": 8, "knn_k": 3, "user_k": 5}, "grcn": {"dim": 8, "content_dim": 8}}
# tiny_dataset: train u0 {0,1}, u1 {1,2}, u2 {2,3}, u3 {0}; item 4 has no train edge
TRIPLES = (torch.tensor([0, 0, 1, 1, 2, 2, 3]), torch.tensor([0, 1, 1, 2, 2, 3, 0]), torch.tensor([4, 3, 0, 4, 0, 1, 2]))


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic(50, 40, modalities={"image": 6, "text": 4}, interactions_per_user=8, seed=2, progress=False)


@pytest.mark.parametrize("name", MODELS)
def test_a_few_steps_on_the_tiny_dataset_reduce_the_loss(tiny_dataset, name):
    torch.manual_seed(0)
    model = build_model(name, tiny_dataset, MODELS[name])
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = model.loss(*TRIPLES)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.eval()
    _, top = model.recommend(torch.arange(4), k=2)
    assert all(set(top[u].tolist()).isdisjoint(tiny_dataset.train[u].indices) for u in range(4))


@pytest.mark.parametrize("name", MODELS)
def test_trainer_learns_on_synthetic_data_and_resumes_bit_identically(synthetic, tmp_path, name):
    cfg = TrainConfig(epochs=4, batch_size=64, lr=0.01, patience=100, ks=(10,), metric="recall@10", seed=1,
                      progress=False)

    def fresh(seed):
        torch.manual_seed(seed)
        return build_model(name, synthetic, MODELS[name])

    straight = Trainer(fresh(0), synthetic, cfg, tmp_path / "straight").fit()
    losses = [r["loss"] for r in straight.history]
    assert losses[-1] < losses[0]
    assert straight.history[-1]["valid"]["recall@10"] > 0

    class Crash(Exception):
        pass

    def crash(record):
        if record["epoch"] == 2:
            raise Crash

    with pytest.raises(Crash):
        Trainer(fresh(0), synthetic, cfg, tmp_path / "resumed", callbacks=[crash]).fit()
    # a different initialisation and global random state: everything must come from the checkpoint
    torch.manual_seed(123)
    resumed = Trainer(fresh(9), synthetic, cfg, tmp_path / "resumed", resume=True).fit()
    assert [r["loss"] for r in resumed.history] == losses
    assert resumed.test.metrics == straight.test.metrics
    a = load_checkpoint(tmp_path / "straight" / rd.LAST_CHECKPOINT)["model"]
    b = load_checkpoint(tmp_path / "resumed" / rd.LAST_CHECKPOINT)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
