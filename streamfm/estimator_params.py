"""The estimators' own settings (how to fit, not what to learn: that is ``Config``), their
defaults and documentation, and the class decorator that writes every estimator's parameter
docstring from them and from ``models.config.DOCS``."""
from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass

from .models.config import DOCS
from .training.options import TrainOptions


@dataclass(frozen=True)
class _Fit:
    """The defaults of the estimators' own settings (how to fit, not what to learn: that is ``Config``)."""

    n_epochs: int = TrainOptions.epochs  # the command line's defaults
    scale: str = "auto"
    shuffle: bool = True
    sample_size: int = 10_000
    batch_size: int = 4096
    random_state: int = 0
    early_stopping: str = "auto"
    validation_fraction: float = 0.1
    n_iter_no_change: int = TrainOptions.early_stop
    bits: int | None = None
    memory_budget: int | None = None


FIT = _Fit()
FIT_DOCS = {
    "n_epochs": ("int", "Passes over the data in ``fit``, at most (0: initialise only)."),
    "scale": ('{"auto", "standard", "maxabs", "none"}',
              "How features are scaled, with statistics of the data given to ``fit`` (or the first "
              "``partial_fit``), as ``streamfm train --scale`` does. auto, per feature: binary (0/1) features "
              "kept, features non-zero in at least half of the rows standardised (centred, divided by the "
              "standard deviation), any other feature divided by its largest absolute value; standard: every "
              "feature divided by its standard deviation, and centred if X is a dense array or has at most "
              "1,000 features; maxabs: every feature divided by its largest absolute value; none: as given."),
    "shuffle": ("bool", "Shuffle the rows in every epoch of ``fit``."),
    "sample_size": ("int", "Rows sampled for the k-means anchors."),
    "batch_size": ("int", "Rows handed to the kernel at a time (does not change the result)."),
    "random_state": ("int, RandomState or None", "Seeds the model, the sample and the validation split."),
    "early_stopping": ('"auto" or bool',
                       "In ``fit``: set ``validation_fraction`` of the rows aside (a seeded split, stratified "
                       "for classifiers), evaluate them after every epoch (log loss; RMSE for regression), stop "
                       "after ``n_iter_no_change`` epochs without a lower value and restore the best epoch's "
                       "parameters. \"auto\": on when there are more than 10,000 rows."),
    "validation_fraction": ("float", "The share of rows set aside for early stopping."),
    "n_iter_no_change": ("int", "Epochs without improvement before stopping."),
    "bits": ("int or None", "Hash each (FM, feature) pair into a float32 table of 2^bits rows, whatever the "
                            "features and anchors (None: the exact layout when it fits ``memory_budget``, "
                            "else the largest table that does)."),
    "memory_budget": ("int or None", "Bytes the model's parameters may take; a larger model raises a "
                                     "ValueError before anything is allocated (None: half of the memory "
                                     "available)."),
}
_ATTRIBUTES_DOC = """
    Attributes
    ----------
    loss_curve_ : list of float
        Mean training loss of every epoch of ``fit``.
    n_iter_ : int
        Epochs ``fit`` ran.
    validation_scores_ : list of float or None
        With early stopping: the validation score after every epoch, higher
        is better as in scikit-learn (minus the log loss, minus the RMSE);
        else None.
    best_epoch_ : int or None
        With early stopping: the epoch (from 1) whose parameters the model
        holds; else None (the last epoch's).
"""


def documented(cls):
    """``cls`` with its parameters documented from its ``__init__``'s defaults and the one text of each
    (``models.config.DOCS``, ``FIT_DOCS``)."""
    lines = ["", "    Parameters", "    ----------"]
    for name, param in list(inspect.signature(cls.__init__).parameters.items())[1:]:
        kind, text = DOCS.get(name) or FIT_DOCS[name]
        default = f'"{param.default}"' if isinstance(param.default, str) else param.default
        lines.append(f"    {name} : {kind}, default {default}")
        lines += textwrap.wrap(text, 100, initial_indent=" " * 8, subsequent_indent=" " * 8)
    cls.__doc__ = cls.__doc__.rstrip() + "\n" + "\n".join(lines) + "\n" + _ATTRIBUTES_DOC
    return cls
