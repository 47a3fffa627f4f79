"""Scaling rows feature by feature, as the scan pass's statistics decide.

Every feature j gets an affine map ``x -> (x - shift_j) * scale_j``. A
feature with a shift is *centred*: its implicit zeros become
``-shift_j * scale_j``, so it is stored in every row. The modes
(``--scale``):

- ``auto`` (the default), per feature: a binary feature (values 0 or 1 only)
  keeps its values; a feature non-zero in at least half of the rows and not
  binary ("dense real-valued") is standardised, centred and divided by its
  standard deviation; any other feature (sparse, real-valued or counts) is
  divided by its largest absolute value and not centred: centring would make
  every row store it, and dividing a rare feature by its (tiny) standard
  deviation would blow it up (a one-hot seen in 1 of 80,000 rows becomes ~280).
- ``standard``: every feature divided by its standard deviation; every
  feature centred iff the source is a dense table or has at most 1,000
  features (:func:`should_center`), none otherwise.
- ``maxabs``: every feature divided by its largest absolute value, none centred.
- ``none``: the identity (values are still checked to be finite).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from streamfm.errors import InputError, RowError
from streamfm.io.chunk import INDEX_DTYPE, INDPTR_DTYPE, VALUE_DTYPE, Chunk

SCALE_MODES = ("auto", "standard", "maxabs", "none")

# A feature whose standard deviation is below this fraction of its mean is
# constant up to the rounding of the scan pass: scaling it by 1/std would
# blow rounding noise up to unit size, so it is treated as constant.
_CONSTANT_RTOL = 1e-9


def should_center(scan_result, source_dense: bool, max_dense_features: int = 1000) -> bool:
    """Whether ``standard`` scaling centres every feature (else none).

    Centre a wide (dense) table: every row already stores every column, so
    centring costs nothing in size.  Centre any data with at most
    ``max_dense_features`` features too: rows are densified by the transform,
    which is affordable at that width and gives the coding space (q = p)
    zero-mean coordinates.  Never centre wider sparse data: every implicit
    zero would become ``-mean * scale``, so a row with 30 non-zeros out of
    10^6 features would become 10^6 stored values.
    """
    return bool(source_dense) or int(scan_result.n_features) <= int(max_dense_features)


def seen_stats(stats):
    """The :class:`~streamfm.preprocess.moments.FeatureStats` of a scan result (or the stats themselves)."""
    return getattr(stats, "stats", stats)


def inverse_std(mean, var) -> np.ndarray:
    """``1 / sqrt(var)`` where the feature varies, 1 where it is constant (up to rounding)."""
    mean = np.asarray(mean, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    varies = (var > (_CONSTANT_RTOL * np.abs(mean)) ** 2) & (var > 0)
    scale = np.ones_like(var)
    scale[varies] = 1.0 / np.sqrt(var[varies])
    return scale


def describe_scaling(meta: dict, n_features: int) -> str:
    """The manifest's ``standardizer`` record in words (also for models saved before ``--scale``)."""
    if "scale" not in meta:  # only a centring flag: every feature standardised
        return f"standard: {n_features:,} standardised, " + ("all centred" if meta.get("center") else "none centred")
    return (f"{meta['scale']}: {meta['kept']:,} kept, {meta['standardised']:,} standardised "
            f"({meta['centred']:,} centred), {meta['maxabs']:,} max-abs scaled")


