"""Loss functions against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from mmgcn.nn.losses import cosine_alignment, info_nce


def test_info_nce_by_hand():
    # two nodes in 2-D: anchors e1, e2; positives e1 and (e1 + e2)/sqrt(2)
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    p = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    tau = 0.5
    c = 1 / math.sqrt(2)
    # row 0: sims (1, c); row 1: sims (0, c); loss = mean of -log softmax at the diagonal
    row0 = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(c / tau)))
    row1 = -math.log(math.exp(c / tau) / (math.exp(0.0) + math.exp(c / tau)))
    assert info_nce(a, p, tau).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    # scale of either view does not matter (cosine similarity)
    assert info_nce(3 * a, p / 7, tau).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_info_nce_prefers_aligned_views_and_checks_input():
    torch.manual_seed(0)
    x = torch.randn(64, 16)
    aligned = info_nce(x, x + 0.01 * torch.randn_like(x), 0.2)
    shuffled = info_nce(x, x[torch.randperm(64)], 0.2)
    assert aligned < shuffled
    with pytest.raises(ValueError, match="one shape"):
        info_nce(x, x[:3])
    with pytest.raises(ValueError, match="temperature"):
        info_nce(x, x, 0.0)


def test_info_nce_with_all_candidates_by_hand():
    anchor = torch.tensor([[1.0, 0.0]])
    positive = torch.tensor([[1.0, 0.0]])
    candidates = torch.tensor([[1.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])  # contains the positive
    tau = 0.2
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(0.0) + math.exp(-1 / tau)))
    assert info_nce(anchor, positive, tau, candidates=candidates).item() == pytest.approx(expected, abs=1e-6)


def test_cosine_alignment_by_hand_and_gradients():
    online = torch.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True)
    target = torch.tensor([[3.0, 0.0], [-1.0, 0.0]])
    # cosines 1 and -1/sqrt2
    expected = ((1 - 1.0) + (1 + 1 / math.sqrt(2))) / 2
    loss = cosine_alignment(online, target)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert online.grad[0].abs().max() < 1e-6  # already aligned: no pull
    assert online.grad[1].abs().max() > 0
    with pytest.raises(ValueError, match="differ"):
        cosine_alignment(online, target[:1])
