"""eval_mode: the block runs in eval mode, the module gets its own mode back (also on error)."""

import numpy as np
import pytest
import torch
from torch import nn

from mmgcn.utils.modes import eval_mode


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))


@pytest.mark.parametrize("training", [True, False])
def test_block_runs_in_eval_mode_and_the_mode_comes_back(training):
    net = _net().train(training)
    with eval_mode(net) as inside:
        assert inside is net
        assert not net.training and not net[1].training
        x = torch.ones(1, 2)
        assert torch.equal(net(x), net(x))  # dropout off: deterministic
    assert net.training is training and net[1].training is training


def test_mode_comes_back_when_the_block_raises():
    net = _net().train()
    with pytest.raises(RuntimeError, match="boom"):
        with eval_mode(net):
            raise RuntimeError("boom")
    assert net.training and net[1].training


def test_ranking_paths_score_in_eval_mode_and_keep_the_callers_mode():
    # FREEDOM propagates over a degree-pruned graph while training: a ranking asked for in
    # the middle of training must still be the eval-mode one, and training must go on after
    from mmgcn.data.synthetic import make_synthetic
    from mmgcn.models import build_model

    data = make_synthetic(60, 40, modalities={"image": 8}, interactions_per_user=8, seed=0, progress=False)
    torch.manual_seed(0)
    model = build_model("freedom", data, {"dim": 8, "prune_ratio": 0.5})
    model.eval()
    reference = model.ranking_embed().items.detach().clone()
    _, reference_top = model.recommend([0, 1, 2], k=5)
    model.train()
    model.on_epoch_start(0, np.random.default_rng(0))  # draws the pruned training graph
    assert not torch.allclose(model.embed().items, reference)  # training mode differs ...
    assert torch.allclose(model.ranking_embed().items, reference)  # ... rankings do not
    _, top = model.recommend([0, 1, 2], k=5)
    assert torch.equal(top, reference_top)
    assert model.training
