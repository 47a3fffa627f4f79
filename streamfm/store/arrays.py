"""The arrays of a checkpoint: names, dtypes, ``.npy`` files and their manifest entries.

An array is stored as ``<name>.npy`` in its checkpoint directory, so its name
is a file name; the manifest records its shape, dtype and the CRC-32 of its
data (``{"shape": [...], "dtype": "float64", "crc32": 123}``): loading checks
the shape and dtype against the file, and the checksum of arrays up to
``CHEAP_VERIFY_BYTES`` (all of them on request, ``streamfm info --verify``).
The checksum is computed while the file is written, in one pass over the
array.  Manifests written before checksums have none: nothing to verify.
"""
from __future__ import annotations

import os
import pathlib
import re
import zlib
from typing import Any

import numpy as np

# Array names become file names: no separators, no leading dot.
ARRAY_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*\Z")
NPY_MAGIC = b"\x93NUMPY"
#: Arrays up to this size are verified against their checksum whenever a checkpoint is opened:
#: reading 16 MiB costs a few milliseconds; larger ones (W, V of large models, memory-mapped and
#: paged in only as used) are verified by ``streamfm info --verify`` and before training continues.
CHEAP_VERIFY_BYTES = 16 << 20
# bytes checksummed and written at a time
_BLOCK = 16 << 20


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


def array_meta(arr: np.ndarray, crc: int | None = None) -> dict:
    """The manifest's entry for an array (with the checksum of its data, when known)."""
    meta = {"shape": list(arr.shape), "dtype": _dtype_text(arr.dtype)}
    if crc is not None:
        meta["crc32"] = int(crc)
    return meta


def _blocks(arr: np.ndarray):
    """The bytes of ``arr`` (C order) in blocks of about ``_BLOCK`` bytes, without copying a
    C-contiguous array (a memory map included)."""
    flat = np.ascontiguousarray(arr).reshape(-1)
    step = max(1, _BLOCK // max(flat.itemsize, 1))
    for start in range(0, len(flat), step):
        yield memoryview(flat[start:start + step]).cast("B")


def checksum(arr: np.ndarray) -> int:
    """CRC-32 of an array's data (C order): what the manifest records."""
    crc = 0
    for block in _blocks(arr):
        crc = zlib.crc32(block, crc)
    return crc


def verify(name: str, arr: np.ndarray, meta: dict) -> str | None:
    """What is wrong with an array against its manifest entry's checksum (None: nothing, or no
    checksum recorded)."""
    expected = meta.get("crc32")
    if expected is None:
        return None
    if checksum(arr) != expected:
        return f"{name}.npy does not match its checksum (the file was changed or damaged after it was written)"
    return None


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
    crc = meta.get("crc32", 0)
    if not isinstance(crc, int) or isinstance(crc, bool) or not 0 <= crc < 2**32:
        return False
    try:
        np.dtype(dtype)
    except (TypeError, ValueError):
        return False
    return True


def write_npy(path: pathlib.Path, arr: np.ndarray) -> int:
    """A new ``.npy`` file, fsynced; returns the CRC-32 of the array's data, computed on the way.

    The data are written in blocks straight from the array's memory (a memory
    map's pages included: no copy of the array).  A full disk is an
    ``OSError`` (ENOSPC) naming the file.
    """
    # "xb": a fresh file in a fresh directory
    header = {"descr": np.lib.format.dtype_to_descr(arr.dtype), "fortran_order": False, "shape": arr.shape}
    with open(path, "xb") as f:
        try:
            np.lib.format.write_array_header_1_0(f, header)
        except ValueError:  # a header too long for format 1.0: nothing was written yet
            np.lib.format.write_array_header_2_0(f, header)
        crc = 0
        for block in _blocks(arr):
            crc = zlib.crc32(block, crc)
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    return crc
