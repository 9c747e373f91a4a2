"""Training objectives as pure functions over tensors (no model, no trainer)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def bpr_loss(pos_scores: Tensor, neg_scores: Tensor) -> Tensor:
    r"""Bayesian personalised ranking loss (Rendle et al., UAI 2009), averaged over the batch.

    .. math::
        \mathcal{L} = -\frac{1}{B}\sum_{b} \log \sigma(\hat y_{u_b i_b} - \hat y_{u_b j_b})

    Args:
        pos_scores: ``(B,)`` scores of the observed (user, item) pairs.
        neg_scores: ``(B,)`` scores of the sampled negatives.
    """
    if pos_scores.shape != neg_scores.shape:
        raise ValueError(f"pos_scores {tuple(pos_scores.shape)} and neg_scores {tuple(neg_scores.shape)} differ")
    # softplus(-x) == -log(sigmoid(x)), computed stably for large |x|
    return F.softplus(neg_scores - pos_scores).mean()


def l2_reg(*tensors: Tensor) -> Tensor:
    r"""Squared L2 norm of the batch's embeddings, divided by the batch size.

    .. math:: \Omega = \frac{1}{2B}\sum_t \lVert T_t \rVert_F^2

    where ``B`` is the first dimension of the first tensor (the batch).
    """
    if not tensors:
        raise ValueError("l2_reg needs at least one tensor")
    batch = max(tensors[0].shape[0], 1)
    total = sum(t.pow(2).sum() for t in tensors)
    return total / (2.0 * batch)


__all__ = ["bpr_loss", "l2_reg"]
