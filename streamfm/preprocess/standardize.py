"""Standardising rows with the scan pass's per-feature mean and variance.

Dense data is centred and scaled to zero mean, unit variance (as the LLFM
paper does); wide sparse data is only scaled, because centring would turn
every implicit zero into ``-mean * scale`` and make every row dense.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from streamfm.errors import InputError
from streamfm.io.chunk import INDEX_DTYPE, INDPTR_DTYPE, VALUE_DTYPE, Chunk

# A feature whose standard deviation is below this fraction of its mean is
# constant up to the rounding of the scan pass: scaling it by 1/std would
# blow rounding noise up to unit size, so it is treated as constant.
_CONSTANT_RTOL = 1e-9


def should_center(scan_result, source_dense: bool, max_dense_features: int = 1000) -> bool:
    """Whether to centre the data as well as scale it.

    Centre a wide (dense) table: every row already stores every column, so
    centring costs nothing in size.  Centre any data with at most
    ``max_dense_features`` features too: rows are densified by the transform,
    which is affordable at that width and gives the coding space (q = p)
    zero-mean coordinates.  Never centre wider sparse data: every implicit
    zero would become ``-mean * scale``, so a row with 30 non-zeros out of
    10^6 features would become 10^6 stored values.
    """
    return bool(source_dense) or int(scan_result.n_features) <= int(max_dense_features)


class Standardizer:
    """``x -> (x - mean) * scale`` (centred) or ``x -> x * scale`` (scaled only).

    Parameters
    ----------
    mean, var : array-like of float, shape (p,)
        Per-feature mean and population variance (from the scan pass).
    center : bool
        Subtract the mean.  The output then stores all p columns of every row.
    ignore_extra : bool, default False
        A feature index >= p is an InputError; with True such entries are
        dropped and counted in ``dropped`` (entries) and ``dropped_rows``.

    Notes
    -----
    ``scale = 1 / sqrt(var)`` where the feature varies; a constant feature
    gets scale 1 (and, if centred, becomes 0).
    """

    def __init__(self, mean, var, center: bool, *, ignore_extra: bool = False) -> None:
        self.mean = np.asarray(mean, dtype=np.float64).copy()
        self.var = np.asarray(var, dtype=np.float64).copy()
        if self.mean.shape != self.var.shape or self.mean.ndim != 1:
            raise ValueError(f"mean and var must be 1-D of one length, got {self.mean.shape} and {self.var.shape}")
        self.center = bool(center)
        self.ignore_extra = bool(ignore_extra)
        varies = self.var > (_CONSTANT_RTOL * np.abs(self.mean)) ** 2
        varies &= self.var > 0
        self.scale = np.ones_like(self.var)
        self.scale[varies] = 1.0 / np.sqrt(self.var[varies])
        # What centring maps an implicit zero to, per feature.
        self._zero_image = -self.mean * self.scale
        self._no_shift = np.zeros_like(self.mean)
        self.dropped = 0
        self.dropped_rows = 0

    @classmethod
    def from_scan(cls, scan_result, center: bool, **kwargs) -> "Standardizer":
        """From a :class:`~streamfm.preprocess.scan.ScanResult`."""
        return cls(scan_result.mean, scan_result.var, center, **kwargs)

    @property
    def n_features(self) -> int:
        return len(self.mean)

    def transform(self, chunk: Chunk) -> Chunk:
        """The chunk standardised; its ``n_features`` becomes the model's p.

        Raises
        ------
        InputError
            A feature index >= p (unless ``ignore_extra``), or a non-finite value.
        """
        chunk = self._drop_extra(chunk)
        p = self.n_features
        # known to the chunk (set by its maker, or computed once); a chunk declared wider than the
        # model may still hold exactly columns 0..p-1 in every row
        full_width = chunk.full_width if chunk.n_features == p else chunk.rows_of_length(p)
        if not self.center or full_width:
            # one pass: check, shift and scale every stored value. A full-width
            # row holds columns 0..p-1 in order (indices are sorted and distinct
            # within a row), so centring keeps its indices: they are shared.
            data = np.empty(len(chunk.data), dtype=VALUE_DTYPE)
            bad = _shift_scale(chunk.indices, chunk.data, self.mean if self.center else self._no_shift,
                               self.scale, data)
            if bad >= 0:
                self._raise_nonfinite(chunk, bad)
            return Chunk(chunk.indptr, chunk.indices, data, chunk.y, p, full_width or None)
        if len(chunk.data) and not np.isfinite(chunk.data).all():
            self._raise_nonfinite(chunk, int(np.flatnonzero(~np.isfinite(chunk.data))[0]))
        return self._center(chunk)

    @staticmethod
    def _raise_nonfinite(chunk: Chunk, e: int):
        raise InputError(f"feature {int(chunk.indices[e])} has the value {chunk.data[e]}: values must be finite")

    def _center(self, chunk: Chunk) -> Chunk:
        """Rows with implicit zeros, centred: every row becomes all p columns."""
        n, p = chunk.n_rows, self.n_features
        lengths = np.diff(chunk.indptr)
        out = np.empty((n, p), dtype=VALUE_DTYPE)
        out[:] = self._zero_image
        idx = chunk.indices
        flat = np.repeat(np.arange(n, dtype=np.int64) * p, lengths) + idx
        out.reshape(-1)[flat] = (chunk.data - self.mean[idx]) * self.scale[idx]
        return Chunk.from_dense(out, chunk.y)

    def _drop_extra(self, chunk: Chunk) -> Chunk:
        p = self.n_features
        idx = chunk.indices
        if (chunk.n_features <= p and chunk.full_width) or len(idx) == 0 or int(idx.max()) < p:
            return chunk  # full-width rows hold indices 0..n_features-1 only
        extra = idx >= p
        if not self.ignore_extra:
            e = int(np.flatnonzero(extra)[0])
            raise InputError(
                f"feature index {int(idx[e])} is beyond the model's {p} features "
                "(the data is wider than the data the model was trained on; "
                "ignore_extra=True drops such features)"
            )
        rows = np.repeat(np.arange(chunk.n_rows), np.diff(chunk.indptr))
        hit = np.bincount(rows[extra], minlength=chunk.n_rows)
        self.dropped += int(extra.sum())
        self.dropped_rows += int(np.count_nonzero(hit))
        keep = ~extra
        indptr = np.zeros(chunk.n_rows + 1, dtype=INDPTR_DTYPE)
        np.cumsum(np.diff(chunk.indptr) - hit, out=indptr[1:])
        return Chunk(indptr, idx[keep].astype(INDEX_DTYPE, copy=False), chunk.data[keep], chunk.y, p)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable (arrays as lists); the drop counters are not state."""
        return {
            "mean": self.mean.tolist(),
            "var": self.var.tolist(),
            "center": self.center,
            "ignore_extra": self.ignore_extra,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Standardizer":
        return cls(d["mean"], d["var"], d["center"], ignore_extra=d.get("ignore_extra", False))

    def __repr__(self) -> str:
        return f"Standardizer(p={self.n_features}, center={self.center}, ignore_extra={self.ignore_extra})"


@njit(cache=True, nogil=True)
def _shift_scale(indices, data, shift, scale, out):
    """out = (data - shift[j]) * scale[j] entry by entry; the position of the first non-finite value, or -1."""
    for t in range(data.shape[0]):
        v = data[t]
        if not np.isfinite(v):
            return t
        j = indices[t]
        out[t] = (v - shift[j]) * scale[j]
    return -1
