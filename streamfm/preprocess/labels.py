"""Labels and the task: the label set a pass sees, the task it implies, and the targets.

:class:`Labels` counts the distinct labels of a stream (and the moments of
numeric ones); :func:`resolve_task` turns them into the task and class list,
checked against what was asked for; :func:`encode_labels` maps raw labels
(numbers or text) to the float64 targets the kernels train on.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from streamfm.errors import InputError, RowError
from streamfm.preprocess.moments import chan_merge

TASKS = ("binary", "multiclass", "regression")

# Labels quoted in an error message, at most.
_SHOW_LABELS = 10


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


def as_labels(y, row0: int | None = None) -> np.ndarray:
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
        The class list (a :class:`~streamfm.preprocess.scan.ScanResult`
        supplies its ``classes``);
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
    y = as_labels(y_raw)
    if task == "regression":
        if _is_text(y):
            raise InputError(
                f"regression needs numeric labels, got text labels such as {_fmt_labels(np.unique(y)[:3])}"
            )
        targets = y.astype(np.float64, copy=True)
        return (targets, np.ones(len(y), dtype=bool)) if unknown == "ignore" else targets

    classes = getattr(scan_or_classes, "classes", scan_or_classes)  # a ScanResult, or the list
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
            raise RowError(i, f"label {_fmt_label(y[i])} is not one of the model's classes: "
                              f"{_fmt_labels(classes, limit=20)} (--ignore-unknown-labels skips such rows)")
    targets = codes.astype(np.float64)
    if task == "binary":
        if len(classes) != 2:
            raise ValueError(f"binary needs exactly 2 classes, got {len(classes)}")
        targets = (codes == 1).astype(np.float64)
    if unknown == "ignore":
        targets[~known] = np.nan
        return targets, known
    return targets


class Labels:
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
            mu, m2 = chan_merge(float(n_a), mu_a, m2_a, float(len(y)), mu_b, m2_b)
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



def resolve_task(lab: Labels, task: str | None, classes) -> tuple[str, np.ndarray | None]:
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
