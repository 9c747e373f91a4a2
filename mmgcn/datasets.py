"""Datasets in one import, for notebooks and scripts::

    import mmgcn.datasets as mds

    mds.list_datasets()                                   # built-in cards + your own
    shop = mds.import_table("shop", "interactions.csv", items="items.csv", split="temporal")
    tiktok = mds.load_dataset("tiktok")

The same objects as :mod:`mmgcn.data` (this module only gathers them): the
:class:`~mmgcn.data.dataset.Dataset`, :func:`~mmgcn.data.importer.import_table`
(``mmgcn datasets import``), :func:`~mmgcn.data.registry.load_dataset`,
:func:`~mmgcn.data.registry.list_datasets`, :func:`~mmgcn.data.registry.dataset_card`,
:func:`~mmgcn.data.tables.read_table`, :func:`~mmgcn.data.synthetic.make_synthetic`,
:func:`~mmgcn.data.demo.write_demo_shop` (a small shop written as CSV files + images), and
the PyG bridge :func:`~mmgcn.data.pyg.from_pyg` (``Dataset.to_pyg()`` goes the other way).
"""

from mmgcn.data.dataset import DataError, Dataset, ItemContent
from mmgcn.data.demo import write_demo_shop
from mmgcn.data.importer import import_table
from mmgcn.data.registry import dataset_card, list_datasets, load_dataset
from mmgcn.data.synthetic import make_synthetic
from mmgcn.data.tables import read_table

__all__ = [
    "DataError",
    "Dataset",
    "ItemContent",
    "dataset_card",
    "import_table",
    "list_datasets",
    "load_dataset",
    "make_synthetic",
    "read_table",
    "write_demo_shop",
]
