"""Arrow record batch -> Chunk, shared by the CSV and wide-Parquet readers.

The columns of a :class:`~streamfm.io.table.TableLayout` become CSR rows:
every numeric column (zeros included), then the row's hashed categorical
ids.  Values are checked here: a null, NaN or infinite value, or one of
magnitude above ``MAX_ABS_VALUE`` (1e154, whose square overflows), is an
error naming the file, the 1-based data row and the column, or, with
``skip_bad_rows``, a dropped row.
"""
from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from streamfm.errors import InputError
from streamfm.io.chunk import INDEX_DTYPE, INDPTR_DTYPE, MAX_ABS_VALUE, VALUE_DTYPE, Chunk
from streamfm.io.hashing import hashed_ids
from streamfm.io.table import TableLayout, is_numeric_type, is_text_type


def where(path: str, row: int, column: str) -> str:
    """'file: row N, column 'c'' -- N is the 1-based data row of the file."""
    return f"{path}: row {row}, column '{column}'"


def _plain_numbers(arr) -> bool:
    """Fixed-width integers or floats (not half floats) without nulls: readable from the buffer."""
    t = arr.type
    return arr.null_count == 0 and (pa.types.is_integer(t) or pa.types.is_floating(t)) and not pa.types.is_float16(t)


def to_numpy(arr) -> np.ndarray:
    """An Arrow array as NumPy; fixed-width numbers without nulls as a view of the buffer.

    ``Array.to_numpy`` imports pandas the first time (half a second of
    start-up, measured), even for a plain float64 column: the common case
    reads the buffer directly instead. The dtype is spelled from the Arrow
    type, not ``to_pandas_dtype()``: on pyarrow 14-25 that imports pandas
    too, and raises where pandas is not installed.
    """
    if _plain_numbers(arr):
        t = arr.type
        kind = "f" if pa.types.is_floating(t) else ("u" if pa.types.is_unsigned_integer(t) else "i")
        dtype = np.dtype(f"{kind}{t.bit_width // 8}")
        buf = arr.buffers()[1]
        return np.frombuffer(buf, dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)
    return arr.to_numpy(zero_copy_only=False)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def numeric_column(arr, name: str, path: str, row0: int, bad: np.ndarray | None, what: str = "value") -> np.ndarray:
    """A feature column as float64; nulls, NaN, inf and values beyond ``MAX_ABS_VALUE`` raise, or
    mark rows in ``bad``.

    ``row0`` is the number of data rows of the file before this batch;
    ``what`` ("value" or "label") is what the message calls the field.
    A text column (a Parquet file whose column the model reads as numbers)
    is parsed, and a value that is not a number raises naming it.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if is_text_type(arr.type):
        arr = _parse_text(arr, name, path, row0, bad)
    if pa.types.is_decimal(arr.type) or pa.types.is_boolean(arr.type):
        import pyarrow.compute as pc  # ~65 ms to import: only for these column types

        arr = pc.cast(arr, pa.float64())
    nulls = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
    x = np.asarray(to_numpy(arr), dtype=VALUE_DTYPE)
    with np.errstate(invalid="ignore"):
        nonfinite = ~(np.abs(x) <= MAX_ABS_VALUE)
    if nulls is not None:
        nonfinite |= nulls
    if nonfinite.any():
        if bad is None:
            i = _first(nonfinite)
            state = "is empty (missing)" if nulls is not None and nulls[i] else f"is {x[i]}"
            limit = "" if nulls is not None and nulls[i] or not np.isfinite(x[i]) else \
                f" of magnitude at most {MAX_ABS_VALUE:g} (their squares must fit a float64)"
            raise InputError(
                f"{where(path, row0 + i + 1, name)}: the {what} {state}; {what}s must be finite numbers{limit}"
            )
        bad |= nonfinite
        x = np.where(nonfinite, 0.0, x)
    return x


def _parse_text(arr, name: str, path: str, row0: int, bad: np.ndarray | None):
    """Text that should be numbers, as float64: a value that is not a number raises (or is NaN,
    a bad row, with ``bad``)."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    values = arr.to_pylist()
    out = np.empty(len(values), dtype=VALUE_DTYPE)
    for i, v in enumerate(values):
        try:
            out[i] = np.nan if v is None else float(v)
        except (TypeError, ValueError):
            if bad is None:
                raise InputError(f"{where(path, row0 + i + 1, name)}: '{v}' is not a number, but the model "
                                 "reads this column as numbers") from None
            out[i] = np.nan
    return pa.array(out, mask=arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None)


def label_column(arr, name: str, path: str, row0: int, bad: np.ndarray | None) -> np.ndarray:
    """Raw labels: float64 for numeric columns, str for text columns."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if is_numeric_type(arr.type) or pa.types.is_null(arr.type):
        return numeric_column(arr, name, path, row0, bad, what="label")
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if arr.null_count:
        nulls = arr.is_null().to_numpy(zero_copy_only=False)
        if bad is None:
            raise InputError(f"{where(path, row0 + _first(nulls) + 1, name)}: the label is empty (missing)")
        bad |= nulls
        arr = arr.fill_null("")
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=str)


def weight_column(arr, name: str, path: str, row0: int, bad: np.ndarray | None) -> np.ndarray:
    """Sample weights as float64: finite and >= 0, else an error naming the file, row and column
    (or, with ``bad``, rows marked bad)."""
    w = numeric_column(arr, name, path, row0, bad, what="weight")
    negative = w < 0
    if negative.any():
        if bad is None:
            i = _first(negative)
            raise InputError(f"{where(path, row0 + i + 1, name)}: the weight is {w[i]}; weights must be "
                             "finite numbers >= 0")
        bad |= negative
        w = np.where(negative, 0.0, w)
    return w


def text_nulls(arr, name: str, path: str, row0: int, bad: np.ndarray | None):
    """Reject (or mark) nulls of a hashed column; return it with nulls filled."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not arr.null_count:
        return arr
    nulls = arr.is_null().to_numpy(zero_copy_only=False)
    if bad is None:
        raise InputError(f"{where(path, row0 + _first(nulls) + 1, name)}: the value is empty (missing)")
    bad |= nulls
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    return arr.fill_null("")


