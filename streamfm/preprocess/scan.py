"""The scan pass: one streaming read of the training data before any learning.

It collects what the later stages need and what the model manifest stores:
row count, width ``p``, non-zeros, the label set and the task, per-feature
mean and population variance, the per-feature statistics that decide how a
feature is scaled (rows holding it non-zero, its largest absolute value,
whether it is 0/1 only), and a seeded reservoir sample of rows (the k-means
input for the anchors).

Memory is O(p + sample_size * row size + one chunk), whatever the number of
rows.  Moments are merged chunk by chunk with Chan, Golub & LeVeque's parallel
update; within a chunk they use the corrected two-pass formula, so features
with a large mean (say 1e6) and unit variance keep their variance to ~1e-10.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
from numba import njit

from streamfm.errors import InputError
from streamfm.io.chunk import Chunk
from streamfm.progress import progress_bar

TASKS = ("binary", "multiclass", "regression")

# Labels quoted in an error message, at most.
_SHOW_LABELS = 10


class AllRowsHeldOut(InputError):
    """``scan(holdout=...)`` held out every row (only likely on a handful of rows)."""


# ----------------------------------------------------------------------------
# Result
# ----------------------------------------------------------------------------


@dataclass
class FeatureStats:
    """Per-feature statistics of a set of rows: what decides and sets each feature's scaling.

    A :class:`ScanResult` has the same attributes (see there); this is what
    :func:`feature_stats` computes from rows in memory.
    """

    n_rows: int
    n_features: int
    mean: np.ndarray
    var: np.ndarray
    nnz_per_feature: np.ndarray
    max_abs: np.ndarray
    binary: np.ndarray


@dataclass
class ScanResult:
    """What one pass over the training data found.

    Attributes
    ----------
    n_rows : int
        Rows read.
    n_features : int
        ``p``: the larger of the source's declared width and the largest
        feature index seen + 1.
    nnz : int
        Stored entries (explicit zeros included).
    density : float
        ``nnz / (n_rows * n_features)``.
    labels : ndarray or None
        Sorted distinct raw labels (float64, or str for text labels); None for
        a regression with more than ``max_classes`` distinct values.
    label_counts : ndarray of int64 or None
        Rows per entry of ``labels``.
    task : {'binary', 'multiclass', 'regression'}
    classes : ndarray or None
        Class list of a classification task (sorted distinct labels, or the
        list given, in its order).  For binary, ``classes[1]`` is the positive
        class.  None for regression.
    binary_labels_kind : {'0/1', '-1/+1', 'other'} or None
        Which binary label convention was seen; None unless binary.
    mean, var : ndarray of float64, shape (n_features,)
        Per-feature mean and population variance over all rows, a missing
        sparse entry counting as 0.
    nnz_per_feature : ndarray of int64, shape (n_features,)
        Rows in which the feature has a non-zero value (explicit zeros do not
        count).
    max_abs : ndarray of float64, shape (n_features,)
        Largest absolute value of the feature (0 if never non-zero).
    binary : ndarray of bool, shape (n_features,)
        Every value of the feature seen is 0 or 1 (True for a feature never
        seen).
    sample : Chunk or None
        Up to ``sample_size`` rows drawn uniformly (reservoir sampling), with
        their raw labels.
    label_mean, label_var : float or None
        Mean and population variance of numeric labels (None for text labels);
        a regression model may start its bias at ``label_mean``.
    n_held : int
        Rows held out (``scan(holdout=...)``): not counted in ``n_rows``,
        ``nnz``, the moments or the sample.  The label set (``labels``,
        ``label_counts``, ``classes``, the label moments) and ``n_features``
        cover them too, so that every held-out row fits the model.
    """

    n_rows: int
    n_features: int
    nnz: int
    density: float
    labels: np.ndarray | None
    label_counts: np.ndarray | None
    task: str
    classes: np.ndarray | None
    binary_labels_kind: str | None
    mean: np.ndarray
    var: np.ndarray
    nnz_per_feature: np.ndarray
    max_abs: np.ndarray
    binary: np.ndarray
    sample: Chunk | None = None
    label_mean: float | None = None
    label_var: float | None = None
    n_held: int = 0

    @property
    def n_classes(self) -> int:
        """Number of classes (0 for regression)."""
        return 0 if self.classes is None else len(self.classes)


# ----------------------------------------------------------------------------
# Label helpers
# ----------------------------------------------------------------------------


def _is_text(y: np.ndarray) -> bool:
    return np.asarray(y).dtype.kind in "USO"


def _fmt_label(v) -> str:
    """A label as a user wrote it: 3 rather than 3.0."""
    if isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, (str, np.str_)):
        return repr(str(v))
    return str(v)


def _fmt_labels(values: Sequence, limit: int = _SHOW_LABELS) -> str:
    shown = ", ".join(_fmt_label(v) for v in list(values)[:limit])
    return shown + (", ..." if len(values) > limit else "")


def _as_labels(y, row0: int | None = None) -> np.ndarray:
    """Raw labels as float64, or as str for text labels.

    Raises InputError on NaN / infinite numeric labels, naming the row: the
    row of the data (``row0`` + i, counted from 0 over all files) when
    ``row0`` is given, else the row of this batch.
    """
    y = np.asarray(y)
    if y.dtype.kind in "US":
        return y.astype(str)
    if y.dtype.kind == "O":
        # An object column is text unless every entry is a number.
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            return y.astype(str)
    if y.dtype.kind not in "biuf":
        raise InputError(f"labels must be numbers or text, got values of type {y.dtype}")
    y = y.astype(np.float64, copy=False)
    bad = ~np.isfinite(y)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        where = f"row {i} of this batch" if row0 is None else f"row {row0 + i} of the data (counting from 0)"
        raise InputError(
            f"label {y[i]} in {where}: labels must be finite numbers "
            "(drop or fix the rows with missing labels)"
        )
    return y


def _as_classes(classes, text: bool | None = None) -> np.ndarray:
    """A class list as an array of the labels' type; duplicates are an error."""
    c = np.asarray(list(classes) if not isinstance(classes, np.ndarray) else classes)
    if text is None:
        text = _is_text(c)
    if text:
        c = c.astype(str)
    else:
        try:
            c = c.astype(np.float64)
        except (TypeError, ValueError):
            raise InputError(
                f"the labels are numbers but the given classes are not: {_fmt_labels(c)}"
            ) from None
    if len(np.unique(c)) != len(c):
        raise InputError(f"the given classes repeat a value: {_fmt_labels(c)}")
    return c


