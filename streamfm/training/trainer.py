"""The streaming trainer: files in, a model directory out, memory bounded by model + chunk + buffer.

Pipeline (SPEC 5): scan pass -> standardiser -> k-means anchors -> epochs
of shuffled chunks through the kernels, with validation after every epoch,
metrics as JSON lines, and atomic checkpoints (every N rows / T seconds, at
every epoch end, on SIGINT/SIGTERM). Every random choice derives from (seed,
epoch), so a checkpoint's (epoch, position) is the whole stream state and a
resumed run continues exactly where the interrupted one stood.

Early stopping (``--early-stop N``, ``training/early_stopping.py``) validates on
``--valid``, or else, on more than 10,000 rows, on a seeded fraction of the
training rows held out by position (``preprocess/holdout.py``): the scan pass
spools them into the model directory (``holdout.parquet``) and leaves them out
of the statistics, every epoch's stream drops them before shuffling, and each
epoch is validated on the spool. The best epoch's checkpoint is kept beside
the latest (``ModelDir.save(keep=...)``) and, when the run ends, committed as
its result (``ModelDir.promote``), so the directory's model is the best epoch's.
"""
from __future__ import annotations

import pathlib
import time
from dataclasses import asdict, dataclass, field

from .. import __version__
from ..errors import InputError
from ..io.options import ReadOptions
from ..io.sources import open_source
from ..io.spool import ParquetSpool
from ..models.config import Config
from ..models.init import model_from_scan
from ..models.trained import TrainedModel, scale_mode
from ..preprocess.holdout import HoldOut
from ..preprocess.scan import AllRowsHeldOut, scan
from ..preprocess.shuffle import read_ahead_chunks, shuffled_epoch
from ..preprocess.standardize import SCALE_MODES, Standardizer
from ..progress import progress_bar
from ..store.modeldir import ModelDir
from ..runtime.signals import GracefulStop
from .early_stopping import AUTO_MIN_ROWS, EarlyStopping, metric_for
from ..inference.metrics import evaluate_source
from ..runtime.prefetch import Prefetch
from .rounds import RowStream, train_for_rows

# entries (rows x stored values) a reader chunk and the shuffle buffer may hold
READ_ENTRIES = 4_000_000
BUFFER_ENTRIES = 8_000_000
ENGINES = ("local", "ray")
#: the held-out rows' spool in the model directory
SPOOL = "holdout.parquet"


