"""Uniform negative sampling for BPR, vectorised.

Each epoch visits every train interaction ``(u, i)`` once, in a fresh random order, and
pairs it with a negative item ``j`` drawn uniformly from the items ``u`` has *not*
interacted with in train. Negatives are drawn for the whole epoch at once: a uniform draw
over all items, then only the draws that hit a positive are redrawn, round after round.
Membership is one ``searchsorted`` over the sorted keys ``user * n_items + item`` of the
train matrix, so no Python loop ever runs per user or per interaction.

A user with almost every item as a positive could need many rounds; after
``max_rejection_rounds`` the remaining draws are taken exactly from the user's complement
by rank (the ``r``-th non-positive item is ``r`` plus the number of positives ``p_t``
with ``p_t - t <= r``, found with one more ``searchsorted``). Both routes give the uniform
distribution over the complement, so the mix does too.

The sampler owns a ``numpy.random.Generator`` seeded once; :meth:`BPRSampler.state_dict`
captures it between epochs so a resumed run draws the same stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor


class BPRSampler:
    """Epochs of shuffled ``(users, positives, negatives)`` batches from a train matrix.

    Args:
        train_csr: ``(n_users, n_items)`` binary train interactions.
        seed: seed of the sampler's own random generator (default ``0``).
        max_rejection_rounds: redraw rounds before falling back to exact complement
            sampling for the draws that still collide (default ``20``).

    Raises:
        ValueError: the matrix is empty, or a user has interacted with every item (no
            negative exists for them).
    """

    def __init__(self, train_csr: sp.spmatrix, seed: int = 0, max_rejection_rounds: int = 20) -> None:
        csr = sp.csr_matrix(train_csr, copy=True)
        csr.sum_duplicates()
        csr.eliminate_zeros()
        csr.sort_indices()
        if csr.nnz == 0:
            raise ValueError("BPRSampler: the train matrix has no interactions")
        if max_rejection_rounds < 0:
            raise ValueError(f"max_rejection_rounds must be >= 0, got {max_rejection_rounds}")
        self.n_users, self.n_items = (int(s) for s in csr.shape)
        self.max_rejection_rounds = int(max_rejection_rounds)
        self._degree = np.diff(csr.indptr).astype(np.int64)
        full = np.flatnonzero(self._degree >= self.n_items)
        if full.size:
            raise ValueError(
                f"BPRSampler: user(s) {full[:5].tolist()} interacted with all {self.n_items} items, "
                f"so no negative exists for them; drop such users before training"
            )
        self._row_start = csr.indptr[:-1].astype(np.int64)
        self._users = np.repeat(np.arange(self.n_users, dtype=np.int64), self._degree)
        self._items = csr.indices.astype(np.int64)
        # sorted because CSR rows are in order and indices are sorted within a row
        self._keys = self._users * self.n_items + self._items
        # p_t - t per row: non-decreasing within a row and < n_items, hence globally sorted
        offset_in_row = np.arange(csr.nnz, dtype=np.int64) - np.repeat(self._row_start, self._degree)
        self._gap_keys = self._users * self.n_items + (self._items - offset_in_row)
        self._rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ sampling
    @property
    def n_interactions(self) -> int:
        """Train interactions per epoch."""
        return int(self._keys.size)

    def n_batches(self, batch_size: int) -> int:
        """Batches per epoch for ``batch_size``."""
        return -(-self.n_interactions // batch_size)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean ``(n,)``: whether each ``(users[t], items[t])`` is a train interaction."""
        keys = np.asarray(users, dtype=np.int64) * self.n_items + np.asarray(items, dtype=np.int64)
        where = np.searchsorted(self._keys, keys)
        np.minimum(where, self._keys.size - 1, out=where)
        return self._keys[where] == keys

    def sample_negatives(self, users: np.ndarray) -> np.ndarray:
        """One uniform non-positive item per entry of ``users`` (``(n,)`` int64)."""
        users = np.asarray(users, dtype=np.int64)
        negatives = self._rng.integers(0, self.n_items, size=users.size, dtype=np.int64)
        todo = np.flatnonzero(self.is_positive(users, negatives))
        rounds = 0
        while todo.size and rounds < self.max_rejection_rounds:
            negatives[todo] = self._rng.integers(0, self.n_items, size=todo.size, dtype=np.int64)
            todo = todo[self.is_positive(users[todo], negatives[todo])]
            rounds += 1
        if todo.size:
            negatives[todo] = self._draw_from_complement(users[todo])
        return negatives

    def _draw_from_complement(self, users: np.ndarray) -> np.ndarray:
        rank = self._rng.integers(0, self.n_items - self._degree[users], dtype=np.int64)
        below = np.searchsorted(self._gap_keys, users * self.n_items + rank, side="right") - self._row_start[users]
        return rank + below

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """One epoch of ``(users, pos, neg)`` int64 tensors, each ``(<= batch_size,)``.

        The whole epoch's order and negatives are drawn when the first batch is requested.
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        order = self._rng.permutation(self.n_interactions)
        users = self._users[order]
        positives = self._items[order]
        negatives = self.sample_negatives(users)
        users_t, pos_t, neg_t = (torch.from_numpy(a) for a in (users, positives, negatives))
        for start in range(0, self.n_interactions, batch_size):
            stop = start + batch_size
            yield users_t[start:stop], pos_t[start:stop], neg_t[start:stop]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The generator's state (plain ints and strings: safe for ``weights_only`` loading)."""
        return {"bit_generator": dict(self._rng.bit_generator.state), "n_interactions": self.n_interactions}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state captured by :meth:`state_dict` (for the same train matrix)."""
        if state.get("n_interactions") != self.n_interactions:
            raise ValueError(
                f"sampler state is for {state.get('n_interactions')} train interactions, "
                f"this sampler has {self.n_interactions} (different dataset?)"
            )
        bit_state = state["bit_generator"]
        expected = self._rng.bit_generator.state["bit_generator"]
        if bit_state.get("bit_generator") != expected:
            raise ValueError(f"sampler state is for {bit_state.get('bit_generator')}, expected {expected}")
        self._rng.bit_generator.state = bit_state

    def __repr__(self) -> str:
        return f"BPRSampler(n_users={self.n_users}, n_items={self.n_items}, n_interactions={self.n_interactions})"


__all__ = ["BPRSampler"]
