"""Data layer: the Dataset object, readers per format, preparation, graphs, download."""

from mmgcn.data.dataset import DataError, Dataset, ItemContent
from mmgcn.data.log import InteractionLog
from mmgcn.data.prepare import k_core, make_dataset, reindex, select_items, split_log
from mmgcn.data.readers import read_mmrec, read_mmssl, read_movielens100k, write_mmrec
from mmgcn.data.registry import dataset_card, list_datasets, load_dataset
from mmgcn.data.safe_pickle import load_sparse_pickle
from mmgcn.data.synthetic import make_synthetic

__all__ = [
    "Dataset",
    "DataError",
    "InteractionLog",
    "ItemContent",
    "k_core",
    "make_dataset",
    "make_synthetic",
    "reindex",
    "select_items",
    "split_log",
    "dataset_card",
    "list_datasets",
    "load_dataset",
    "load_sparse_pickle",
    "read_mmrec",
    "read_mmssl",
    "read_movielens100k",
    "write_mmrec",
]
