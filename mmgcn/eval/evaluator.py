"""Full-ranking evaluation of a recommender on one split, with a warm / cold breakdown.

Protocol (the usual full-ranking one of MMRec / MMSSL, made explicit):

* every user with at least one held-out item in ``split`` is evaluated; the others are
  skipped and counted;
* each user's candidates (all items, or ``candidate_items``) are scored, the items the
  user has in the ``mask`` splits get ``-inf`` (train when validating; train + valid when
  testing, by default), and the top ``max(ks)`` are taken with ties broken by the lower
  item id (:func:`mmgcn.eval.metrics.top_k_items`);
* a user's positives are their ``split`` items that are candidates and not masked (a
  masked item cannot be ranked, so counting it would be a guaranteed miss; with disjoint
  splits nothing is removed); users left without positives are skipped too;
* users are scored ``block_size`` at a time, so memory is ``O(block_size x n_candidates)``
  and never a dense ``n_users x n_items`` matrix unless it fits the budget.

With ``warm_cold=True`` each user's positives are split into *cold* items (no train edge)
and *warm* items (the rest); the ranked lists stay the same, and each partition's metrics
are computed over the users holding positives in it, counting only that partition's
items as hits (Cornac-style). ``candidate_items=dataset.cold_items("test")`` instead ranks
among cold items only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from mmgcn.data.dataset import SPLITS, Dataset
from mmgcn.eval.metrics import mark_covered_, ranking_metrics
from mmgcn.models.base import Embeddings, Recommender
from mmgcn.utils.modes import eval_mode
from mmgcn.utils.ranking import binary_union, mask_rows_, top_k_items

log = logging.getLogger(__name__)

#: default masks: a split is evaluated with the earlier splits' items removed
DEFAULT_MASKS = {"train": (), "valid": ("train",), "test": ("train", "valid")}
#: scores of one block take at most this many bytes when block_size is None
AUTO_BLOCK_BYTES = 1 << 28


@dataclass
class EvalResult:
    """Metrics of one evaluation, with the per-user vectors behind them.

    Attributes:
        split: the evaluated split.
        ks: the cut-offs.
        mask: the splits whose items were masked with ``-inf``.
        metrics: ``{"recall@20": mean over evaluated users, ..., "coverage@20": share of
            candidates recommended to someone}``.
        users: ``(n_evaluated,)`` evaluated user ids, ascending.
        per_user: ``{metric: (n_evaluated,) float64}`` aligned with ``users`` (for paired
            significance tests).
        n_positives: ``(n_evaluated,)`` positives per evaluated user.
        n_users_skipped: users considered but not evaluated (no held-out positive).
        n_candidates: number of items ranked.
        seconds: wall time of the evaluation.
        groups: with ``warm_cold``: ``{"warm": EvalResult, "cold": EvalResult}`` (their
            ``metrics`` have no coverage: the lists are the parent's).
    """

    split: str
    ks: tuple[int, ...]
    mask: tuple[str, ...]
    metrics: dict[str, float]
    users: np.ndarray
    per_user: dict[str, np.ndarray]
    n_positives: np.ndarray
    n_users_skipped: int
    n_candidates: int
    seconds: float = 0.0
    groups: dict[str, EvalResult] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        """Number of evaluated users."""
        return int(self.users.size)

    def __getitem__(self, name: str) -> float:
        return self.metrics[name]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (no per-user vectors)."""
        out: dict[str, Any] = {
            "split": self.split,
            "ks": list(self.ks),
            "mask": list(self.mask),
            "metrics": dict(self.metrics),
            "n_users": self.n_users,
            "n_users_skipped": self.n_users_skipped,
            "n_positives": int(self.n_positives.sum()),
            "n_candidates": self.n_candidates,
            "seconds": self.seconds,
        }
        if self.groups:
            out["groups"] = {name: group.to_dict() for name, group in self.groups.items()}
        return out

    def per_user_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """``{prefix + "users": ids, prefix + metric: values}`` for ``np.savez``, groups included."""
        out = {f"{prefix}users": self.users, f"{prefix}n_positives": self.n_positives}
        out.update({f"{prefix}{name}": values for name, values in self.per_user.items()})
        for group_name, group in self.groups.items():
            out.update(group.per_user_arrays(prefix=f"{prefix}{group_name}/"))
        return out

    def summary(self, names: Sequence[str] = ("recall", "ndcg")) -> str:
        """One line, e.g. ``test (3051 users): recall@10 0.0412 recall@20 0.0631 ...``."""
        parts = [f"{name}@{k} {self.metrics[f'{name}@{k}']:.4f}" for name in names for k in self.ks]
        return f"{self.split} ({self.n_users} users): " + "  ".join(parts)


def _check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k <= 0 for k in ks):
        raise ValueError(f"ks must be a non-empty list of positive integers, got {ks!r}")
    return tuple(sorted(set(ks)))


