r"""Learned hypergraphs: soft node-to-hyperedge assignments and propagation through hyperedges.

Hypergraph recommenders (LGMRec, Guo et al., AAAI 2024, arXiv 2312.16400; HCCF; MMSSL)
connect every node to a small number :math:`K` of learnable hyperedges with a soft
assignment matrix :math:`\Lambda \in \mathbb R^{n \times K}` (rows on the simplex), and
pass messages node -> hyperedge -> node:

.. math::
    Z = \Lambda_I^\top G_I, \qquad G_I' = \Lambda_I Z, \qquad G_U' = \Lambda_U Z

(:func:`hypergraph_propagation`; items define the hyperedge states, users read them through
their own assignments). The assignments are drawn with the Gumbel-softmax relaxation
(Jang et al., ICLR 2017, arXiv 1611.01144):

.. math::
    \tilde\Lambda_{nk} = \frac{\exp((\Lambda_{nk} + g_{nk})/\tau)}{\sum_{k'}\exp((\Lambda_{nk'} + g_{nk'})/\tau)},
    \qquad g = -\log(-\log u),\ u \sim U(0, 1)

(:func:`gumbel_softmax`), with the noise drawn from a given ``torch.Generator`` so that a
model's randomness is reproducible on its own (a resumed run redraws the same noise);
without noise (``generator=None``, e.g. when ranking) it is the plain softmax
:math:`\operatorname{softmax}(\Lambda/\tau)`. All products are dense and small (``K`` is a
few hyperedges): ``O(n K d)``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def gumbel_softmax(logits: Tensor, temperature: float, generator: torch.Generator | None = None) -> Tensor:
    r"""Soft assignments ``(n, K)``: a softmax over the last dimension of ``(logits + g) / tau``.

    Args:
        logits: ``(n, K)`` assignment scores.
        temperature: :math:`\tau > 0`.
        generator: source of the Gumbel noise :math:`g` (on ``logits``' device); ``None``
            draws no noise (the deterministic softmax of ``logits / tau``).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if generator is not None:
        uniform = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
        tiny = torch.finfo(logits.dtype).tiny
        exponential = -torch.log(uniform.clamp_min(tiny))  # -log u ~ Exp(1); g = -log of it
        logits = logits - torch.log(exponential.clamp_min(tiny))
    return torch.softmax(logits / temperature, dim=-1)


def dropout(x: Tensor, keep: float, generator: torch.Generator | None) -> Tensor:
    """Inverted dropout with a given generator: entries kept with probability ``keep`` and
    scaled by ``1 / keep`` (``generator=None`` or ``keep == 1``: the identity)."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    if generator is None or keep == 1.0:
        return x
    mask = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) < keep
    return x * mask / keep


def hypergraph_propagation(
    item_assign: Tensor, user_assign: Tensor, item_states: Tensor, num_layers: int
) -> tuple[Tensor, Tensor, Tensor]:
    r"""``num_layers`` rounds of item -> hyperedge -> item, and the users' reading of the last.

    .. math::
        Z^{(l)} = \Lambda_I^\top G_I^{(l-1)}, \quad G_I^{(l)} = \Lambda_I Z^{(l)},
        \qquad G_U = \Lambda_U Z^{(L)}, \qquad G_I^{(0)} = \text{item\_states}

    Args:
        item_assign: :math:`\Lambda_I` ``(n_items, K)``.
        user_assign: :math:`\Lambda_U` ``(n_users, K)``.
        item_states: ``(n_items, d)``.
        num_layers: :math:`L \ge 1`.

    Returns:
        ``(users (n_users, d), items (n_items, d), hyperedges (K, d))``: :math:`G_U`,
        :math:`G_I^{(L)}` and the last hyperedge states :math:`Z^{(L)}` (new items read them:
        :math:`\Lambda_{\text{new}} Z^{(L)}`).
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    if item_assign.shape[1] != user_assign.shape[1] or item_assign.shape[0] != item_states.shape[0]:
        raise ValueError(f"assignments {tuple(item_assign.shape)}, {tuple(user_assign.shape)} do not fit "
                         f"item states {tuple(item_states.shape)}")
    items = item_states
    for _ in range(num_layers):
        hyperedges = item_assign.T @ items
        items = item_assign @ hyperedges
    return user_assign @ hyperedges, items, hyperedges


__all__ = ["dropout", "gumbel_softmax", "hypergraph_propagation"]
