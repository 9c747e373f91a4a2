r"""A synthetic multimodal implicit-feedback dataset with planted structure.

For each modality :math:`m` (``M`` of them, ``f = n_factors``), users have latent tastes
:math:`U_m \in \mathbb{R}^{n_{users} \times f}` and items latent factors
:math:`V_m \in \mathbb{R}^{n_{items} \times f}`, all i.i.d. :math:`\mathcal{N}(0, 1)`. The
planted affinity is

.. math::
    a(u, i) = \frac{1}{\sqrt{M f}} \sum_m \langle U_m[u], V_m[i] \rangle,

and the item features of modality :math:`m` are a noisy linear image of that modality's
factors, so that content carries the taste:

.. math::
    X_m = V_m W_m + \sigma \, E, \qquad W_m \sim \mathcal{N}(0, 1/f)^{f \times d_m},\;
    E \sim \mathcal{N}(0, 1)^{n_{items} \times d_m}

(signal variance 1 per feature dimension, noise standard deviation :math:`\sigma` =
``noise``). Items have a Zipf-like popularity: the item of popularity rank :math:`r`
(a seeded random permutation) has probability
:math:`p_r \propto \int_{r+1}^{r+2} x^{-s}\,dx \approx (r + 1.5)^{-s}` with
:math:`s` = ``popularity_skew`` (0 is uniform).

Each user :math:`u` draws :math:`n_u = \min(3, \bar n) + \mathrm{Poisson}(\bar n - \min(3,
\bar n))` interactions (:math:`\bar n` = ``interactions_per_user``): ``n_candidates``
candidate items are drawn from :math:`p` (with replacement; repeats are dropped), and the
user picks the :math:`n_u` distinct candidates with the largest
:math:`\beta\,a(u, i) + G_{ui}` (:math:`G` standard Gumbel, :math:`\beta` =
``taste_strength``) -- the Gumbel-top-k trick, i.e. sampling without replacement with
probability :math:`\propto e^{\beta a(u, i)}` among the popularity-drawn candidates. No
users x items matrix is ever formed: users are processed in fixed chunks of
:data:`CHUNK_USERS`, each with its own seeded generator, so memory is
``O(chunk x n_candidates x M f)`` plus the output, and the result depends only on the seed.

Cold items: the split is :func:`~mmgcn.data.splits.split_log`'s ``"cold_items"`` with
``cold_item_fraction`` of the items held out of train (their features stay), the other
items split with ``split_method``. Event times are seeded uniform integers, so temporal
splits work too.
"""

from __future__ import annotations

import logging
import math
import types
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mmgcn.data.dataset import Dataset
from mmgcn.data.log import InteractionLog
from mmgcn.data.prepare import make_dataset

logger = logging.getLogger(__name__)

DEFAULT_MODALITIES: Mapping[str, int] = types.MappingProxyType({"image": 32, "text": 16})
CHUNK_USERS = 4096
# Keep user tastes in info["planted"] up to this many floats (16 MiB); beyond, they are
# regenerable from the seed but not stored.
MAX_PLANTED_USER_FLOATS = 4_000_000
_TIME_RANGE = 10**9


def popularity_probabilities(n_items: int, skew: float) -> np.ndarray:
    """Zipf-like probability per popularity rank, ``(n_items,)`` float64 summing to 1."""
    edges = np.arange(1, n_items + 2, dtype=np.float64)
    cdf = _power_cdf(edges, n_items, skew)
    return np.diff(cdf)


def _power_cdf(x: np.ndarray, n: int, skew: float) -> np.ndarray:
    if abs(1.0 - skew) < 1e-9:
        return np.log(x) / math.log(n + 1)
    e = 1.0 - skew
    return (x**e - 1.0) / ((n + 1.0) ** e - 1.0)


