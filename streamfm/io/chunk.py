"""The one thing every reader yields: a bounded batch of rows in CSR form.

Arrays, not objects, cross module boundaries: kernels take ``indptr``,
``indices`` and ``data`` directly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INDPTR_DTYPE = np.int64
INDEX_DTYPE = np.int32
VALUE_DTYPE = np.float64


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

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

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

    def take(self, rows: np.ndarray) -> "Chunk":
        """The given rows, in the given order (used by the shuffle buffer)."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = np.diff(self.indptr)[rows]
        indptr = np.zeros(len(rows) + 1, dtype=INDPTR_DTYPE)
        np.cumsum(lengths, out=indptr[1:])
        starts = self.indptr[rows]
        # positions of every kept entry, built without a Python loop over rows
        offs = np.arange(indptr[-1], dtype=np.int64) - np.repeat(indptr[:-1], lengths)
        src = np.repeat(starts, lengths) + offs
        return Chunk(indptr, self.indices[src], self.data[src], self.y[rows], self.n_features)

    @staticmethod
    def from_dense(X: np.ndarray, y: np.ndarray) -> "Chunk":
        """Every column kept (zeros included), so a dense table stays dense."""
        X = np.ascontiguousarray(X, dtype=VALUE_DTYPE)
        n, p = X.shape
        indptr = np.arange(0, n * p + 1, p, dtype=INDPTR_DTYPE)
        indices = np.tile(np.arange(p, dtype=INDEX_DTYPE), n)
        return Chunk(indptr, indices, X.ravel(), np.asarray(y), p)

    @staticmethod
    def from_scipy(X, y: np.ndarray) -> "Chunk":
        X = X.tocsr()
        X.sort_indices()
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
        )
