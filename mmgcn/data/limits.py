"""Size limits the readers enforce before allocating anything.

A crafted or corrupt interaction file can name an id like 4,000,000,000; building the
sparse matrices for it would allocate tens of gigabytes and die with ``MemoryError``.
Readers call :func:`check_id_space` on every id space they are about to allocate.
"""

from __future__ import annotations

import os

from mmgcn.errors import DataError

#: the largest user / item id space a reader accepts (override with $MMGCN_MAX_IDS): an id
#: like 4e9 in a crafted or corrupt file would otherwise allocate gigabytes before failing
MAX_IDS = int(os.environ.get("MMGCN_MAX_IDS", 100_000_000))
#: without a declared catalogue, ids must be dense: at most this many ids per interaction row
#: (plus a small allowance), else the file has raw ids that need re-indexing
SPARSE_ID_FACTOR = 64


def check_id_space(size: int, field: str, source: str | os.PathLike, rows: int | None = None) -> None:
    """Refuse an id space of ``size`` ids before anything of that size is allocated.

    Args:
        size: the number of ids (largest id + 1, or a declared count).
        field: what is counted (``"userID"``, ``"n_items"``), for the message.
        source: the file the size came from.
        rows: interaction rows read, when the size comes from the ids themselves: a space
            far larger than the rows means raw (non-dense) ids.

    Raises:
        DataError: the size exceeds :data:`MAX_IDS`, or (with ``rows``) ids are not dense.
    """
    if size > MAX_IDS:
        raise DataError(
            f"{source}: field '{field}' implies {size:,} ids, more than the {MAX_IDS:,} accepted; the file is "
            f"corrupt or holds raw ids -- re-index ids densely from 0 (set MMGCN_MAX_IDS for a catalogue "
            f"that really is this large)"
        )
    if rows is not None and size > SPARSE_ID_FACTOR * rows + 1024:
        raise DataError(
            f"{source}: field '{field}' reaches id {size - 1:,} with only {rows:,} rows; ids must be dense "
            f"integers from 0 -- re-index them (or declare the id space in a sidecar)"
        )


__all__ = ["MAX_IDS", "SPARSE_ID_FACTOR", "check_id_space"]
