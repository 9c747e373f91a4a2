r"""The item content a model reads: fitted feature transforms, optional fine-tuning, masks.

Graph models built on content (FREEDOM, LATTICE, LGMRec, DRAGON, GRCN) all start the same
way: per modality, the raw features go through a fitted transform
(:mod:`mmgcn.features.transforms`, fitted on items with train edges and content only),
item-item graphs are built from the result, and the model trains on a copy of the
features that the authors' code fine-tunes (``nn.Embedding.from_pretrained(feat,
freeze=False)``). :class:`ItemContent` holds that state once:

* ``transforms``: the fitted transforms (persistent buffers: saved with every checkpoint,
  applied to new items alike);
* :meth:`base`: the transformed features of the catalogue ``(n_items, d_m)``, the fixed
  basis of frozen graphs (rebuilt from the dataset, not checkpointed);
* :meth:`table`: the features the model trains on: ``base`` itself, or a fine-tuned
  parameter initialised from it (``trainable=True``);
* :meth:`present`: ``(n_items,)`` bool, items with content of the modality (the others'
  rows are fills, and models leave them out);
* :meth:`new_items`: validated, transformed features of new items (cold start);
  :func:`check_new_item_features` validates new items' raw features for any model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mmgcn.data.dataset import Dataset
from mmgcn.features.transforms import fit_feature_transforms


class ItemContent(nn.Module):
    """Per-modality item features after fitted transforms, optionally fine-tuned.

    Args:
        dataset: the training dataset (features, content masks, items with train edges).
        modalities: which modalities, in order (default: all of ``dataset.features``).
        transform: feature transform mode (:data:`mmgcn.features.transforms.MODES`,
            default ``"none"``: raw features, as the graph papers).
        trainable: fine-tune the feature tables (default ``False``).
        model: the model's name, for error messages.

    Shapes: :meth:`base` / :meth:`table` ``(n_items, d_m)``, :meth:`present` ``(n_items,)``.
    """

    def __init__(
        self,
        dataset: Dataset,
        modalities: Sequence[str] | None = None,
        transform: str = "none",
        trainable: bool = False,
        model: str = "model",
    ) -> None:
        super().__init__()
        names = tuple(dataset.features) if modalities is None else tuple(modalities)
        if not names:
            raise ValueError(
                f"{model} needs item features, but dataset {dataset.name!r} has no modalities; extract "
                f"features first (mmgcn extract) or use an ID-only model (bpr, lightgcn)"
            )
        missing = [m for m in names if m not in dataset.features]
        if missing:
            raise ValueError(f"{model}: modalities {missing} not in dataset {dataset.name!r} (has {list(dataset.features)})")
        bad = [m for m in names if not m or "." in m]
        if bad:
            raise ValueError(f"{model}: modality names must be non-empty and contain no '.', got {bad}")
        self.modalities = names
        self.model = model
        self.trainable = bool(trainable)
        self.transforms = fit_feature_transforms(dataset.features, dataset.items_in_train, dataset.content_masks,
                                                 mode=transform, modalities=names)
        self.tables = nn.ParameterDict()
        for m in names:
            base = self.transforms[m](dataset.features[m]).detach()
            self.register_buffer(f"base_{m}", base, persistent=False)
            self.register_buffer(f"present_{m}", torch.from_numpy(dataset.has_content(m).copy()), persistent=False)
            if self.trainable:
                self.tables[m] = nn.Parameter(base.clone())

    @property
    def dims(self) -> dict[str, int]:
        """``{modality: d_m}``."""
        return {m: int(self.base(m).shape[1]) for m in self.modalities}

    def base(self, modality: str) -> Tensor:
        """``(n_items, d_m)`` transformed catalogue features (fixed)."""
        return getattr(self, f"base_{modality}")

    def table(self, modality: str) -> Tensor:
        """``(n_items, d_m)`` the features the model trains on (fine-tuned when ``trainable``)."""
        return self.tables[modality] if self.trainable else self.base(modality)

    def present(self, modality: str) -> Tensor:
        """``(n_items,)`` bool: items with content of ``modality``."""
        return getattr(self, f"present_{modality}")

    def reset_parameters(self) -> None:
        """Fine-tuned tables back to the transformed features."""
        with torch.no_grad():
            for m, table in self.tables.items():
                table.copy_(self.base(m))

    @property
    def raw_dims(self) -> dict[str, int]:
        """``{modality: d_m}`` of the raw features (what new items must have)."""
        return {m: int(self.transforms[m].dim) for m in self.modalities}

    def new_items(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Validated, transformed features and presence masks of new items.

        Args:
            features: ``{modality: (n_new, d_m)}`` RAW features, one per modality (checked
                against :attr:`raw_dims` by :func:`check_new_item_features`).
            present: optional ``{modality: (n_new,) bool}`` (default: all have content).

        Returns:
            ``({modality: (n_new, d_m)}, {modality: (n_new,) bool})`` on the model's device.

        Raises:
            ValueError: what :func:`check_new_item_features` refuses.
        """
        features = check_new_item_features(features, self.raw_dims, self.model)
        device = self.base(self.modalities[0]).device
        n_new = next(iter(features.values())).shape[0]
        out = {m: self.transforms[m](features[m].to(device)) for m in self.modalities}
        masks = {}
        for m in self.modalities:
            value = None if present is None else present.get(m)
            masks[m] = (torch.ones(n_new, dtype=torch.bool, device=device) if value is None
                        else torch.as_tensor(value, dtype=torch.bool, device=device).reshape(n_new))
        return out, masks

    def extra_repr(self) -> str:
        dims = ", ".join(f"{m}:{d}" for m, d in self.dims.items())
        return f"modalities=[{dims}], trainable={self.trainable}"