def _lookup(y: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each label in ``classes`` (any order) and a mask of known labels."""
    order = np.argsort(classes, kind="stable")
    sorted_c = classes[order]
    pos = np.searchsorted(sorted_c, y)
    pos_c = np.minimum(pos, len(sorted_c) - 1)
    known = (pos < len(sorted_c)) & (sorted_c[pos_c] == y)
    return order[pos_c], known


def binary_kind(classes: np.ndarray) -> str:
    """'0/1', '-1/+1' or 'other' for a two-class list."""
    if not _is_text(classes):
        s = sorted(float(v) for v in classes)
        if s == [0.0, 1.0]:
            return "0/1"
        if s == [-1.0, 1.0]:
            return "-1/+1"
    return "other"


def encode_labels(y_raw, scan_or_classes, task: str, *, unknown: str = "error"):
    """Map raw labels to the float64 targets the kernels train on.

    Parameters
    ----------
    y_raw : array-like
        Raw labels of some rows (numbers or text).
    scan_or_classes : ScanResult or array-like or None
        The class list (a :class:`ScanResult` supplies its ``classes``);
        ignored for regression.
    task : {'binary', 'multiclass', 'regression'}
    unknown : {'error', 'ignore'}, default 'error'
        What to do with a label not in the class list: raise InputError naming
        the first one, or return a mask of the known rows as well.

    Returns
    -------
    targets : ndarray of float64
        binary: 0 or 1 (``classes[1]`` -- the larger label when the list was
        discovered -- is 1); multiclass: class codes 0..C-1; regression: the
        values.
    known : ndarray of bool
        Only with ``unknown='ignore'``: True where the label is in the class
        list.  Targets of unknown rows are NaN, so using them unmasked fails
        loudly.
    """
    if unknown not in ("error", "ignore"):
        raise ValueError(f"unknown must be 'error' or 'ignore', got {unknown!r}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    y = _as_labels(y_raw)
    if task == "regression":
        if _is_text(y):
            raise InputError(
                f"regression needs numeric labels, got text labels such as {_fmt_labels(np.unique(y)[:3])}"
            )
        targets = y.astype(np.float64, copy=True)
        return (targets, np.ones(len(y), dtype=bool)) if unknown == "ignore" else targets

    classes = scan_or_classes.classes if isinstance(scan_or_classes, ScanResult) else scan_or_classes
    if classes is None:
        raise ValueError(f"a {task} task needs the class list")
    if _is_text(y) and not _is_text(np.asarray(classes)):
        raise InputError(
            f"text labels such as {_fmt_labels(np.unique(y)[:3])} but the classes are numbers: "
            f"{_fmt_labels(np.asarray(classes))}"
        )
    classes = _as_classes(classes, text=_is_text(y))
    codes, known = _lookup(y, classes)
    if not known.all():
        i = int(np.flatnonzero(~known)[0])
        if unknown == "error":
            raise InputError(
                f"label {_fmt_label(y[i])} (row {i} of this batch) is not one of the model's "
                f"classes: {_fmt_labels(classes, limit=20)}"
            )
    targets = codes.astype(np.float64)
    if task == "binary":
        if len(classes) != 2:
            raise ValueError(f"binary needs exactly 2 classes, got {len(classes)}")
        targets = (codes == 1).astype(np.float64)
    if unknown == "ignore":
        targets[~known] = np.nan
        return targets, known
    return targets


# ----------------------------------------------------------------------------
# Streaming accumulators
# ----------------------------------------------------------------------------


class _FeatureStats:
    """Per-feature (count, mean, M2), merged chunk by chunk (Chan et al.), and
    the statistics that decide a feature's scaling: rows holding it non-zero,
    its largest absolute value, and whether any value was other than 0 or 1.

    A sparse chunk updates only the features it holds, so a chunk costs
    O(nnz), not O(p) -- p may be 10^7 hashed features.  A feature absent from
    some chunks has seen implicit zeros there; those zero blocks are merged
    lazily, the next time the feature appears and once at the end
    (``count[j]`` is how many rows feature j's stats already cover).  Merging
    one block of z zeros is the same Chan update as merging them chunk by
    chunk, so the result is the same up to rounding.  The other statistics are
    sums, maxima and ors: exact whatever the chunking.
    """

    _ARRAYS = ("count", "mean", "m2", "nnz", "max_abs", "nonbinary")

    def __init__(self) -> None:
        self.n = 0  # rows merged so far
        self.count = np.zeros(0, dtype=np.int64)
        self.mean = np.zeros(0, dtype=np.float64)
        self.m2 = np.zeros(0, dtype=np.float64)
        self.nnz = np.zeros(0, dtype=np.int64)  # rows holding the feature non-zero
        self.max_abs = np.zeros(0, dtype=np.float64)
        self.nonbinary = np.zeros(0, dtype=bool)  # a value other than 0 or 1 seen

    def _grow(self, p: int) -> None:
        cap = len(self.mean)
        if p <= cap:
            return
        # Amortised doubling: p grows a little with nearly every sparse chunk.
        new = max(p, 2 * cap)
        for name in self._ARRAYS:
            old = getattr(self, name)
            arr = np.zeros(new, dtype=old.dtype)
            arr[:cap] = old
            setattr(self, name, arr)

    def add(self, chunk: Chunk) -> None:
        n_b = chunk.n_rows
        if n_b == 0:
            return
        idx = chunk.indices
        x = np.ascontiguousarray(chunk.data, dtype=np.float64)
        if len(idx) == 0:
            self.n += n_b
            return
        p_c = int(idx.max()) + 1
        self._grow(p_c)
        # Features present in the chunk and each entry's position among them.
        if p_c <= 4 * len(idx) + 1024:
            cnt_all = np.bincount(idx, minlength=p_c)
            feats = np.flatnonzero(cnt_all)
            slot = np.full(p_c, -1, dtype=np.int64)
            slot[feats] = np.arange(len(feats))
            inv = slot[idx]
            nnz_f = cnt_all[feats]
        else:
            feats, inv, nnz_f = np.unique(idx, return_inverse=True, return_counts=True)
        zeros = (n_b - nnz_f).astype(np.float64)  # implicit zeros per feature
        mean_b, m2_b, nz_b, max_b, other_b = _block_moments(inv, x, zeros, n_b)

        n_a = self.n
        cnt, mu, m2 = self.count[feats], self.mean[feats], self.m2[feats]
        if n_a > 0:
            mu, m2 = _merge_zeros(cnt, mu, m2, n_a)
        mu, m2 = _chan(float(n_a), mu, m2, float(n_b), mean_b, m2_b)
        self.mean[feats] = mu
        self.m2[feats] = m2
        self.count[feats] = n_a + n_b
        self.n = n_a + n_b
        _merge_kinds(feats, nz_b, max_b, other_b, self.nnz, self.max_abs, self.nonbinary)

    def finish(self, p: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean and population variance over all rows, for features 0..p-1."""
        self._grow(p)
        cnt, mu, m2 = self.count[:p], self.mean[:p].copy(), self.m2[:p].copy()
        if self.n == 0:
            return mu, m2
        mu, m2 = _merge_zeros(cnt, mu, m2, self.n)
        return mu, np.maximum(m2 / self.n, 0.0)

    def kinds(self, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows non-zero, largest absolute value, 0/1 only) for features 0..p-1."""
        self._grow(p)
        return self.nnz[:p].copy(), self.max_abs[:p].copy(), ~self.nonbinary[:p]

    def result(self, p: int) -> "FeatureStats":
        mean, var = self.finish(p)
        nnz, max_abs, binary = self.kinds(p)
        return FeatureStats(self.n, p, mean, var, nnz, max_abs, binary)


@njit(cache=True, nogil=True)
def _merge_kinds(feats, nz_b, max_b, other_b, nnz, max_abs, nonbinary):
    """A chunk's per-slot kind statistics into the p-sized arrays (slot f is feature feats[f]):
    one random access per feature present, not per entry."""
    for f in range(feats.shape[0]):
        j = feats[f]
        nnz[j] += nz_b[f]
        if max_b[f] > max_abs[j]:
            max_abs[j] = max_b[f]
        if other_b[f]:
            nonbinary[j] = True


@njit(cache=True, nogil=True)
def _block_moments(inv, x, zeros, n_b):
    """(mean, M2) of one chunk per feature slot, and (non-zero values, largest |value|, a value other
    than 0 or 1 seen) per slot, gathered in the first pass; entry t belongs to slot inv[t].

    Corrected two-pass moments: the mean first, then centred sums (implicit
    zeros contribute 0 - mean); the correction term (sum d)^2 / n removes the
    error of the first mean, so a constant column gets M2 ~ 0. The sums run in
    entry order, as NumPy's weighted bincount's did (one numba pass per sum
    instead of three bincounts and two temporaries: 5x faster on dense rows).
    """
    k = zeros.shape[0]
    mean = np.zeros(k)
    nz = np.zeros(k, dtype=np.int64)
    max_abs = np.zeros(k)
    other = np.zeros(k, dtype=np.bool_)
    for t in range(inv.shape[0]):
        f = inv[t]
        v = x[t]
        mean[f] += v
        if v != 0.0:
            nz[f] += 1
            a = abs(v)
            if a > max_abs[f]:
                max_abs[f] = a
            if v != 1.0:
                other[f] = True
    for f in range(k):
        mean[f] /= n_b
    sd = np.zeros(k)
    sd2 = np.zeros(k)
    for t in range(inv.shape[0]):
        f = inv[t]
        d = x[t] - mean[f]
        sd[f] += d
        sd2[f] += d * d
    m2 = np.empty(k)
    for f in range(k):
        a = sd[f] - zeros[f] * mean[f]
        b = sd2[f] + zeros[f] * mean[f] ** 2
        m2[f] = max(b - a * a / n_b, 0.0)
        mean[f] += a / n_b
    return mean, m2, nz, max_abs, other


def _chan(n_a: float, mean_a, m2_a, n_b: float, mean_b, m2_b):
    """Chan et al.'s merge of two blocks' (count, mean, M2)."""
    n = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    m2 = m2_a + m2_b + delta * delta * (n_a * n_b / n)
    return mean, m2


def _merge_zeros(cnt: np.ndarray, mu: np.ndarray, m2: np.ndarray, n: int):
    """Extend stats covering ``cnt`` rows to ``n`` rows by merging the missing zeros."""
    z = n - cnt
    if not z.any():
        return mu, m2
    cnt_f = cnt.astype(np.float64)
    z_f = z.astype(np.float64)
    # Chan's merge with a block of z zeros (mean 0, M2 0).
    return mu * (cnt_f / n), m2 + mu * mu * (cnt_f * z_f / n)


class _Reservoir:
    """Algorithm R over the row stream, vectorised per chunk.

    Row t (0-based, over the whole stream) with t >= k replaces slot
    j = floor(u * (t + 1)) when j < k, u ~ U[0, 1).  Only rows t >= k draw a
    number, one each, in stream order, so the sample depends on the seed and
    the row order only -- not on how the stream is cut into chunks.
    """

    def __init__(self, size: int, seed) -> None:
        self.k = int(size)
        self.rng = np.random.default_rng(seed)
        self.t = 0  # rows seen
        self.sample: Chunk | None = None

    def add(self, chunk: Chunk) -> None:
        n = chunk.n_rows
        if n == 0 or self.k == 0:
            self.t += n
            return
        parts = []
        fill = max(0, min(n, self.k - self.t))
        if fill:
            parts.append(chunk.take(np.arange(fill)))
        if parts:
            self.sample = Chunk.concat(([self.sample] if self.sample is not None else []) + parts)
        rest = n - fill
        if rest:
            t = self.t + fill + np.arange(rest, dtype=np.float64)  # stream positions
            j = np.floor(self.rng.random(rest) * (t + 1)).astype(np.int64)
            hit = np.flatnonzero(j < self.k)
            if len(hit):
                slots = j[hit]
                rows = fill + hit
                # A slot hit twice in this chunk keeps the later row.
                rev_slots, first = np.unique(slots[::-1], return_index=True)
                winners = rows[::-1][first]
                where = np.arange(self.k)
                where[rev_slots] = self.k + np.arange(len(winners))
                self.sample = Chunk.concat([self.sample, chunk.take(winners)]).take(where)
        self.t += n


class _Labels:
    """Distinct labels and their counts, up to ``max_classes`` of them."""

    def __init__(self, max_classes: int) -> None:
        self.max_classes = max_classes
        self.text: bool | None = None
        self.counts: dict = {}
        self.overflow = False  # more than max_classes distinct numeric labels
        self.integer = True  # every numeric label integer-valued
        self.moments = (0, 0.0, 0.0)  # (n, mean, M2) of numeric labels

    def add(self, y: np.ndarray) -> None:
        if len(y) == 0:
            return
        text = _is_text(y)
        if self.text is None:
            self.text = text
        elif self.text != text:
            raise InputError("the labels mix numbers and text across the data")
        if not text:
            self.integer = self.integer and bool(np.all(y == np.round(y)))
            n_a, mu_a, m2_a = self.moments
            mu_b = float(y.mean())
            m2_b = float(((y - mu_b) ** 2).sum())
            mu, m2 = _chan(float(n_a), mu_a, m2_a, float(len(y)), mu_b, m2_b)
            self.moments = (n_a + len(y), mu, m2)
        if self.overflow:
            return
        vals, cnts = np.unique(y, return_counts=True)
        for v, c in zip(vals.tolist(), cnts.tolist()):
            self.counts[v] = self.counts.get(v, 0) + c
        if len(self.counts) > self.max_classes:
            if text:
                raise InputError(
                    f"more than {self.max_classes} distinct text labels; a text label names a "
                    "class, so this is not a classification task (or raise max_classes)"
                )
            self.overflow = True
            self.counts = {}

    def arrays(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self.overflow:
            return None, None
        keys = sorted(self.counts)
        vals = np.asarray(keys, dtype=str if self.text else np.float64)
        return vals, np.asarray([self.counts[k] for k in keys], dtype=np.int64)


# ----------------------------------------------------------------------------
# Task
# ----------------------------------------------------------------------------


def _resolve_task(lab: _Labels, task: str | None, classes) -> tuple[str, np.ndarray | None]:
    """The task and class list from the labels seen, checked against what was asked."""
    if task is not None and task not in TASKS:
        raise InputError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    labels, _ = lab.arrays()
    text = bool(lab.text)
    seen = "text labels" if text else ("integer labels" if lab.integer else "non-integer labels")
    n_seen = "more than %d" % lab.max_classes if labels is None else str(len(labels))
    seen_desc = f"{n_seen} distinct {seen}" + ("" if labels is None else f" ({_fmt_labels(labels)})")

    if classes is not None:
        if task == "regression":
            raise InputError("classes were given for a regression task")
        classes = _as_classes(classes, text=text)
        if labels is None:
            raise InputError(f"classes were given but the data has {seen_desc}")
        missing = labels[~_lookup(labels, classes)[1]]
        if len(missing):
            raise InputError(
                f"label {_fmt_label(missing[0])} is not in the given classes "
                f"({_fmt_labels(classes, limit=20)})"
            )
        if task is None:
            task = "binary" if len(classes) == 2 else "multiclass"
    elif task is None:
        if text:
            task = "binary" if len(labels) == 2 else "multiclass"
        elif labels is not None and len(labels) == 2:
            task = "binary"
        elif labels is not None and lab.integer and 3 <= len(labels) <= lab.max_classes:
            task = "multiclass"
        else:
            task = "regression"

    if task == "regression":
        if text:
            raise InputError(f"task 'regression' needs numeric labels, but the data has {seen_desc}")
        return task, None

    # Classification.  Two distinct numbers name two classes whatever they are
    # (as detection assumes); more classes must be integers (or text).
    if task == "multiclass" and not text and not lab.integer:
        raise InputError(f"task {task!r} needs integer or text labels, but the data has {seen_desc}")
    if labels is None:
        raise InputError(
            f"task {task!r}: the data has {seen_desc} (raise max_classes if these really are classes)"
        )
    if classes is None:
        classes = labels
    if task == "binary" and len(classes) != 2:
        raise InputError(f"task 'binary' needs exactly 2 classes, but the data has {seen_desc}")
    if len(classes) < 2:
        raise InputError(f"task {task!r} needs at least 2 classes, but the data has {seen_desc}")
    return task, classes


# ----------------------------------------------------------------------------
# The pass
# ----------------------------------------------------------------------------


def _check_chunk(chunk: Chunk, row0: int) -> None:
    """Reject what would silently poison the statistics."""
    if len(chunk.data) and not np.isfinite(chunk.data).all():
        e = int(np.flatnonzero(~np.isfinite(chunk.data))[0])
        row = row0 + int(np.searchsorted(chunk.indptr, e, side="right")) - 1
        raise InputError(
            f"feature {int(chunk.indices[e])} of row {row} is {chunk.data[e]}: "
            "feature values must be finite"
        )
    if len(chunk.indices) and int(chunk.indices.min()) < 0:
        raise InputError("negative feature index in the data")


def scan(
    source,
    *,
    sample_size: int = 10_000,
    seed=0,
    task: str | None = None,
    classes: Iterable | None = None,
    progress: bool = False,
    max_classes: int = 1000,
    holdout=None,
    on_held: Callable[[Chunk], None] | None = None,
) -> ScanResult:
    """One streaming pass over ``source.iter_chunks()``.

    Parameters
    ----------
    source : DataSource
        Anything with ``iter_chunks()`` yielding :class:`Chunk` and an
        ``n_features_hint`` (int or None); ``files`` is used in messages.
    sample_size : int, default 10_000
        Rows in the reservoir sample.
    seed : int or sequence of int, default 0
        Seed of the reservoir sample.
    task : {'binary', 'multiclass', 'regression'} or None
        None: detect.  Text labels: binary if 2 distinct, else multiclass.
        Numbers: 2 distinct -> binary; integer-valued with 3..max_classes
        distinct -> multiclass; otherwise regression.  Given: binary needs
        exactly 2 distinct labels, multiclass integer or text labels,
        regression numbers.
    classes : sequence or None
        The class list, when known (e.g. a class absent from this data).
        Every label seen must be in it.
    progress : bool, default False
        Show a tqdm bar (rows, rows/s).
    max_classes : int, default 1000
        Most distinct labels a classification may have.
    holdout : HoldOut or None
        Rows to hold out (``preprocess/holdout.py``; the pass then reads
        ``source.files`` one by one with ``iter_file``): they are checked and
        join the label set and the width, but not the statistics, and each
        chunk of them goes to ``on_held`` (labels converted as the scan
        converts them).
    on_held : callable or None
        Receives the held-out rows, chunk by chunk.

    Returns
    -------
    ScanResult

    Raises
    ------
    InputError
        No rows; a NaN/infinite label or value; labels that do not fit the
        task asked for; a label missing from ``classes``.
    """
    if sample_size < 0 or max_classes < 2:
        raise ValueError(f"need sample_size >= 0 and max_classes >= 2, got {sample_size} and {max_classes}")
    features = _FeatureStats()
    reservoir = _Reservoir(sample_size, seed)
    lab = _Labels(max_classes)
    n_rows = nnz = n_held = rows_read = 0
    p_seen = 0
    bar = progress_bar(desc="scan", unit="rows", unit_scale=True, disable=not progress, leave=False)
    try:
        for chunk, file_index, row0 in _chunks_with_place(source, holdout is not None):
            _check_chunk(chunk, rows_read)
            y = _as_labels(chunk.y, row0=rows_read)
            rows_read += chunk.n_rows
            if y is not chunk.y:
                chunk = Chunk(chunk.indptr, chunk.indices, chunk.data, y, chunk.n_features)
            lab.add(y)
            if len(chunk.indices):
                p_seen = max(p_seen, int(chunk.indices.max()) + 1)
            p_seen = max(p_seen, int(chunk.n_features))
            if holdout is not None:
                chunk, held = holdout.split(chunk, file_index, row0)
                if held is not None:
                    n_held += held.n_rows
                    if on_held is not None:
                        on_held(held)
                    bar.update(held.n_rows)
                if chunk.n_rows == 0:
                    continue
            features.add(chunk)
            reservoir.add(chunk)
            n_rows += chunk.n_rows
            nnz += chunk.nnz
            bar.update(chunk.n_rows)
    finally:
        bar.close()

    if n_rows == 0:
        files = list(getattr(source, "files", []) or [])
        where = f" ({_fmt_files(files)})" if files else ""
        if n_held:
            raise AllRowsHeldOut(f"every row of the data{where} was held out for validation")
        raise InputError(f"the data has no rows{where}")

    task, class_list = _resolve_task(lab, task, classes)
    hint = getattr(source, "n_features_hint", None)
    p = max(p_seen, int(hint or 0))
    stats = features.result(p)
    labels, counts = lab.arrays()
    sample = reservoir.sample
    if sample is not None:
        sample.n_features = p
    n_lab, mu_lab, m2_lab = lab.moments
    return ScanResult(
        n_rows=n_rows,
        n_features=p,
        nnz=nnz,
        density=nnz / (n_rows * p) if p else 0.0,
        labels=labels,
        label_counts=counts,
        task=task,
        classes=class_list,
        binary_labels_kind=binary_kind(class_list) if task == "binary" else None,
        mean=stats.mean,
        var=stats.var,
        nnz_per_feature=stats.nnz_per_feature,
        max_abs=stats.max_abs,
        binary=stats.binary,
        sample=sample,
        label_mean=None if lab.text else mu_lab,
        label_var=None if lab.text else m2_lab / n_lab,
        n_held=n_held,
    )


def feature_stats(chunks: Iterable[Chunk], n_features: int | None = None) -> FeatureStats:
    """The scan pass's per-feature statistics of some chunks (rows in memory, say).

    The same accumulator as :func:`scan`, so the same rows give the same
    statistics (and so the same scaling) however they arrive.  ``n_features``:
    the width (default: the largest of the chunks' widths and indices + 1).
    """
    acc = _FeatureStats()
    p = 0
    for chunk in chunks:
        _check_chunk(chunk, acc.n)
        acc.add(chunk)
        p = max(p, int(chunk.n_features), int(chunk.indices.max()) + 1 if len(chunk.indices) else 0)
    return acc.result(p if n_features is None else int(n_features))


def _chunks_with_place(source, per_file: bool):
    """(chunk, index of its file in ``source.files``, its first row's number in the file);
    without ``per_file``, ``source.iter_chunks()`` with no place (-1, -1)."""
    if not per_file:
        for chunk in source.iter_chunks():
            yield chunk, -1, -1
        return
    for file_index, path in enumerate(source.files):
        row0 = 0
        for chunk in source.iter_file(path):
            yield chunk, file_index, row0
            row0 += chunk.n_rows


def _fmt_files(files: list) -> str:
    shown = ", ".join(str(f) for f in files[:3])
    return shown + (f" and {len(files) - 3} more" if len(files) > 3 else "")
