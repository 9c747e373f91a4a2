"""Data layer: the Dataset object, readers per format, preparation, graphs, download."""

from mmgcn.data.dataset import DataError, Dataset, ItemContent
from mmgcn.data.log import InteractionLog
from mmgcn.data.prepare import k_core, make_dataset, reindex, select_items, split_log

__all__ = [
    "Dataset",
    "DataError",
    "InteractionLog",
    "ItemContent",
    "k_core",
    "make_dataset",
    "reindex",
    "select_items",
    "split_log",
]