@numba.njit(cache=True)
def _assemble(X, H, indptr, indices, data):
    """CSR rows: all numeric columns of X, then the row's hashed ids sorted,
    with ids that collide in one row merged (their 1.0 values summed)."""
    n, p = X.shape
    h = H.shape[1]
    ids = np.empty(h, dtype=np.int64)
    nnz = 0
    indptr[0] = 0
    for i in range(n):
        for j in range(p):
            indices[nnz] = j
            data[nnz] = X[i, j]
            nnz += 1
        for k in range(h):
            ids[k] = H[i, k]
        ids.sort()
        k = 0
        while k < h:
            v = 1.0
            while k + 1 < h and ids[k + 1] == ids[k]:
                v += 1.0
                k += 1
            indices[nnz] = ids[k]
            data[nnz] = v
            nnz += 1
            k += 1
        indptr[i + 1] = nnz
    return nnz


@numba.njit(cache=True, nogil=True)
def _columns_to_rows(S, X, limit):
    """X[i, j] = S[j, i], in blocks of 64 rows (NumPy's strided ``X[:] = S.T`` was ~1.8x slower,
    measured); returns whether every value is finite and of magnitude at most ``limit``.

    Finiteness is summed, not tested per value (v * 0 is 0 for finite v, NaN
    otherwise), and the magnitude is a running maximum: a branch in the loop
    made it ~1.5x slower.
    """
    p, n = S.shape
    acc = 0.0
    top = 0.0
    for i0 in range(0, n, 64):
        i1 = min(i0 + 64, n)
        for j in range(p):
            for i in range(i0, i1):
                v = S[j, i]
                acc += v * 0.0
                top = max(top, abs(v))
                X[i, j] = v
    return np.isfinite(acc) and top <= limit


def _plain_rows(batch, names: list[str]) -> np.ndarray | None:
    """The numeric columns as (n, p) float64 rows when all are plain numbers (fixed-width
    integers or floats without nulls, all finite and at most ``MAX_ABS_VALUE``); None otherwise.

    The common case of a wide table: the columns are stacked (a sequential copy,
    casting to float64) and turned into rows and checked in one numba pass.
    """
    if not names:
        return np.empty((batch.num_rows, 0), dtype=VALUE_DTYPE)
    cols = [batch.column(name) for name in names]
    if isinstance(cols[0], pa.ChunkedArray):
        cols = [c.combine_chunks() for c in cols]
    S = np.empty((len(cols), batch.num_rows), dtype=VALUE_DTYPE)
    for j, arr in enumerate(cols):
        if not _plain_numbers(arr):
            return None
        S[j] = to_numpy(arr)
    X = np.empty((batch.num_rows, len(cols)), dtype=VALUE_DTYPE)
    return X if _columns_to_rows(S, X, MAX_ABS_VALUE) else None


def batch_to_chunk(batch, layout: TableLayout, path: str, row0: int, skip_bad: bool) -> tuple[Chunk, int]:
    """One Arrow batch (or table) of a table layout as a Chunk.

    Returns the chunk and the number of rows dropped as bad (always 0 unless
    ``skip_bad``).
    """
    n = batch.num_rows
    bad = np.zeros(n, dtype=bool) if skip_bad else None
    if layout.label is None:  # read without its label (predictions): no labels
        y = np.zeros(n, dtype=VALUE_DTYPE)
    else:
        y = label_column(batch.column(layout.label), layout.label, path, row0, bad)
    w = None if layout.weight is None else weight_column(batch.column(layout.weight), layout.weight, path, row0,
                                                          bad)
    p = len(layout.numeric)
    X = _plain_rows(batch, layout.numeric)
    if X is None:  # nulls, unusual types or a non-finite value: column by column, naming the culprit
        X = np.empty((n, p), dtype=VALUE_DTYPE)
        for j, name in enumerate(layout.numeric):
            X[:, j] = numeric_column(batch.column(name), name, path, row0, bad)
    if layout.hashed:
        H = np.empty((n, len(layout.hashed)), dtype=np.int64)
        for k, name in enumerate(layout.hashed):
            col = text_nulls(batch.column(name), name, path, row0, bad)
            H[:, k] = hashed_ids(col, name, p, layout.n_hash_features)
        size = n * (p + len(layout.hashed))
        indptr = np.empty(n + 1, dtype=INDPTR_DTYPE)
        indices = np.empty(size, dtype=INDEX_DTYPE)
        data = np.empty(size, dtype=VALUE_DTYPE)
        nnz = _assemble(X, H, indptr, indices, data)
        chunk = Chunk(indptr, indices[:nnz], data[:nnz], y, layout.n_features)
    else:
        chunk = Chunk.from_dense(X, y)
    return drop_bad_rows(chunk.with_weights(w), bad)


def drop_bad_rows(chunk: Chunk, bad: np.ndarray | None) -> tuple[Chunk, int]:
    """The chunk without the rows ``bad`` marks (None: none), and how many those were."""
    if bad is None or not bad.any():
        return chunk, 0
    return chunk.take(np.flatnonzero(~bad)), int(bad.sum())
