"""Data layer: the Dataset object, readers per format, preparation, graphs, download."""

from mmgcn.data.dataset import DataError, Dataset, ItemContent

__all__ = ["Dataset", "DataError", "ItemContent"]
