"""Training objectives as pure functions over tensors (no model, no trainer)."""

from __future__ import annotations

import torch
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


def info_nce(anchor: Tensor, positive: Tensor, temperature: float, candidates: Tensor | None = None) -> Tensor:
    r"""InfoNCE over cosine similarities (van den Oord et al., 2018), averaged over the anchors.

    .. math::
        \mathcal{L} = \frac{1}{B}\sum_{b} -\log
        \frac{\exp(s(a_b, p_b)/\tau)}{\sum_{c \in C} \exp(s(a_b, c)/\tau)},
        \qquad s(x, y) = \frac{x^\top y}{\lVert x\rVert\,\lVert y\rVert}

    The positive of anchor :math:`a_b` is :math:`p_b`; the candidates :math:`C` are
    ``candidates`` when given (e.g. every user's second view, as SGL), else the batch's
    positives (in-batch negatives, as SimGCL), so :math:`p_b` is one of them. The
    candidates must contain each positive (the denominator is then a proper softmax).

    Args:
        anchor: ``(B, d)`` first views.
        positive: ``(B, d)`` second views, row-aligned with ``anchor``.
        temperature: :math:`\tau > 0`.
        candidates: ``(N, d)`` second views the anchors are contrasted with (default:
            ``positive``).
    """
    if anchor.shape != positive.shape or anchor.dim() != 2:
        raise ValueError(f"anchor {tuple(anchor.shape)} and positive {tuple(positive.shape)} must be equal (B, d)")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    anchor = F.normalize(anchor, dim=1)
    positive = F.normalize(positive, dim=1)
    candidates = positive if candidates is None else F.normalize(candidates, dim=1)
    pos = (anchor * positive).sum(1) / temperature
    all_logits = anchor @ candidates.T / temperature
    return (torch.logsumexp(all_logits, dim=1) - pos).mean()


def cosine_alignment(online: Tensor, target: Tensor) -> Tensor:
    r"""Mean negative cosine similarity, shifted to be non-negative (BYOL / BM3's :math:`C`).

    .. math:: \mathcal{L} = \frac{1}{B}\sum_b \Bigl(1 - \frac{o_b^\top t_b}{\lVert o_b\rVert\,\lVert t_b\rVert}\Bigr)

    Gradients flow into both arguments; bootstrapping objectives pass a detached ``target``.

    Args:
        online: ``(B, d)`` predictions.
        target: ``(B, d)`` targets, row-aligned.
    """
    if online.shape != target.shape:
        raise ValueError(f"online {tuple(online.shape)} and target {tuple(target.shape)} differ")
    return (1.0 - F.cosine_similarity(online, target, dim=-1)).mean()


__all__ = ["bpr_loss", "cosine_alignment", "info_nce", "l2_reg"]
