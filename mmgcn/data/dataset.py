"""The dataset object: the only data currency of the toolkit.

A :class:`Dataset` is immutable and validated once, at construction. It holds the
train / valid / test interactions as binary ``scipy.sparse.csr_matrix`` of shape
``(n_users, n_items)``, optionally their event times, per-modality item features as
float32 tensors of shape ``(n_items, d)``, optional raw item content (titles, texts,
poster paths) and metadata, and a free-form ``info`` mapping (split convention,
provenance) that ``stats()`` reports.

Building, validating and describing a dataset does not import torch: features given as
numpy arrays are kept as float32 arrays and become tensors (sharing their memory) the
first time ``dataset.features[m]`` is read, so light commands (``mmgcn datasets info``)
stay light.

Errors raised here are :class:`DataError` and name the source file and the field, and
say how to fix the input.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:  # pragma: no cover
    import torch

from mmgcn.errors import DataError

SPLITS = ("train", "valid", "test")




@dataclass(frozen=True)
class ItemContent:
    """Raw content per item (index = item id); ``None`` where an item has none.

    Attributes:
        titles: display titles, ``(n_items,)``.
        texts: free text used by text encoders (e.g. title + genres + plot), ``(n_items,)``.
        image_paths: paths to image files (posters, thumbnails), ``(n_items,)``.
        audio_paths: paths to audio files, ``(n_items,)``.
    """

    titles: tuple[str | None, ...] | None = None
    texts: tuple[str | None, ...] | None = None
    image_paths: tuple[Path | None, ...] | None = None
    audio_paths: tuple[Path | None, ...] | None = None

    def fields_present(self) -> dict[str, tuple]:
        """The content fields that are set, by name."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }

    def modality_sources(self) -> dict[str, tuple]:
        """Content per encoder modality: ``image`` -> paths, ``text`` -> strings, ``audio``."""
        out = {}
        if self.image_paths is not None:
            out["image"] = self.image_paths
        if self.texts is not None:
            out["text"] = self.texts
        if self.audio_paths is not None:
            out["audio"] = self.audio_paths
        return out


def _as_binary_csr(matrix: Any, split: str, source: str, shape: tuple[int, int]) -> sp.csr_matrix:
    if not sp.issparse(matrix):
        raise DataError(f"{source}: field '{split}' must be a scipy.sparse matrix, got {type(matrix).__name__}")
    if matrix.shape != shape:
        raise DataError(
            f"{source}: field '{split}' has shape {matrix.shape} but the dataset is "
            f"{shape[0]} users x {shape[1]} items; all splits must share one id space "
            f"(re-index users and items before building the dataset)"
        )
    csr = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    if csr.nnz and not np.all(np.isfinite(csr.data)):
        raise DataError(f"{source}: field '{split}' holds NaN or inf values; interactions must be finite")
    csr.data[:] = 1.0
    csr.sort_indices()
    # scipy picks one index dtype for indices and indptr (int32 while nnz fits); mixing
    # them breaks tocoo()/nonzero(), so leave the choice to scipy
    return csr


def _is_tensor(value: Any) -> bool:
    # a tensor can only exist once torch is imported: never import it just to ask
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _as_features(name: str, value: Any, n_items: int, source: str) -> Any:
    """A validated ``(n_items, d)`` float32 numpy array (or detached tensor, if given one)."""
    if isinstance(value, np.ndarray):
        if not np.issubdtype(value.dtype, np.number) or np.issubdtype(value.dtype, np.complexfloating):
            raise DataError(f"{source}: features '{name}' have dtype {value.dtype}; expected a real float array")
        array = np.ascontiguousarray(value, dtype=np.float32)
        finite = np.isfinite(array)
    elif _is_tensor(value):
        torch = sys.modules["torch"]
        if value.is_complex() or value.dtype == torch.bool:
            raise DataError(f"{source}: features '{name}' have dtype {value.dtype}; expected real floats")
        array = value.detach().to(torch.float32).contiguous()
        array.requires_grad_(False)
        finite = torch.isfinite(array).cpu().numpy()
    else:
        raise DataError(f"{source}: features '{name}' must be a numpy array or tensor, got {type(value).__name__}")
    if array.ndim != 2:
        raise DataError(f"{source}: features '{name}' must be 2-D (n_items, d), got shape {tuple(array.shape)}")
    if array.shape[0] != n_items:
        raise DataError(
            f"{source}: features '{name}' have {array.shape[0]} rows but the dataset has {n_items} items; "
            f"row i must be item i (regenerate the features for this item set)"
        )
    if array.shape[1] == 0:
        raise DataError(f"{source}: features '{name}' have zero columns")
    if not finite.all():
        rows = np.flatnonzero(~finite.all(axis=1))
        raise DataError(
            f"{source}: features '{name}' contain NaN/inf in {rows.size} row(s) "
            f"(first item ids: {rows[:5].tolist()}); fill missing content explicitly "
            f"(zeros + mask, or the mean) when extracting"
        )
    return array