@dataclass
class TrainOptions:
    """How to run (not what to learn: that is ``Config``)."""

    epochs: int = 10
    batch_rows: int = 4096  # rows handed to the kernel at a time
    shuffle_buffer: int = 0  # rows; 0 = as many as BUFFER_ENTRIES allows (at most 100,000)
    shuffle: bool = True
    sample_size: int = 10_000  # reservoir sample for k-means
    checkpoint_rows: int = 0  # 0 = only by time and at epoch ends
    checkpoint_seconds: float = 600.0
    max_rows: int = 0  # stop (resumably) after this many rows in this invocation; 0 = no limit
    task: str | None = None
    classes: list | None = None
    # per-feature scaling (preprocess/standardize.py): auto | standard | maxabs | none;
    # None = not given: auto for a new model, the stored map for an existing one
    scale: str | None = None
    ignore_extra_features: bool = False
    ignore_unknown_labels: bool = False
    quiet: bool = False
    # chunks read ahead in a background thread; 0 = none (same results either
    # way); None = one shuffle round's output (see Trainer._prefetch_depth)
    prefetch: int | None = None
    threads: int = 1  # > 1: Hogwild training threads (faster, not reproducible bit for bit)
    # the engine: "local" (this process) or "ray" (streamfm.engines.ray_engine)
    engine: str = "local"
    workers: int = 2  # ray: worker actors
    sync_rows: int = 0  # ray: rows each worker trains between merges; 0 = the engine's default
    address: str | None = None  # ray: an existing cluster to join; None = start a local instance
    worker_retries: int = 2  # ray: restarts from the last checkpoint after a worker dies
    scale_steps: bool = True  # ray: workers' step sizes times the number of workers (ray_engine notes)
    # stop after this many epochs without a lower validation metric, and keep the best epoch; 0 = off
    early_stop: int = 3
    # without --valid, on more than AUTO_MIN_ROWS rows: the share of training rows held out to validate
    validation_fraction: float = 0.1

    def validate(self) -> "TrainOptions":
        for name in ("epochs", "batch_rows", "sample_size", "workers", "threads"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("shuffle_buffer", "checkpoint_rows", "max_rows", "sync_rows", "worker_retries", "early_stop"):
            if int(getattr(self, name)) < 0:
                raise InputError(f"--{name.replace('_', '-')} must be >= 0")
        if self.scale is not None and self.scale not in SCALE_MODES:
            raise InputError(f"--scale must be one of {', '.join(SCALE_MODES)}, got {self.scale!r}")
        if not 0.0 < float(self.validation_fraction) < 1.0:
            raise InputError(f"--validation-fraction must be between 0 and 1 (exclusive), got {self.validation_fraction}")
        if self.engine not in ENGINES:
            raise InputError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        return self


@dataclass
class RunState:
    """Where a run stands; stored in the manifest under "training"."""

    data: dict  # {"files": [...], "options": ReadOptions.to_dict()}
    valid: dict | None
    options: dict
    epochs: int
    epoch: int = 0  # the epoch in progress (0-based)
    position: int = 0  # rows of this epoch's stream already trained on
    epoch_loss_sum: float = 0.0
    status: str = "running"  # running | interrupted | complete
    rows_per_epoch: int = 0
    mean_row_entries: float = 0.0  # stored values per row after standardising (sizes the buffer)
    history: list = field(default_factory=list)
    worker_positions: list = field(default_factory=list)  # ray: rows of this epoch each worker trained on
    # rows held out of the training data to validate on: {"fraction", "seed", "rows", "spool"}
    holdout: dict | None = None
    early_stopping: dict | None = None  # EarlyStopping.state(); None: off
    # the best epoch so far: {"epoch", "metric", "value"} and, while the run goes on, "model" (the
    # model meta of its checkpoint, which the manifest keeps as "best"), committed when the run ends
    best: dict | None = None
    kept_epoch: int | None = None  # when complete: the epoch whose model the directory holds
    stop_reason: str | None = None  # when complete: why the run ended, in words


class Trainer:
    def __init__(self, store: ModelDir, trained: TrainedModel, run: RunState, valid_source=None):
        self.store = store
        self.trained = trained
        self.run = run
        self.opts = TrainOptions(**run.options)
        self.source = open_source(run.data["files"], ReadOptions.from_dict(run.data["options"]))
        self.holdout = HoldOut.from_dict(run.holdout) if run.holdout else None
        if self.holdout is not None and valid_source is None:
            valid_source = open_source(str(store.path / run.holdout["spool"]))
        self.valid = valid_source
        self.early = EarlyStopping.from_state(run.early_stopping) if run.early_stopping else None
        self._best_ckpt = None  # the checkpoint the manifest keeps as "best"
        if run.best is not None and run.status != "complete" and store.exists():
            kept = store.read_manifest().get("kept", {}).get("best")
            if kept is None:
                raise InputError(f"model directory {store.path} is damaged: its run's best epoch "
                                 f"({run.best['epoch']}) has no checkpoint kept")
            self._best_ckpt = kept["checkpoint"]
        self.unknown_labels = 0
        self._input_wait: float | None = None  # seconds this epoch's loop waited for its input

    # --------------------------------------------------------------- store
    def save(self, status: str | None = None, *, best: bool = False) -> str:
        """Checkpoint the model and the run; ``best``: this checkpoint is the best epoch's (kept)."""
        if status is not None:
            self.run.status = status
        meta, arrays = self.trained.state()
        manifest = {"streamfm_version": __version__, "model": meta, "training": asdict(self.run)}
        keep = None
        if self.run.status != "complete":
            keep = {"best": None} if best else ({"best": self._best_ckpt} if self._best_ckpt else None)
        name = self.store.save(manifest, arrays, keep=keep)
        if best:
            self._best_ckpt = name
        return name

    def _commit_best(self) -> None:
        """End the run with the best epoch's checkpoint as its result (its arrays and model meta exactly)."""
        run = self.run
        meta = run.best["model"]
        run.best = {k: v for k, v in run.best.items() if k != "model"}
        run.status = "complete"
        self.store.promote({"streamfm_version": __version__, "model": meta, "training": asdict(run)}, "best")
        self._best_ckpt = None
        manifest, arrays = self.store.load(mmap_mode="c")
        self.trained = TrainedModel.from_state(manifest["model"], arrays,
                                               ignore_extra=self.opts.ignore_extra_features)

    def _epochs_left(self) -> bool:
        return self.run.epoch < self.run.epochs and self.run.status != "complete"

    # ---------------------------------------------------------------- loop
    def _reader_rows(self) -> int:
        return reader_rows(self.trained.model.p)

    def _buffer_rows(self, mean_entries: float) -> int:
        if not self.opts.shuffle:
            return 0
        if self.opts.shuffle_buffer:
            return self.opts.shuffle_buffer
        return int(max(self.opts.batch_rows, min(100_000, BUFFER_ENTRIES // max(mean_entries, 1.0))))

    def _prefetch_depth(self, buffer_rows: int) -> int:
        """Chunks the read-ahead thread may hold: ``--prefetch``, by default one shuffle round's output."""
        if self.opts.prefetch is not None:
            return int(self.opts.prefetch)
        return read_ahead_chunks(buffer_rows, self.opts.batch_rows)

    def fit(self) -> dict:
        """Run the remaining epochs; returns a summary. Stops resumably on a signal or max_rows."""
        opts, run, model = self.opts, self.run, self.trained.model
        std = self.trained.standardizer
        buffer_rows = self._buffer_rows(model.p if std.center else run.mean_row_entries)
        rows_this_call = 0
        last_ckpt_t, rows_since_ckpt = time.monotonic(), 0
        summary = {"stopped": None, "epochs_done": run.epoch, "last": None}
        # the caller holds the store's lock
        with GracefulStop() as stop:
            while self._epochs_left():
                bar = progress_bar(total=run.rows_per_epoch or None, initial=run.position, unit="rows",
                           unit_scale=True, desc=f"epoch {run.epoch + 1}/{run.epochs}",
                           disable=opts.quiet, leave=True, mininterval=0.5)
                t_start, rows_start = time.monotonic(), run.position
                self._input_wait = 0.0
                raw = shuffled_epoch(self.source, epoch=run.epoch, seed=model.config.seed,
                                     buffer_rows=buffer_rows, out_rows=opts.batch_rows,
                                     shuffle_files=opts.shuffle, skip_rows=run.position,
                                     chunk_rows=self._reader_rows(), holdout=self.holdout)
                running = None
                # reading, decoding, shuffling and standardising run ahead in a
                # thread while the (nogil) kernel trains; the order is unchanged
                ready = map(std.transform, raw)
                with Prefetch(ready, self._prefetch_depth(buffer_rows)) as ahead:
                    stream = RowStream(ahead)

                    def progress(n_in, losses):
                        nonlocal running
                        run.position += n_in
                        mean = float(losses.mean()) if len(losses) else 0.0
                        running = mean if running is None else 0.9 * running + 0.1 * mean
                        post = {"loss": f"{running:.4f}"}
                        if model.method != 0:
                            post["k"] = f"{model.metrics()['mean_k']:.2f}"
                        bar.set_postfix(post, refresh=False)
                        bar.update(n_in)

                    def round_ends(done):
                        # checked before a chunk, not after, so a stop at an epoch's
                        # last row still finishes that epoch (record, checkpoint)
                        return stop.requested or bool(opts.max_rows and rows_this_call + done.rows >= opts.max_rows) \
                            or bool(opts.checkpoint_rows and rows_since_ckpt + done.rows >= opts.checkpoint_rows) \
                            or time.monotonic() - last_ckpt_t >= opts.checkpoint_seconds

                    # one worker: a round runs to the next checkpoint, stop or the epoch's
                    # end, and the merge of its one state is that state
                    while True:
                        result = train_for_rows(self.trained, stream, ignore_unknown_labels=opts.ignore_unknown_labels,
                                                until=round_ends, on_chunk=progress, threads=opts.threads,
                                                standardized=True)
                        run.epoch_loss_sum += result.loss_sum
                        self.unknown_labels += result.unknown_labels
                        self._input_wait += result.wait_seconds
                        rows_this_call += result.rows
                        rows_since_ckpt += result.rows
                        if result.exhausted:
                            break
                        if stop.requested or (opts.max_rows and rows_this_call >= opts.max_rows):
                            self.save("interrupted")
                            bar.close()
                            summary["stopped"] = stop.signal_name or "max_rows"
                            summary.update(epoch=run.epoch, position=run.position)
                            return summary
                        self.save("running")
                        last_ckpt_t, rows_since_ckpt = time.monotonic(), 0
                bar.close()
                self._end_epoch(t_start, rows_start, summary)
                last_ckpt_t, rows_since_ckpt = time.monotonic(), 0
        return self._finish_summary(summary)

    def _finish_summary(self, summary: dict) -> dict:
        run = self.run
        summary["epochs_done"] = run.epoch
        if self.early is not None and run.status == "complete":
            summary.update(kept_epoch=run.kept_epoch, stop_reason=run.stop_reason)
        return summary

    def _end_epoch(self, t_start: float, rows_start: int, summary: dict) -> None:
        """Record the epoch, move the run to the next one and checkpoint (or end the run)."""
        run = self.run
        record = self._epoch_record(t_start, rows_start)
        epoch = run.epoch + 1
        stop = improved = False
        if self.early is not None and "valid" in record:
            stop = self.early.update(epoch, record["valid"])
            improved = self.early.improved
            run.early_stopping = self.early.state()
            record["best"] = improved
            record["best_epoch"] = self.early.best_epoch
            if improved:
                run.best = {"epoch": epoch, "metric": self.early.metric, "value": self.early.best_value,
                            "model": self.trained.state()[0]}
        run.epoch += 1
        run.position = 0
        run.epoch_loss_sum = 0.0
        run.worker_positions = []
        done = stop or run.epoch == run.epochs
        if done:
            if self.early is not None:
                run.stop_reason = self.early.reason(epoch)
                run.kept_epoch = self.early.best_epoch if run.best is not None else epoch
            else:
                run.stop_reason, run.kept_epoch = f"last epoch ({epoch}) reached", epoch
            record["stop"], record["kept_epoch"] = run.stop_reason, run.kept_epoch
        # metrics first: a crash between the two repeats the epoch and its
        # record (same "epoch" field, the later one wins) but never loses it
        self.store.append_metrics(record)
        if done and run.best is not None and run.kept_epoch != epoch:
            self._commit_best()
        else:
            if done and run.best is not None:
                run.best = {k: v for k, v in run.best.items() if k != "model"}
            self.save("complete" if done else "running", best=improved and not done)
        summary["last"] = record
        if not self.opts.quiet:
            print(_format_record(record), flush=True)
            if done and self.early is not None:
                print(f"{run.stop_reason}: the model is epoch {run.kept_epoch}'s", flush=True)

    def _epoch_record(self, t_start: float, rows_start: int) -> dict:
        run, model = self.run, self.trained.model
        rows = max(run.position, 1)
        seconds = time.monotonic() - t_start
        record = {"epoch": run.epoch + 1, "rows": run.position, "train_loss": run.epoch_loss_sum / rows,
                  "seconds": round(seconds, 3),
                  "rows_per_second": round((run.position - rows_start) / max(seconds, 1e-9), 1),
                  "t": model.t}
        if self._input_wait is not None:  # the local loop's (an engine records its own)
            # of those seconds, how long training waited for its input (reading to standardising)
            record["input_wait_seconds"] = round(self._input_wait, 3)
        if model.method != 0:
            record.update({k: round(v, 6) for k, v in model.metrics().items()})
        if self.unknown_labels:
            record["unknown_labels_skipped"] = self.unknown_labels
        if self.source.bad_rows:
            record["bad_rows_skipped"] = self.source.bad_rows
        if self.trained.standardizer.dropped:
            record["extra_features_dropped"] = self.trained.standardizer.dropped
        if self.valid is not None:
            record["valid"] = evaluate_source(self.trained, self.valid, chunk_rows=self._reader_rows(),
                                              skip_unknown_labels=self.opts.ignore_unknown_labels)
        return record


def _format_record(r: dict) -> str:
    parts = [f"epoch {r['epoch']}", f"train loss {r['train_loss']:.4f}"]
    v = r.get("valid")
    if v:
        parts += [f"valid {k.replace('_', ' ')} {v[k]:.4f}" for k in ("log_loss", "accuracy", "auc", "rmse", "mae") if k in v]
    if "best" in r:
        parts.append("best so far" if r["best"] else f"best epoch {r['best_epoch']}")
    if "mean_k" in r:
        parts.append(f"mean k {r['mean_k']:.2f}")
    parts.append(f"{r['rows_per_second']:.0f} rows/s")
    return ", ".join(parts)


# ------------------------------------------------------------------ entry points
def reader_rows(p: int) -> int:
    """Rows per chunk the readers make for rows of ``p`` features (about READ_ENTRIES values)."""
    return int(max(1024, min(65536, READ_ENTRIES // max(int(p), 1))))


def _data_record(source, data_options: ReadOptions) -> dict:
    """How a run's data is found and read again (``RunState.data``; a Ray worker's ``data``)."""
    return {"files": source.files, "options": data_options.to_dict()}


def _make_trainer(store, trained, run, valid_source, ray_start=None) -> Trainer:
    """The trainer of the run's engine (the Ray layer is imported only when asked for)."""
    if run.options.get("engine", "local") == "ray":
        from ..engines.ray_engine import RayTrainer

        return RayTrainer(store, trained, run, valid_source, ray_start=ray_start)
    return Trainer(store, trained, run, valid_source)


def _check_engine(options: dict, source=None) -> None:
    """Fail before any work if the engine cannot run (Ray missing, a bad --address, not Parquet)."""
    if options.get("engine", "local") == "ray":
        from ..engines.ray_engine import preflight

        preflight(options.get("address"), source)


def train(data, model_dir, *, config: Config | None = None, options: TrainOptions | None = None,
          data_options: ReadOptions | dict | None = None, valid=None) -> dict:
    """Train a new model on ``data`` into ``model_dir``, or continue an existing one on new data.

    ``data``/``valid`` are paths (file, glob, directory or list); ``data_options``
    say how to read them (a ``ReadOptions``, or a dict of its fields).
    """
    options = (options or TrainOptions()).validate()
    data_options = ReadOptions.coerce(data_options)
    store = ModelDir(model_dir)
    source = open_source(data, data_options)
    _check_engine(asdict(options), source)
    valid_source = open_source(valid, data_options) if valid else None
    if store.exists():
        with store.lock():
            return _continue(store, source, valid_source, options, data_options, config)
    config = (config or Config()).validate()
    ray_start = None
    if options.engine == "ray":
        # Ray, the epochs' datasets and the workers' first streams come up while this process
        # scans (Ray Data's first rows take seconds: see engines/ray_engine.py, RayStart)
        from ..engines.ray_engine import RayStart, stream_rows

        ray_start = RayStart(source, _data_record(source, data_options), options, config.seed,
                             range(options.epochs), stream_rows(source))
    try:
        return _train_new(store, source, valid_source, options, data_options, config, ray_start)
    finally:
        if ray_start is not None:
            ray_start.close()  # after fit, a no-op; after a failed scan, stops the workers and Ray


class _Validation:
    """How a new run validates: on ``--valid``, on held-out training rows, or not at all.

    Held-out rows are spooled during the scan pass into a temporary file in
    the model directory (``ModelDir.temp_path``), installed as ``SPOOL`` under
    the lock before the run's first checkpoint. On 10,000 rows or fewer they
    are dropped (the spool writes nothing before it holds a row group, so
    usually nothing was written; else the file goes) and the data is scanned
    again without holding out: a second pass over at most 10,000 rows.
    """

    def __init__(self, store: ModelDir, options: TrainOptions, valid_source, seed: int):
        self.store, self.options = store, options
        self.valid = valid_source is not None
        self.holdout = None
        self.held_rows = 0
        self._tmp = None
        self._made_dir = False
        if options.early_stop == 0:
            self.note = "off (--early-stop 0)"
        elif self.valid:
            self.note = f"on --valid (stop after {options.early_stop} epochs without improvement)"
        elif options.engine != "local":
            self.note = f"off (--engine {options.engine} validates only on --valid)"
        else:
            self.holdout = HoldOut(options.validation_fraction, seed)
            self.note = None  # known after the scan

    def scan(self, source, **kwargs):
        """The scan pass; holds out rows (and spools them) when the run validates on held-out rows."""
        if self.holdout is None:
            return scan(source, **kwargs)
        self._made_dir = not self.store.path.exists()
        spool = ParquetSpool(lambda: self.store.temp_path(SPOOL), n_features_hint=source.n_features_hint)
        try:
            try:
                sc = scan(source, holdout=self.holdout, on_held=spool.write, **kwargs)
            except AllRowsHeldOut:  # a handful of rows
                sc = None
            held_out = sc is not None and sc.n_rows + sc.n_held > AUTO_MIN_ROWS and sc.n_held > 0
            if held_out:
                spool.close()
        except BaseException:
            spool.abort()
            raise
        finally:
            self._tmp = spool.path and pathlib.Path(spool.path)
        if held_out:
            self.held_rows = sc.n_held
            self.note = (f"on a held-out {self.holdout.fraction:.0%} of the training rows ({sc.n_held:,} rows; "
                         f"stop after {self.options.early_stop} epochs without improvement)")
            return sc
        spool.abort()
        self.close()
        self.holdout = None
        self.note = f"off ({AUTO_MIN_ROWS:,} rows or fewer and no --valid)"
        return scan(source, **dict(kwargs, progress=False))

    def run_fields(self, task: str) -> dict:
        """The RunState fields of this plan."""
        fields = {}
        if self.holdout is not None:
            fields["holdout"] = dict(self.holdout.to_dict(), rows=self.held_rows, spool=SPOOL)
        if self.options.early_stop > 0 and (self.valid or self.holdout is not None):
            fields["early_stopping"] = EarlyStopping(self.options.early_stop, metric_for(task)).state()
        return fields

    def install(self) -> None:
        """Under the lock, before the run's first checkpoint: the spool in place (or an earlier run's gone)."""
        if self.holdout is not None:
            self.store.install(self._tmp, SPOOL)
            self._tmp = None
        elif self.store.path.is_dir():
            self.store.discard(SPOOL)
        self._made_dir = False  # the directory is the run's now

    def close(self) -> None:
        """After a failure: remove the spool's temporary file, and the directory if this made it empty."""
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
        if self._made_dir:
            try:
                self.store.path.rmdir()
            except OSError:  # not empty: a run committed there
                pass
            self._made_dir = False


def _train_new(store, source, valid_source, options, data_options, config, ray_start) -> dict:
    validation = _Validation(store, options, valid_source, config.seed)
    try:
        sc = validation.scan(source, sample_size=options.sample_size, seed=config.seed, task=options.task,
                             classes=options.classes, progress=not options.quiet)
        std = Standardizer.from_scan(sc, options.scale or "auto", dense_source=source.dense,
                                     ignore_extra=options.ignore_extra_features)
        model = model_from_scan(config, sc, std, source.dense)
        classes = None if sc.task == "regression" else sc.classes
        trained = TrainedModel(model, std, classes)
        run = RunState(data=_data_record(source, data_options),
                       valid={"files": valid_source.files} if valid_source else None,
                       options=asdict(options), epochs=options.epochs, rows_per_epoch=sc.n_rows,
                       mean_row_entries=_row_entries(sc, std), **validation.run_fields(sc.task))
        if not options.quiet:
            _describe_start(sc, config, std, source, validation.note)
        with store.lock():
            if store.exists():  # another process created it while this one scanned
                raise InputError(f"{store.path} was created by another trainer meanwhile; use another --model")
            validation.install()
            trainer = _make_trainer(store, trained, run, valid_source, ray_start)
            trainer.save("running")  # epoch 0: the initialised model, so a crash loses nothing
            return trainer.fit()
    finally:
        validation.close()


def _describe_start(sc, config, std, source, early_stopping: str) -> None:
    task = sc.task + (f" ({len(sc.classes)} classes)" if sc.task == "multiclass" else "")
    labels = f", labels {sc.binary_labels_kind}" if sc.task == "binary" else ""
    print(f"data: {sc.n_rows + sc.n_held:,} rows, {sc.n_features:,} features, density {sc.density:.3f}, "
          f"{len(source.files)} file(s); task {task}{labels}", flush=True)
    print(f"scaling {std.describe()}", flush=True)
    print(f"model: {config.method}, rank {config.rank}"
          + (f", {config.anchors} anchors" if config.method != "fm" else ""), flush=True)
    print(f"early stopping: {early_stopping}", flush=True)


def _row_entries(sc, std) -> float:
    """Stored values per row after scaling (sizes the shuffle buffer): a centred feature is in every row."""
    k = min(std.n_features, sc.n_features)
    held = int(sc.nnz_per_feature[:k][std.centred[:k]].sum())  # of those, already stored
    return (sc.nnz - held) / max(sc.n_rows, 1) + std.n_centred


def check_scale(model_meta: dict, scale: str | None, path) -> None:
    """``--scale`` for a model that exists must be the mode it was trained with: its map is kept."""
    if scale is not None and scale != scale_mode(model_meta):
        raise InputError(f"{path} holds a model trained with --scale {scale_mode(model_meta)}; its scaling "
                         f"cannot change to {scale}. Leave out --scale, or train into a new --model directory.")


def _continue(store, source, valid_source, options, data_options, config) -> dict:
    """Incremental training: keep standardisation, classes, anchors and optimiser state."""
    manifest, arrays = store.load(mmap_mode="c")
    run_old = manifest["training"]
    if run_old["status"] != "complete":
        raise InputError(f"{store.path} holds an interrupted run (epoch {run_old['epoch'] + 1} of "
                         f"{run_old['epochs']}); finish it with: streamfm train --resume {store.path}")
    if config is not None and config.to_dict() != Config.from_dict(manifest["model"]["config"]).to_dict():
        raise InputError(f"{store.path} already holds a model; its hyper-parameters cannot change. "
                         "Leave out the model options, or train into a new --model directory.")
    check_scale(manifest["model"], options.scale, store.path)
    trained = TrainedModel.from_state(manifest["model"], arrays, ignore_extra=options.ignore_extra_features)
    classes = None if (trained.task == "regression" or options.ignore_unknown_labels) else trained.classes
    validation = _Validation(store, options, valid_source, trained.model.config.seed)
    try:
        sc = validation.scan(source, sample_size=1,
                             task=trained.task if trained.task != "binary" or classes is not None else None,
                             classes=classes, progress=not options.quiet)
        if sc.n_features > trained.model.p and not options.ignore_extra_features:
            raise InputError(f"the new data has {sc.n_features:,} features, beyond the model's "
                             f"{trained.model.p:,}; pass --ignore-extra-features to drop the extra ones")
        history = run_old.get("history", []) + [{k: run_old[k] for k in ("data", "epochs", "rows_per_epoch")}]
        run = RunState(data=_data_record(source, data_options),
                       valid={"files": valid_source.files} if valid_source else None,
                       options=asdict(options), epochs=options.epochs, rows_per_epoch=sc.n_rows,
                       mean_row_entries=_row_entries(sc, trained.standardizer), history=history,
                       **validation.run_fields(trained.task))
        if not options.quiet:
            print(f"early stopping: {validation.note}", flush=True)
        validation.install()
        return _make_trainer(store, trained, run, valid_source).fit()
    finally:
        validation.close()


def resume(model_dir, *, quiet: bool | None = None) -> dict:
    """Continue an interrupted run from its last checkpoint, exactly where it stood."""
    store = ModelDir(model_dir)
    with store.lock():
        manifest, arrays = store.load(mmap_mode="c")
        run = RunState(**manifest["training"])
        if run.status == "complete":
            return {"stopped": None, "epochs_done": run.epoch, "already_complete": True, "last": None}
        if quiet is not None:
            run.options["quiet"] = quiet
        _check_engine(run.options)
        trained = TrainedModel.from_state(manifest["model"], arrays,
                                          ignore_extra=run.options.get("ignore_extra_features", False))
        valid = open_source(run.valid["files"], ReadOptions.from_dict(run.data["options"])) if run.valid else None
        return _make_trainer(store, trained, run, valid).fit()


def load(model_dir, *, ignore_extra: bool = False) -> TrainedModel:
    """A trained model from its directory, arrays memory-mapped read-only."""
    manifest, arrays = ModelDir(model_dir).load(mmap_mode="r")
    return TrainedModel.from_state(manifest["model"], arrays, ignore_extra=ignore_extra)
