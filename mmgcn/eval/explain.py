r"""Explained recommendations: top-k lists with each score split over modalities and the ID part.

Definitions, for user :math:`u`, item :math:`i` and the parts :math:`P` of the model's
:class:`~mmgcn.models.base.Embeddings` (one per modality, ``"id"``, ``"bias"`` ...; see
:meth:`~mmgcn.models.base.Recommender.score_parts`):

* **contribution** :math:`c_p = \langle \mathbf{u}_p, \mathbf{i}_p \rangle`, signed; the
  contributions sum to the score exactly (checked).
* **share** :math:`s_p = c_p / \sum_q |c_q|`: signed, the absolute shares sum to 1. When every
  contribution is positive it is the plain fraction :math:`c_p / \hat y_{ui}`; a part that
  pushes the score *down* gets a negative share instead of an inflated or meaningless ratio
  (:math:`c_p / \hat y` explodes near a zero score and flips meaning below it).
* **content-only score**: the score of the item's content-only representation
  (:meth:`~mmgcn.models.base.Recommender.represent_new_items` of its own features: no ID
  embedding, no graph neighbours); ``score - content_only`` is what the item's ID embedding
  and its train interactions add. It exists for every content model, including those whose
  ID embedding is mixed into every modality's layers (MMGCN), where no separate ID part does.

Models without additive parts (concatenation with hidden layers, an MLP score head) get no
contributions; :func:`explain_user` and :func:`explain_new_item` then return empty ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from mmgcn.data.dataset import SPLITS, Dataset
from mmgcn.eval.metrics import top_k_items
from mmgcn.models.base import Embeddings, NewItemsUnsupportedError, Recommender
from mmgcn.utils.modes import eval_mode
from mmgcn.utils.ranking import binary_union, mask_rows_

#: relative tolerance of the check that contributions add up to the score
SUM_TOLERANCE = 1e-3


@dataclass
class Explanation:
    """One recommended (user, item) pair.

    Attributes:
        user: the user id.
        item: the item id (``None`` for a new item).
        rank: 1-based position in the list.
        score: the model's score.
        contributions: ``{part: c_p}`` summing to ``score`` (empty: no additive parts).
        content_only: the score of the item's content-only representation (``None`` for
            ID-only models and new items, which are content only).
        catalogue_rank: for a new item, the place it would take among the user's unseen
            catalogue items (1 = above all of them).
    """

    user: int
    item: int | None
    rank: int
    score: float
    contributions: dict[str, float] = field(default_factory=dict)
    content_only: float | None = None
    catalogue_rank: int | None = None

    @property
    def shares(self) -> dict[str, float]:
        """``{part: c_p / sum_q |c_q|}`` (see the module docstring)."""
        return signed_shares(self.contributions)


def signed_shares(contributions: Mapping[str, float]) -> dict[str, float]:
    """Signed shares ``c_p / sum_q |c_q|``; all zeros when every contribution is zero."""
    total = sum(abs(c) for c in contributions.values())
    return {p: (c / total if total > 0 else 0.0) for p, c in contributions.items()}


def part_scores(model: Recommender, users: Tensor, items: Tensor | None, emb: Embeddings) -> dict[str, Tensor] | None:
    """``{part: (len(users), n)}`` per-part scores, or ``None`` if the model has no additive parts."""
    try:
        return model.score_parts(users, items, emb)
    except ValueError:
        return None


def model_modalities(model: Recommender, dataset: Dataset) -> tuple[str, ...]:
    """The feature modalities ``model`` reads (a subset of ``dataset.features`` for some models)."""
    return tuple(getattr(model, "modalities", None) or dataset.features)


def _contributions(parts: dict[str, Tensor] | None, row: int, col: int, score: float, where: str) -> dict[str, float]:
    if parts is None:
        return {}
    out = {p: float(values[row, col]) for p, values in parts.items()}
    total = sum(out.values())
    if not math.isclose(total, score, rel_tol=SUM_TOLERANCE, abs_tol=SUM_TOLERANCE * (1 + abs(score))):
        raise RuntimeError(f"{where}: the parts sum to {total:.6g}, not to the score {score:.6g}")
    return out


def _seen(dataset: Dataset, exclude: Sequence[str]):
    bad = [s for s in exclude if s not in SPLITS]
    if bad:
        raise ValueError(f"exclude names unknown split(s) {bad}; expected names from {SPLITS}")
    if not exclude:
        return None
    return binary_union([dataset.split(name) for name in exclude], (dataset.n_users, dataset.n_items))


@torch.no_grad()
def explain_user(
    model: Recommender,
    dataset: Dataset,
    user: int,
    k: int = 10,
    exclude: Sequence[str] = ("train", "valid"),
    emb: Embeddings | None = None,
) -> list[Explanation]:
    """The top-``k`` items for ``user`` with per-part contributions and content-only scores.

    Args:
        model: a trained recommender built for ``dataset``.
        dataset: its dataset.
        user: a user id.
        k: list length (fewer if fewer candidates remain).
        exclude: splits whose items of the user are left out (default train and valid, as
            ``Recommender.recommend`` and the evaluator at test time); ``()`` keeps them.
        emb: precomputed ``model.ranking_embed()`` (the default).

    Scores come from ``model.ranking_embed()`` (the model's item-representation policy) and
    ties are broken by the lower item id: the list is exactly ``model.recommend``'s.
    """
    if not 0 <= user < dataset.n_users:
        raise IndexError(f"user {user} is not in {dataset.name} (ids 0..{dataset.n_users - 1})")
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    with eval_mode(model):
        emb = model.ranking_embed() if emb is None else emb
        device = emb.users.device
        users = torch.tensor([user], device=device)
        scores = model.score(users, emb=emb).float().clone()
        seen = _seen(dataset, exclude)
        if seen is not None:
            mask_rows_(scores, seen, users.cpu(), float("-inf"))
        n_candidates = int(torch.isfinite(scores).sum())
        values, items = top_k_items(scores, min(k, n_candidates))
        values, items = values[0], items[0]
        parts = part_scores(model, users, items, emb)
        content_only = None
        if model.uses_content and items.numel():
            modalities = model_modalities(model, dataset)
            index = items.cpu()
            try:
                new = model.represent_new_items({m: dataset.features[m][index] for m in modalities},
                                                present={m: torch.from_numpy(dataset.has_content(m)[index.numpy()])
                                                         for m in modalities})
                content_only = model.score(users, emb=new)[0].cpu().numpy()
            except NewItemsUnsupportedError:
                content_only = None
    out = []
    for pos, (value, item) in enumerate(zip(values.tolist(), items.tolist())):
        out.append(Explanation(
            user=user, item=item, rank=pos + 1, score=value,
            contributions=_contributions(parts, 0, pos, value, f"{model.name}: user {user}, item {item}"),
            content_only=None if content_only is None else float(content_only[pos]),
        ))
    return out


@torch.no_grad()
def explain_new_item(
    model: Recommender,
    dataset: Dataset,
    features: Mapping[str, Tensor],
    k: int = 10,
    exclude: Sequence[str] = ("train", "valid"),
) -> list[Explanation]:
    """The ``k`` users an unseen item would be recommended to most strongly.

    Args:
        model: a trained content model.
        dataset: its dataset.
        features: ``{modality: (1, d_m)}`` of the new item (:func:`mmgcn.features.new_items.encode_new_item`).
        k: number of users.
        exclude: splits whose items count as seen when placing the new item in each user's
            catalogue (``catalogue_rank``).

    Raises:
        NewItemsUnsupportedError: ID-only models.
    """
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    with eval_mode(model):
        new = model.represent_new_items(features)
        if new.items.shape[0] != 1:
            raise ValueError(f"explain_new_item explains one item, got {new.items.shape[0]}")
        device = new.users.device
        all_users = torch.arange(dataset.n_users, device=device)
        scores = model.score(all_users, emb=new).float()[:, 0]
        values, users = top_k_items(scores.unsqueeze(0), k)
        values, users = values[0], users[0]
        parts = part_scores(model, users, None, new)
        catalogue = model.score(users, emb=model.ranking_embed()).float().clone()
        seen = _seen(dataset, exclude)
        if seen is not None:
            mask_rows_(catalogue, seen, users.cpu(), float("-inf"))
        above = (catalogue > values.unsqueeze(1)).sum(dim=1).cpu().numpy()
    out = []
    for pos, (value, user) in enumerate(zip(values.tolist(), users.tolist())):
        out.append(Explanation(
            user=user, item=None, rank=pos + 1, score=value,
            contributions=_contributions(parts, pos, 0, value, f"{model.name}: new item, user {user}"),
            catalogue_rank=int(np.asarray(above)[pos]) + 1,
        ))
    return out


__all__ = [
    "SUM_TOLERANCE",
    "Explanation",
    "explain_new_item",
    "explain_user",
    "model_modalities",
    "part_scores",
    "signed_shares",
]
