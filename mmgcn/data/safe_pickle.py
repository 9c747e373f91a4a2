"""A restricted unpickler for the sparse-matrix pickles of the MMSSL / DiffMM datasets.

``trnMat.pkl`` / ``valMat.pkl`` / ``tstMat.pkl`` are ``scipy.sparse.coo_matrix`` objects
pickled with protocol 3 by an old numpy / scipy. A plain ``pickle.load`` of a file from the
internet runs whatever callable the file names, so these files are read with an
unpickler that resolves only an allow-list of globals:

=========================================  =============================================
global in the file                          resolved to
=========================================  =============================================
``scipy.sparse.coo coo_matrix``             a plain state holder (no scipy code runs);
``scipy.sparse._coo coo_matrix``            :func:`load_sparse_pickle` validates the
``scipy.sparse coo_matrix``                 arrays and builds a fresh ``coo_matrix``
``numpy dtype``                             ``numpy.dtype``, refusing object dtypes
``numpy ndarray``                           ``numpy.ndarray``
``numpy.core.multiarray _reconstruct``      ``numpy``'s array reconstructor (old and
``numpy._core.multiarray _reconstruct``     numpy 2 module paths)
``numpy.core.numeric _frombuffer``          ``numpy``'s buffer reconstructor (what
``numpy._core.numeric _frombuffer``         protocol 5 pickles of arrays use)
=========================================  =============================================

Any other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) is refused
*before* it is looked up, with an :class:`UnsafePickleError` naming the file and the
global. Object dtypes are refused too, so no array can carry arbitrary Python objects.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from mmgcn.data.dataset import DataError
from mmgcn.data.limits import check_id_space
from mmgcn.errors import UnsafeInputError

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
    from numpy._core.numeric import _frombuffer as _np_frombuffer
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct
    from numpy.core.numeric import _frombuffer as _np_frombuffer


class UnsafePickleError(UnsafeInputError):
    """A pickle asked for a global outside the allow-list (it was not loaded)."""


class _PickledCooMatrix:
    """Stand-in for ``coo_matrix`` while unpickling: records the pickled state only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # a REDUCE-style pickle would pass constructor args; we only accept the
        # NEWOBJ + BUILD form that scipy's pickles use
        if args or kwargs:
            raise pickle.UnpicklingError("coo_matrix constructor arguments are not supported")
        self.state: dict[str, Any] | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"coo_matrix state must be a dict, got {type(state).__name__}")
        self.state = state


def _safe_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"object dtype {dtype!r} is not allowed (it can hold arbitrary objects)")
    return dtype


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("scipy.sparse.coo", "coo_matrix"): _PickledCooMatrix,
    ("scipy.sparse._coo", "coo_matrix"): _PickledCooMatrix,
    ("scipy.sparse", "coo_matrix"): _PickledCooMatrix,
    ("numpy", "dtype"): _safe_dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _np_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _np_frombuffer,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, source: str) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in ALLOWED_GLOBALS)
            raise UnsafePickleError(
                f"{self.source}: refused to unpickle global '{module}.{name}'; only sparse-matrix "
                f"and numpy array globals are allowed ({allowed}). The file is not a plain "
                f"scipy.sparse matrix pickle -- do not load it; re-download it from its upstream "
                f"source and check its sha256"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: persistent ids are not allowed in a data pickle")


def restricted_load(path: str | os.PathLike) -> Any:
    """Unpickle ``path`` with the allow-list above.

    Returns the unpickled object; a pickled ``coo_matrix`` comes back as an internal
    state holder -- use :func:`load_sparse_pickle` to get a validated matrix.

    Raises:
        UnsafePickleError: the file names a global outside the allow-list.
        DataError: the file is missing bytes (truncated) or is not a pickle.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    try:
        return _RestrictedUnpickler(io.BytesIO(raw), str(path)).load()
    except UnsafePickleError:
        raise
    except EOFError:
        raise DataError(
            f"{path}: pickle ends early (truncated, {len(raw)} bytes); re-download the file "
            f"(`mmgcn datasets download NAME --force`)"
        ) from None
    except Exception as exc:  # any unpickling failure is a data error
        raise DataError(
            f"{path}: not a readable sparse-matrix pickle ({type(exc).__name__}: {exc}); the file "
            f"is truncated or corrupt -- re-download it (`mmgcn datasets download NAME --force`)"
        ) from None


def _state_array(state: dict, key: str, source: str) -> np.ndarray:
    value = state.get(key)
    if not isinstance(value, np.ndarray) or value.ndim != 1:
        raise DataError(f"{source}: coo_matrix field '{key}' must be a 1-D numpy array, got {type(value).__name__}")
    return value


def load_sparse_pickle(path: str | os.PathLike) -> sp.coo_matrix:
    """Load a pickled ``scipy.sparse.coo_matrix`` safely; shape ``(n_rows, n_cols)``.

    Accepts the layout of old scipy (``row`` / ``col`` fields) and of scipy >= 1.13
    (``coords``). The arrays are validated (integer indices in range, finite numeric
    values, equal lengths) and a fresh ``coo_matrix`` is built from them.

    Raises:
        UnsafePickleError: the file names a global outside the allow-list.
        DataError: truncated / corrupt file, or a matrix whose fields do not validate.
    """
    path = Path(path)
    source = str(path)
    obj = restricted_load(path)
    if not isinstance(obj, _PickledCooMatrix) or obj.state is None:
        raise DataError(f"{source}: expected a pickled scipy.sparse.coo_matrix, got {type(obj).__name__}")
    state = obj.state
    shape = state.get("_shape", state.get("shape"))
    if (
        not isinstance(shape, tuple)
        or len(shape) != 2
        or not all(isinstance(s, (int, np.integer)) and s >= 0 for s in shape)
    ):
        raise DataError(f"{source}: coo_matrix field '_shape' must be two non-negative ints, got {shape!r}")
    for field_name, size in zip(("n_rows", "n_cols"), shape):
        check_id_space(int(size), f"_shape ({field_name})", source)
    if "coords" in state:
        coords = state["coords"]
        if not isinstance(coords, tuple) or len(coords) != 2:
            raise DataError(f"{source}: coo_matrix field 'coords' must be a (row, col) pair")
        state = {**state, "row": coords[0], "col": coords[1]}
    row = _state_array(state, "row", source)
    col = _state_array(state, "col", source)
    data = _state_array(state, "data", source)
    for key, arr in (("row", row), ("col", col)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"{source}: coo_matrix field '{key}' must hold integer indices, got {arr.dtype}")
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == np.bool_):
        raise DataError(f"{source}: coo_matrix field 'data' must be numeric, got {data.dtype}")
    if not row.size == col.size == data.size:
        raise DataError(
            f"{source}: coo_matrix fields 'row', 'col', 'data' differ in length "
            f"({row.size}, {col.size}, {data.size}); the file is corrupt -- re-download it"
        )
    for key, arr, bound in (("row", row, shape[0]), ("col", col, shape[1])):
        if arr.size and (arr.min() < 0 or arr.max() >= bound):
            raise DataError(
                f"{source}: coo_matrix field '{key}' has index outside [0, {bound}) "
                f"(min {arr.min()}, max {arr.max()}); the file is corrupt -- re-download it"
            )
    if data.size and np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        raise DataError(f"{source}: coo_matrix field 'data' contains NaN/inf")
    return sp.coo_matrix((data, (row, col)), shape=(int(shape[0]), int(shape[1])))
