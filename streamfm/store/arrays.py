"""The arrays of a checkpoint: names, dtypes, ``.npy`` files and their manifest entries.

An array is stored as ``<name>.npy`` in its checkpoint directory, so its name
is a file name; the manifest records its shape and dtype
(``{"shape": [...], "dtype": "float64"}``), which loading checks against the
file.
"""
from __future__ import annotations

import os
import pathlib
import re
from typing import Any

import numpy as np

# Array names become file names: no separators, no leading dot.
ARRAY_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*\Z")
NPY_MAGIC = b"\x93NUMPY"


def prepare_array(name: Any, value: Any) -> np.ndarray:
    """``value`` as an array that can be saved as ``name``; raises before anything is written."""
    if not isinstance(name, str) or not ARRAY_NAME_RE.match(name):
        raise ValueError(
            f"array name {name!r} cannot be a file name: use letters, digits, '_', '.', '+', '-', "
            "not starting with '.'"
        )
    # asarray keeps memory maps as views: nothing is copied here.
    arr = np.asarray(value)
    if arr.dtype.hasobject or arr.dtype.kind == "V":
        raise TypeError(f"array {name!r} has dtype {arr.dtype}: object and structured arrays cannot be saved")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _dtype_text(dtype: np.dtype) -> str:
    # "float64" reads best; "<U5" for the few dtypes whose name does not
    # parse back ("str160").
    try:
        if np.dtype(dtype.name) == dtype:
            return dtype.name
    except (TypeError, ValueError):
        pass
    return dtype.str


def array_meta(arr: np.ndarray) -> dict:
    """The manifest's entry for an array."""
    return {"shape": list(arr.shape), "dtype": _dtype_text(arr.dtype)}


def valid_array_meta(meta: Any) -> bool:
    """Whether ``meta`` is a well-formed manifest entry (a shape of naturals, a dtype NumPy reads)."""
    if not isinstance(meta, dict):
        return False
    shape = meta.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        return False
    dtype = meta.get("dtype")
    if not isinstance(dtype, str):
        return False
    try:
        np.dtype(dtype)
    except (TypeError, ValueError):
        return False
    return True


def write_npy(path: pathlib.Path, arr: np.ndarray) -> None:
    """A new ``.npy`` file, fsynced."""
    # "xb": a fresh file in a fresh directory; np.save to an open file
    # writes a memory map straight from its pages (no copy).
    with open(path, "xb") as f:
        np.save(f, arr, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
