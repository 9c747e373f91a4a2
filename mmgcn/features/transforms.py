r"""Feature transforms fitted on the training catalogue, saved with the run, applied to new items.

Content features are raw encoder outputs; models normalise them before use. That
normalisation is a *fitted* transform (a z-score learns a column mean and standard
deviation), so it follows the same rules as any estimator:

* it is fitted on the items a model may learn from -- those with at least one **train**
  interaction and with content for the modality -- never on held-out cold items (whose
  features would otherwise leak into the statistics) and never on the fill rows of items
  without content (zeros or a mean, not real content);
* its statistics are part of the model: :class:`FeatureTransform` keeps them as persistent
  buffers, so they are written to every checkpoint and restored with the model;
* new items (cold start, ``represent_new_items``) go through the very same fitted transform.

Modes, for one modality's ``(n, d)`` features :math:`X` with fitted column mean
:math:`\mu` and population standard deviation :math:`\sigma`:

* ``"none"``: :math:`X`;
* ``"l2"``: :math:`x_i / \lVert x_i \rVert` (nothing is fitted);
* ``"zscore"``: :math:`(X - \mu) / \sigma`;
* ``"standard"``: :math:`(X - \mu) / (\sigma \sqrt d)`, so rows have unit mean squared norm
  whatever :math:`d` is (a projection's output then starts at the scale of ID embeddings);
* ``"zscore+l2"``: the z-score, then unit-norm rows.

Constant columns (:math:`\sigma = 0`) become zeros. This module is the one place where
feature statistics are computed (:func:`fit_feature_transforms`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

TransformMode = Literal["none", "l2", "zscore", "standard", "zscore+l2"]
MODES: tuple[str, ...] = ("none", "l2", "zscore", "standard", "zscore+l2")
#: smallest standard deviation divided by (constant columns map to zero, not to inf)
EPS = 1e-6


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown feature transform {mode!r}; expected one of {list(MODES)}")
    return mode


class FeatureTransform(nn.Module):
    r"""A per-column feature normalisation whose statistics are fitted once and then frozen.

    Args:
        dim: number of feature columns :math:`d`.
        mode: one of :data:`MODES` (default ``"zscore"``).

    Buffers (persistent: saved in ``state_dict`` and every checkpoint):
        mean: ``(1, d)`` column means of the fitting rows.
        std: ``(1, d)`` column population standard deviations.
        fitted_rows: ``()`` number of rows the statistics were fitted on (0 = not fitted).

    Shapes:
        input ``(n, d)``, output ``(n, d)`` float32.
    """

    def __init__(self, dim: int, mode: str = "zscore") -> None:
        super().__init__()
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = int(dim)
        self.mode = check_mode(mode)
        self.register_buffer("mean", torch.zeros(1, self.dim))
        self.register_buffer("std", torch.ones(1, self.dim))
        self.register_buffer("fitted_rows", torch.zeros((), dtype=torch.long))

    @property
    def needs_fit(self) -> bool:
        """Whether the mode uses fitted statistics (``zscore``, ``standard``, ``zscore+l2``)."""
        return self.mode in ("zscore", "standard", "zscore+l2")

    @torch.no_grad()
    def fit(self, features: Tensor, rows: np.ndarray | Tensor | None = None) -> FeatureTransform:
        """Fit the column statistics on ``features[rows]``.

        Args:
            features: ``(n, d)`` raw features.
            rows: ``(n,)`` bool mask (or index array) of the rows to fit on (default: all).

        Raises:
            ValueError: wrong width, or no row to fit on while the mode needs statistics.
        """
        features = torch.as_tensor(features)
        if features.dim() != 2 or features.shape[1] != self.dim:
            raise ValueError(f"FeatureTransform({self.dim}) cannot fit features of shape {tuple(features.shape)}")
        if rows is not None:
            index = torch.as_tensor(np.asarray(rows) if not isinstance(rows, Tensor) else rows)
            if index.dtype == torch.bool:
                if index.shape != (features.shape[0],):
                    raise ValueError(f"row mask has shape {tuple(index.shape)}, expected ({features.shape[0]},)")
                index = torch.nonzero(index).flatten()
            features = features[index.to(features.device)]
        if features.shape[0] == 0 and self.needs_fit:
            raise ValueError(
                f"no rows to fit the '{self.mode}' feature transform on (no item has both a train "
                f"interaction and content for this modality)"
            )
        data = features.detach().to(torch.float64)
        if features.shape[0]:
            self.mean.copy_(data.mean(dim=0, keepdim=True).to(self.mean.dtype))
            self.std.copy_(data.std(dim=0, keepdim=True, unbiased=False).to(self.std.dtype))
        self.fitted_rows.fill_(int(features.shape[0]))
        return self

    def forward(self, features: Tensor) -> Tensor:
        if features.dim() != 2 or features.shape[1] != self.dim:
            raise ValueError(f"FeatureTransform({self.dim}) got features of shape {tuple(features.shape)}")
        x = features.to(torch.float32)
        if self.mode == "none":
            return x
        if self.mode == "l2":
            return F.normalize(x, dim=1, eps=EPS)
        # a constant column has std 0: its z-score is defined as 0 (x - mean is 0 there)
        z = (x - self.mean) / self.std.clamp_min(EPS)
        if self.mode == "standard":
            return z / self.dim**0.5
        if self.mode == "zscore+l2":
            return F.normalize(z, dim=1, eps=EPS)
        return z

    def extra_repr(self) -> str:
        return f"dim={self.dim}, mode={self.mode!r}, fitted_rows={int(self.fitted_rows)}"


def fitting_rows(items_in_train: np.ndarray, has_content: np.ndarray | None = None) -> np.ndarray:
    """``(n_items,)`` bool: the items a transform may be fitted on (train edge and content)."""
    rows = np.asarray(items_in_train, dtype=bool)
    if has_content is not None:
        rows = rows & np.asarray(has_content, dtype=bool)
    return rows


def fit_feature_transforms(
    features: Mapping[str, Tensor],
    items_in_train: np.ndarray,
    content_masks: Mapping[str, np.ndarray] | None = None,
    mode: str | Mapping[str, str] = "zscore",
    modalities: Iterable[str] | None = None,
) -> nn.ModuleDict:
    """One fitted :class:`FeatureTransform` per modality.

    Args:
        features: ``{modality: (n_items, d_m)}`` raw features (``dataset.features``).
        items_in_train: ``(n_items,)`` bool, items with a train interaction
            (``dataset.items_in_train``).
        content_masks: ``{modality: (n_items,) bool}``, items that have content
            (``dataset.content_masks``; default: all have).
        mode: one mode for every modality, or ``{modality: mode}``.
        modalities: which modalities, in order (default: all of ``features``).

    Returns:
        ``nn.ModuleDict`` ``{modality: FeatureTransform}`` (keys are modality names).

    Usage in a model (the transforms are then saved with the model's state)::

        self.transforms = fit_feature_transforms(dataset.features, dataset.items_in_train,
                                                 dataset.content_masks, mode="zscore")
        x = self.transforms["image"](raw_image_features)
    """
    names = list(features) if modalities is None else list(modalities)
    masks = dict(content_masks or {})
    out = nn.ModuleDict()
    for m in names:
        feats = torch.as_tensor(features[m])
        m_mode = mode if isinstance(mode, str) else mode.get(m, "none")
        transform = FeatureTransform(int(feats.shape[1]), m_mode)
        if transform.needs_fit:
            try:
                transform.fit(feats, fitting_rows(items_in_train, masks.get(m)))
            except ValueError as exc:
                raise ValueError(f"modality {m!r}: {exc}") from None
        out[m] = transform
    return out


__all__ = ["EPS", "MODES", "FeatureTransform", "check_mode", "fit_feature_transforms", "fitting_rows"]
