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


def info_nce(anchors: Tensor, positives: Tensor, temperature: float = 0.2, candidates: Tensor | None = None) -> Tensor:
    r"""InfoNCE over cosine similarities (van den Oord et al., 2018), averaged over the anchors.

    Row :math:`b` of ``anchors`` and of ``positives`` are two views of one node. With cosine
    similarity :math:`s(a, p) = a^\top p / (\lVert a\rVert \lVert p\rVert)`:

    .. math::
        \mathcal{L} = -\frac{1}{B}\sum_b \log
        \frac{\exp(s(a_b, p_b)/\tau)}{\sum_{c \in C} \exp(s(a_b, c)/\tau)}

    The candidates :math:`C` are the rows of ``positives`` (in-batch negatives, as SimGCL)
    unless ``candidates`` is given (e.g. every user's second view, as SGL); they must
    contain each positive, so the denominator is a softmax over them.

    Args:
        anchors: ``(B, d)`` first views.
        positives: ``(B, d)`` second views, row-aligned with ``anchors``.
        temperature: :math:`\tau > 0` (default ``0.2``).
        candidates: ``(N, d)`` second views the anchors are contrasted with (default:
            ``positives``).
    """
    if anchors.shape != positives.shape or anchors.dim() != 2:
        raise ValueError(f"info_nce needs two (B, d) views of one shape, got {tuple(anchors.shape)} and {tuple(positives.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    anchors = F.normalize(anchors, dim=1)
    positives = F.normalize(positives, dim=1)
    if candidates is None:
        logits = anchors @ positives.T / temperature
        return F.cross_entropy(logits, torch.arange(anchors.shape[0], device=anchors.device))
    logits = anchors @ F.normalize(candidates, dim=1).T / temperature
    return (torch.logsumexp(logits, dim=1) - (anchors * positives).sum(1) / temperature).mean()


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
