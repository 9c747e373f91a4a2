"""The raw interaction log: what readers produce before splitting.

An :class:`InteractionLog` is a flat list of (user, item[, timestamp, rating]) events in
a dense id space ``0 .. n_users - 1`` x ``0 .. n_items - 1``. Preparation
(:mod:`mmgcn.data.prepare`) filters, re-indexes and splits it into a
:class:`~mmgcn.data.dataset.Dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mmgcn.data.dataset import DataError
from mmgcn.data.limits import check_id_space


@dataclass(frozen=True, eq=False)
class InteractionLog:
    """Interaction events as parallel arrays.

    Args:
        users: ``(n,)`` int64 user ids in ``[0, n_users)``.
        items: ``(n,)`` int64 item ids in ``[0, n_items)``.
        n_users: size of the user id space.
        n_items: size of the item id space.
        timestamps: optional ``(n,)`` int64 event times (seconds); needed by temporal splits.
        ratings: optional ``(n,)`` float32 explicit ratings (kept for filtering; the
            toolkit treats every event as an implicit positive).
        source: what the log was read from; used in error messages.
    """

    users: np.ndarray
    items: np.ndarray
    n_users: int
    n_items: int
    timestamps: np.ndarray | None = None
    ratings: np.ndarray | None = None
    source: str = "<memory>"

    def __post_init__(self) -> None:
        src = self.source
        check_id_space(self.n_users, "n_users", src)
        check_id_space(self.n_items, "n_items", src)
        users = np.asarray(self.users)
        items = np.asarray(self.items)
        for name, arr, n in (("users", users, self.n_users), ("items", items, self.n_items)):
            if arr.ndim != 1:
                raise DataError(f"{src}: field '{name}' must be 1-D, got shape {arr.shape}")
            if arr.size and not np.issubdtype(arr.dtype, np.integer):
                raise DataError(f"{src}: field '{name}' must hold integer ids, got dtype {arr.dtype}")
            if arr.size and (arr.min() < 0 or arr.max() >= n):
                bad = int(arr[(arr < 0) | (arr >= n)][0])
                raise DataError(
                    f"{src}: field '{name}' has id {bad} outside [0, {n}); re-index ids to a dense "
                    f"range or fix n_{name}"
                )
        if users.shape != items.shape:
            raise DataError(f"{src}: 'users' ({users.size}) and 'items' ({items.size}) differ in length")
        object.__setattr__(self, "users", users.astype(np.int64, copy=False))
        object.__setattr__(self, "items", items.astype(np.int64, copy=False))
        for name in ("timestamps", "ratings"):
            arr = getattr(self, name)
            if arr is None:
                continue
            arr = np.asarray(arr)
            if arr.shape != users.shape:
                raise DataError(f"{src}: field '{name}' has {arr.size} entries, expected {users.size}")
            if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
                raise DataError(f"{src}: field '{name}' contains NaN/inf")
            dtype = np.int64 if name == "timestamps" else np.float32
            object.__setattr__(self, name, arr.astype(dtype, copy=False))

    def __len__(self) -> int:
        return int(self.users.size)

    def subset(self, mask_or_index: np.ndarray) -> InteractionLog:
        """The events selected by a boolean mask or an index array (same id space)."""
        pick = np.asarray(mask_or_index)
        return InteractionLog(
            users=self.users[pick],
            items=self.items[pick],
            n_users=self.n_users,
            n_items=self.n_items,
            timestamps=None if self.timestamps is None else self.timestamps[pick],
            ratings=None if self.ratings is None else self.ratings[pick],
            source=self.source,
        )

    def to_csr(self) -> sp.csr_matrix:
        """Binary ``(n_users, n_items)`` float32 CSR; repeated pairs collapse to one."""
        data = np.ones(len(self), dtype=np.float32)
        csr = sp.csr_matrix((data, (self.users, self.items)), shape=(self.n_users, self.n_items))
        csr.sum_duplicates()
        csr.data[:] = 1.0
        return csr

    @classmethod
    def from_csr(cls, matrix: sp.spmatrix, source: str = "<memory>") -> InteractionLog:
        """Events from the non-zeros of a sparse matrix (row = user, column = item)."""
        coo = sp.coo_matrix(matrix)
        return cls(coo.row.astype(np.int64), coo.col.astype(np.int64), coo.shape[0], coo.shape[1], source=source)
