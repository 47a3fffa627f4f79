"""A new model, ready to train, from a config and what a pass over the data found.

``initialise_model`` is the one set-up of the trainer and the benchmarks
(through ``model_from_scan``, from the scan pass) and of the estimators (from
the arrays given to ``fit``).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import InputError
from .capacity import AUTO, auto_anchors
from .config import Config
from .core import LLFMModel
from .memory import StoreSpec, choose_store, default_budget, model_bytes


def initial_bias(task: str, multiclass: str = "softmax", *, label_mean: float | None = None,
                 class_counts=None) -> np.ndarray:
    """The outputs' starting value (C,): the best constant model. The label mean for a
    regression; the log odds of the positive class (binary) or of each class against the
    rest (one-vs-rest); the centred log class frequencies (softmax). ``class_counts``: rows
    per class, in the order of the outputs."""
    if task == "regression":
        return np.array([0.0 if label_mean is None else float(label_mean)])
    counts = np.asarray(class_counts, dtype=np.float64) + 0.5  # no infinite log of an absent class
    if task == "binary":
        return np.array([np.log(counts[1] / counts[0])])
    if multiclass == "ovr":
        return np.log(counts / (counts.sum() - counts))
    logf = np.log(counts / counts.sum())
    return logf - logf.mean()


def stored_feature_rows(standardizer, stats, dense: bool) -> np.ndarray:
    """Training rows in which each feature is stored once scaled (the weights of L2): every row of
    a dense table holds every feature; otherwise ``standardizer.stored_rows(stats)``."""
    if dense:
        return np.full(standardizer.n_features, int(stats.n_rows), dtype=np.int64)
    return standardizer.stored_rows(stats)


def initialise_model(config: Config, n_features: int, task: str, n_classes: int = 2, *, sample,
                     label_mean: float | None = None, class_counts=None, feature_rows=None,
                     epoch_rows: int | None = None, bits: int | None = None,
                     memory_budget: int | None = None) -> LLFMModel:
    """A model ready to train.

    Parameters
    ----------
    config : Config
    n_features : int
        p, the width of a (scaled) row.
    task : {"binary", "multiclass", "regression"}
    n_classes : int
        C for multiclass (2 otherwise).
    sample : Chunk
        Standardised sample rows: the k-means anchors and the coding scale,
        and the rows' mean squared norm, which scales the initial factors.
    label_mean : float or None
        A regression's starting bias (None: 0).
    class_counts : array-like or None
        Rows per class in the order of the outputs: a classifier's starting
        bias (``initial_bias``; None: 0).
    feature_rows : array-like (p,) or None
        Training rows that store each feature (``stored_feature_rows``): the
        weights of L2. None: L2 has no effect.
    epoch_rows : int or None
        Training rows in an epoch: with ``config.t0 = 0`` the step decays per
        epoch. None: ``t0`` stays at its default.
    bits, memory_budget : int or None
        The parameter store (``models.memory.choose_store``): ``bits`` forces
        the hashed store with 2^bits slots; otherwise the exact store if it
        fits ``memory_budget`` bytes (None: a share of the available
        memory), else the largest hashed table that does. Raises InputError
        when nothing fits, before anything is allocated.
    """
    auto = config.anchors == AUTO
    config = resolve_anchors(config, n_features, task, n_classes, n_rows=epoch_rows or sample.n_rows,
                             sample_rows=sample.n_rows, bits=bits, memory_budget=memory_budget)
    model = LLFMModel(config, n_features, task, n_classes,
                      store=model_store(config, n_features, task, n_classes, bits=bits, memory_budget=memory_budget))
    model.anchors_auto = auto
    if config.method != "fm" and sample.n_rows < config.anchors:
        raise InputError(f"{config.anchors} anchors need at least {config.anchors} rows; "
                         f"the data has {sample.n_rows}. Use fewer --anchors.")
    known = task == "regression" or class_counts is not None
    bias = initial_bias(task, config.multiclass, label_mean=label_mean, class_counts=class_counts) if known else 0.0
    model.init_params(mean_sq_norm=float(np.sum(sample.data ** 2)) / max(sample.n_rows, 1), bias=bias)
    if feature_rows is not None:
        model.set_feature_rows(feature_rows)
    model.init_anchors(sample)
    if epoch_rows is not None:
        model.set_epoch_rows(epoch_rows)
    return model


def model_store(config: Config, n_features: int, task: str, n_classes: int = 2, *, bits: int | None = None,
                memory_budget: int | None = None) -> StoreSpec:
    """The parameter store of a new model of this shape (``models.memory.choose_store``)."""
    probe = LLFMModel(config, n_features, task, n_classes)  # its sizes; no parameter is allocated
    return choose_store(probe.n_fms, probe.p, probe.n_outputs, config.rank, config.optimizer == "adagrad",
                        m=0 if probe.method == 0 else probe.m, q=probe.q, bits=bits, budget=memory_budget)


def model_from_scan(config: Config, scan, standardizer, dense: bool, *, bits: int | None = None,
                    memory_budget: int | None = None) -> LLFMModel:
    """``initialise_model`` from the scan pass (``preprocess.scan.ScanResult``) and the scaling
    chosen from it: the scan's reservoir sample (scaled), its labels and rows per feature;
    ``dense``: the data are a wide table (every row holds every feature)."""
    if scan.task == "regression":
        class_counts = None
    else:
        counts = dict(zip(scan.labels.tolist(), scan.label_counts.tolist()))
        class_counts = [counts.get(c, 0) for c in scan.classes.tolist()]
    n_classes = max(scan.n_classes, 2) if scan.task == "multiclass" else 2
    # the epoch is the training rows: held-out ones are never trained on
    return initialise_model(config, scan.n_features, scan.task, n_classes, sample=standardizer.transform(scan.sample),
                            label_mean=scan.label_mean, class_counts=class_counts,
                            feature_rows=stored_feature_rows(standardizer, scan, dense), epoch_rows=scan.n_rows,
                            bits=bits, memory_budget=memory_budget)


def resolve_anchors(config: Config, n_features: int, task: str, n_classes: int = 2, *, n_rows: int,
                    sample_rows: int | None = None, bits: int | None = None,
                    memory_budget: int | None = None) -> Config:
    """``config`` with ``anchors="auto"`` replaced by the m of ``models.capacity.auto_anchors`` for
    ``n_rows`` training rows (``sample_rows``: the rows k-means places them among); a config
    that names m is returned as it is. Without ``bits`` the m is lowered until the exact store
    fits ``memory_budget`` (None: the default budget)."""
    if config.anchors != AUTO:
        return config
    fits = None
    if bits is None:
        budget = default_budget() if memory_budget is None else int(memory_budget)

        def fits(m: int) -> bool:
            probe = LLFMModel(replace(config, anchors=m), n_features, task, n_classes)
            return model_bytes(StoreSpec(), probe.n_fms, probe.p, probe.n_outputs, config.rank,
                               config.optimizer == "adagrad", m=probe.m, q=probe.q) <= budget

    m = auto_anchors(n_rows, n_features, sample_rows=sample_rows, fits=fits)
    return replace(config, anchors=m, n_candidates=min(config.n_candidates, m))
