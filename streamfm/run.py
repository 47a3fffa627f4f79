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

from .errors import InputError
from .io.options import ReadOptions
from .io.sources import open_source
from .models.config import Config
from .models.trained import TrainedModel
from .store.modeldir import ModelDir
from .training.callbacks import reporting
from .training.local import LocalRounds
from .training.loop import Trainer
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
        progress bar and epoch lines that ``options.quiet`` turns off.

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
    try:
        source = open_source(data, data_options)
        rounds.check(source)
        valid_source = open_source(valid, data_options) if valid else None
        callbacks = reporting(options.quiet) + list(callbacks)
        if store.exists():
            with store.lock():
                _say_continuing(store, options.quiet)
                return continue_run(store, source, valid_source, options, data_options, config, rounds, callbacks)
        config = (config or Config()).validate()
        # what the engine can start before the scan pass starts now (Ray: the workers' first streams)
        rounds.prepare(source, data_record(source, data_options), options, config.seed)
        return new_run(store, source, valid_source, options, data_options, config, rounds, callbacks)
    finally:
        rounds.close()  # after the loop, a no-op; after a failed scan, stops what prepare started


def _say_continuing(store: ModelDir, quiet: bool) -> None:
    """Name the model a run trains further (an interrupted one is refused by ``continue_run``)."""
    manifest = store.read_manifest()
    if not quiet and manifest["training"]["status"] == "complete":
        print(f"continuing model {store.path} ({manifest['model']['t']:,} rows trained)", flush=True)


def resume(model_dir, *, quiet: bool | None = None, callbacks=()) -> dict:
    """Continue an interrupted run from its last checkpoint, exactly where it stood, on its engine."""
    store = ModelDir(model_dir)
    with store.lock():
        manifest, arrays = store.load(mmap_mode="c")
        run = RunState.from_dict(manifest["training"])
        if run.status == "complete":
            return {"stopped": None, "epochs_done": run.epoch, "already_complete": True, "last": None}
        if quiet is not None:
            run.options["quiet"] = quiet
        rounds = _rounds(run.engine)
        try:
            rounds.check()
            trained = TrainedModel.from_state(manifest["model"], arrays,
                                              ignore_extra=run.options.get("ignore_extra_features", False))
            valid = open_source(run.valid["files"], ReadOptions.from_dict(run.data["options"])) if run.valid else None
            callbacks = reporting(run.train_options().quiet) + list(callbacks)
            return Trainer(store, trained, run, rounds, valid, callbacks).fit()
        finally:
            rounds.close()


def load(model_dir, *, ignore_extra: bool = False) -> TrainedModel:
    """A trained model from its directory, arrays memory-mapped read-only."""
    manifest, arrays = ModelDir(model_dir).load(mmap_mode="r")
    return TrainedModel.from_state(manifest["model"], arrays, ignore_extra=ignore_extra)


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

