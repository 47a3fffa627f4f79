"""The scan pass: one streaming read of the training data before any learning.

It collects what the later stages need and what the model manifest stores:
row count, width ``p``, non-zeros, the label set and the task, per-feature
mean and population variance, the per-feature statistics that decide how a
feature is scaled (rows holding it non-zero, its largest absolute value,
whether it is 0/1 only), and a seeded reservoir sample of rows (the k-means
input for the anchors).

Memory is O(features seen + sample_size * row size + one chunk), whatever the
number of rows (and 4 bytes per feature of the width).  The pieces it drives: :mod:`~streamfm.preprocess.labels` (label set,
task), :mod:`~streamfm.preprocess.moments` (per-feature statistics) and
:mod:`~streamfm.preprocess.reservoir` (the sample).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from streamfm.errors import InputError, RowError
from streamfm.io.chunk import Chunk
from streamfm.preprocess.labels import Labels, as_labels, binary_kind, encode_labels, resolve_task
from streamfm.preprocess.moments import FeatureAccumulator, FeatureStats, check_chunk
from streamfm.preprocess.reservoir import Reservoir
from streamfm.progress import progress_bar


class AllRowsHeldOut(InputError):
    """``scan(holdout=...)`` held out every row (only likely on a handful of rows)."""


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
    stats : FeatureStats
        The per-feature statistics, kept for the features seen
        (``stats.features``; :class:`~streamfm.preprocess.moments.FeatureStats`).
        Full-width views, made on demand (each an array of ``n_features``):
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
    stats: FeatureStats
    sample: Chunk | None = None
    label_mean: float | None = None
    label_var: float | None = None
    n_held: int = 0

    mean = property(lambda self: self.stats.mean)
    var = property(lambda self: self.stats.var)
    nnz_per_feature = property(lambda self: self.stats.nnz_per_feature)
    max_abs = property(lambda self: self.stats.max_abs)
    binary = property(lambda self: self.stats.binary)

    @property
    def n_classes(self) -> int:
        """Number of classes (0 for regression)."""
        return 0 if self.classes is None else len(self.classes)


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
        No rows; a NaN/infinite label or value; moments that overflow; a
        column of numbers with text cells (``source.check_kinds``); labels
        that do not fit the task asked for; a label missing from ``classes``.
    """
    if sample_size < 0 or max_classes < 2:
        raise ValueError(f"need sample_size >= 0 and max_classes >= 2, got {sample_size} and {max_classes}")
    features = FeatureAccumulator()
    reservoir = Reservoir(sample_size, seed)
    lab = Labels(max_classes)
    n_rows = nnz = n_held = rows_read = 0
    p_seen = 0
    bar = progress_bar(desc="scan", unit="rows", unit_scale=True, disable=not progress, leave=False)
    classes = None if classes is None else list(classes)
    # a label outside the given classes is named where it is (the end of the pass says which are missing)
    known = None if classes is None or task == "regression" or not _placed(source) else np.asarray(classes)
    try:
        for chunk, file_index, row0 in _chunks_with_place(source, holdout is not None or _placed(source)):
            check_chunk(chunk, rows_read)
            y = as_labels(chunk.y, row0=rows_read)
            if known is not None:
                try:
                    encode_labels(y, known, "multiclass")
                except RowError as exc:
                    raise source.placed(exc, source.files[file_index], row0) from None
                except InputError:  # labels and classes of different kinds: resolve_task says so
                    known = None
            rows_read += chunk.n_rows
            if y is not chunk.y:
                chunk = Chunk(chunk.indptr, chunk.indices, chunk.data, y, chunk.n_features, weights=chunk.weights)
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
    check_kinds = getattr(source, "check_kinds", None)
    if check_kinds is not None:  # the whole pass decides which text columns are categories
        check_kinds()

    if n_rows == 0:
        files = list(getattr(source, "files", []) or [])
        where = f" ({_fmt_files(files)})" if files else ""
        if n_held:
            raise AllRowsHeldOut(f"every row of the data{where} was held out for validation")
        raise InputError(f"the data has no rows{where}")

    task, class_list = resolve_task(lab, task, classes)
    hint = getattr(source, "n_features_hint", None)
    p = max(p_seen, int(hint or 0))
    stats = features.result(p)
    _check_finite(stats, lab)
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
        stats=stats,
        sample=sample,
        label_mean=None if lab.text else mu_lab,
        label_var=None if lab.text else m2_lab / n_lab,
        n_held=n_held,
    )


def _check_finite(stats, lab: Labels) -> None:
    """The moments must be finite: values of up to 1e154 pass the readers, but a feature (or
    label) whose values are that large overflows its variance."""
    finite = np.isfinite(stats.seen_mean) & np.isfinite(stats.seen_var)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise InputError(f"feature {int(stats.features[i])}'s variance overflows a float64 (its values reach "
                         f"{stats.seen_max_abs[i]:.3g}): "
                         "rescale the feature (divide it by a power of ten) before training")
    if not lab.text:
        n, mu, m2 = lab.moments
        if not (np.isfinite(mu) and np.isfinite(m2)):
            raise InputError("the labels' variance overflows a float64: rescale the labels before training")


def _placed(source) -> bool:
    """Whether ``source`` can say where a row is (a DataSource; not a test's list of chunks)."""
    return hasattr(source, "placed") and hasattr(source, "iter_file")


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
