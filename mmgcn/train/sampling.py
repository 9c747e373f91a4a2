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

``negative_items`` restricts the negatives to a pool of items (e.g. the items with a train
interaction, so that items held out entirely for a cold-start evaluation never enter
training, not even as negatives). The same machinery then runs on the pool's positions:
the train matrix's columns are re-indexed into the pool and drawn positions are mapped
back to item ids.

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
        negative_items: item ids negatives are drawn from (default ``None``: all items);
            must contain every item that has a train interaction.

    Raises:
        ValueError: the matrix is empty, a user has interacted with every item of the pool
            (no negative exists for them), or ``negative_items`` is out of range or misses
            a train item.
    """

    def __init__(self, train_csr: sp.spmatrix, seed: int = 0, max_rejection_rounds: int = 20,
                 negative_items: np.ndarray | None = None) -> None:
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
        self._pool: np.ndarray | None = None
        if negative_items is not None:
            pool = np.unique(np.asarray(negative_items, dtype=np.int64))
            if pool.size == 0 or pool[0] < 0 or pool[-1] >= self.n_items:
                raise ValueError(f"BPRSampler: negative_items must be non-empty item ids in [0, {self.n_items})")
            missing = np.setdiff1d(np.unique(csr.indices), pool)
            if missing.size:
                raise ValueError(
                    f"BPRSampler: negative_items misses {missing.size} item(s) with train interactions "
                    f"(e.g. {missing[:5].tolist()}); the pool must contain every train item"
                )
            self._pool = pool
            positions = np.searchsorted(pool, csr.indices)  # sorted within rows, as the ids were
            csr = sp.csr_matrix((csr.data, positions, csr.indptr), shape=(self.n_users, pool.size))
        self.n_pool = int(csr.shape[1])
        self._degree = np.diff(csr.indptr).astype(np.int64)
        full = np.flatnonzero(self._degree >= self.n_pool)
        if full.size:
            raise ValueError(
                f"BPRSampler: user(s) {full[:5].tolist()} interacted with all {self.n_pool} items "
                f"negatives are drawn from, so no negative exists for them; drop such users before training"
            )
        self._row_start = csr.indptr[:-1].astype(np.int64)
        self._users = np.repeat(np.arange(self.n_users, dtype=np.int64), self._degree)
        positions = csr.indices.astype(np.int64)  # positions in the pool (= item ids without a pool)
        self._items = positions if self._pool is None else self._pool[positions]
        # sorted because CSR rows are in order and indices are sorted within a row
        self._keys = self._users * self.n_pool + positions
        # p_t - t per row: non-decreasing within a row and < n_pool, hence globally sorted
        offset_in_row = np.arange(csr.nnz, dtype=np.int64) - np.repeat(self._row_start, self._degree)
        self._gap_keys = self._users * self.n_pool + (positions - offset_in_row)
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
        items = np.asarray(items, dtype=np.int64)
        if self._pool is None:
            return self._is_positive_at(users, items)
        where = np.minimum(np.searchsorted(self._pool, items), self._pool.size - 1)
        return (self._pool[where] == items) & self._is_positive_at(users, where)

    def _is_positive_at(self, users: np.ndarray, positions: np.ndarray) -> np.ndarray:
        keys = np.asarray(users, dtype=np.int64) * self.n_pool + np.asarray(positions, dtype=np.int64)
        where = np.searchsorted(self._keys, keys)
        np.minimum(where, self._keys.size - 1, out=where)
        return self._keys[where] == keys

    def sample_negatives(self, users: np.ndarray) -> np.ndarray:
        """One uniform non-positive item of the pool per entry of ``users`` (``(n,)`` int64 item ids)."""
        users = np.asarray(users, dtype=np.int64)
        negatives = self._rng.integers(0, self.n_pool, size=users.size, dtype=np.int64)
        todo = np.flatnonzero(self._is_positive_at(users, negatives))
        rounds = 0
        while todo.size and rounds < self.max_rejection_rounds:
            negatives[todo] = self._rng.integers(0, self.n_pool, size=todo.size, dtype=np.int64)
            todo = todo[self._is_positive_at(users[todo], negatives[todo])]
            rounds += 1
        if todo.size:
            negatives[todo] = self._draw_from_complement(users[todo])
        return negatives if self._pool is None else self._pool[negatives]

    def _draw_from_complement(self, users: np.ndarray) -> np.ndarray:
        rank = self._rng.integers(0, self.n_pool - self._degree[users], dtype=np.int64)
        below = np.searchsorted(self._gap_keys, users * self.n_pool + rank, side="right") - self._row_start[users]
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
        pool = "" if self._pool is None else f", negatives from {self.n_pool} items"
        return f"BPRSampler(n_users={self.n_users}, n_items={self.n_items}, n_interactions={self.n_interactions}{pool})"


__all__ = ["BPRSampler"]
