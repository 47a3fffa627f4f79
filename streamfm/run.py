"""The file pipeline's entry points: :func:`train`, :func:`resume`, :func:`load`.

``train`` reads files (a glob, a list, a directory of shards) into a model
directory, memory bounded by the model, a chunk and the shuffle buffer;
``resume`` finishes an interrupted run exactly where it stopped; ``load``
opens a trained model, its arrays memory-mapped. The command line
(``streamfm train``) calls these.

The engine is chosen here: ``engine="local"`` trains in this process
(``training/local.py``); ``engine="ray"`` or a ``RayOptions`` on Ray workers
(``streamfm.engines.ray``, imported only then). Either way the same loop
(``training/loop.py``) runs the epochs, checkpoints, validation and early
stopping, and the model directory records the engine, so ``resume`` picks
it again.
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil

from .errors import InputError
from .io.identity import changes, identify_all
from .io.options import ReadOptions
from .io.sources import open_source
from .io.stdin import is_spool
from .models.config import Config
from .models.trained import TrainedModel
from .store.manifest import MANIFEST, damaged
from .store.modeldir import ModelDir
from .store.trained import MALFORMED, load_trained, stored_contract, trained_from_manifest
from .training.callbacks import reporting
from .training.local import LocalRounds
from .training.loop import Trainer, stored_at
from .training.options import RunState, TrainOptions, local_engine
from .training.runner import RoundRunner
from .training.setup import continue_run, data_record, new_run

ENGINES = ("local", "ray")


def train(data, model_dir, *, config: Config | None = None, options: TrainOptions | None = None,
          data_options: ReadOptions | dict | None = None, valid=None, engine="local", callbacks=()) -> dict:
    """Train a new model on ``data`` into ``model_dir``, or continue an existing one on new data.

    Parameters
    ----------
    data, valid : path, glob, directory or list of them
        The training data, and data to validate on after every epoch.
    model_dir : path
        The model directory (created if missing; if it holds a finished
        run, its model goes on training on ``data``).
    config : Config or None
        The hyper-parameters of a new model (default: ``Config()``).
    options : TrainOptions or None
        How to run (epochs, batches, checkpoints, early stopping, ...).
    data_options : ReadOptions, dict or None
        How to read the files (``io/options.py``: format, label column, ...;
        a dict of its fields will do).
    engine : "local", "ray" or RayOptions
        Who trains the rows: this process, or Ray workers.
    callbacks : sequence of callables taking a ``CallbackEnv``
        Observers of the run (``training/callbacks.py``), beside the
        epoch lines (off with ``options.quiet``) and the progress bar
        (``options.progress``; by default on a terminal only).

    Returns
    -------
    dict
        The run's summary: ``stopped`` (None, a signal's name or
        "max_rows"), ``epochs_done``, ``last`` (the last epoch's record), and
        with early stopping ``kept_epoch`` and ``stop_reason``.
    """
    options = (options or TrainOptions()).validate()
    data_options = ReadOptions.coerce(data_options)
    rounds = _rounds(_engine_record(engine))
    store = ModelDir(model_dir)
    check_model_path(store.path)
    made = not store.path.exists()
    try:
        # a model that exists reads new data the way it read its own (its input contract)
        contract = stored_contract(store) if store.exists() else None
        source = open_source(data, data_options, contract=contract)
        rounds.check(source)
        valid_source = open_source(valid, data_options, contract=contract) if valid else None
        if contract is not None:
            for opened in (source, valid_source):
                if opened is not None:
                    contract.check_extra_columns(opened, options.ignore_extra_features)
        callbacks = reporting(options.quiet, options.progress) + list(callbacks)
        if store.exists():
            with store.lock():
                _say_continuing(store, options.quiet)
                return continue_run(store, source, valid_source, options, data_options, config, rounds, callbacks)
        config = (config or Config()).validate()
        # what the engine can start before the scan pass starts now (Ray: the workers' first streams)
        rounds.prepare(source, data_record(source, data_options), options, config.seed)
        return new_run(store, source, valid_source, options, data_options, config, rounds, callbacks)
    except BaseException:
        if made and not store.exists():  # a run that never trained leaves no model directory
            shutil.rmtree(store.path, ignore_errors=True)
        raise
    finally:
        rounds.close()  # after the loop, a no-op; after a failed scan, stops what prepare started


def _say_continuing(store: ModelDir, quiet: bool) -> None:
    """Name the model a run trains further (an interrupted one is refused by ``continue_run``)."""
    manifest = store.read_manifest()
    if not quiet and manifest["training"]["status"] == "complete":
        print(f"continuing model {store.path} ({manifest['model']['t']:,} rows trained)", flush=True)


#: names a model directory holds (besides hidden ones: the lock, temporary files)
_MODEL_DIR_NAMES = re.compile(r"(ckpt-\d+|manifest\.json|metrics\.jsonl|holdout\.parquet)\Z")


def check_model_path(path: pathlib.Path) -> None:
    """A model directory to create must be new or empty: refuse a file, or a directory that holds
    other files (data shards, say) and no model, before the model is written among them."""
    if path.exists() and not path.is_dir():
        raise InputError(f"--model {path} is a file, not a directory")
    if not path.is_dir() or (path / MANIFEST).exists():
        return
    other = sorted(n for n in os.listdir(path) if not n.startswith(".") and not _MODEL_DIR_NAMES.match(n))
    if other:
        shown = ", ".join(other[:3]) + (", ..." if len(other) > 3 else "")
        raise InputError(f"--model {path} is a directory of other files ({shown}) with no model in it: the "
                         "model would be written among them; name a new or empty directory")


def resume(model_dir, *, quiet: bool | None = None, progress: bool | None = None, callbacks=(),
           allow_changed_data: bool = False) -> dict:
    """Continue an interrupted run from its last checkpoint, exactly where it stood, on its engine.

    The run's data files must be what they were when it started (size,
    modification time, fingerprint: ``io/identity.py``), unless
    ``allow_changed_data``. ``quiet`` (None: as the run started) and
    ``progress`` (None: on a terminal only) say how this call reports.
    """
    store = ModelDir(model_dir)
    with store.lock():
        manifest, arrays = store.load(mmap_mode="c", verify="all")
        try:
            run = RunState.from_dict(manifest["training"])
            run.train_options().validate()
        except MALFORMED as exc:
            raise damaged(store.path, f"its training entry cannot be read ({type(exc).__name__}: {exc})") from None
        if run.status == "complete":
            return {"stopped": None, "epochs_done": run.epoch, "already_complete": True, "last": None}
        check_data_unchanged(run, store.path, allow_changed_data)
        if quiet is not None:
            run.options["quiet"] = quiet
        run.options["progress"] = progress  # how this invocation reports, not how the run started
        rounds = _rounds(run.engine)
        try:
            rounds.check()
            trained = trained_from_manifest(store.path, manifest, arrays,
                                            ignore_extra=run.options.get("ignore_extra_features", False))
            stored_at(trained, store, manifest["checkpoint"])
            valid = open_source(run.valid["files"], ReadOptions.from_dict(run.data["options"]),
                                contract=trained.input) if run.valid else None
            store.drop_metrics_after(trained.model.t)  # records a crash left beyond the checkpoint
            opts = run.train_options()
            callbacks = reporting(opts.quiet, opts.progress) + list(callbacks)
            return Trainer(store, trained, run, rounds, valid, callbacks).fit()
        finally:
            rounds.close()


def load(model_dir, *, ignore_extra: bool = False) -> TrainedModel:
    """A trained model from its directory, arrays memory-mapped read-only, its manifest checked."""
    return load_trained(ModelDir(model_dir), "r", ignore_extra=ignore_extra)[1]


def check_data_unchanged(run: RunState, path, allow_changed: bool) -> None:
    """Refuse to resume on data files that changed since the run started (unless ``allow_changed``,
    which records the files as they are now)."""
    if any(is_spool(f) for f in run.data.get("files", [])):
        raise InputError(f"the run in {path} read standard input, which is not kept: it cannot be resumed; "
                         "train again into a new --model (from a file, a stopped run can be resumed)")
    found = changes(run.data.get("identity", []))
    if run.valid:
        found += changes(run.valid.get("identity", []))
    if not found:
        return
    if not allow_changed:
        raise InputError(f"the data of the run in {path} changed since it started: {'; '.join(found)}. "
                         "Resuming would train on other data; restore the files, or pass --allow-changed-data "
                         "to continue on them as they are")
    run.data["identity"] = identify_all(run.data["files"])
    if run.valid:
        run.valid["identity"] = identify_all(run.valid["files"])


def _engine_record(engine) -> dict:
    """The manifest's engine entry for ``engine`` ("local", "ray" or an engine's options)."""
    if engine is None or engine == "local":
        return local_engine()
    if engine == "ray":
        from .engines.ray.options import RayOptions

        engine = RayOptions()
    if isinstance(engine, str) or getattr(engine, "name", None) not in ENGINES:
        raise InputError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return {"name": engine.name, "options": engine.validate().to_dict(), "state": {}}


def _rounds(record: dict) -> RoundRunner:
    """The round runner of an engine entry (the Ray layer is imported only when asked for)."""
    if record["name"] == "local":
        return LocalRounds()
    if record["name"] == "ray":
        from .engines.ray import RayRounds

        return RayRounds.from_record(record)
    raise InputError(f"unknown engine {record['name']!r} (this streamfm has {', '.join(ENGINES)})")