def check_mask(split: str, mask: Sequence[str] | None) -> tuple[str, ...]:
    """The splits masked when ranking ``split``: ``mask``, or the default for ``split``
    (:data:`DEFAULT_MASKS`), checked (known names, never ``split`` itself)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    mask = tuple(DEFAULT_MASKS[split] if mask is None else mask)
    bad = [m for m in mask if m not in SPLITS]
    if bad:
        raise ValueError(f"mask names unknown split(s) {bad}; expected names from {SPLITS}")
    if split in mask:
        raise ValueError(f"cannot mask the evaluated split {split!r} (mask={mask})")
    return mask


def held_out_positives(
    dataset: Dataset, split: str, mask: tuple[str, ...], candidates: np.ndarray | None = None
) -> tuple[sp.csr_matrix, sp.csr_matrix | None]:
    """``(positives, masked)``, users x candidates (all items by default, else the sorted ids
    ``candidates``, column j = ``candidates[j]``): the items of ``split`` that are not in a
    ``mask`` split, with sorted indices, and the union of the ``mask`` splits (``None``
    without a mask). A user's row of ``positives`` is what the evaluator counts as hits."""
    target = dataset.split(split)
    masked = binary_union([dataset.split(m) for m in mask], (dataset.n_users, dataset.n_items)) if mask else None
    if candidates is not None:
        target = target[:, candidates]
        masked = masked[:, candidates] if masked is not None else None
    positives = target if masked is None else target - target.multiply(masked)
    positives = sp.csr_matrix(positives)
    positives.eliminate_zeros()
    positives.sort_indices()
    return positives, None if masked is None else sp.csr_matrix(masked)


