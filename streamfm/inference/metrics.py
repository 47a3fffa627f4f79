"""Streaming evaluation: log loss, accuracy and AUC, or RMSE and MAE, chunk by chunk."""
from __future__ import annotations

import numpy as np

from ..errors import RowError


class StreamingMetrics:
    """Accumulates per-chunk results; ``result()`` gives the metrics of all rows seen.

    AUC needs every score: they are kept as float32 (4 bytes a row), which is
    the one part that grows with the data (1 GB per 250M rows).

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
        self._scores: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self.weighted = False
        self.weight_sum = 0.0  # the rows' weights summed (1 a row for unweighted chunks)
        self._weights: list[np.ndarray | None] = []  # per binary chunk: its weights, None for ones

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
        if self.task == "binary":
            self._scores.append(P[:, 1].astype(np.float32))
            self._labels.append(t.astype(np.int8))
            self._weights.append(weights)

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
        if self.task == "binary" and self._labels:
            from sklearn.metrics import roc_auc_score

            y = np.concatenate(self._labels)
            w = None
            if self.weighted:
                w = np.concatenate([np.ones(len(t)) if v is None else v for t, v in zip(self._labels, self._weights)])
                keep = w > 0
                y, w = y[keep], w[keep]
            scores = np.concatenate(self._scores)
            if w is not None:
                scores = scores[keep]
            if 0 < y.sum() < len(y):
                out["auc"] = float(roc_auc_score(y, scores, sample_weight=w))
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