class Standardizer:
    """``x_j -> (x_j - shift_j) * scale_j`` per feature; centred features are stored in every row.

    Parameters
    ----------
    shift, scale : array-like of float, shape (p,)
        The map of every feature; ``shift_j`` must be 0 unless feature j is centred.
    centred : bool or array-like of bool, shape (p,)
        Features whose implicit zeros become ``-shift_j * scale_j``: the output
        stores them in every row.  A bool: every feature or none.
    mode : str
        The ``--scale`` mode that chose the map (recorded, described).
    counts : dict or None
        Features ``kept``, ``standardised``, ``maxabs`` scaled and ``centred``
        (recorded, described); None: counted as a hand-made map (scale 1 and no
        shift: kept; centred: standardised; else max-abs scaled).
    ignore_extra : bool, default False
        A feature index >= p is an InputError; with True such entries are
        dropped and counted in ``dropped`` (entries) and ``dropped_rows``.
    copy : bool, default True
        False: keep ``shift`` and ``scale`` themselves when they are float64
        arrays (the caller gives them up).
    """

    def __init__(self, shift, scale, centred, *, mode: str = "custom", counts: dict | None = None,
                 ignore_extra: bool = False, copy: bool = True) -> None:
        self.shift = np.array(shift, dtype=np.float64, copy=copy or None)
        self.scale = np.array(scale, dtype=np.float64, copy=copy or None)
        if self.shift.shape != self.scale.shape or self.shift.ndim != 1:
            raise ValueError(f"shift and scale must be 1-D of one length, got {self.shift.shape} and {self.scale.shape}")
        p = len(self.shift)
        self.centred = np.array(np.broadcast_to(np.asarray(centred, dtype=bool), (p,)))
        if np.any((self.shift != 0) & ~self.centred):
            raise ValueError("a feature that is not centred must have shift 0")
        self.mode = str(mode)
        self.ignore_extra = bool(ignore_extra)
        self._centred_idx = np.flatnonzero(self.centred).astype(INDEX_DTYPE)
        # What centring maps an implicit zero to, per centred feature (and per feature when every
        # feature is centred: a row is then made whole from it).
        self._shift_c = self.shift[self._centred_idx]
        self._zero_image_c = -self._shift_c * self.scale[self._centred_idx]
        self._zero_image = self._zero_image_c if self.n_centred == p else None
        if counts is None:
            kept = int(np.count_nonzero(~self.centred & (self.scale == 1.0)))
            counts = {"kept": kept, "standardised": self.n_centred, "maxabs": p - kept - self.n_centred,
                      "centred": self.n_centred}
        self.counts = {k: int(counts[k]) for k in ("kept", "standardised", "maxabs", "centred")}
        self.dropped = 0
        self.dropped_rows = 0

    # ------------------------------------------------------------ the maps
    @classmethod
    def from_moments(cls, mean, var, center: bool, **kwargs) -> "Standardizer":
        """The ``standard`` map: every feature divided by its standard deviation, every feature
        centred (``center``) or none; a constant feature gets scale 1 (and, if centred, becomes 0)."""
        mean = np.asarray(mean, dtype=np.float64)
        scale = inverse_std(mean, var)
        p = len(mean)
        counts = {"kept": 0, "standardised": p, "maxabs": 0, "centred": p if center else 0}
        return cls(mean if center else np.zeros(p), scale, bool(center), mode="standard", counts=counts, **kwargs)

    @classmethod
    def from_scan(cls, stats, mode: str = "auto", *, dense_source: bool = False, **kwargs) -> "Standardizer":
        """The map ``mode`` chooses from the scan pass's per-feature statistics.

        ``stats``: a :class:`~streamfm.preprocess.scan.ScanResult` or
        :class:`~streamfm.preprocess.moments.FeatureStats`. ``dense_source``: the
        data is a dense table (``standard`` then centres every feature).
        """
        if mode not in SCALE_MODES:
            raise InputError(f"--scale must be one of {', '.join(SCALE_MODES)}, got {mode!r}")
        fs = seen_stats(stats)
        p, seen = int(fs.n_features), fs.features
        # computed over the features seen; one never seen (mean, variance, largest value 0,
        # binary) keeps its values in every mode: shift 0, scale 1
        shift, scale = np.zeros(p), np.ones(p)
        if mode == "standard":
            center = should_center(fs, dense_source)
            scale[seen] = inverse_std(fs.seen_mean, fs.seen_var)
            if center:
                shift[seen] = fs.seen_mean
            counts = {"kept": 0, "standardised": p, "maxabs": 0, "centred": p if center else 0}
            return cls(shift, scale, bool(center), mode=mode, counts=counts, copy=False, **kwargs)
        max_abs = np.asarray(fs.seen_max_abs, dtype=np.float64)
        if mode == "none":
            return cls(shift, scale, False, mode=mode, counts={"kept": p, "standardised": 0, "maxabs": 0,
                                                               "centred": 0}, copy=False, **kwargs)
        if mode == "maxabs":
            by_max = max_abs > 0
            scale[seen[by_max]] = 1.0 / max_abs[by_max]
            return cls(shift, scale, False, mode=mode, counts={"kept": 0, "standardised": 0, "maxabs": p,
                                                               "centred": 0}, copy=False, **kwargs)
        binary = np.asarray(fs.seen_binary, dtype=bool)
        dense = 2 * np.asarray(fs.seen_nnz, dtype=np.int64) >= int(fs.n_rows)
        standardised = dense & ~binary
        by_max = ~dense & ~binary & (max_abs > 0)  # a feature that is not binary has a value other than 0
        shift[seen[standardised]] = np.asarray(fs.seen_mean, dtype=np.float64)[standardised]
        scale[seen[standardised]] = inverse_std(fs.seen_mean[standardised], fs.seen_var[standardised])
        scale[seen[by_max]] = 1.0 / max_abs[by_max]
        n_std = int(np.count_nonzero(standardised))
        centred = np.zeros(p, dtype=bool)
        centred[seen[standardised]] = True
        counts = {"kept": p - len(seen) + int(np.count_nonzero(binary)), "standardised": n_std,
                  "maxabs": int(np.count_nonzero(~dense & ~binary)), "centred": n_std}
        return cls(shift, scale, centred, mode=mode, counts=counts, copy=False, **kwargs)

    # ---------------------------------------------------------- properties
    @property
    def n_features(self) -> int:
        return len(self.shift)

    @property
    def n_centred(self) -> int:
        return len(self._centred_idx)

    @property
    def center(self) -> bool:
        """Every feature centred: every output row holds all p features."""
        return self.n_centred == self.n_features

    def stored_rows(self, stats) -> np.ndarray:
        """Training rows in which each feature is stored after scaling: int64 (p,).

        ``stats.n_rows`` for a centred feature, ``stats.nnz_per_feature`` (rows
        holding it non-zero) for any other; ``stats`` may be narrower than p
        (features it never saw: 0) or wider (the extra features are not the
        model's).
        """
        fs = seen_stats(stats)
        p = self.n_features
        out = np.zeros(p, dtype=np.int64)
        inside = fs.features < p
        out[fs.features[inside]] = fs.seen_nnz[inside]
        out[self._centred_idx] = int(fs.n_rows)
        return out

    def meta(self) -> dict:
        """What the manifest records (the arrays go beside it: see ``TrainedModel.state``)."""
        return {"scale": self.mode, **self.counts}

    def describe(self) -> str:
        return describe_scaling(self.meta(), self.n_features)

    # ----------------------------------------------------------- transform
    def transform(self, chunk: Chunk) -> Chunk:
        """The chunk scaled; its ``n_features`` becomes the model's p.

        Rows keep their indices unless some features are centred (and missing
        from a row): a centred feature is stored in every row, indices sorted.
        O(nnz + rows x centred features).

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
        if self.n_centred == 0 or full_width:
            # one pass: check, shift and scale every stored value. A full-width
            # row holds columns 0..p-1 in order (indices are sorted and distinct
            # within a row), so centring keeps its indices: they are shared.
            # Nothing centred: every shift is 0 and is not read (one random
            # access less per value on wide data).
            data = np.empty(len(chunk.data), dtype=VALUE_DTYPE)
            if self.n_centred == 0:
                bad = _scale(chunk.indices, chunk.data, self.scale, data)
            else:
                bad = _shift_scale(chunk.indices, chunk.data, self.shift, self.scale, data)
            if bad >= 0:
                self._raise_nonfinite(chunk, bad)
            return Chunk(chunk.indptr, chunk.indices, data, chunk.y, p, full_width or None, chunk.weights)
        if self.center:
            if len(chunk.data) and not np.isfinite(chunk.data).all():
                self._raise_nonfinite(chunk, int(np.flatnonzero(~np.isfinite(chunk.data))[0]))
            return self._center(chunk)
        indptr, indices, data, bad = _merge_centred(chunk.indptr, chunk.indices, chunk.data, self._centred_idx,
                                                    self._shift_c, self._zero_image_c, self.scale)
        if bad >= 0:
            self._raise_nonfinite(chunk, bad)
        return Chunk(indptr, indices, data, chunk.y, p, weights=chunk.weights)

    @staticmethod
    def _raise_nonfinite(chunk: Chunk, e: int):
        row = int(np.searchsorted(chunk.indptr, e, side="right")) - 1
        raise RowError(row, f"feature {int(chunk.indices[e])} has the value {chunk.data[e]}: values must be finite")

    def _center(self, chunk: Chunk) -> Chunk:
        """Rows with implicit zeros, every feature centred: every row becomes all p columns."""
        n, p = chunk.n_rows, self.n_features
        lengths = np.diff(chunk.indptr)
        out = np.empty((n, p), dtype=VALUE_DTYPE)
        out[:] = self._zero_image
        idx = chunk.indices
        flat = np.repeat(np.arange(n, dtype=np.int64) * p, lengths) + idx
        out.reshape(-1)[flat] = (chunk.data - self.shift[idx]) * self.scale[idx]
        return Chunk.from_dense(out, chunk.y).with_weights(chunk.weights)

    def check(self, chunk: Chunk) -> None:
        """Raise what :meth:`transform` would for a feature index beyond the model (unless
        ``ignore_extra``), without transforming or counting anything."""
        if not self.ignore_extra:
            self._extra(chunk)

    def _extra(self, chunk: Chunk) -> np.ndarray | None:
        """The mask of entries beyond the model's features (None: none); raises unless ``ignore_extra``."""
        p = self.n_features
        idx = chunk.indices
        if (chunk.n_features <= p and chunk.full_width) or len(idx) == 0 or int(idx.max()) < p:
            return None  # full-width rows hold indices 0..n_features-1 only
        extra = idx >= p
        if not self.ignore_extra:
            e = int(np.flatnonzero(extra)[0])
            row = int(np.searchsorted(chunk.indptr, e, side="right")) - 1
            raise RowError(row,
                f"feature index {int(idx[e])} is beyond the model's {p} features "
                "(the data is wider than the data the model was trained on; "
                "--ignore-extra-features, or ignore_extra=True in Python, drops such features)"
            )
        return extra

    def _drop_extra(self, chunk: Chunk) -> Chunk:
        p = self.n_features
        idx = chunk.indices
        extra = self._extra(chunk)
        if extra is None:
            return chunk
        rows = np.repeat(np.arange(chunk.n_rows), np.diff(chunk.indptr))
        hit = np.bincount(rows[extra], minlength=chunk.n_rows)
        self.dropped += int(extra.sum())
        self.dropped_rows += int(np.count_nonzero(hit))
        keep = ~extra
        indptr = np.zeros(chunk.n_rows + 1, dtype=INDPTR_DTYPE)
        np.cumsum(np.diff(chunk.indptr) - hit, out=indptr[1:])
        return Chunk(indptr, idx[keep].astype(INDEX_DTYPE, copy=False), chunk.data[keep], chunk.y, p,
                     weights=chunk.weights)

    def __repr__(self) -> str:
        return f"Standardizer(p={self.n_features}, {self.describe()}, ignore_extra={self.ignore_extra})"


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


