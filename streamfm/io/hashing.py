"""Stable feature hashing of categorical (string) columns.

A categorical value ``v`` of column ``col`` becomes one feature with value 1.0
and id ``n_numeric + fnv1a_32(f"{col}={v}".encode()) % n_hash_features``.

FNV-1a (32-bit) is used because it is tiny, has no seed and is defined on
bytes, so the ids are the same on every run, machine and Python version
(Python's own ``hash`` of a str is salted per process).  It is sequential, so
the state after ``col=`` is computed once per column and each value only
hashes its own bytes, read straight from Arrow's offsets and data buffers.
"""
from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from streamfm.errors import InputError

FNV_OFFSET = 2166136261
FNV_PRIME = 16777619
_MASK32 = 0xFFFFFFFF


def fnv1a_32(data: bytes, state: int = FNV_OFFSET) -> int:
    """FNV-1a 32-bit hash of ``data`` (pure Python: the reference).

    >>> fnv1a_32(b"")
    2166136261
    >>> fnv1a_32(b"a")
    3826002220
    """
    h = state
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & _MASK32
    return h


@numba.njit(cache=True)
def _fnv_strings(offsets, data, state, out):
    """out[i] = FNV-1a of string i (bytes data[offsets[i]:offsets[i+1]]), from `state`."""
    for i in range(out.shape[0]):
        h = np.uint64(state)
        for k in range(offsets[i], offsets[i + 1]):
            h = ((h ^ np.uint64(data[k])) * np.uint64(FNV_PRIME)) & np.uint64(_MASK32)
        out[i] = h


def hash_strings(arr: pa.Array, column: str) -> np.ndarray:
    """FNV-1a 32-bit hashes (uint32 in int64) of ``column + "=" + value`` for
    every value of a string-like Arrow array.

    Dictionary arrays hash their dictionary once.  Nulls must have been
    rejected by the caller.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        codes = arr.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        return hash_strings(arr.dictionary, column)[codes]
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        # string_view, binary, numbers listed in hash_columns: hash their text.
        import pyarrow.compute as pc  # ~65 ms to import: only for these column types

        arr = pc.cast(arr, pa.large_string() if pa.types.is_large_binary(arr.type) else pa.string())
    large = pa.types.is_large_string(arr.type)
    bufs = arr.buffers()
    off_dtype = np.int64 if large else np.int32
    offsets = np.frombuffer(bufs[1], dtype=off_dtype)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.empty(0, np.uint8)
    state = fnv1a_32(column.encode("utf-8") + b"=")
    out = np.empty(len(arr), dtype=np.int64)
    _fnv_strings(offsets.astype(np.int64, copy=False), data, state, out)
    return out


def hashed_ids(arr: pa.Array, column: str, n_numeric: int, n_hash_features: int) -> np.ndarray:
    """Feature ids (int64) of a categorical column's values."""
    if n_hash_features < 1:
        raise InputError(f"n_hash_features must be at least 1, got {n_hash_features}")
    return n_numeric + hash_strings(arr, column) % n_hash_features
