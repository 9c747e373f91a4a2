"""Readers, one per on-disk format; each returns a validated object and names the file in errors.

* :func:`read_mmssl` -- MMSSL / DiffMM ``trnMat/valMat/tstMat.pkl`` + ``*_feat.npy``.
* :func:`read_mmrec` / :func:`write_mmrec` -- MMRec's ``<name>.inter`` + ``*_feat.npy``.
* :func:`read_movielens100k` -- MovieLens 100K with plots and posters as item content
  (returns the unsplit :class:`MovieLensData`; :func:`mmgcn.data.registry.load_dataset`
  splits it).
"""

from mmgcn.data.readers.common import feature_files, load_feature_file
from mmgcn.data.readers.mmrec import read_inter, read_mmrec, write_mmrec
from mmgcn.data.readers.mmssl import CONVENTIONS, read_mmssl
from mmgcn.data.readers.movielens import MovieLensData, read_movielens100k

__all__ = [
    "CONVENTIONS",
    "MovieLensData",
    "feature_files",
    "load_feature_file",
    "read_inter",
    "read_mmrec",
    "read_mmssl",
    "read_movielens100k",
    "write_mmrec",
]