def _sample_ranks(u: np.ndarray, n: int, skew: float) -> np.ndarray:
    """Inverse CDF of the continuous power law on ``[1, n + 1)``, floored to a rank."""
    if abs(1.0 - skew) < 1e-9:
        x = np.exp(u * math.log(n + 1))
    else:
        e = 1.0 - skew
        x = (1.0 + u * ((n + 1.0) ** e - 1.0)) ** (1.0 / e)
    return np.clip(np.floor(x).astype(np.int64) - 1, 0, n - 1)


def planted_affinity(planted: Mapping[str, Any], users: np.ndarray, items: np.ndarray) -> np.ndarray:
    r"""The planted affinity :math:`a(u, i)` of ``(users[j], items[j])`` pairs, ``(n,)`` float32.

    Needs ``planted["user_tastes"]`` (stored for small instances only).
    """
    if planted.get("user_tastes") is None:
        raise ValueError("user tastes were not stored for this instance (too many users); regenerate smaller")
    total = np.zeros(len(users), dtype=np.float32)
    for m, tastes in planted["user_tastes"].items():
        total += np.einsum("nf,nf->n", tastes[users], planted["item_factors"][m][items])
    n_factors = sum(t.shape[1] for t in planted["user_tastes"].values())
    return total / np.float32(math.sqrt(n_factors))


