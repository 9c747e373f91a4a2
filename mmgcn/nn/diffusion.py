r"""Gaussian diffusion over users' interaction vectors, and its MLP denoiser.

The generative part of DiffRec (Wang et al., "Diffusion Recommender Model", SIGIR 2023,
https://arxiv.org/abs/2304.04971), as DiffMM uses it (Jiang et al., ACM MM 2024,
https://arxiv.org/abs/2406.11781): a user's train row :math:`x_0 \in \{0, 1\}^{n_{items}}`
is noised in ``steps`` Gaussian steps and a denoiser MLP predicts :math:`x_0` back.

Schedule (``noise_scale`` :math:`s`, ``noise_min``, ``noise_max``, ``steps`` :math:`T`):
:math:`1 - \bar\alpha_t` rises linearly from :math:`s \cdot` ``noise_min`` to
:math:`s \cdot` ``noise_max``; :math:`\beta_1 = 1 - \bar\alpha_1`,
:math:`\beta_t = \min(1 - \bar\alpha_t / \bar\alpha_{t-1}, 0.999)`, then
:math:`\beta_1` is fixed to ``1e-4`` and :math:`\bar\alpha_t = \prod_{s \le t}(1 - \beta_s)`
recomputed from the :math:`\beta`. Forward process and posterior mean
(:math:`t` counted from 0 in code):

.. math::
    x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon, \qquad
    \mu_t(x_t, \hat x_0) = \frac{\beta_t \sqrt{\bar\alpha_{t-1}}}{1 - \bar\alpha_t}\hat x_0
        + \frac{(1 - \bar\alpha_{t-1})\sqrt{\alpha_t}}{1 - \bar\alpha_t} x_t

Training predicts :math:`x_0` (mean squared error over items) weighted by
:math:`\mathrm{SNR}(t-1) - \mathrm{SNR}(t)` (weight 1 at :math:`t = 0`),
:math:`\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)`. Generation starts from the
clean row (:math:`x_T := x_0`, no noise added) and applies the posterior mean for
:math:`t = T-1, \dots, 0` without sampling noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn


def diffusion_betas(steps: int, noise_scale: float, noise_min: float, noise_max: float) -> np.ndarray:
    """The :math:`\\beta_t` of the schedule above, ``(steps,)`` float64 (first fixed to ``1e-4``)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0 < noise_min <= noise_max < 1 or not 0 < noise_scale <= 1:
        raise ValueError(f"need 0 < noise_min <= noise_max < 1 and 0 < noise_scale <= 1, got "
                         f"{noise_min}, {noise_max}, {noise_scale}")
    variance = np.linspace(noise_scale * noise_min, noise_scale * noise_max, steps, dtype=np.float64)
    alpha_bar = 1.0 - variance
    betas = [1.0 - alpha_bar[0]] + [min(1.0 - alpha_bar[t] / alpha_bar[t - 1], 0.999) for t in range(1, steps)]
    betas = np.asarray(betas)
    betas[0] = 1e-4
    return betas


