"""The one thing every reader yields: a bounded batch of rows in CSR form.

Arrays, not objects, cross module boundaries: kernels take ``indptr``,
``indices`` and ``data`` directly.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numba import njit

from streamfm.errors import InputError

INDPTR_DTYPE = np.int64
INDEX_DTYPE = np.int32
VALUE_DTYPE = np.float64

#: The largest magnitude a value (feature or numeric label) may have: its square must be a finite
#: float64 (sqrt(max float64) is 1.34e154), or the scan pass's variance overflows. The readers
#: refuse larger values as bad input.
MAX_ABS_VALUE = 1e154

# Full-width rows all carry the indices 0..p-1: chunks of such rows share one
# index array (per width and row-count class) instead of each tiling its own.
# Sharing halves the index memory the kernel streams through (its copy stays
# in cache) and saves a tile per chunk. Arrays above this many entries are
# not kept (a 1,000-feature table of 65,536-row chunks would pin 262 MB).
_SHARED_INDEX_ENTRIES = 1 << 22


@lru_cache(maxsize=8)
def _index_pattern(p: int, rows: int) -> np.ndarray:
    return np.tile(np.arange(p, dtype=INDEX_DTYPE), rows)


def full_width_indices(p: int, k: int) -> np.ndarray:
    """The indices of ``k`` full-width rows of ``p`` features: 0..p-1 repeated ``k`` times.

    A view of a shared array when small enough (see ``_SHARED_INDEX_ENTRIES``):
    nothing may write to a chunk's indices in place.
    """
    rows = 1 << max(int(k) - 1, 0).bit_length()  # the next power of two: few distinct arrays
    if rows * p > _SHARED_INDEX_ENTRIES:
        return np.tile(np.arange(p, dtype=INDEX_DTYPE), k)
    return _index_pattern(int(p), rows)[: k * p]


def full_width_indptr(p: int, k: int) -> np.ndarray:
    return np.arange(0, k * p + 1, p, dtype=INDPTR_DTYPE)


@dataclass
class Chunk:
    """``n_rows`` rows of a data set.

    indptr : int64 (n_rows + 1,)   row i's entries are indptr[i]:indptr[i+1]
    indices: int32 (nnz,)          0-based feature ids, sorted within a row
    data   : float64 (nnz,)        values (explicit zeros may be present)
    y      : (n_rows,)             raw labels: float64, or str for text labels
    n_features : int               width known for this chunk (declared width
                                   of a table, or max index + 1 seen)
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    y: np.ndarray
    n_features: int
    # whether every row holds all n_features columns: set by the constructors
    # that know it, else computed once by ``full_width``
    _full: bool | None = field(default=None, repr=False, compare=False)
    weights: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    @property
    def full_width(self) -> bool:
        """Every row holds all ``n_features`` columns (a dense table): indices are 0..p-1 per row."""
        if self._full is None:
            self._full = bool(self.n_features) and self.rows_of_length(self.n_features)
        return self._full

    def rows_of_length(self, p: int) -> bool:
        """Every row holds exactly ``p`` entries: with indices sorted and distinct, columns 0..p-1."""
        n = self.n_rows
        return bool(self.nnz == n * p and (n == 0 or (np.diff(self.indptr) == p).all()))

    def row_weights(self) -> np.ndarray:
        """The weights, ones for an unweighted chunk."""
        return np.ones(self.n_rows) if self.weights is None else self.weights

    def with_weights(self, weights) -> "Chunk":
        """This chunk's rows with the given weights (None: unweighted); the arrays are shared."""
        return dataclasses.replace(self, weights=weights)

    def _weights_of(self, rows) -> np.ndarray | None:
        return None if self.weights is None else self.weights[rows]

    def to_scipy(self, n_features: int | None = None):
        import scipy.sparse as sp

        p = self.n_features if n_features is None else n_features
        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=(self.n_rows, p))

    def to_dense(self, n_features: int | None = None) -> np.ndarray:
        p = self.n_features if n_features is None else n_features
        out = np.zeros((self.n_rows, p), dtype=VALUE_DTYPE)
        rows = np.repeat(np.arange(self.n_rows), np.diff(self.indptr))
        out[rows, self.indices] = self.data
        return out

    def slice(self, start: int, stop: int) -> "Chunk":
        """Rows ``start:stop`` as views into this chunk's arrays (contiguous rows: no copy but
        the row offsets). The views keep this chunk's arrays alive while the slice lives."""
        a, b = int(self.indptr[start]), int(self.indptr[stop])
        indptr = (self.indptr[start : stop + 1] - a).astype(INDPTR_DTYPE)
        return Chunk(indptr, self.indices[a:b], self.data[a:b], self.y[start:stop], self.n_features,
                     weights=self._weights_of(slice(start, stop)))

    def take(self, rows: np.ndarray) -> "Chunk":
        """The given rows, in the given order (used by the shuffle buffer)."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n_rows):
            raise IndexError(f"row index out of range for a chunk of {self.n_rows} rows")
        n, p, k = self.n_rows, self.n_features, len(rows)
        if n and self.full_width:
            # full-width rows (a dense table): every row holds columns 0..p-1 in
            # order (indices sorted, distinct, < p), so only values move; NumPy's
            # row gather of a 2-d array is ~2x the numba loop's speed (measured)
            return Chunk(full_width_indptr(p, k), full_width_indices(p, k),
                         self.data.reshape(n, p)[rows].reshape(-1), self.y[rows], p, True, self._weights_of(rows))
        indptr = np.empty(k + 1, dtype=INDPTR_DTYPE)
        nnz = _gather_indptr(self.indptr, rows, indptr)
        indices = np.empty(nnz, dtype=self.indices.dtype)
        data = np.empty(nnz, dtype=self.data.dtype)
        _scatter_entries(self.indptr, self.indices, self.data, rows, indptr[:-1], indices, data)
        return Chunk(indptr, indices, data, self.y[rows], self.n_features, weights=self._weights_of(rows))

    @staticmethod
    def take_from(parts: list["Chunk"], rows: np.ndarray) -> "Chunk":
        """``Chunk.concat(parts).take(rows)`` without building the concatenation.

        The shuffle buffer gathers each output chunk from the rows it holds,
        which arrive as several chunks: gathering from them in place copies
        every row once instead of twice (measured: the concatenation was a
        fifth of the reading pipeline's time on dense rows).
        """
        if len(parts) == 1:
            return parts[0].take(rows)
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        starts = np.cumsum([0] + [c.n_rows for c in parts])
        if len(rows) and (rows.min() < 0 or rows.max() >= starts[-1]):
            raise IndexError(f"row index out of range for {starts[-1]} rows")
        part = np.searchsorted(starts, rows, side="right") - 1
        local = rows - starts[part]
        sels = [np.flatnonzero(part == i) for i in range(len(parts))]  # output positions per part
        k = len(rows)
        p = max(c.n_features for c in parts)
        y = np.empty(k, dtype=np.result_type(*[c.y.dtype for c in parts]))
        w = None
        if any(c.weights is not None for c in parts):
            w = np.empty(k)
            for c, sel in zip(parts, sels):
                w[sel] = c.row_weights()[local[sel]]
        if all(c.n_features == p and c.full_width for c in parts):
            # full-width rows: only values move (see take)
            X = np.empty((k, p), dtype=VALUE_DTYPE)
            for c, sel in zip(parts, sels):
                _scatter_dense_rows(c.data.reshape(c.n_rows, p), local[sel], sel, X)
                y[sel] = c.y[local[sel]]
            return Chunk(full_width_indptr(p, k), full_width_indices(p, k), X.reshape(-1), y, p, True, w)
        lengths = np.empty(k, dtype=INDPTR_DTYPE)
        for c, sel in zip(parts, sels):
            lengths[sel] = c.indptr[local[sel] + 1] - c.indptr[local[sel]]
            y[sel] = c.y[local[sel]]
        indptr = np.zeros(k + 1, dtype=INDPTR_DTYPE)
        np.cumsum(lengths, out=indptr[1:])
        indices = np.empty(int(indptr[-1]), dtype=np.result_type(*[c.indices.dtype for c in parts]))
        data = np.empty(int(indptr[-1]), dtype=VALUE_DTYPE)
        for c, sel in zip(parts, sels):
            _scatter_entries(c.indptr, c.indices, c.data, local[sel], indptr[sel], indices, data)
        return Chunk(indptr, indices, data, y, p, weights=w)

    @staticmethod
    def from_dense(X: np.ndarray, y: np.ndarray) -> "Chunk":
        """Every column kept (zeros included), so a dense table stays dense."""
        X = np.ascontiguousarray(X, dtype=VALUE_DTYPE)
        n, p = X.shape
        return Chunk(full_width_indptr(p, n), full_width_indices(p, n), X.ravel(), np.asarray(y), p, p > 0)

    @staticmethod
    def from_scipy(X, y: np.ndarray) -> "Chunk":
        X = X.tocsr()
        X.sum_duplicates()  # sorted, distinct indices per row (what full_width and the kernels assume)
        return Chunk(
            X.indptr.astype(INDPTR_DTYPE),
            X.indices.astype(INDEX_DTYPE),
            X.data.astype(VALUE_DTYPE),
            np.asarray(y),
            X.shape[1],
        )

    @staticmethod
    def concat(chunks: list["Chunk"]) -> "Chunk":
        if len(chunks) == 1:
            return chunks[0]
        offsets = np.cumsum([0] + [c.nnz for c in chunks[:-1]])
        indptr = np.concatenate(
            [np.zeros(1, INDPTR_DTYPE)] + [c.indptr[1:] + o for c, o in zip(chunks, offsets)]
        )
        return Chunk(
            indptr.astype(INDPTR_DTYPE),
            np.concatenate([c.indices for c in chunks]),
            np.concatenate([c.data for c in chunks]),
            np.concatenate([c.y for c in chunks]),
            max(c.n_features for c in chunks),
            weights=None if all(c.weights is None for c in chunks) else np.concatenate(
                [c.row_weights() for c in chunks]),
        )


def sample_weights(weights, n: int) -> np.ndarray | None:
    """Sample weights given for ``n`` rows as float64 (n,) (a scalar: the same for every row), checked
    finite and >= 0 (InputError, a ValueError, otherwise); None stays None (every row weighs 1)."""
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    w = np.full(n, float(w)) if w.ndim == 0 else w
    if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any():
        raise InputError(f"sample_weight must be {n} finite numbers >= 0 (one per sample), got "
                         f"{'shape ' + str(w.shape) if w.shape != (n,) else 'other values'}")
    if n and not w.any():
        raise InputError("sample_weight: every weight is zero, which leaves nothing to learn from")
    return w


@njit(cache=True, nogil=True)
def _gather_indptr(indptr, rows, out_indptr):
    """Row pointers of ``rows`` gathered in order; returns their number of entries."""
    out_indptr[0] = 0
    k = 0
    for a in range(rows.shape[0]):
        r = rows[a]
        k += indptr[r + 1] - indptr[r]
        out_indptr[a + 1] = k
    return k


@njit(cache=True, nogil=True)
def _scatter_entries(indptr, indices, data, rows, dst_starts, out_indices, out_data):
    """Copy the entries of ``rows`` to positions ``dst_starts`` of the output arrays.

    One sequential pass (a memcpy per row): ~10x faster than building the
    gather positions with NumPy (repeat, cumsum, fancy indexing).
    """
    for a in range(rows.shape[0]):
        r = rows[a]
        src = indptr[r]
        dst = dst_starts[a]
        for t in range(indptr[r + 1] - src):
            out_indices[dst + t] = indices[src + t]
            out_data[dst + t] = data[src + t]


@njit(cache=True, nogil=True)
def _scatter_dense_rows(src, rows, dst_rows, out):
    """out[dst_rows[a]] = src[rows[a]]: one copy per row (NumPy's ``out[d] = src[r]`` makes two)."""
    p = src.shape[1]
    for a in range(rows.shape[0]):
        r = rows[a]
        d = dst_rows[a]
        for j in range(p):
            out[d, j] = src[r, j]