def synthetic_log(
    n_users: int,
    n_items: int,
    *,
    modalities: Mapping[str, int] = DEFAULT_MODALITIES,
    n_factors: int = 8,
    interactions_per_user: float = 20,
    popularity_skew: float = 1.0,
    noise: float = 0.1,
    seed: int = 0,
    taste_strength: float = 2.0,
    n_candidates: int | None = None,
    keep_planted: bool | None = None,
    progress: bool = True,
) -> tuple[InteractionLog, dict[str, np.ndarray], dict[str, Any]]:
    """The events, item features and planted truth of :func:`make_synthetic` (no split).

    Returns:
        ``(log, features, planted)``: the log (with timestamps), ``{modality: (n_items, d_m)}``
        float32 features, and the planted truth: ``item_factors`` / ``projections`` /
        ``user_tastes`` per modality (``user_tastes`` is ``None`` beyond
        :data:`MAX_PLANTED_USER_FLOATS` unless ``keep_planted``), ``popularity``
        ``(n_items,)`` per-item probability, ``taste_strength``, ``n_candidates``.
    """
    _check_args(n_users, n_items, modalities, n_factors, interactions_per_user, popularity_skew, noise, taste_strength)
    mods = list(modalities)
    n_mod = len(mods)
    if n_candidates is None:
        n_candidates = int(max(8 * math.ceil(interactions_per_user), 64))
    n_candidates = int(min(n_candidates, n_items))
    if keep_planted is None:
        keep_planted = n_users * n_factors * n_mod <= MAX_PLANTED_USER_FLOATS

    item_rng = np.random.default_rng([seed, 0])
    item_factors = {m: item_rng.standard_normal((n_items, n_factors), dtype=np.float32) for m in mods}
    projections = {
        m: item_rng.standard_normal((n_factors, d), dtype=np.float32) / np.float32(math.sqrt(n_factors))
        for m, d in modalities.items()
    }
    features = {
        m: item_factors[m] @ projections[m]
        + np.float32(noise) * item_rng.standard_normal((n_items, modalities[m]), dtype=np.float32)
        for m in mods
    }
    item_of_rank = item_rng.permutation(n_items).astype(np.int32)
    popularity = np.empty(n_items, dtype=np.float64)
    popularity[item_of_rank] = popularity_probabilities(n_items, popularity_skew)

    # Concatenated factors: one batched product scores all modalities at once.
    all_item_factors = np.concatenate([item_factors[m] for m in mods], axis=1)
    scale = np.float32(taste_strength / math.sqrt(n_factors * n_mod))
    user_tastes = np.empty((n_users, n_factors * n_mod), dtype=np.float32) if keep_planted else None
    min_len = min(3.0, float(interactions_per_user))
    chunks_users, chunks_items, chunks_times = [], [], []
    n_chunks = -(-n_users // CHUNK_USERS)
    for chunk in tqdm(
        range(n_chunks), desc="synthetic users", unit="chunk", mininterval=2.0, disable=not progress or n_chunks < 4
    ):
        rng = np.random.default_rng([seed, 1, chunk])
        first = chunk * CHUNK_USERS
        size = min(CHUNK_USERS, n_users - first)
        tastes = rng.standard_normal((size, n_factors * n_mod), dtype=np.float32)
        if user_tastes is not None:
            user_tastes[first : first + size] = tastes
        counts = np.minimum(
            np.round(min_len + rng.poisson(interactions_per_user - min_len, size)).astype(np.int64), n_candidates
        )
        candidates = item_of_rank[_sample_ranks(rng.random((size, n_candidates)), n_items, popularity_skew)]
        candidates.sort(axis=1)
        repeated = np.zeros(candidates.shape, dtype=bool)
        repeated[:, 1:] = candidates[:, 1:] == candidates[:, :-1]
        scores = np.matmul(all_item_factors[candidates], tastes[:, :, None])[:, :, 0]
        logits = scale * scores + rng.gumbel(size=candidates.shape).astype(np.float32)
        logits[repeated] = -np.inf
        k = int(counts.max()) if size else 0
        if k == 0:
            continue
        top = np.argpartition(-logits, k - 1, axis=1)[:, :k] if k < n_candidates else np.tile(np.arange(k), (size, 1))
        top_logits = np.take_along_axis(logits, top, axis=1)
        order = np.argsort(-top_logits, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_logits = np.take_along_axis(top_logits, order, axis=1)
        keep = (np.arange(k)[None, :] < counts[:, None]) & np.isfinite(top_logits)
        chunks_items.append(np.take_along_axis(candidates, top, axis=1)[keep])
        chunks_users.append(np.broadcast_to(np.arange(first, first + size, dtype=np.int32)[:, None], keep.shape)[keep])
        chunks_times.append(rng.integers(0, _TIME_RANGE, int(keep.sum()), dtype=np.int64))
    log = InteractionLog(
        users=np.concatenate(chunks_users) if chunks_users else np.zeros(0, np.int64),
        items=np.concatenate(chunks_items) if chunks_items else np.zeros(0, np.int64),
        n_users=n_users,
        n_items=n_items,
        timestamps=np.concatenate(chunks_times) if chunks_times else np.zeros(0, np.int64),
        source=f"<synthetic seed={seed}>",
    )
    planted = {
        "item_factors": item_factors,
        "projections": projections,
        "user_tastes": None
        if user_tastes is None
        else {m: user_tastes[:, j * n_factors : (j + 1) * n_factors] for j, m in enumerate(mods)},
        "popularity": popularity.astype(np.float32),
        "taste_strength": float(taste_strength),
        "n_candidates": n_candidates,
    }
    return log, features, planted


def _check_args(n_users, n_items, modalities, n_factors, per_user, skew, noise, taste_strength) -> None:
    for name, value in (("n_users", n_users), ("n_items", n_items), ("n_factors", n_factors)):
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if max(n_users, n_items) > np.iinfo(np.int32).max:
        raise ValueError("n_users and n_items must fit in int32")
    if not modalities:
        raise ValueError("modalities must name at least one modality with its feature dimension")
    for m, d in modalities.items():
        if not isinstance(d, (int, np.integer)) or d <= 0:
            raise ValueError(f"modality {m!r}: dimension must be a positive integer, got {d!r}")
    if not (math.isfinite(per_user) and per_user >= 1):
        raise ValueError(f"interactions_per_user must be >= 1, got {per_user}")
    for name, value in (("popularity_skew", skew), ("noise", noise), ("taste_strength", taste_strength)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be finite and non-negative, got {value}")


def make_synthetic(
    n_users: int,
    n_items: int,
    *,
    modalities: Mapping[str, int] = DEFAULT_MODALITIES,
    n_factors: int = 8,
    interactions_per_user: float = 20,
    popularity_skew: float = 1.0,
    cold_item_fraction: float = 0.05,
    noise: float = 0.1,
    seed: int = 0,
    split_method: str = "random",
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    taste_strength: float = 2.0,
    n_candidates: int | None = None,
    keep_planted: bool | None = None,
    name: str = "synthetic",
    progress: bool = True,
) -> Dataset:
    """A seeded synthetic multimodal :class:`Dataset` with planted structure (module docstring).

    Args:
        n_users: number of users.
        n_items: number of items.
        modalities: ``{modality: feature dimension}`` (default ``{"image": 32, "text": 16}``).
        n_factors: latent factors per modality (default ``8``).
        interactions_per_user: mean interactions per user (default ``20``; at least
            ``min(3, mean)`` each, at most ``n_candidates``).
        popularity_skew: Zipf exponent of item popularity (default ``1.0``; ``0`` uniform).
        cold_item_fraction: fraction of the items with interactions held out of train,
            their interactions in valid/test (default ``0.05``; ``0`` for none).
        noise: standard deviation of the feature noise; the signal has unit variance
            (default ``0.1``).
        seed: seed of everything (default ``0``).
        split_method: split of the (warm) interactions, see :func:`~mmgcn.data.splits.split_log`
            (default ``"random"``).
        ratios: ``(train, valid, test)`` of the split (default ``(0.8, 0.1, 0.1)``).
        taste_strength: :math:`\\beta`, weight of the affinity against the Gumbel noise
            (default ``2.0``; ``0`` leaves only popularity).
        n_candidates: popularity-drawn candidates per user (default
            ``max(8 ceil(interactions_per_user), 64)``, at most ``n_items``).
        keep_planted: store user tastes in ``info["planted"]`` (default: when they take
            at most :data:`MAX_PLANTED_USER_FLOATS` floats).
        name: dataset name (default ``"synthetic"``).
        progress: show a progress bar over user chunks (default ``True``).

    Returns:
        The dataset; ``info["planted"]`` holds the planted truth (see :func:`synthetic_log`,
        :func:`planted_affinity`), ``info["synthetic"]`` the generator's arguments.
    """
    log, features, planted = synthetic_log(
        n_users, n_items, modalities=modalities, n_factors=n_factors,
        interactions_per_user=interactions_per_user, popularity_skew=popularity_skew, noise=noise,
        seed=seed, taste_strength=taste_strength, n_candidates=n_candidates,
        keep_planted=keep_planted, progress=progress,
    )
    if not 0.0 <= cold_item_fraction < 1.0:
        raise ValueError(f"cold_item_fraction must be in [0, 1), got {cold_item_fraction}")
    if split_method == "cold_items" and cold_item_fraction == 0:
        raise ValueError("split_method='cold_items' needs cold_item_fraction > 0")
    method, warm = split_method, "random"
    if cold_item_fraction > 0 and split_method != "cold_items":
        method, warm = "cold_items", split_method
    arguments = {
        "n_users": n_users, "n_items": n_items, "modalities": dict(modalities), "n_factors": n_factors,
        "interactions_per_user": interactions_per_user, "popularity_skew": popularity_skew,
        "cold_item_fraction": cold_item_fraction, "noise": noise, "seed": seed,
        "split_method": split_method, "taste_strength": taste_strength,
        "n_candidates": planted["n_candidates"],
    }
    return make_dataset(
        log, name=name, method=method, ratios=ratios, seed=seed, features=features,
        # The fraction only matters to a cold-item split; make_dataset ignores it otherwise.
        cold_item_fraction=cold_item_fraction if method == "cold_items" else 0.1, warm_method=warm,
        info={"synthetic": arguments, "planted": planted}, source=log.source,
    )
