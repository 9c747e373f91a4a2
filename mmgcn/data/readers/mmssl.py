"""Reader for the MMSSL / DiffMM dataset layout (TikTok, Amazon Baby, ...).

A folder holds ``trnMat.pkl``, ``valMat.pkl``, ``tstMat.pkl`` -- pickled
``scipy.sparse.coo_matrix`` of shape ``(n_users, n_items)``, read with the restricted
unpickler of :mod:`mmgcn.data.safe_pickle` -- and optionally ``<modality>_feat.npy``
item features ``(n_items, d)`` (float16 upstream, widened to float32).

Split conventions (``convention=``):

* ``"files"`` -- valid = ``valMat.pkl``, test = ``tstMat.pkl``: the files' own naming,
  the split the MMSSL / DiffMM papers evaluate on.
* ``"mmrec"`` -- valid = ``tstMat.pkl``, test = ``valMat.pkl``. The Amazon Baby files hold
  MMRec's split with valid and test swapped; this convention restores MMRec's.

These two are built in; a dataset card names the files of its own conventions
(``split.conventions.<name>: {train: ..., valid: ..., test: ..., note: ...}``), and the
reader takes them through ``files=`` (see ``docs/cards.md``). The convention is recorded as
a sentence in ``Dataset.info["split_convention"]`` so that ``stats()`` (and every reported
figure) says which file is the test set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mmgcn.data.dataset import DataError, Dataset
from mmgcn.data.readers.common import (
    feature_files,
    file_hashes,
    fingerprint,
    load_feature_file,
    verify_pins,
)
from mmgcn.data.safe_pickle import load_sparse_pickle

logger = logging.getLogger(__name__)

TRAIN_FILE = "trnMat.pkl"
# convention -> (valid file, test file, why)
CONVENTIONS: dict[str, tuple[str, str, str]] = {
    "files": ("valMat.pkl", "tstMat.pkl", "the files' own naming, as evaluated by MMSSL / DiffMM"),
    "mmrec": ("tstMat.pkl", "valMat.pkl", "MMRec's split: these files hold it with valid and test swapped"),
}


def convention_sentence(
    convention: str, valid_nnz: int, test_nnz: int, files: Mapping[str, str] | None = None, note: str | None = None
) -> str:
    """The human sentence stored in ``info["split_convention"]``."""
    if files is None:
        valid_file, test_file, why = CONVENTIONS[convention]
    else:
        valid_file, test_file = files["valid"], files["test"]
        why = note if note is not None else (CONVENTIONS[convention][2] if convention in CONVENTIONS else "")
    return (
        f"{convention}: valid = {valid_file} ({valid_nnz:,} interactions), "
        f"test = {test_file} ({test_nnz:,})" + (f" -- {why}" if why else "")
    )


def read_mmssl(
    directory: str | os.PathLike,
    *,
    name: str | None = None,
    convention: str = "files",
    files: Mapping[str, str] | None = None,
    note: str | None = None,
    feature_names: Mapping[str, str] | None = None,
    modalities: Sequence[str] | None = None,
    pins: Mapping[str, str] | None = None,
    verify: bool = True,
) -> Dataset:
    """Read an MMSSL / DiffMM folder into a :class:`Dataset`.

    Args:
        directory: folder with ``trnMat.pkl``, ``valMat.pkl``, ``tstMat.pkl`` and any
            ``<modality>_feat.npy``.
        name: dataset name (default: the folder name).
        convention: ``"files"`` (default; valid = ``valMat.pkl``, test = ``tstMat.pkl``) or
            ``"mmrec"`` (valid = ``tstMat.pkl``, test = ``valMat.pkl``); see module docs. With
            ``files``, any name (it labels the split in ``info``).
        files: ``{"train", "valid", "test"} -> file name`` (from the dataset card), instead of
            the built-in convention's names.
        note: why this convention, for ``info["split_convention"]`` (default: the built-in's).
        feature_names: ``{modality: file name}`` of the feature files (from the card's
            ``modalities.<m>.file``); default: every ``<modality>_feat.npy`` in the folder.
        modalities: feature modalities to load (default ``None``: every ``*_feat.npy``).
        pins: ``{file name: sha256}`` expected hashes (from the dataset card); files
            without a pin are not checked.
        verify: a pin mismatch raises :class:`DataError` (default ``True``); ``False``
            logs a warning instead.

    Returns:
        the dataset; ``info`` holds ``format``, ``convention``, ``split_convention``,
        ``split`` (which file is which split), ``files`` (sha256 per file read) and
        ``fingerprint``.

    Raises:
        DataError: a missing or corrupt file, an unsafe pickle, shapes that disagree,
            features with the wrong row count or NaN, overlapping splits, a pin mismatch.
    """
    directory = Path(directory)
    name = name or directory.name
    if files is None:
        if convention not in CONVENTIONS:
            raise ValueError(f"unknown split convention {convention!r}; expected one of {sorted(CONVENTIONS)}")
        valid_file, test_file, _ = CONVENTIONS[convention]
        train_file = TRAIN_FILE
    else:
        train_file, valid_file, test_file = files["train"], files["valid"], files["test"]
    missing = [f for f in (train_file, valid_file, test_file) if not (directory / f).is_file()]
    if missing:
        raise DataError(
            f"{directory}: missing {', '.join(missing)}; this MMSSL/DiffMM dataset needs "
            f"{train_file}, {valid_file} and {test_file} (download them with `mmgcn datasets download {name}`)"
        )
    if feature_names is None:
        available = feature_files(directory)
    else:
        absent = {m: f for m, f in feature_names.items() if not (directory / f).is_file()}
        if absent:
            raise DataError(
                f"{directory}: the card's feature files {absent} are missing (modalities.<m>.file); download "
                f"them with `mmgcn datasets download {name}` or remove the entries"
            )
        available = {m: directory / f for m, f in feature_names.items()}
    if modalities is None:
        chosen = available
    else:
        absent = [m for m in modalities if m not in available]
        if absent:
            raise DataError(
                f"{directory}: no feature file for modalities {absent} (looked for "
                f"{', '.join(m + '_feat.npy' for m in absent)}); available: {list(available)}"
            )
        chosen = {m: available[m] for m in modalities}

    read = [train_file, valid_file, test_file] + [p.name for p in chosen.values()]
    hashes = file_hashes(directory, read)
    verify_pins(directory, hashes, pins, verify, name)

    matrices, collapsed = {}, {}
    for split, fname in (("train", train_file), ("valid", valid_file), ("test", test_file)):
        matrices[split], collapsed[split] = _interactions(load_sparse_pickle(directory / fname), directory / fname)
    shapes = {matrices[s].shape for s in matrices}
    if len(shapes) != 1:
        detail = ", ".join(f"{f}: {matrices[s].shape}" for s, f in zip(matrices, (train_file, valid_file, test_file)))
        raise DataError(
            f"{directory}: the split matrices disagree in shape ({detail}); all three must be "
            f"(n_users, n_items) of one dataset -- the files come from different datasets"
        )
    n_users, n_items = shapes.pop()
    features = {m: load_feature_file(path, n_items) for m, path in chosen.items()}
    info = {
        "format": "mmssl",
        "convention": convention,
        "split_convention": convention_sentence(
            convention, matrices["valid"].nnz, matrices["test"].nnz,
            None if files is None else {"valid": valid_file, "test": test_file}, note,
        ),
        "split": {"method": "given by files", "train": train_file, "valid": valid_file, "test": test_file},
        "files": hashes,
        "fingerprint": fingerprint(hashes),
    }
    if any(collapsed.values()):
        info["duplicates_collapsed"] = collapsed
    return Dataset(
        name=name,
        n_users=n_users,
        n_items=n_items,
        train=matrices["train"],
        valid=matrices["valid"],
        test=matrices["test"],
        features=features,
        info=info,
        source=str(directory),
    )


def _interactions(coo: sp.coo_matrix, path: Path) -> tuple[sp.csr_matrix, int]:
    """Binary CSR of a split and the number of repeated pairs collapsed (reported, not hidden)."""
    if coo.nnz and not np.all(coo.data > 0):
        raise DataError(
            f"{path}: field 'data' holds {int((coo.data <= 0).sum())} non-positive entries; an "
            f"implicit-feedback matrix stores 1 per interaction"
        )
    csr = coo.tocsr()
    csr.sum_duplicates()
    if csr.nnz != coo.nnz:
        # repeated (user, item) pairs: report, do not pass them on silently
        logger.warning("%s: %d repeated (user, item) entries collapsed", path, coo.nnz - csr.nnz)
    return csr, int(coo.nnz - csr.nnz)
