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
