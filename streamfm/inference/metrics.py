"""Streaming evaluation: log loss, accuracy and AUC, or RMSE and MAE, chunk by chunk."""
from __future__ import annotations

import numpy as np

from ..errors import RowError


class StreamingMetrics:
    """Accumulates per-chunk results; ``result()`` gives the metrics of all rows seen.

    AUC needs every score: they are kept as float32 (4 bytes a row), which is
    the one part that grows with the data (1 GB per 250M rows).
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

    def add(self, targets: np.ndarray, proba_or_pred: np.ndarray) -> None:
        n = len(targets)
        self.n += n
        if self.task == "regression":
            err = proba_or_pred - targets
            self.sq += float(err @ err)
            self.abs += float(np.abs(err).sum())
            return
        P = np.clip(proba_or_pred, 1e-15, 1.0)
        t = targets.astype(np.int64)
        self.loss_sum += float(-np.log(P[np.arange(n), t]).sum())
        self.correct += int((P.argmax(1) == t).sum())
        if self.task == "binary":
            self._scores.append(P[:, 1].astype(np.float32))
            self._labels.append(t.astype(np.int8))

    def result(self) -> dict:
        n = max(self.n, 1)
        if self.task == "regression":
            return {"rows": self.n, "rmse": float(np.sqrt(self.sq / n)), "mae": self.abs / n}
        out = {"rows": self.n, "log_loss": self.loss_sum / n, "accuracy": self.correct / n}
        if self.task == "binary" and self._labels:
            from sklearn.metrics import roc_auc_score

            y = np.concatenate(self._labels)
            if 0 < y.sum() < len(y):
                out["auc"] = float(roc_auc_score(y, np.concatenate(self._scores)))
        return out


def evaluate_source(trained, source, *, chunk_rows=None, progress=None, skip_unknown_labels=False) -> dict:
    """Metrics of ``trained`` (a TrainedModel) on every row of ``source``.

    ``skip_unknown_labels``: leave out rows whose class the model does not
    know (as training with ``--ignore-unknown-labels`` does) instead of failing.
    """
    acc = StreamingMetrics(trained.task)
    for chunk, path, row0 in source.iter_placed(chunk_rows=chunk_rows):
        try:
            t, f = _scored(trained, chunk, skip_unknown_labels)
        except RowError as exc:  # an unknown label, a feature beyond the model: say where
            raise source.placed(exc, path, row0) from None
        acc.add(t, f[:, 0] if trained.task == "regression" else trained.model.proba_from_scores(f))
        if progress is not None:
            progress.update(chunk.n_rows)
    return acc.result()


def _scored(trained, chunk, skip_unknown_labels: bool):
    """(targets, raw outputs) of a chunk's rows (those of known labels, with ``skip_unknown_labels``)."""
    if skip_unknown_labels:
        t, known = trained.targets(chunk.y, unknown="ignore")
        if not known.all():
            chunk, t = chunk.take(np.flatnonzero(known)), t[known]
    else:
        t = trained.targets(chunk.y)
    return t, trained.decision_chunk(chunk)
