"""Property-based fault cases (hypothesis): arbitrary bytes and strings fed to the parsers
give either a valid result or a typed error -- never another exception, never a hang."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmgcn.config import apply_overrides, parse_override
from mmgcn.data.readers.common import load_feature_file
from mmgcn.data.readers.mmrec import read_inter
from mmgcn.data.safe_pickle import load_sparse_pickle
from mmgcn.errors import ConfigError, DataError

pytestmark = pytest.mark.fault_timeout(120)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.text(max_size=60))
def test_any_set_expression_parses_or_is_a_config_error(text):
    try:
        keys, _ = parse_override(text)
    except ConfigError:
        return
    assert keys and all(keys)
    apply_overrides({}, [text])  # and it merges into a config dict


HEADER = "userID\titemID\trating\ttimestamp\tx_label\n"
ROW = st.tuples(st.integers(-3, 3000), st.integers(-3, 3000), st.integers(0, 5), st.integers(0, 10), st.integers(-1, 4))


@FAST
@given(st.lists(ROW, max_size=20), st.binary(max_size=30), st.integers(0, 400))
def test_inter_files_read_or_fail_typed(tmp_path_factory, rows, junk, cut):
    text = HEADER + "".join("\t".join(map(str, r)) + "\n" for r in rows)
    raw = text.encode()[: max(cut, len(HEADER))] + junk
    path = Path(tmp_path_factory.mktemp("inter")) / "x.inter"
    path.write_bytes(raw)
    try:
        users, items, labels = read_inter(path)
    except DataError:
        return
    assert users.dtype == items.dtype == labels.dtype == np.int64
    assert (users >= 0).all() and (items >= 0).all() and ((labels >= 0) & (labels <= 2)).all()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


GOOD = np.arange(24, dtype=np.float32).reshape(6, 4)


@FAST
@given(st.integers(0, len(_npy(GOOD))), st.lists(st.tuples(st.integers(0, 127), st.integers(0, 7)), max_size=3))
def test_feature_files_load_or_fail_typed(tmp_path_factory, cut, flips):
    raw = bytearray(_npy(GOOD)[:cut])
    for position, bit in flips:  # flips in the header (the first 128 bytes)
        if position < len(raw):
            raw[position] ^= 1 << bit
    path = Path(tmp_path_factory.mktemp("npy")) / "x_feat.npy"
    path.write_bytes(bytes(raw))
    try:
        array = load_feature_file(path, 6)
    except DataError:
        return
    assert array.dtype == np.float32 and array.shape[0] == 6 and np.isfinite(array).all()


PICKLE = pickle.dumps(__import__("scipy.sparse", fromlist=["coo_matrix"]).coo_matrix(GOOD > 10), protocol=3)


@FAST
@given(st.integers(0, len(PICKLE)), st.lists(st.tuples(st.integers(0, len(PICKLE) - 1), st.integers(0, 7)), max_size=4))
def test_pickles_load_or_fail_typed(tmp_path_factory, cut, flips):
    raw = bytearray(PICKLE)
    for position, bit in flips:
        raw[position] ^= 1 << bit
    path = Path(tmp_path_factory.mktemp("pkl")) / "m.pkl"
    path.write_bytes(bytes(raw[:cut]))
    try:
        matrix = load_sparse_pickle(path)
    except DataError:
        return
    assert matrix.shape[0] >= 0 and matrix.nnz == matrix.data.size