class FeatureMap(Mapping):
    """Read-only ``{modality: (n_items, d) float32 tensor}``, converted from numpy on first read.

    The arrays are validated by :class:`Dataset`; ``torch.from_numpy`` shares their memory,
    so the conversion costs no copy. :attr:`dims` answers ``{modality: d}`` without torch.
    """

    __slots__ = ("_arrays", "_tensors")

    def __init__(self, arrays: Mapping[str, Any]) -> None:
        self._arrays = dict(arrays)
        self._tensors: dict[str, Any] = {}

    def __getitem__(self, modality: str) -> torch.Tensor:
        tensor = self._tensors.get(modality)
        if tensor is None:
            value = self._arrays[modality]
            if not _is_tensor(value):
                import torch

                value = torch.from_numpy(value)
            tensor = self._tensors[modality] = value
        return tensor

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    @property
    def dims(self) -> dict[str, int]:
        """``{modality: d}``, in order."""
        return {m: int(a.shape[1]) for m, a in self._arrays.items()}

    def stored(self) -> dict[str, Any]:
        """``{modality: value}`` as stored (numpy arrays, or tensors where given tensors): a copy
        of the mapping, for building another dataset without converting anything."""
        return dict(self._arrays)

    def array(self, modality: str) -> np.ndarray:
        """The features of ``modality`` as a float32 numpy array ``(n_items, d)`` (no torch needed
        when they were given as numpy)."""
        value = self._arrays[modality]
        return value.cpu().numpy() if _is_tensor(value) else value

    def __repr__(self) -> str:
        return "FeatureMap(" + ", ".join(f"{m}: {d}-d" for m, d in self.dims.items()) + ")"