@njit(cache=True, nogil=True)
def _scale(indices, data, scale, out):
    """out = data * scale[j] entry by entry; the position of the first non-finite value, or -1."""
    for t in range(data.shape[0]):
        v = data[t]
        if not np.isfinite(v):
            return t
        out[t] = v * scale[indices[t]]
    return -1


@njit(cache=True, nogil=True)
def _merge_centred(indptr, indices, data, cidx, shift_c, zero_image_c, scale):
    """Rows with every centred feature stored: each row's sorted indices merged with the sorted ``cidx``.

    A stored entry becomes ``(v - shift) * scale[j]`` (the shift is 0 unless
    j is centred: ``shift_c`` holds the centred features' own); a centred
    feature a row does not store becomes ``zero_image_c`` (its ``-shift * scale``).
    Returns (indptr, indices, data, position of the first non-finite value or -1).
    O(nnz + rows x centred features), reading only ``scale`` of the p-sized arrays.
    """
    n = indptr.shape[0] - 1
    n_c = cidx.shape[0]
    out_indptr = np.empty(n + 1, dtype=np.int64)
    out_indptr[0] = 0
    for i in range(n):
        held = 0  # centred features the row stores
        c = 0
        for t in range(indptr[i], indptr[i + 1]):
            j = indices[t]
            while c < n_c and cidx[c] < j:
                c += 1
            if c < n_c and cidx[c] == j:
                held += 1
                c += 1
        out_indptr[i + 1] = out_indptr[i] + (indptr[i + 1] - indptr[i]) + n_c - held
    total = out_indptr[n]
    out_indices = np.empty(total, dtype=indices.dtype)
    out_data = np.empty(total, dtype=np.float64)
    for i in range(n):
        c = 0
        o = out_indptr[i]
        for t in range(indptr[i], indptr[i + 1]):
            j = indices[t]
            while c < n_c and cidx[c] < j:  # centred features the row lacks, before j
                out_indices[o] = cidx[c]
                out_data[o] = zero_image_c[c]
                c += 1
                o += 1
            v = data[t]
            if not np.isfinite(v):
                return out_indptr, out_indices, out_data, t
            if c < n_c and cidx[c] == j:
                v -= shift_c[c]
                c += 1
            out_indices[o] = j
            out_data[o] = v * scale[j]
            o += 1
        while c < n_c:
            out_indices[o] = cidx[c]
            out_data[o] = zero_image_c[c]
            c += 1
            o += 1
    return out_indptr, out_indices, out_data, -1
