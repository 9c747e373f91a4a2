"""The restricted unpickler: real MMSSL pickles load; anything else is refused unexecuted."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess

import numpy as np
import pytest
import scipy.sparse as sp

from mmgcn.data.dataset import DataError
from mmgcn.data.safe_pickle import UnsafePickleError, load_sparse_pickle, restricted_load


class _Payload:
    """Pickles to ``func(*args)``: what a malicious data file does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker):
    quoted = str(marker)
    return {
        "os.system": _Payload(os.system, f"touch '{quoted}'"),
        "builtins.eval": _Payload(builtins.eval, f"open({quoted!r}, 'w').write('pwned')"),
        "builtins.exec": _Payload(builtins.exec, f"open({quoted!r}, 'w').write('pwned')"),
        "subprocess.check_call": _Payload(subprocess.check_call, ["touch", quoted]),
    }


def test_real_tiktok_pickle_loads(data_root):
    matrix = load_sparse_pickle(data_root / "tiktok" / "trnMat.pkl")
    assert isinstance(matrix, sp.coo_matrix)
    assert matrix.shape == (9308, 6710)
    assert matrix.nnz == 59541
    assert np.all(matrix.data == 1.0)


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_modern_pickles_round_trip(tmp_path, protocol):
    original = sp.coo_matrix(
        (np.array([1.0, 2.0, 3.0]), (np.array([0, 1, 2]), np.array([2, 0, 1]))), shape=(3, 4)
    )
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(original, protocol=protocol))
    loaded = load_sparse_pickle(path)
    assert loaded.shape == (3, 4)
    np.testing.assert_array_equal(loaded.toarray(), original.toarray())


def test_control_payload_really_executes_with_plain_pickle(tmp_path):
    # the payloads below are live: an unrestricted pickle.loads runs them
    marker = tmp_path / "pwned-control"
    pickle.loads(pickle.dumps(_payloads(marker)["builtins.exec"]))
    assert marker.exists()


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "builtins.exec", "subprocess.check_call"])
@pytest.mark.parametrize("protocol", [0, 3, 5])
def test_malicious_pickle_is_refused_and_not_executed(tmp_path, name, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "trnMat.pkl"
    path.write_bytes(pickle.dumps(_payloads(marker)[name], protocol=protocol))
    with pytest.raises(UnsafePickleError) as info:
        load_sparse_pickle(path)
    message = str(info.value)
    assert str(path) in message
    assert "refused to unpickle global" in message
    assert name.split(".")[1] in message  # the refused callable is named
    assert not marker.exists()


def test_payload_hidden_inside_a_sparse_matrix_is_refused(tmp_path):
    # a real coo_matrix whose data array is swapped for a payload: the allowed outer
    # global must not open the door to the inner one
    marker = tmp_path / "pwned"
    matrix = sp.coo_matrix((np.ones(1), (np.array([0]), np.array([0]))), shape=(1, 1))
    raw = pickle.dumps({"m": matrix, "x": _payloads(marker)["os.system"]}, protocol=3)
    path = tmp_path / "mixed.pkl"
    path.write_bytes(raw)
    with pytest.raises(UnsafePickleError, match="system"):
        restricted_load(path)
    assert not marker.exists()


def test_object_dtype_arrays_are_refused(tmp_path):
    path = tmp_path / "objects.pkl"
    path.write_bytes(pickle.dumps(np.array([1, "a"], dtype=object), protocol=3))
    with pytest.raises(DataError, match="object dtype"):
        restricted_load(path)


def test_truncated_pickle_is_a_clear_error(tmp_path, data_root):
    raw = (data_root / "tiktok" / "valMat.pkl").read_bytes()
    path = tmp_path / "valMat.pkl"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError) as info:
        load_sparse_pickle(path)
    assert str(path) in str(info.value)
    assert "truncated" in str(info.value)


def test_garbage_bytes_are_a_clear_error(tmp_path):
    path = tmp_path / "tstMat.pkl"
    path.write_bytes(b"this is not a pickle at all")
    with pytest.raises(DataError, match="tstMat.pkl"):
        load_sparse_pickle(path)


def test_a_pickle_of_something_else_is_rejected(tmp_path):
    path = tmp_path / "array.pkl"
    path.write_bytes(pickle.dumps(np.arange(3), protocol=3))
    with pytest.raises(DataError, match="expected a pickled scipy.sparse.coo_matrix"):
        load_sparse_pickle(path)


def test_out_of_range_indices_are_rejected(tmp_path):
    matrix = sp.coo_matrix((np.ones(2), (np.array([0, 1]), np.array([1, 0]))), shape=(2, 3))
    matrix.coords = (np.array([0, 5], dtype=np.int32), np.array([1, 0], dtype=np.int32))
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(matrix, protocol=3))
    with pytest.raises(DataError, match=r"field 'row' has index outside \[0, 2\)"):
        load_sparse_pickle(path)


def test_length_mismatch_is_rejected(tmp_path):
    matrix = sp.coo_matrix((np.ones(2), (np.array([0, 1]), np.array([1, 0]))), shape=(2, 3))
    matrix.coords = (np.array([0, 1, 1], dtype=np.int32), np.array([1, 0, 2], dtype=np.int32))
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(matrix, protocol=3))
    with pytest.raises(DataError, match="differ in length"):
        load_sparse_pickle(path)
