"""The estimators' models as model directories: ``save(DIR)`` and ``from_model_dir(DIR)``.

A saved estimator is an ordinary model directory (``store/``): a complete
checkpoint of its ``TrainedModel`` (parameters, AdaGrad sums, anchors and
their search state, scaling, classes) and a finished run in the manifest's
``training`` entry, so ``streamfm predict``, ``evaluate``, ``info`` and
``train DATA --model DIR`` (training it further on files) take it as they
take a model the command line trained. ``from_model_dir`` is the way back:
an estimator whose ``model_`` is the directory's model, read into memory,
ready for ``predict`` and ``partial_fit``.
"""
from __future__ import annotations

import os
from dataclasses import asdict, fields

import numpy as np

from . import __version__
from .errors import InputError
from .io.options import ReadOptions
from .models.config import Config
from .models.trained import TrainedModel, scale_mode
from .store.modeldir import ModelDir
from .training.options import SPOOL, RunState, TrainOptions

#: what the manifest's ``training.data`` holds for a model fitted on arrays in memory
IN_MEMORY = "arrays in memory (a scikit-learn estimator)"


def _run_record(est, trained: TrainedModel) -> dict:
    """The finished run of an estimator, as the manifest's ``training`` entry: ``fit``'s epochs (the
    kept one's count) and rows; for a model opened by ``from_model_dir``, one epoch of the rows
    ``partial_fit`` trained since, the directory's runs in ``history``."""
    model = trained.model
    opened = getattr(est, "_opened", None)  # (model, runs, t) of from_model_dir, until fit replaces the model
    history = list(opened[1]) if opened is not None and opened[0] is model else []
    if history:
        epochs, rows = 1, int(model.t - opened[2])
    else:
        epochs = int(getattr(est, "best_epoch_", None) or getattr(est, "n_iter_", 0) or 1)
        rows = int(model.t // epochs)
    options = TrainOptions(epochs=epochs, batch_rows=est.batch_size, shuffle=est.shuffle,
                           sample_size=est.sample_size, scale=trained.standardizer.mode,
                           early_stop=0, quiet=True)
    run = RunState(data={"files": [], "options": ReadOptions().to_dict(), "source": IN_MEMORY},
                   valid=None, options=asdict(options), epochs=epochs, epoch=epochs, status="complete",
                   rows_per_epoch=rows, mean_row_entries=float(model.p), history=history,
                   kept_epoch=epochs, stop_reason=f"saved by {type(est).__name__}.save")
    return run.to_dict()


def save_estimator(est, model_dir, *, overwrite: bool = False) -> str:
    """Write a fitted estimator's model into ``model_dir`` (see the module notes); returns the path.

    A directory that already holds a model is refused unless ``overwrite``:
    then the estimator's model becomes its model (committed atomically, as a
    checkpoint) and ``metrics.jsonl``, the log of the epochs trained in the
    directory, is kept.
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "model_")
    trained = TrainedModel(est.model_, est.scaler_, getattr(est, "classes_", None))
    store = ModelDir(model_dir)
    with store.lock():
        if store.exists() and not overwrite:
            raise InputError(f"{store.path} already holds a model; pass overwrite=True to replace it")
        meta, arrays = trained.state()
        manifest = {"streamfm_version": __version__, "model": meta, "training": _run_record(est, trained)}
        store.save(manifest, arrays)
        spool = store.path / SPOOL  # held-out rows of an earlier run: not this model's
        if spool.exists():
            os.remove(spool)
    return os.fspath(store.path)


def estimator_params(cls, config: Config, scale: str) -> dict:
    """The parameters of ``cls`` that give ``config`` (and ``scale``), its other parameters' defaults."""
    names = set(cls().get_params())
    params = {f.name: getattr(config, f.name) for f in fields(Config) if f.name in names}
    if "method" not in names and config.method != "fm":
        raise InputError(f"the model is {config.method}, not an FM: open it with "
                         f"{cls.__name__.replace('FM', 'LLFM', 1)}.from_model_dir")
    params.update(scale=scale, random_state=config.seed)
    return params


def load_estimator(cls, model_dir):
    """An estimator of class ``cls`` holding the model of ``model_dir`` (arrays read into memory)."""
    from sklearn.base import is_classifier

    manifest, arrays = ModelDir(model_dir).load(mmap_mode=None)
    meta = manifest["model"]
    regression = meta["task"] == "regression"
    if is_classifier(cls()) == regression:
        want = "a regressor" if regression else "a classifier"
        raise InputError(f"{model_dir} holds a {meta['task']} model: open it with {want}, not {cls.__name__}")
    trained = TrainedModel.from_state(meta, arrays)
    config = trained.model.config
    est = cls(**estimator_params(cls, config, scale_mode(meta)))
    est.model_, est.scaler_ = trained.model, trained.standardizer
    if not regression:
        est.classes_ = np.asarray(trained.classes)
    est.n_features_in_ = trained.model.p
    run = manifest["training"]
    est.n_iter_ = int(run.get("epoch", 0))
    est.best_epoch_ = run.get("kept_epoch")
    est.loss_curve_, est.validation_scores_ = [], None
    # the model's runs so far, for the history of a later save
    runs = run.get("history", []) + [{k: run[k] for k in ("data", "epochs", "rows_per_epoch")}]
    est._opened = (trained.model, runs, trained.model.t)
    return est


class ModelDirMixin:
    """``save(DIR)`` and ``from_model_dir(DIR)`` for the estimators."""

    def save(self, model_dir, *, overwrite: bool = False) -> str:
        """Write the fitted model as a model directory that ``streamfm predict``, ``evaluate``,
        ``info`` and ``train DATA --model DIR`` take; returns the directory's path.

        A directory that holds a model already is refused unless ``overwrite=True`` (then the
        model is replaced atomically and the earlier runs are listed in its history).
        """
        return save_estimator(self, model_dir, overwrite=overwrite)

    @classmethod
    def from_model_dir(cls, model_dir):
        """The model of a model directory (``streamfm train`` 's or ``save`` 's) as a fitted estimator.

        Its hyper-parameters become the estimator's parameters (``random_state`` is the model's
        seed); its arrays are read into memory, so ``partial_fit`` trains it further without
        touching the directory.
        """
        return load_estimator(cls, model_dir)