def _as_times(split: str, value: Any, nnz: int, source: str) -> np.ndarray:
    times = np.asarray(value)
    if times.shape != (nnz,):
        raise DataError(
            f"{source}: timestamps of split '{split}' have shape {times.shape}, expected ({nnz},): one time "
            f"per interaction, in the split's CSR order (rows by user, items ascending)"
        )
    if times.size and not np.issubdtype(times.dtype, np.integer):
        if not np.issubdtype(times.dtype, np.floating) or not np.all(np.isfinite(times)):
            raise DataError(f"{source}: timestamps of split '{split}' must be finite numbers (seconds)")
    out = times.astype(np.int64)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class Dataset:
    """An immutable, validated multimodal implicit-feedback dataset.

    Args:
        name: dataset name (e.g. ``"tiktok"``).
        n_users: number of users; user ids are ``0 .. n_users - 1``.
        n_items: number of items; item ids are ``0 .. n_items - 1``.
        train: train interactions, ``(n_users, n_items)`` sparse; stored as binary float32 CSR.
        valid: validation interactions, same shape.
        test: test interactions, same shape.
        features: ``{modality: (n_items, d)}`` float32 item features (empty for ID-only data).
        content_masks: ``{modality: (n_items,) bool}``, ``True`` where the item has content of
            that modality; the features of the other rows are a fill (zeros or a mean), not
            content. A modality without an entry has content for every item.
        content: optional raw item content (titles, texts, image / audio paths).
        item_meta: optional per-item arrays (length ``n_items``), e.g. genres, release year.
        user_meta: optional per-user arrays (length ``n_users``), e.g. age, occupation.
        info: free-form provenance (split convention, source files, filtering report, id maps).
        source: what the dataset was read from; every error message starts with it.
        timestamps: optional ``{split: (nnz,)}`` int64 event times (seconds), one per
            interaction of that split in its CSR order (rows by user, items ascending within a
            row); all three splits or none.

    Raises:
        DataError: ids out of range, shapes that disagree, NaN/inf features, empty train,
            or overlapping splits (unless ``info["allow_overlap"]`` is set).
    """

    name: str
    n_users: int
    n_items: int
    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    features: Mapping[str, torch.Tensor] = field(default_factory=dict)
    content_masks: Mapping[str, np.ndarray] = field(default_factory=dict)
    content: ItemContent | None = None
    item_meta: Mapping[str, np.ndarray] = field(default_factory=dict)
    user_meta: Mapping[str, np.ndarray] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<memory>"
    timestamps: Mapping[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        src = self.source
        for attr in ("n_users", "n_items"):
            value = getattr(self, attr)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise DataError(f"{src}: field '{attr}' must be a positive integer, got {value!r}")
        shape = (int(self.n_users), int(self.n_items))
        object.__setattr__(self, "n_users", shape[0])
        object.__setattr__(self, "n_items", shape[1])
        for split in SPLITS:
            object.__setattr__(self, split, _as_binary_csr(getattr(self, split), split, src, shape))
        if self.train.nnz == 0:
            raise DataError(f"{src}: the train split is empty; a recommender needs train interactions")
        overlaps = self.split_overlaps()
        if any(overlaps.values()) and not self.info.get("allow_overlap", False):
            detail = ", ".join(f"{k}: {v}" for k, v in overlaps.items() if v)
            raise DataError(
                f"{src}: splits overlap ({detail} shared user-item pairs); train/valid/test "
                f"must be disjoint (deduplicate, or pass info={{'allow_overlap': True}} to keep them)"
            )
        given = self.features.stored() if isinstance(self.features, FeatureMap) else dict(self.features)
        feats = {str(m): _as_features(str(m), v, shape[1], src) for m, v in given.items()}
        object.__setattr__(self, "features", FeatureMap(feats))
        masks = {}
        for m, mask in dict(self.content_masks).items():
            if str(m) not in feats:
                raise DataError(f"{src}: content mask for modality '{m}' but no such features (have {list(feats)})")
            array = np.asarray(mask)
            if array.dtype != np.bool_ or array.shape != (shape[1],):
                raise DataError(
                    f"{src}: content mask '{m}' must be a bool array of {shape[1]} entries (one per item), "
                    f"got {array.dtype} {array.shape}"
                )
            array = array.copy()
            array.flags.writeable = False
            masks[str(m)] = array
        object.__setattr__(self, "content_masks", types.MappingProxyType(masks))
        if self.timestamps is not None:
            times = dict(self.timestamps)
            if sorted(times) != sorted(SPLITS):
                raise DataError(f"{src}: timestamps must be given for all of {SPLITS} or none, got {sorted(times)}")
            object.__setattr__(
                self, "timestamps",
                types.MappingProxyType({s: _as_times(s, times[s], self.split(s).nnz, src) for s in SPLITS}),
            )
        if self.content is not None:
            for fname, values in self.content.fields_present().items():
                if len(values) != shape[1]:
                    raise DataError(
                        f"{src}: content '{fname}' has {len(values)} entries but the dataset has "
                        f"{shape[1]} items (one entry per item, None where missing)"
                    )
        for meta_name, meta, n in (("item_meta", self.item_meta, shape[1]), ("user_meta", self.user_meta, shape[0])):
            for key, values in meta.items():
                if len(values) != n:
                    raise DataError(f"{src}: {meta_name} '{key}' has {len(values)} entries, expected {n}")
        object.__setattr__(self, "item_meta", types.MappingProxyType(dict(self.item_meta)))
        object.__setattr__(self, "user_meta", types.MappingProxyType(dict(self.user_meta)))
        object.__setattr__(self, "info", types.MappingProxyType(dict(self.info)))

    # ------------------------------------------------------------------ views
    @property
    def modalities(self) -> tuple[str, ...]:
        """Names of the feature modalities, in insertion order."""
        return tuple(self.features)

    def split(self, name: str) -> sp.csr_matrix:
        """The CSR matrix of split ``name`` (``train`` / ``valid`` / ``test``)."""
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)

    def split_overlaps(self) -> dict[str, int]:
        """Number of user-item pairs shared by each pair of splits."""
        out = {}
        for i, a in enumerate(SPLITS):
            for b in SPLITS[i + 1 :]:
                out[f"{a}&{b}"] = int(getattr(self, a).multiply(getattr(self, b)).nnz)
        return out

    @functools.cached_property
    def items_in_train(self) -> np.ndarray:
        """Boolean ``(n_items,)``: whether each item has at least one train interaction
        (computed once; the dataset is immutable)."""
        return np.diff(self.train.tocsc().indptr) > 0

    def cold_items(self, split: str = "test") -> np.ndarray:
        """Items that appear in ``split`` but have no train interaction (sorted ids)."""
        in_split = np.diff(self.split(split).tocsc().indptr) > 0
        return np.flatnonzero(in_split & ~self.items_in_train)

    def split_times(self, name: str) -> np.ndarray | None:
        """Event times of split ``name`` as ``(nnz,)`` int64 in its CSR order, or ``None``."""
        self.split(name)  # validates the name
        return None if self.timestamps is None else self.timestamps[name]

    def has_content(self, modality: str) -> np.ndarray:
        """``(n_items,)`` bool: which items have real content of ``modality`` (all, without a mask)."""
        if modality not in self.features:
            raise KeyError(f"{self.name}: no features for modality {modality!r}; have {list(self.features)}")
        mask = self.content_masks.get(modality)
        return np.ones(self.n_items, dtype=bool) if mask is None else mask

    def with_features(self, features: Mapping[str, Any], content_masks: Mapping[str, np.ndarray] | None = None) -> Dataset:
        """A copy with ``features`` replacing the feature dict (validated again).

        ``content_masks`` replaces the masks; by default the masks of the modalities kept
        are kept.
        """
        if not isinstance(features, FeatureMap):
            features = dict(features)
        if content_masks is None:
            content_masks = {m: v for m, v in self.content_masks.items() if m in features}
        return dataclasses.replace(self, features=features, content_masks=dict(content_masks))

    def select_modalities(self, modalities: Sequence[str]) -> Dataset:
        """A copy keeping only the named modalities (in the given order)."""
        missing = [m for m in modalities if m not in self.features]
        if missing:
            raise KeyError(f"{self.name}: no features for modalities {missing}; have {list(self.features)}")
        stored = self.features.stored()
        return self.with_features({m: stored[m] for m in modalities})

    # ------------------------------------------------------------------ interop
    def to_pyg(self) -> Any:
        """The dataset as a PyTorch Geometric ``HeteroData``: ``user`` / ``item`` nodes,
        ``x_<modality>`` item features, ``(user, train|valid|test, item)`` edges (with
        ``time`` where the dataset has event times). See :mod:`mmgcn.data.pyg`."""
        from mmgcn.data.pyg import to_pyg

        return to_pyg(self)

    @classmethod
    def from_pyg(cls, data: Any, name: str | None = None) -> Dataset:
        """A dataset from a ``HeteroData`` laid out as :meth:`to_pyg` writes it."""
        from mmgcn.data.pyg import from_pyg

        return from_pyg(data, name)

    # ------------------------------------------------------------------ stats
    def stats(self) -> dict[str, Any]:
        """Counts, density, degree quantiles, cold users/items per split, modality dims."""
        train_user_deg = np.diff(self.train.indptr)
        train_item_deg = np.diff(self.train.tocsc().indptr)
        quantiles = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
        total = sum(self.split(s).nnz for s in SPLITS)
        out: dict[str, Any] = {
            "name": self.name,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "interactions": {s: int(self.split(s).nnz) for s in SPLITS},
            "total_interactions": int(total),
            "density": total / (self.n_users * self.n_items),
            "train_user_degree": dict(zip(map(str, quantiles), np.quantile(train_user_deg, quantiles).tolist())),
            "train_item_degree": dict(zip(map(str, quantiles), np.quantile(train_item_deg, quantiles).tolist())),
            "users_without_train": int((train_user_deg == 0).sum()),
            "items_without_train": int((train_item_deg == 0).sum()),
            "split_overlaps": self.split_overlaps(),
        }
        for split in ("valid", "test"):
            matrix = self.split(split)
            users = np.flatnonzero(np.diff(matrix.indptr) > 0)
            cold_items = self.cold_items(split)
            cold_mask = np.isin(matrix.indices, cold_items)
            out[split] = {
                "users": int(users.size),
                "cold_users": int((train_user_deg[users] == 0).sum()),
                "cold_items": int(cold_items.size),
                "interactions_on_cold_items": int(cold_mask.sum()),
            }
        out["modalities"] = self.features.dims
        out["timestamps"] = self.timestamps is not None
        if self.content_masks:
            out["items_without_content"] = {m: int((~mask).sum()) for m, mask in self.content_masks.items()}
        if self.content is not None:
            out["content"] = {
                name: sum(v is not None and v != "" for v in values)
                for name, values in self.content.fields_present().items()
            }
        for key in ("split_convention", "split", "filtering"):
            if key in self.info:
                out[key] = self.info[key]
        return out

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        """Fields as plain values (read-only mappings become dicts; restored by
        :meth:`__setstate__` without validating again): a dataset travels to the ranks of a
        data-parallel run (:func:`mmgcn.train.distributed.launch`) by pickling."""
        state = dict(self.__dict__)
        proxied = [key for key, value in state.items() if isinstance(value, types.MappingProxyType)]
        for key in proxied:
            state[key] = dict(state[key])
        state["__read_only__"] = proxied
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        read_only = set(state.pop("__read_only__", ()))
        for key, value in state.items():
            object.__setattr__(self, key, types.MappingProxyType(value) if key in read_only else value)

    def __repr__(self) -> str:
        mods = ", ".join(f"{m}:{d}" for m, d in self.features.dims.items()) or "none"
        return (
            f"Dataset({self.name!r}, users={self.n_users}, items={self.n_items}, "
            f"train={self.train.nnz}, valid={self.valid.nnz}, test={self.test.nnz}, modalities=[{mods}])"
        )
