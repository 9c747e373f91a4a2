"""Per-epoch randomness inside a model: which epoch is running, and its own generator.

Models that redraw something once per epoch (SGL's edge-dropout views, DiffMM's generated
modality graphs) declare it in ``on_epoch_start(epoch, rng)``. Until the trainer calls that
hook itself, an :class:`EpochClock` tells the model when an epoch starts: the trainer's
sampler (:class:`mmgcn.train.sampling.BPRSampler`) visits every train interaction exactly
once per epoch, so counting the triples the model's ``loss`` sees in training gives the
epoch of the next batch.

Resume: the count and the seed are buffers (written to every checkpoint), and an epoch's
generator depends only on ``(seed, epoch)``, never on what ran before or on the global
random streams, so a resumed run redraws exactly what the uninterrupted run drew.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


def interactions_per_epoch(train: sp.spmatrix) -> int:
    """Distinct nonzero train interactions: the triples one epoch of the sampler yields."""
    csr = sp.csr_matrix(train, copy=True)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    return int(csr.nnz)


class EpochClock(nn.Module):
    """Counts training triples to find epoch starts; hands out one generator per epoch.

    Args:
        interactions_per_epoch: triples per epoch (:func:`interactions_per_epoch`).
        seed: base seed of the per-epoch generators (default: ``torch.initial_seed()``,
            i.e. the run seed when the model is built right after seeding, as the CLI and
            the bench do).

    Buffers (persistent): ``seed`` and ``triples_seen`` (int64 scalars).
    """

    def __init__(self, interactions_per_epoch: int, seed: int | None = None) -> None:
        super().__init__()
        if interactions_per_epoch <= 0:
            raise ValueError(f"interactions_per_epoch must be positive, got {interactions_per_epoch}")
        self.interactions_per_epoch = int(interactions_per_epoch)
        seed = torch.initial_seed() if seed is None else seed
        self.register_buffer("seed", torch.tensor(int(seed) % 2**63, dtype=torch.int64))
        self.register_buffer("triples_seen", torch.zeros((), dtype=torch.int64))
        self._started: tuple[int, int] | None = None

    @property
    def epoch(self) -> int:
        """The epoch (from 1) the next training batch belongs to."""
        return int(self.triples_seen) // self.interactions_per_epoch + 1

    def generator(self, epoch: int) -> np.random.Generator:
        """Epoch ``epoch``'s generator: a function of ``(seed, epoch)`` only."""
        return np.random.default_rng(np.random.SeedSequence([int(self.seed), int(epoch)]))

    def mark_started(self, epoch: int) -> None:
        """Record that ``epoch``'s per-epoch work is done (``on_epoch_start`` calls this)."""
        self._started = (int(self.seed), int(epoch))

    def tick(self, n_triples: int, start_epoch: Callable[[int, np.random.Generator], None]) -> tuple[int, int, int]:
        """Before a training batch of ``n_triples``: run ``start_epoch(epoch, rng)`` if this
        batch opens an epoch whose work was not done yet, then count the batch.

        Returns:
            ``(epoch, start, stop)``: the batch's epoch and its triples' positions
            ``[start, stop)`` within that epoch (``stop`` capped at the epoch's size).
        """
        epoch = self.epoch
        if self._started != (int(self.seed), epoch):
            start_epoch(epoch, self.generator(epoch))
            self.mark_started(epoch)
        start = int(self.triples_seen) - (epoch - 1) * self.interactions_per_epoch
        self.triples_seen += int(n_triples)
        return epoch, start, min(start + int(n_triples), self.interactions_per_epoch)

    def extra_repr(self) -> str:
        return f"interactions_per_epoch={self.interactions_per_epoch}"


__all__ = ["EpochClock", "interactions_per_epoch"]
