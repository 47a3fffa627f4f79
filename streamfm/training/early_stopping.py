"""Early stopping on a validation metric, remembering the best epoch: :class:`EarlyStopping`.

One small object that every training loop drives the same way -- the file
training loop (``training/loop.py``, whatever the engine) and the scikit-learn
estimators -- by calling ``update(epoch, metrics)`` after each epoch's
validation. It decides; the loop acts (keeps the best epoch's parameters or
checkpoint, stops). Its state is plain JSON (``state()`` / ``from_state()``),
so a model directory's manifest carries it and a resumed run goes on with the
same best so far and the same count of epochs without improvement.

The metric is the validation log loss for classification and the RMSE for
regression (as ``inference/metrics.py`` computes them); an epoch improves on the
best so far when its metric is strictly lower (a NaN never does).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

#: row counts above which, without a validation set, rows are held out ("auto", as scikit-learn's
#: HistGradientBoosting decides ``early_stopping='auto'``)
AUTO_MIN_ROWS = 10_000


def metric_for(task: str) -> str:
    """The metric early stopping watches: ``rmse`` for regression, else ``log_loss``."""
    return "rmse" if task == "regression" else "log_loss"


@dataclass
class EarlyStopping:
    """Stop after ``patience`` epochs in a row without a strictly lower ``metric``.

    Attributes
    ----------
    patience : int
        At least 1.
    metric : str
        The key of the validation metrics to watch (``metric_for(task)``).
    best_epoch : int or None
        The epoch (1-based, as the loop numbers them) with the lowest metric so far.
    best_value : float or None
    bad_epochs : int
        Epochs since the best one.
    improved : bool
        Whether the last ``update`` found a new best.
    stopped_after : int or None
        The epoch after which ``update`` said stop.
    """

    patience: int
    metric: str
    best_epoch: int | None = None
    best_value: float | None = None
    bad_epochs: int = 0
    improved: bool = False
    stopped_after: int | None = None

    def __post_init__(self):
        if int(self.patience) < 1:
            raise ValueError(f"patience must be at least 1, got {self.patience}")
        self.patience = int(self.patience)

    def update(self, epoch: int, metrics: dict) -> bool:
        """Record epoch ``epoch``'s validation ``metrics``; True if training should stop now."""
        value = float(metrics[self.metric])
        self.improved = math.isfinite(value) and (self.best_value is None or value < self.best_value)
        if self.improved:
            self.best_epoch, self.best_value, self.bad_epochs = int(epoch), value, 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.stopped_after = int(epoch)
        return self.stopped_after is not None

    @property
    def stopped(self) -> bool:
        return self.stopped_after is not None

    def reason(self, last_epoch: int) -> str:
        """Why the run ended after ``last_epoch``, in words."""
        if self.stopped:
            return f"early stop after epoch {self.stopped_after}, best epoch {self.best_epoch}"
        if self.best_epoch is None:
            return f"last epoch ({last_epoch}) reached, no finite validation {self.metric}"
        return f"last epoch ({last_epoch}) reached, best epoch {self.best_epoch}"

    def state(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state(cls, d: dict) -> "EarlyStopping":
        return cls(**d)
