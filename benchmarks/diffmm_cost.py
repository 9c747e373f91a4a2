"""What one TikTok epoch costs DiffMM and MMSSL on this machine: the figures behind choosing DiffMM.

Both models' dominant cost is a dense network over ``n_items``-wide interaction vectors:

* DiffMM (this toolkit's ``diffmm``): per modality, one training pass of the denoiser over
  every user's row and one regeneration of the modality graph (``diffusion_steps``
  denoising passes over every user); timed with the toolkit's own
  :class:`~mmgcn.nn.diffusion.Denoiser` and :class:`~mmgcn.nn.diffusion.GaussianDiffusion`.
* MMSSL (Wei et al., WWW 2023, github.com/HKUDS/MMSSL): per batch of users, the
  discriminator ``n_items -> n_items/4 -> n_items/8 -> 1`` (LeakyReLU, BatchNorm, dropout)
  scores real and generated user-item vectors of the two modalities, with a gradient
  penalty, then the generator's adversarial term passes through it again; an epoch has
  ``n_train // batch + 1`` batches. Only this component is timed (a lower bound on an epoch).

Optionally (``--epochs N``) the full ``diffmm`` model also trains N epochs on TikTok through
the trainer and its seconds per epoch are printed.

    MMGCN_DATA=... python benchmarks/diffmm_cost.py --threads 1 [--epochs 1] [--json benchmarks/results/diffmm-cost/tiktok.json]

The figures depend on what else runs on the machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import autograd, nn


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # not available on this platform
        return None


def time_diffmm_diffusion(n_users: int, n_items: int, hidden: int, steps: int, block: int) -> dict[str, float]:
    """Seconds of one denoiser training pass and one graph regeneration over all users (one modality)."""
    from mmgcn.nn.diffusion import Denoiser, GaussianDiffusion

    torch.manual_seed(0)
    denoiser, diffusion = Denoiser(n_items, (hidden,)), GaussianDiffusion(steps)
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=1e-3)
    rows = (torch.rand(n_users, n_items) < 6.4 / n_items).float()  # TikTok: 6.4 train items per user
    started = time.perf_counter()
    for start in range(0, n_users, block):
        x0 = rows[start : start + block]
        t = torch.randint(0, steps, (x0.shape[0],))
        predicted = denoiser(diffusion.q_sample(x0, t, torch.randn_like(x0)), t)
        loss = (diffusion.loss_weight(t) * (x0 - predicted).pow(2).mean(1)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained = time.perf_counter()
    for start in range(0, n_users, block):
        diffusion.generate(denoiser, rows[start : start + block]).topk(1, dim=1)
    generated = time.perf_counter()
    return {"train_pass_s": trained - started, "generation_s": generated - trained}


def time_mmssl_discriminator(n_items: int, batch: int, repeats: int) -> float:
    """Seconds of MMSSL's discriminator work for one batch of ``batch`` users (two modalities)."""
    torch.manual_seed(0)
    disc = nn.Sequential(
        nn.Linear(n_items, n_items // 4), nn.LeakyReLU(), nn.BatchNorm1d(n_items // 4), nn.Dropout(0.31),
        nn.Linear(n_items // 4, n_items // 8), nn.LeakyReLU(), nn.BatchNorm1d(n_items // 8), nn.Dropout(0.5),
        nn.Linear(n_items // 8, 1), nn.Sigmoid(),
    )
    optimizer = torch.optim.Adam(disc.parameters(), lr=3e-4)
    fake = torch.rand(2 * batch, n_items, requires_grad=True)  # image and text rows of the batch's users
    real = torch.rand(2 * batch, n_items)
    started = time.perf_counter()
    for _ in range(repeats):
        loss_fake, loss_real = disc(fake.detach()).mean(), -disc(real).mean()
        alpha = torch.rand(2 * batch, 1)
        mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_()
        grads = autograd.grad(disc(mixed).sum(), mixed, create_graph=True)[0]
        penalty = ((grads.norm(2, dim=1) - 1) ** 2).mean()
        optimizer.zero_grad()
        (loss_fake + loss_real + penalty).backward()
        optimizer.step()
        (-disc(fake).mean()).backward()  # the generator's adversarial term
    return (time.perf_counter() - started) / repeats


def time_diffmm_epochs(epochs: int) -> list[float]:
    from mmgcn.data.registry import load_dataset
    from mmgcn.models import build_model
    from mmgcn.train.trainer import TrainConfig, Trainer
    from mmgcn.utils.seed import seed_everything

    dataset = load_dataset("tiktok", convention="files")
    seed_everything(0)
    model = build_model("diffmm", dataset)
    result = Trainer(model, dataset, TrainConfig(epochs=epochs, progress=False)).fit(evaluate_test=False)
    return [round(r["train_seconds"], 1) for r in result.history]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the bench runs)")
    parser.add_argument("--users", type=int, default=9308, help="users (default: TikTok's 9,308)")
    parser.add_argument("--items", type=int, default=6710, help="items (default: TikTok's 6,710)")
    parser.add_argument("--train-interactions", type=int, default=59541, help="TikTok: 59,541")
    parser.add_argument("--hidden", type=int, default=1000, help="DiffMM denoiser width (default 1000)")
    parser.add_argument("--steps", type=int, default=5, help="DiffMM diffusion steps (default 5)")
    parser.add_argument("--modalities", type=int, default=2, help="modalities (TikTok here: 2)")
    parser.add_argument("--mmssl-batch", type=int, default=1024, help="MMSSL's batch of users (default 1024)")
    parser.add_argument("--epochs", type=int, default=0, help="also train diffmm on TikTok this many epochs")
    parser.add_argument("--json", help="write the figures here as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    figures: dict[str, object] = {"threads": args.threads, "load_average_before": load_average()}
    diffusion = time_diffmm_diffusion(args.users, args.items, args.hidden, args.steps, block=1024)
    per_batch = time_mmssl_discriminator(args.items, args.mmssl_batch, repeats=2)
    mmssl_batches = args.train_interactions // args.mmssl_batch + 1
    figures.update({
        "diffmm_train_pass_per_modality_s": round(diffusion["train_pass_s"], 1),
        "diffmm_generation_per_modality_s": round(diffusion["generation_s"], 1),
        "diffmm_diffusion_per_epoch_s": round(args.modalities * sum(diffusion.values()), 1),
        "mmssl_discriminator_per_batch_s": round(per_batch, 1),
        "mmssl_discriminator_per_epoch_s": round(per_batch * mmssl_batches, 1),
    })
    if args.epochs:
        figures["diffmm_model_epoch_s"] = time_diffmm_epochs(args.epochs)
    figures["load_average_after"] = load_average()
    for key, value in figures.items():
        print(f"{key:40s} {value}")
    if args.json:
        from mmgcn.utils.io import atomic_write_json

        atomic_write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
