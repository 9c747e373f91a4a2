"""InfoNCE and cosine alignment against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from mmgcn.nn.losses import cosine_alignment, info_nce


def test_info_nce_in_batch_by_hand():
    # unit anchors e1, e2; positives e1 and (e1 + e2)/sqrt2 (normalised inside)
    anchor = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    positive = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    tau = 0.5
    r = 1 / math.sqrt(2)
    # anchor 0: sims to candidates (positives) 1 and r, its positive is 1
    l0 = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(r / tau)))
    # anchor 1: sims 0 and r, its positive is r
    l1 = -math.log(math.exp(r / tau) / (math.exp(0.0) + math.exp(r / tau)))
    assert info_nce(anchor, positive, tau).item() == pytest.approx((l0 + l1) / 2, rel=1e-6)


def test_info_nce_with_all_candidates_by_hand():
    anchor = torch.tensor([[1.0, 0.0]])
    positive = torch.tensor([[1.0, 0.0]])
    candidates = torch.tensor([[1.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])  # contains the positive
    tau = 0.2
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(0.0) + math.exp(-1 / tau)))
    assert info_nce(anchor, positive, tau, candidates=candidates).item() == pytest.approx(expected, abs=1e-6)


def test_info_nce_is_scale_invariant_and_checks_inputs():
    anchor, positive = torch.randn(4, 3), torch.randn(4, 3)
    base = info_nce(anchor, positive, 0.3)
    torch.testing.assert_close(info_nce(5 * anchor, 0.1 * positive, 0.3), base)
    with pytest.raises(ValueError, match="must be equal"):
        info_nce(anchor, positive[:3], 0.3)
    with pytest.raises(ValueError, match="temperature"):
        info_nce(anchor, positive, 0.0)


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