@torch.no_grad()
def evaluate(
    model: Recommender,
    dataset: Dataset,
    split: str = "valid",
    ks: Iterable[int] = (10, 20, 50),
    mask: Sequence[str] | None = None,
    block_size: int | None = None,
    candidate_items: Sequence[int] | np.ndarray | Tensor | None = None,
    emb: Embeddings | None = None,
    warm_cold: bool = False,
    users: Sequence[int] | np.ndarray | None = None,
    progress: bool = False,
) -> EvalResult:
    """Rank candidates for every user with held-out items in ``split``; compute metrics.

    Args:
        model: a trained recommender; put in eval mode for the call.
        dataset: the dataset the model was built for.
        split: ``"valid"`` or ``"test"`` (``"train"`` for a fit check).
        ks: cut-offs (default ``(10, 20, 50)``).
        mask: splits whose items get ``-inf`` (default: ``("train",)`` for valid,
            ``("train", "valid")`` for test). ``split`` itself may not be masked.
        block_size: users scored per block (default: as many as fit in 256 MB of scores).
        candidate_items: rank only these item ids (default: all items).
        emb: precomputed representations (default: ``model.ranking_embed()``, i.e.
            ``embed()`` with the model's item-representation policy, computed once here).
        warm_cold: also report metrics on cold (no train edge) and warm positives.
        users: evaluate only these users (default: all).
        progress: show a tqdm bar over blocks.

    Raises:
        ValueError: bad arguments, NaN scores, or no user with a held-out positive.
    """
    started = time.perf_counter()
    mask = check_mask(split, mask)
    ks = _check_ks(ks)
    n_users, n_items = dataset.n_users, dataset.n_items

    # ---- candidates: positions 0..n_cand-1 in ascending item id
    if candidate_items is None:
        candidates = None
        n_cand = n_items
    else:
        candidates = np.unique(np.asarray(candidate_items, dtype=np.int64))
        if candidates.size == 0:
            raise ValueError("candidate_items is empty")
        if candidates[0] < 0 or candidates[-1] >= n_items:
            raise ValueError(f"candidate_items must be item ids in [0, {n_items}), got {candidates[0]}..{candidates[-1]}")
        n_cand = int(candidates.size)
    positives, masked = held_out_positives(dataset, split, mask, candidates)

    # ---- users
    considered = np.arange(n_users) if users is None else np.unique(np.asarray(users, dtype=np.int64))
    if considered.size and (considered[0] < 0 or considered[-1] >= n_users):
        raise ValueError(f"users must be ids in [0, {n_users})")
    n_pos_all = np.diff(positives.indptr)
    evaluated = considered[n_pos_all[considered] > 0]
    n_skipped = int(considered.size - evaluated.size)
    if evaluated.size == 0:
        raise ValueError(
            f"{dataset.name}: no user has a held-out item in split {split!r} "
            f"(after masking {list(mask)}{' and restricting candidates' if candidates is not None else ''}); "
            f"nothing to evaluate"
        )

    with eval_mode(model):
        if emb is None:
            emb = model.ranking_embed()
        device = emb.items.device
        cand_t = None if candidates is None else torch.from_numpy(candidates).to(device)
        item_is_cold = None
        if warm_cold:
            cold = ~dataset.items_in_train
            cold = cold if candidates is None else cold[candidates]
            item_is_cold = torch.from_numpy(cold).to(device)
        if block_size is None:
            block_size = max(1, AUTO_BLOCK_BYTES // (5 * n_cand))
        if block_size <= 0:
            raise ValueError(f"block_size must be positive, got {block_size}")
        k_max = max(ks)
        covered = {k: torch.zeros(n_cand, dtype=torch.bool, device=device) for k in ks}
        parts: dict[str, list[dict[str, Tensor]]] = {"all": [], "warm": [], "cold": []}
        group_users: dict[str, list[np.ndarray]] = {"warm": [], "cold": []}
        group_npos: dict[str, list[np.ndarray]] = {"warm": [], "cold": []}

        starts = range(0, evaluated.size, block_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"evaluate {split}", unit="block", leave=False)
        for start in starts:
            block = evaluated[start : start + block_size]
            block_t = torch.from_numpy(block).to(device)
            scores = model.score(block_t, items=cand_t, emb=emb)
            if scores.shape != (block.size, n_cand):
                raise ValueError(f"{type(model).__name__}.score returned shape {tuple(scores.shape)}, expected {(block.size, n_cand)}")
            if scores.dtype in (torch.float16, torch.bfloat16):
                scores = scores.float()
            elif scores._is_view() or not scores.is_contiguous():
                # masking writes in place; never into a model's own (expanded / cached) tensor
                scores = scores.clone(memory_format=torch.contiguous_format)
            if masked is not None:
                mask_rows_(scores, masked, block, float("-inf"))
            top_scores, top_items = top_k_items(scores, k_max)
            del scores
            if torch.isnan(top_scores).any():  # topk ranks NaN first, so any NaN shows here
                raise ValueError(f"{type(model).__name__} produced NaN scores (diverged training?)")
            is_positive = torch.zeros((block.size, n_cand), dtype=torch.bool, device=device)
            mask_rows_(is_positive, positives, block, True)
            hits = is_positive.gather(1, top_items)
            n_pos = torch.from_numpy(n_pos_all[block]).to(device)
            parts["all"].append(ranking_metrics(hits, n_pos, ks))
            for k in ks:
                mark_covered_(covered[k], top_items, top_scores, k)
            if item_is_cold is not None:
                cold_pos = (is_positive & item_is_cold).sum(1)
                for name, group_hits, group_n in (
                    ("cold", hits & item_is_cold[top_items], cold_pos),
                    ("warm", hits & ~item_is_cold[top_items], n_pos - cold_pos),
                ):
                    keep = group_n > 0
                    if keep.any():
                        parts[name].append(ranking_metrics(group_hits[keep], group_n[keep], ks))
                        keep_np = keep.cpu().numpy()
                        group_users[name].append(block[keep_np])
                        group_npos[name].append(group_n[keep].cpu().numpy())

    def collect(chunks: list[dict[str, Tensor]]) -> dict[str, np.ndarray]:
        return {name: torch.cat([c[name] for c in chunks]).cpu().numpy() for name in chunks[0]}

    per_user = collect(parts["all"])
    metrics = {name: float(values.mean()) for name, values in per_user.items()}
    metrics.update({f"coverage@{k}": covered[k].sum().item() / n_cand for k in ks})
    groups: dict[str, EvalResult] = {}
    if warm_cold:
        for name in ("warm", "cold"):
            g_users = np.concatenate(group_users[name]) if group_users[name] else np.zeros(0, np.int64)
            g_per_user = collect(parts[name]) if parts[name] else {}
            groups[name] = EvalResult(
                split=split,
                ks=ks,
                mask=mask,
                metrics={m: float(v.mean()) for m, v in g_per_user.items()},
                users=g_users,
                per_user=g_per_user,
                n_positives=np.concatenate(group_npos[name]) if group_npos[name] else np.zeros(0, np.int64),
                n_users_skipped=int(considered.size - g_users.size),
                n_candidates=n_cand,
            )
    result = EvalResult(
        split=split,
        ks=ks,
        mask=mask,
        metrics=metrics,
        users=evaluated,
        per_user=per_user,
        n_positives=n_pos_all[evaluated],
        n_users_skipped=n_skipped,
        n_candidates=n_cand,
        seconds=time.perf_counter() - started,
        groups=groups,
    )
    log.debug("evaluated %s: %d users (%d skipped) in %.2fs", split, result.n_users, n_skipped, result.seconds)
    return result


__all__ = ["DEFAULT_MASKS", "EvalResult", "evaluate"]
