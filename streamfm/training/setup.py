"""A run's set-up before its epochs: a new model from a scan pass, or a stored model on new data.

New run: scan pass (rows, width, labels, statistics, a reservoir sample;
held-out rows spooled, ``training/validation.py``) -> per-feature scaling
(``Standardizer.from_scan``) -> parameters and k-means anchors -> the
epochs. Continued model (``streamfm train DATA --model DIR`` on a finished
run): its scaling, classes, anchors and optimiser state are kept; the scan
checks the new data against them. Either way the caller gives the round
runner (the engine) and the callbacks; the loop is ``training/loop.py``.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, replace

import numpy as np

from ..coding.space import MAX_CODING_VALUE
from ..errors import InputError, RowError
from ..io.contract import InputContract
from ..io.identity import identify_all
from ..io.options import ReadOptions
from ..io.sources import open_source
from ..models.capacity import AUTO
from ..models.config import Config
from ..models.init import model_from_scan
from ..models.memory import StoreSpec
from ..models.trained import TrainedModel, scale_mode
from ..preprocess.standardize import Standardizer
from ..progress import show_progress
from ..store.modeldir import ModelDir
from .loop import Trainer, stored_at
from .options import RunState, TrainOptions
from .runner import RoundRunner
from .validation import Validation


def data_record(source, data_options: ReadOptions) -> dict:
    """How a run's data is found and read again (``RunState.data``; a Ray worker's ``data``), and
    what the files were (``io/identity.py``: ``--resume`` refuses changed data)."""
    return {"files": source.files, "options": data_options.to_dict(), "identity": identify_all(source.files)}


def valid_record(valid_source) -> dict | None:
    """``RunState.valid``: the ``--valid`` files and what they were."""
    if valid_source is None:
        return None
    return {"files": valid_source.files, "identity": identify_all(valid_source.files)}


def new_run(store: ModelDir, source, valid_source, options: TrainOptions, data_options: ReadOptions, config: Config,
            rounds: RoundRunner, callbacks=()) -> dict:
    """Train a new model on ``source`` into ``store`` (which must not exist); returns the loop's summary."""
    validation = Validation(store, options, valid_source, config.seed, rounds.name, rounds.holds_out)
    try:
        sc = validation.scan(source, sample_size=options.sample_size, seed=config.seed, task=options.task,
                             progress=show_progress(options.progress, options.quiet))
        report_skipped(source)
        std = Standardizer.from_scan(sc, options.scale or "auto", dense_source=source.dense,
                                     ignore_extra=options.ignore_extra_features)
        check_coding_range(sc, std, config)
        model = model_from_scan(config, sc, std, source.dense, bits=options.bits,
                                memory_budget=options.memory_budget)
        classes = None if sc.task == "regression" else sc.classes
        trained = TrainedModel(model, std, classes, InputContract.of(source, sc.n_features))
        if valid_source is not None:  # read as the model reads data, and checked before any training
            valid_source = open_source(valid_source.files, data_options, contract=trained.input)
            check_valid(trained, valid_source, options.ignore_unknown_labels)
        run = RunState(data=data_record(source, data_options), valid=valid_record(valid_source),
                       options=asdict(options), epochs=options.epochs, rows_per_epoch=sc.n_rows,
                       mean_row_entries=_row_entries(sc, std), engine=rounds.record(),
                       **validation.run_fields(sc.task))
        if not options.quiet:
            _describe_start(sc, model, std, source, validation.note)
        del sc  # its per-feature statistics grow with the features seen: not held through the epochs
        with store.lock():
            if store.exists():  # another process created it while this one scanned
                raise InputError(f"{store.path} was created by another trainer meanwhile; use another --model")
            validation.install()
            trainer = Trainer(store, trained, run, rounds, valid_source, callbacks)
            trainer.save("running")  # epoch 0: the initialised model, so a crash loses nothing
            return trainer.fit()
    finally:
        validation.close()


