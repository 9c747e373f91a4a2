"""The Dataset object: validation at construction, immutability, stats on a hand case."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgcn.data.dataset import DataError, Dataset, ItemContent


def _csr(pairs, shape=(4, 5)):
    if not pairs:
        return sp.csr_matrix(shape, dtype=np.float32)
    rows, cols = zip(*pairs)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)


def _build(**overrides):
    kwargs = dict(
        name="t",
        n_users=4,
        n_items=5,
        train=_csr([(0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (2, 3), (3, 0)]),
        valid=_csr([(0, 2), (1, 3)]),
        test=_csr([(0, 3), (2, 4)]),
        features={"image": np.ones((5, 3), np.float32)},
        source="unit.pkl",
    )
    kwargs.update(overrides)
    return Dataset(**kwargs)


def test_stats_hand_computed(tiny_dataset):
    stats = tiny_dataset.stats()
    assert stats["interactions"] == {"train": 7, "valid": 2, "test": 2}
    assert stats["density"] == pytest.approx(11 / 20)
    # item 4 has no train edge; it appears in test only
    assert stats["items_without_train"] == 1
    assert stats["test"]["cold_items"] == 1
    assert stats["test"]["interactions_on_cold_items"] == 1
    assert stats["valid"]["cold_items"] == 0
    assert tiny_dataset.items_in_train.tolist() == [True, True, True, True, False]
    assert tiny_dataset.cold_items("test").tolist() == [4] and tiny_dataset.cold_items("valid").size == 0
    assert stats["modalities"] == {"visual": 6, "acoustic": 3}
    # train user degrees are 2, 2, 2, 1 -> median 2, min 1
    assert stats["train_user_degree"]["0.5"] == 2.0
    assert stats["train_user_degree"]["0.0"] == 1.0
    assert tiny_dataset.cold_items("test").tolist() == [4]


def test_values_become_binary_float32_and_duplicates_collapse():
    train = sp.coo_matrix((np.array([3.0, 2.0, 5.0]), ([0, 0, 1], [0, 0, 1])), shape=(4, 5))
    ds = _build(train=train)
    assert ds.train.dtype == np.float32
    assert ds.train.nnz == 2
    assert set(ds.train.data.tolist()) == {1.0}


def test_is_immutable():
    ds = _build()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.n_users = 3
    with pytest.raises(TypeError):
        ds.features["text"] = torch.zeros(5, 2)
    assert not ds.features["image"].requires_grad


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"train": _csr([])}, "train split is empty"),
        ({"valid": _csr([(0, 0)])}, "splits overlap"),
        ({"test": _csr([(0, 1)], shape=(4, 6))}, "field 'test' has shape (4, 6)"),
        ({"features": {"image": np.ones((4, 3), np.float32)}}, "features 'image' have 4 rows"),
        ({"features": {"image": np.full((5, 3), np.nan, np.float32)}}, "NaN/inf in 5 row(s)"),
        ({"features": {"image": np.ones(5, np.float32)}}, "must be 2-D"),
        ({"features": {"image": np.array([["a"]] * 5)}}, "dtype <U1"),
        ({"n_users": 0}, "field 'n_users' must be a positive integer"),
        ({"content": ItemContent(titles=("a", "b"))}, "content 'titles' has 2 entries"),
        ({"item_meta": {"year": np.zeros(3)}}, "item_meta 'year' has 3 entries"),
    ],
)
def test_invalid_input_names_source_and_field(overrides, fragment):
    with pytest.raises(DataError) as info:
        _build(**overrides)
    message = str(info.value)
    assert message.startswith("unit.pkl:")
    assert fragment in message


def test_overlap_reported_with_counts_and_can_be_allowed():
    with pytest.raises(DataError, match=r"train&valid: 1"):
        _build(valid=_csr([(0, 0), (1, 3)]))
    ds = _build(valid=_csr([(0, 0), (1, 3)]), info={"allow_overlap": True})
    assert ds.split_overlaps()["train&valid"] == 1


def test_select_modalities_and_with_features():
    ds = _build(features={"image": np.ones((5, 3), np.float32), "text": np.zeros((5, 2), np.float32)})
    assert ds.select_modalities(["text"]).modalities == ("text",)
    with pytest.raises(KeyError, match="audio"):
        ds.select_modalities(["audio"])
    with pytest.raises(DataError):
        ds.with_features({"image": np.ones((3, 3), np.float32)})
