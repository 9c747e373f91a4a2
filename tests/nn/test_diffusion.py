"""The Gaussian diffusion schedule and the denoiser, checked by hand on small cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmgcn.nn.diffusion import Denoiser, GaussianDiffusion, diffusion_betas, timestep_embedding


def test_betas_by_hand():
    # variances 0.1*[0.1, 0.2, 0.3] = [0.01, 0.02, 0.03]; alpha_bar = [0.99, 0.98, 0.97]
    betas = diffusion_betas(3, noise_scale=0.1, noise_min=0.1, noise_max=0.3)
    expected = [1e-4, 1 - 0.98 / 0.99, 1 - 0.97 / 0.98]  # the first is fixed to 1e-4
    np.testing.assert_allclose(betas, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="steps"):
        diffusion_betas(0, 0.1, 1e-4, 0.02)
    with pytest.raises(ValueError, match="noise_min"):
        diffusion_betas(3, 0.1, 0.5, 0.2)


def test_schedule_noising_weights_and_posterior():
    diffusion = GaussianDiffusion(steps=3, noise_scale=0.1, noise_min=0.1, noise_max=0.3)
    betas = np.array([1e-4, 1 - 0.98 / 0.99, 1 - 0.97 / 0.98])
    cumprod = np.cumprod(1 - betas)
    np.testing.assert_allclose(diffusion.alphas_cumprod.numpy(), cumprod, rtol=1e-12)

    x0, noise = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, -2.0]])
    xt = diffusion.q_sample(x0, torch.tensor([2]), noise)
    expected = math.sqrt(cumprod[2]) * x0 + math.sqrt(1 - cumprod[2]) * noise
    torch.testing.assert_close(xt, expected)

    snr = cumprod / (1 - cumprod)
    weights = diffusion.loss_weight(torch.tensor([0, 1, 2]))
    torch.testing.assert_close(weights, torch.tensor([1.0, snr[0] - snr[1], snr[1] - snr[2]], dtype=torch.float32))

    # at the last step (t = 0) the posterior mean is the predicted x0 itself
    x_t, x0_pred = torch.randn(2, 4), torch.randn(2, 4)
    torch.testing.assert_close(diffusion.posterior_mean(x_t, x0_pred, 0), x0_pred)
    # one step by hand
    c1 = betas[1] * math.sqrt(cumprod[0]) / (1 - cumprod[1])
    c2 = (1 - cumprod[0]) * math.sqrt(1 - betas[1]) / (1 - cumprod[1])
    torch.testing.assert_close(diffusion.posterior_mean(x_t, x0_pred, 1), c1 * x0_pred + c2 * x_t)


def test_generate_runs_every_step_from_the_clean_rows():
    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.steps = []

        def forward(self, x, t, input_dropout=True):
            assert not input_dropout
            self.steps.append(int(t[0]))
            return torch.full_like(x, 7.0)  # predicts a constant x0

    diffusion, recorder = GaussianDiffusion(steps=4), Recorder()
    out = diffusion.generate(recorder, torch.tensor([[1.0, 0.0, 0.0]]))
    assert recorder.steps == [3, 2, 1, 0]
    torch.testing.assert_close(out, torch.full((1, 3), 7.0))  # the final step returns the prediction


def test_timestep_embedding_by_hand():
    emb = timestep_embedding(torch.tensor([0, 2]), 5)  # half = 2: freqs 1 and 10000^-0.5 = 0.01
    expected = torch.tensor([
        [1.0, 1.0, 0.0, 0.0, 0.0],
        [math.cos(2.0), math.cos(0.02), math.sin(2.0), math.sin(0.02), 0.0],
    ])
    torch.testing.assert_close(emb, expected)


def test_denoiser_shapes_and_input_dropout_only_in_training():
    torch.manual_seed(0)
    denoiser = Denoiser(n_items=6, hidden_dims=(5, 3), time_dim=4, dropout=0.5)
    assert [layer.in_features for layer in denoiser.inputs] == [10, 5]
    assert [layer.out_features for layer in denoiser.outputs] == [5, 6]
    x, t = torch.rand(3, 6), torch.tensor([0, 1, 2])
    denoiser.eval()
    first = denoiser(x, t)
    assert first.shape == (3, 6)
    torch.testing.assert_close(denoiser(x, t), first)
    denoiser.train()
    torch.testing.assert_close(denoiser(x, t, input_dropout=False), first)
    assert not torch.allclose(denoiser(x, t), first)
    with pytest.raises(ValueError, match="hidden_dims"):
        Denoiser(6, hidden_dims=())