def continue_run(store: ModelDir, source, valid_source, options: TrainOptions, data_options: ReadOptions,
                 config: Config | None, rounds: RoundRunner, callbacks=()) -> dict:
    """Incremental training of the finished run in ``store`` (its lock held): keep standardisation,
    classes, anchors and optimiser state."""
    manifest, arrays = store.load(mmap_mode="c")
    run_old = manifest["training"]
    if run_old["status"] != "complete":
        raise InputError(f"{store.path} holds an interrupted run (epoch {run_old['epoch'] + 1} of "
                         f"{run_old['epochs']}); finish it with: streamfm train --resume {store.path}")
    stored_config = Config.from_dict(manifest["model"]["config"])
    if config is not None and config.anchors == AUTO and manifest["model"].get("anchors_auto"):
        config = replace(config, anchors=stored_config.anchors, n_candidates=stored_config.n_candidates)
    if config is not None:  # resolved as the model resolved it
        config = config.for_features(int(manifest["model"]["n_features"]))
    if config is not None and config.to_dict() != stored_config.to_dict():
        raise InputError(f"{store.path} already holds a model; its hyper-parameters cannot change. "
                         "Leave out the model options, or train into a new --model directory.")
    check_scale(manifest["model"], options.scale, store.path)
    stored = StoreSpec.from_dict(manifest["model"].get("store"))
    if options.bits is not None and (not stored.hashed or stored.bits != options.bits):
        raise InputError(f"{store.path} holds a model in the {stored.describe()}; its store cannot change. "
                         "Leave out --bits, or train into a new --model directory.")
    trained = TrainedModel.from_state(manifest["model"], arrays, ignore_extra=options.ignore_extra_features)
    stored_at(trained, store, manifest["checkpoint"])
    classes = None if (trained.task == "regression" or options.ignore_unknown_labels) else trained.classes
    validation = Validation(store, options, valid_source, trained.model.config.seed, rounds.name, rounds.holds_out)
    try:
        sc = validation.scan(source, sample_size=1,
                             task=trained.task if trained.task != "binary" or classes is not None else None,
                             classes=classes, progress=show_progress(options.progress, options.quiet))
        report_skipped(source)
        if sc.n_features > trained.model.p and not options.ignore_extra_features:
            raise InputError(f"the new data has {sc.n_features:,} features, beyond the model's "
                             f"{trained.model.p:,}; pass --ignore-extra-features to drop the extra ones")
        if valid_source is not None:
            check_valid(trained, valid_source, options.ignore_unknown_labels)
        history = run_old.get("history", []) + [{k: run_old[k] for k in ("data", "epochs", "rows_per_epoch")}]
        data = data_record(source, data_options)
        if trained.input is not None:  # the new files are read as the model reads data (Ray workers too)
            data["input"] = trained.input.to_dict()
        run = RunState(data=data, valid=valid_record(valid_source),
                       options=asdict(options), epochs=options.epochs, rows_per_epoch=sc.n_rows,
                       mean_row_entries=_row_entries(sc, trained.standardizer), history=history,
                       engine=rounds.record(), **validation.run_fields(trained.task))
        if not options.quiet:
            print(f"early stopping: {validation.note}", flush=True)
        validation.install()
        return Trainer(store, trained, run, rounds, valid_source, callbacks).fit()
    finally:
        validation.close()


def report_skipped(source) -> None:
    """Say how many rows ``--skip-bad-rows`` left out of the scan pass (every epoch skips the same)."""
    if source.bad_rows:
        print(f"skipped {source.bad_rows:,} bad row(s) of the training data (--skip-bad-rows)", file=sys.stderr,
              flush=True)


def check_valid(trained: TrainedModel, valid_source, ignore_unknown_labels: bool) -> None:
    """Read ``--valid`` once before training: a label the model does not know, a feature beyond
    it or a bad row fails now, naming its place, not after the first epoch."""
    for chunk, path, row0 in valid_source.iter_placed():
        try:
            if not ignore_unknown_labels:
                trained.targets(chunk.y)
            trained.standardizer.check(chunk)
        except RowError as exc:
            raise valid_source.placed(exc, path, row0) from None


def check_coding_range(sc, std: Standardizer, config: Config) -> None:
    """An LLFM codes rows for a FAISS search in float32: a feature whose scaled values reach
    beyond ``MAX_CODING_VALUE`` would overflow its distances (``--scale none`` on huge values)."""
    fs = sc.stats  # a feature never seen has no value beyond its shift, and only a centred one has a shift
    feats = fs.features[fs.features < std.n_features]
    if config.method == "fm" or not len(feats):
        return
    reach = (fs.seen_max_abs[:len(feats)] + np.abs(std.shift[feats])) * std.scale[feats]
    i = int(np.argmax(reach))
    j = int(feats[i])
    if reach[i] > MAX_CODING_VALUE:
        raise InputError(f"feature {j} reaches {reach[i]:.3g} after scaling ({std.mode}), beyond what the anchor "
                         f"search computes with ({MAX_CODING_VALUE:g}): scale the features (--scale auto, standard "
                         "or maxabs) or use --method fm")


def check_scale(model_meta: dict, scale: str | None, path) -> None:
    """``--scale`` for a model that exists must be the mode it was trained with: its map is kept."""
    if scale is not None and scale != scale_mode(model_meta):
        raise InputError(f"{path} holds a model trained with --scale {scale_mode(model_meta)}; its scaling "
                         f"cannot change to {scale}. Leave out --scale, or train into a new --model directory.")


def _describe_start(sc, model, std, source, early_stopping: str) -> None:
    config = model.config
    task = sc.task + (f" ({len(sc.classes)} classes)" if sc.task == "multiclass" else "")
    labels = f", labels {sc.binary_labels_kind}" if sc.task == "binary" else ""
    print(f"data: {sc.n_rows + sc.n_held:,} rows, {sc.n_features:,} features, density {sc.density:.3f}, "
          f"{len(source.files)} file(s); task {task}{labels}", flush=True)
    print(f"scaling {std.describe()}", flush=True)
    print(f"model: {config.method}, rank {config.rank}"
          + (f", {config.anchors} anchors" + (" (auto)" if model.anchors_auto else "")
             if config.method != "fm" else ""), flush=True)
    print(f"early stopping: {early_stopping}", flush=True)


def _row_entries(sc, std) -> float:
    """Stored values per row after scaling (sizes the shuffle buffer): a centred feature is in every row."""
    fs = sc.stats
    inside = fs.features < std.n_features
    held = int(fs.seen_nnz[inside][std.centred[fs.features[inside]]].sum())  # of those, already stored
    return (sc.nnz - held) / max(sc.n_rows, 1) + std.n_centred
