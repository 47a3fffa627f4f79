"""Streaming evaluation: log loss, accuracy and AUC, or RMSE and MAE, chunk by chunk, in memory
that does not grow with the rows.

AUC (:class:`BinnedAUC`) counts rows per bin of their margin (the log-odds of
the second class) instead of keeping every score: 2^16 bins (1 MB of counts)
of equal width in asinh(margin) over margins -40 to 40, so 0.00013 wide at
margin 0, 0.0007 at +-5 and 0.005 at +-36, where a probability is within
1e-15 of 0 or 1 and the clipped probabilities tie anyway. A pair of a
positive and a negative row whose margins fall in different bins is ordered
exactly; a pair in one bin counts as a tie (half), as an exact AUC counts
equal scores. So the binned AUC is within :meth:`BinnedAUC.error_bound` of the
exact one: half the share of (positive, negative) pairs that share a bin
(under 1e-4 on the tests' random margins spread over a unit or more).
"""
from __future__ import annotations

import numpy as np

from ..errors import RowError

#: AUC's bins: the margin clipped to +-AUC_MARGIN, cut into AUC_BINS bins equal in asinh(margin)
AUC_BINS = 1 << 16
AUC_MARGIN = 40.0


class BinnedAUC:
    """The area under the ROC curve from counts of positive and negative rows per margin bin."""

    def __init__(self, bins: int = AUC_BINS, margin: float = AUC_MARGIN):
        self.bins, self.margin = int(bins), float(margin)
        # float64 sums of the rows' weights (1 a row unweighted: exact counts below 2^53)
        self.pos = np.zeros(self.bins, np.float64)
        self.neg = np.zeros(self.bins, np.float64)

    def add(self, positive: np.ndarray, margins: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Count rows: ``positive`` (bool or 0/1), their ``margins`` (any increasing score of
        the positive class: log-odds, bins in that scale) and ``weights`` (None: 1 a row)."""
        m = np.arcsinh(np.clip(np.asarray(margins, np.float64), -self.margin, self.margin))
        top = np.arcsinh(self.margin)
        idx = ((m + top) * (self.bins / (2 * top))).astype(np.int64)
        np.minimum(idx, self.bins - 1, out=idx)
        pos = np.asarray(positive).astype(bool)
        w = None if weights is None else np.asarray(weights, np.float64)
        self.pos += np.bincount(idx[pos], None if w is None else w[pos], minlength=self.bins)
        self.neg += np.bincount(idx[~pos], None if w is None else w[~pos], minlength=self.bins)

    def _pairs(self) -> float:
        return float(self.pos.sum()) * float(self.neg.sum())

    def auc(self) -> float | None:
        """The AUC, or None without both classes."""
        pairs = self._pairs()
        if pairs == 0:
            return None
        pos, neg = self.pos, self.neg
        below = np.cumsum(neg) - neg  # negatives in lower bins
        return float((pos @ below + 0.5 * (pos @ neg)) / pairs)

    def error_bound(self) -> float:
        """The most the binned AUC can differ from the exact one: half the share of
        (positive, negative) pairs in one bin."""
        pairs = self._pairs()
        return 0.0 if pairs == 0 else float(0.5 * (self.pos @ self.neg) / pairs)


class StreamingMetrics:
    """Accumulates per-chunk results; ``result()`` gives the metrics of all rows seen, in constant
    memory (AUC: :class:`BinnedAUC`).

    Sample weights (``add(..., weights=)``): every metric is the weighted
    mean over rows (log loss, accuracy, squared and absolute error) and the
    AUC weighs each row's pairs by its weight; ``result()`` then reports
    ``weight_sum``. Unweighted chunks weigh 1 a row.
    """

    def __init__(self, task: str):
        self.task = task
        self.n = 0
        self.loss_sum = 0.0
        self.correct = 0
        self.sq = 0.0
        self.abs = 0.0
        self.weighted = False
        self.weight_sum = 0.0  # the rows' weights summed (1 a row for unweighted chunks)
        self.auc = BinnedAUC() if task == "binary" else None

    def add(self, targets: np.ndarray, proba_or_pred: np.ndarray, weights: np.ndarray | None = None) -> None:
        """One chunk's targets and probabilities (regression: predictions); ``weights``: the rows'
        sample weights, None for 1 each."""
        n = len(targets)
        self.n += n
        if weights is None:
            self.weight_sum += n
        else:
            weights = np.asarray(weights, dtype=np.float64)
            self.weighted = True
            self.weight_sum += float(weights.sum())
        if self.task == "regression":
            err = proba_or_pred - targets
            if weights is None:
                self.sq += float(err @ err)
                self.abs += float(np.abs(err).sum())
            else:
                self.sq += float((weights * err) @ err)
                self.abs += float(weights @ np.abs(err))
            return
        P = np.clip(proba_or_pred, 1e-15, 1.0)
        t = targets.astype(np.int64)
        nll = -np.log(P[np.arange(n), t])
        hit = P.argmax(1) == t
        if weights is None:
            self.loss_sum += float(nll.sum())
            self.correct += int(hit.sum())
        else:
            self.loss_sum += float(weights @ nll)
            self.correct += float(weights @ hit)
        if self.auc is not None:
            self.auc.add(t == 1, np.log(P[:, 1]) - np.log(P[:, 0]), weights)

    def result(self) -> dict:
        # unweighted, weight_sum is the row count (exact): the same numbers as a plain mean
        n = self.weight_sum if self.weight_sum > 0 else 1.0
        out = {"rows": self.n}
        if self.weighted:
            out["weight_sum"] = self.weight_sum
        if self.task == "regression":
            out.update(rmse=float(np.sqrt(self.sq / n)), mae=self.abs / n)
            return out
        out.update(log_loss=self.loss_sum / n, accuracy=self.correct / n)
        auc = None if self.auc is None else self.auc.auc()
        if auc is not None:
            out["auc"] = auc
        return out


def evaluate_source(trained, source, *, chunk_rows=None, progress=None, skip_unknown_labels=False) -> dict:
    """Metrics of ``trained`` (a TrainedModel) on every row of ``source``.

    ``skip_unknown_labels``: leave out rows whose class the model does not
    know (as training with ``--ignore-unknown-labels`` does) instead of failing.
    """
    acc = StreamingMetrics(trained.task)
    for chunk, path, row0 in source.iter_placed(chunk_rows=chunk_rows):
        try:
            t, f, w = _scored(trained, chunk, skip_unknown_labels)
        except RowError as exc:  # an unknown label, a feature beyond the model: say where
            raise source.placed(exc, path, row0) from None
        acc.add(t, f[:, 0] if trained.task == "regression" else trained.model.proba_from_scores(f), w)
        if progress is not None:
            progress.update(chunk.n_rows)
    return acc.result()


def _scored(trained, chunk, skip_unknown_labels: bool):
    """(targets, raw outputs, weights or None) of a chunk's rows (those of known labels, with
    ``skip_unknown_labels``)."""
    if skip_unknown_labels:
        t, known = trained.targets(chunk.y, unknown="ignore")
        if not known.all():
            chunk, t = chunk.take(np.flatnonzero(known)), t[known]
    else:
        t = trained.targets(chunk.y)
    return t, trained.decision_chunk(chunk), chunk.weights
