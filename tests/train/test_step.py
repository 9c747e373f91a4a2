"""The training step's options: wrappers composed in order, bf16 autocast, torch.compile."""

from __future__ import annotations

import pytest
import torch

import mmgcn.train.step as step_mod
from mmgcn.data.synthetic import make_synthetic
from mmgcn.models.base import build_model
from mmgcn.train.config import TrainConfig
from mmgcn.train.step import AutocastLoss, CompiledLoss, step_module
from mmgcn.train.subgraph import SubgraphTraining


@pytest.fixture(scope="module")
def data():
    return make_synthetic(60, 30, modalities={"image": 6, "text": 4}, interactions_per_user=6,
                          cold_item_fraction=0.0, seed=0, progress=False)


def test_plain_config_trains_the_model_itself(data):
    model = build_model("lightgcn", data, {})
    assert step_module(model, TrainConfig(), torch.device("cpu")) is model


def test_wrappers_compose_in_order(data, monkeypatch):
    compiled = []
    monkeypatch.setattr(step_mod.torch, "compile", lambda fn: compiled.append(fn) or fn)
    model = build_model("mmgcn", data, {})
    config = TrainConfig(num_neighbors=(3,), precision="bf16", compile=True)
    step = step_module(model, config, torch.device("cpu"))
    assert isinstance(step, CompiledLoss) and isinstance(step.module, AutocastLoss)
    assert isinstance(step.module.module, SubgraphTraining) and step.module.module.model is model
    assert compiled == [step.module.loss]  # torch.compile got the autocast loss
    users, pos, neg = torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5])
    assert torch.isfinite(step.loss(users, pos, neg))


@pytest.mark.parametrize("name", ["mmgcn", "lightgcn", "lattice"])  # lattice: learned sparse products
def test_bf16_autocast_step_is_close_to_fp32_and_keeps_fp32_gradients(data, name):
    torch.manual_seed(0)
    model = build_model(name, data, {})
    users, pos, neg = torch.arange(8), torch.arange(8) % 30, (torch.arange(8) + 7) % 30
    fp32 = step_module(model, TrainConfig(), torch.device("cpu")).loss(users, pos, neg)
    bf16 = step_module(model, TrainConfig(precision="bf16"), torch.device("cpu")).loss(users, pos, neg)
    assert bf16.dtype == torch.float32
    torch.testing.assert_close(bf16, fp32, rtol=2e-2, atol=2e-3)
    bf16.backward()
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in model.parameters())


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")