class GaussianDiffusion(nn.Module):
    r"""The noise schedule and its three uses: noising, the training weight, the posterior mean.

    Args:
        steps: :math:`T` (default ``5``).
        noise_scale: :math:`s` (default ``0.1``).
        noise_min: lower end of the noise variance before scaling (default ``1e-4``).
        noise_max: upper end (default ``0.02``).

    Buffers (constants, not saved): ``alphas_cumprod`` and the posterior coefficients, ``(T,)``.
    """

    def __init__(self, steps: int = 5, noise_scale: float = 0.1, noise_min: float = 1e-4, noise_max: float = 0.02) -> None:
        super().__init__()
        betas = diffusion_betas(steps, noise_scale, noise_min, noise_max)
        alphas = 1.0 - betas
        cumprod = np.cumprod(alphas)
        cumprod_prev = np.concatenate([[1.0], cumprod[:-1]])
        self.steps = steps
        constants = {
            "alphas_cumprod": cumprod,
            "posterior_x0": betas * np.sqrt(cumprod_prev) / (1.0 - cumprod),
            "posterior_xt": (1.0 - cumprod_prev) * np.sqrt(alphas) / (1.0 - cumprod),
        }
        for name, value in constants.items():
            self.register_buffer(name, torch.from_numpy(value), persistent=False)

    def q_sample(self, x_start: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """:math:`x_t` for rows ``x_start`` ``(B, n)`` at steps ``t`` ``(B,)`` with ``noise`` ``(B, n)``."""
        cumprod = self.alphas_cumprod[t].float().unsqueeze(1)
        return cumprod.sqrt() * x_start + (1.0 - cumprod).sqrt() * noise

    def snr(self, t: Tensor) -> Tensor:
        cumprod = self.alphas_cumprod[t]
        return cumprod / (1.0 - cumprod)

    def loss_weight(self, t: Tensor) -> Tensor:
        """:math:`\\mathrm{SNR}(t-1) - \\mathrm{SNR}(t)`, and 1 at :math:`t = 0`; ``(B,)`` float32."""
        weight = self.snr((t - 1).clamp(min=0)) - self.snr(t)
        return torch.where(t == 0, torch.ones_like(weight), weight).float()

    def posterior_mean(self, x_t: Tensor, x0_pred: Tensor, step: int) -> Tensor:
        """:math:`\\mu_t(x_t, \\hat x_0)` at one step ``step`` for all rows."""
        return float(self.posterior_x0[step]) * x0_pred + float(self.posterior_xt[step]) * x_t

    @torch.no_grad()
    def generate(self, denoiser: Denoiser, x_start: Tensor) -> Tensor:
        """Denoise the clean rows ``x_start`` ``(B, n)`` through all steps (no noise): ``(B, n)``."""
        x = x_start
        for step in reversed(range(self.steps)):
            t = torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)
            x = self.posterior_mean(x, denoiser(x, t, input_dropout=False), step)
        return x

    def extra_repr(self) -> str:
        return f"steps={self.steps}"


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    r"""Sinusoidal embedding ``(B, dim)`` of integer steps ``t`` ``(B,)``:
    :math:`[\cos(t f_j), \sin(t f_j)]` with :math:`f_j = 10000^{-j/(dim/2)}` (a zero column
    pads an odd ``dim``)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / max(half, 1))
    angles = t.float().unsqueeze(1) * freqs.unsqueeze(0)
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb


class Denoiser(nn.Module):
    r"""DiffRec's MLP denoiser: predicts :math:`x_0` from :math:`x_t` and the step :math:`t`.

    .. math::
        h = \tanh(W_{in} [\mathrm{Dropout}(x_t); W_e\, \mathrm{emb}(t) + b_e] + b_{in}), \quad
        \hat x_0 = W_{out} h + b_{out}

    (one ``tanh`` layer per entry of ``hidden_dims`` on the way in, mirrored on the way
    out, no activation on the output).

    Args:
        n_items: width of the interaction rows.
        hidden_dims: hidden widths (default ``(1000,)``, DiffMM's).
        time_dim: width of the step embedding (default ``10``).
        dropout: dropout on :math:`x_t` while training (default ``0.5``).
    """

    def __init__(self, n_items: int, hidden_dims: Sequence[int] = (1000,), time_dim: int = 10, dropout: float = 0.5) -> None:
        super().__init__()
        if not hidden_dims or any(h <= 0 for h in hidden_dims):
            raise ValueError(f"hidden_dims must be positive widths, got {list(hidden_dims)}")
        self.time_dim = time_dim
        self.time = nn.Linear(time_dim, time_dim)
        widths_in = [n_items + time_dim, *hidden_dims]
        widths_out = [*reversed(hidden_dims), n_items]
        self.inputs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths_in[:-1], widths_in[1:]))
        self.outputs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths_out[:-1], widths_out[1:]))
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in [self.time, *self.inputs, *self.outputs]:
            fan_out, fan_in = layer.weight.shape
            nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0 / (fan_in + fan_out)))
            nn.init.normal_(layer.bias, 0.0, 0.001)

    def forward(self, x_t: Tensor, t: Tensor, input_dropout: bool = True) -> Tensor:
        """``x_t`` ``(B, n_items)``, ``t`` ``(B,)`` -> :math:`\\hat x_0` ``(B, n_items)``."""
        if input_dropout and self.training:
            x_t = self.dropout(x_t)
        h = torch.cat([x_t, self.time(timestep_embedding(t, self.time_dim))], dim=1)
        for layer in self.inputs:
            h = torch.tanh(layer(h))
        for index, layer in enumerate(self.outputs):
            h = layer(h)
            if index < len(self.outputs) - 1:
                h = torch.tanh(h)
        return h


__all__ = ["Denoiser", "GaussianDiffusion", "diffusion_betas", "timestep_embedding"]
