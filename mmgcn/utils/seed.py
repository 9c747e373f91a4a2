"""Seeding for python, numpy and torch."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = True) -> np.random.Generator:
    """Seed python, numpy and torch; return a fresh ``numpy.random.Generator`` for ``seed``.

    With ``deterministic=True`` torch is asked for deterministic kernels where it has them
    (``warn_only`` so that ops without a deterministic variant still run on GPU).
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 -- third-party code may use the legacy global RNG
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)


def epoch_generator(seed: int, epoch: int) -> np.random.Generator:
    """A generator for epoch ``epoch`` of a run seeded with ``seed``: the same pair, the same stream.

    Per-epoch randomness drawn from it (e.g. a re-drawn pruned graph) depends only on the
    run seed and the epoch, never on what ran before, so a resumed run redraws exactly what
    the uninterrupted run drew; it is independent of the global python/numpy/torch states.
    """
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be non-negative, got {seed}, {epoch}")
    return np.random.default_rng(np.random.SeedSequence([seed, epoch]))
