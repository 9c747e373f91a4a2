"""Bridge to PyTorch Geometric: a :class:`Dataset` as a ``HeteroData`` graph and back.

Layout of the ``HeteroData`` (``torch_geometric.data.HeteroData``)::

    data["user"].num_nodes                      n_users
    data["item"].num_nodes                      n_items
    data["item"].x_<modality>                   (n_items, d) float32 features per modality
    data["user", "train", "item"].edge_index    (2, n_train) int64, row 0 users, row 1 items
    data["user", "valid", "item"].edge_index    (2, n_valid)
    data["user", "test", "item"].edge_index     (2, n_test)
    data[...].time                              (n_split,) int64 event times, when the dataset has them
    data.name                                   the dataset name

Edges come in CSR order (by user, items ascending), so a round trip
``Dataset.from_pyg(dataset.to_pyg())`` gives back the same splits, features and times.
Message passing over the train graph usually wants the reverse edges too:
``torch_geometric.transforms.ToUndirected()`` adds them (``("item", "rev_train", "user")``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from mmgcn.data.dataset import SPLITS, DataError, Dataset

if TYPE_CHECKING:  # pragma: no cover
    from torch_geometric.data import HeteroData

FEATURE_PREFIX = "x_"


def to_pyg(dataset: Dataset) -> HeteroData:
    """The dataset as a ``HeteroData`` (see the module doc for the layout)."""
    import torch
    from torch_geometric.data import HeteroData

    data = HeteroData()
    data.name = dataset.name
    data["user"].num_nodes = dataset.n_users
    data["item"].num_nodes = dataset.n_items
    for modality in dataset.features:
        data["item"][FEATURE_PREFIX + modality] = dataset.features[modality]
    for split in SPLITS:
        csr = dataset.split(split)
        users = np.repeat(np.arange(dataset.n_users, dtype=np.int64), np.diff(csr.indptr))
        edges = data["user", split, "item"]
        edges.edge_index = torch.from_numpy(np.stack([users, csr.indices.astype(np.int64)]))
        times = dataset.split_times(split)
        if times is not None:
            edges.time = torch.from_numpy(times.copy())
    return data


def from_pyg(data: Any, name: str | None = None, *, info: dict[str, Any] | None = None) -> Dataset:
    """A :class:`Dataset` from a ``HeteroData`` laid out as :func:`to_pyg` writes it.

    Args:
        data: the graph: ``user`` / ``item`` node types, ``(user, train|valid|test, item)``
            edge types (a missing valid or test type is an empty split), ``x_<modality>``
            item features, optional ``time`` per edge type.
        name: dataset name (default ``data.name``, else ``"pyg"``).
        info: provenance for ``Dataset.info``.

    Raises:
        DataError: no ``user`` / ``item`` nodes or no train edges, edge ids out of range,
            ``time`` on some edge types only, features with the wrong row count.
    """
    source = f"<HeteroData {name or getattr(data, 'name', None) or 'pyg'}>"
    if "user" not in data.node_types or "item" not in data.node_types:
        raise DataError(f"{source}: needs node types 'user' and 'item', has {data.node_types}")
    n_users, n_items = int(data["user"].num_nodes), int(data["item"].num_nodes)
    if ("user", "train", "item") not in data.edge_types:
        raise DataError(f"{source}: needs edge type ('user', 'train', 'item'); has {data.edge_types}")
    matrices, times = {}, {}
    for split in SPLITS:
        key = ("user", split, "item")
        if key not in data.edge_types:
            matrices[split] = sp.csr_matrix((n_users, n_items), dtype=np.float32)
            times[split] = np.zeros(0, dtype=np.int64)
            continue
        index = data[key].edge_index.detach().cpu().numpy().astype(np.int64)
        if index.ndim != 2 or index.shape[0] != 2:
            raise DataError(f"{source}: {key}.edge_index must be (2, n), got {index.shape}")
        users, items = index
        if index.size and (users.min() < 0 or users.max() >= n_users or items.min() < 0 or items.max() >= n_items):
            raise DataError(f"{source}: {key}.edge_index has ids outside {n_users} users x {n_items} items")
        matrices[split] = sp.csr_matrix((np.ones(users.size, np.float32), (users, items)), shape=(n_users, n_items))
        if "time" in data[key]:
            from mmgcn.data.readers.mmrec import csr_ordered_times

            times[split] = csr_ordered_times(users, items, data[key].time.detach().cpu().numpy(), n_items)
    timed = [s for s in SPLITS if s in times and ("user", s, "item") in data.edge_types]
    present = [s for s in SPLITS if ("user", s, "item") in data.edge_types]
    if timed and timed != present:
        raise DataError(f"{source}: edge 'time' on {timed} but not on {sorted(set(present) - set(timed))}; all or none")
    item_store = data["item"]
    features = {
        key[len(FEATURE_PREFIX):]: item_store[key].detach().cpu()
        for key in item_store.keys() if key.startswith(FEATURE_PREFIX)
    }
    return Dataset(
        name=name or getattr(data, "name", None) or "pyg",
        n_users=n_users,
        n_items=n_items,
        **matrices,
        features=features,
        info=dict(info or {}, format="pyg"),
        source=source,
        timestamps=times if timed else None,
    )
