"""Rankings that read nothing about users or content: the floors a cold-only column is read against.

The cold-start protocol ranks, for each test user, only the cold test items (those without a
train edge). Two references need no model:

* **random**: a uniformly random order of the user's candidates. Its expected Recall@K is
  exact: with :math:`n_u` candidates left after masking, each of the user's positives is in
  the top :math:`K` with probability :math:`\\min(K, n_u) / n_u`, so
  :math:`\\mathbb{E}[\\mathrm{Recall@}K_u] = \\min(K, n_u) / n_u`.
* **item-id order**: the candidates by ascending item id, the order the evaluator gives
  items of equal score. Where a dataset's ids follow the order items entered the catalogue
  and that tracks their popularity (MovieLens), this order alone ranks held-out items well;
  a model whose scores tie on new items would inherit it.

Both use the evaluator's users and masking (:func:`mmgcn.eval.evaluator.evaluate` with
``candidate_items``): users with at least one positive among the candidates after masking,
masked items never ranked, Recall@K = hits in the top K / the user's positives.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from mmgcn.data.dataset import Dataset
from mmgcn.eval.evaluator import check_mask, held_out_positives


def cold_only_floors(
    dataset: Dataset,
    split: str = "test",
    ks: Sequence[int] = (10, 20, 50),
    mask: Sequence[str] | None = None,
) -> dict[str, object] | None:
    """Mean Recall@K of the random (expected) and item-id-order rankings of the cold items of
    ``split`` (its items without a train edge), over the users the evaluator would score.

    Args:
        mask: splits whose items are never ranked (default: the evaluator's for ``split``,
            ``("train", "valid")`` for test); ``split`` itself may not be masked.

    Returns ``{"split", "mask", "n_candidates", "n_users", "random": {"recall@K": ...},
    "item_order": {...}}``, or ``None`` when no item of ``split`` lacks a train edge or no
    user holds one after masking.

    Raises:
        ValueError: an unknown split, a mask naming one, or ``split`` in ``mask``
            (:func:`mmgcn.eval.evaluator.check_mask`).
    """
    mask = check_mask(split, mask)
    candidates = dataset.cold_items(split)
    if candidates.size == 0:
        return None
    positives, masked = held_out_positives(dataset, split, mask, candidates)
    if masked is None:
        masked = sp.csr_matrix((dataset.n_users, candidates.size))
    n_pos = np.diff(positives.indptr)
    users = np.flatnonzero(n_pos > 0)
    if users.size == 0:
        return None
    ks = sorted(set(int(k) for k in ks))
    available = candidates.size - np.diff(masked.indptr)[users]  # candidates left to rank
    random = {f"recall@{k}": float(np.mean(np.minimum(k, available) / available)) for k in ks}
    # ascending id = ascending candidate position: the first K unmasked positions
    hits = {k: np.zeros(users.size) for k in ks}
    for row, user in enumerate(users):
        kept = np.setdiff1d(np.arange(candidates.size), masked.indices[masked.indptr[user]:masked.indptr[user + 1]],
                            assume_unique=True)
        pos = positives.indices[positives.indptr[user]:positives.indptr[user + 1]]
        for k in ks:
            hits[k][row] = np.isin(kept[:k], pos, assume_unique=True).sum()
    order = {f"recall@{k}": float(np.mean(hits[k] / n_pos[users])) for k in ks}
    return {"split": split, "mask": list(mask), "n_candidates": int(candidates.size), "n_users": int(users.size),
            "random": random, "item_order": order}


__all__ = ["cold_only_floors"]