def check_new_item_features(
    features: Mapping[str, Tensor], dims: Mapping[str, int], model: str, device: torch.device | None = None
) -> dict[str, Tensor]:
    """Validate new items' features against the model's modalities and widths.

    Args:
        features: ``{modality: (n_new, d_m)}`` tensors or arrays.
        dims: ``{modality: d_m}`` the model was built with, in the model's order.
        model: the model name, for messages.
        device: where the returned tensors go (default: unchanged).

    Returns:
        ``{modality: (n_new, d_m) float32}`` in the order of ``dims``.

    Raises:
        ValueError: missing or unknown modalities, bad shapes, differing row counts,
            NaN / inf values.
    """
    missing = [m for m in dims if m not in features]
    unknown = [m for m in features if m not in dims]
    if missing or unknown:
        raise ValueError(
            f"model '{model}' reads modalities {list(dims)}; new-item features "
            f"{'lack ' + str(missing) if missing else ''}{' and ' if missing and unknown else ''}"
            f"{'have unknown ' + str(unknown) if unknown else ''}"
        )
    out: dict[str, Tensor] = {}
    n_rows = None
    for m, width in dims.items():
        value = torch.as_tensor(features[m])
        if value.dim() != 2 or value.shape[1] != width:
            raise ValueError(f"new-item features '{m}' must be (n_new, {width}), got shape {tuple(value.shape)}")
        if n_rows is None:
            n_rows = value.shape[0]
        if value.shape[0] != n_rows or value.shape[0] == 0:
            raise ValueError(
                f"new-item features must have the same positive number of rows in every modality, got "
                f"{ {k: int(torch.as_tensor(features[k]).shape[0]) for k in dims} }"
            )
        if value.is_complex() or value.dtype == torch.bool:
            raise ValueError(f"new-item features '{m}' must be real floats, got {value.dtype}")
        value = value.detach().to(torch.float32)
        if not torch.isfinite(value).all():
            raise ValueError(f"new-item features '{m}' contain NaN or inf")
        out[m] = value if device is None else value.to(device)
    return out


__all__ = ["ItemContent", "check_new_item_features"]
