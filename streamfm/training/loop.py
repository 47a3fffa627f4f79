"""The training loop: epochs of rounds, stops, checkpoints, validation, early stopping, records.

:class:`Trainer` is the only loop over a file-based run, whatever engine
trains its rows: it drives a round runner (``training/runner.py``) and
keeps the run's state (``RunState``), so every engine stops, checkpoints,
validates, stops early and resumes the same way.

- Stops: a signal (``GracefulStop``) or ``--max-rows`` ends the call at the
  end of the round in progress (the local engine ends it before its next
  chunk; a Ray round runs to its end) with an ``interrupted`` checkpoint; ``--resume``
  continues from it exactly (every random choice derives from (seed,
  epoch), so a checkpoint's (epoch, position) is the whole stream state).
- Checkpoints: between rounds when the cadence (``CheckpointCadence``:
  every N rows or T seconds) is due, and at every epoch's end, atomically
  (``ModelDir.save``).
- Validation and early stopping: after every epoch, on ``--valid`` or on
  the rows held out into the model directory's spool; an ``EarlyStopping``
  decides whether the epoch is the best so far and whether the run stops.
  The best epoch's checkpoint is kept beside the latest
  (``ModelDir.save(keep=...)``) and, when the run ends, committed as its
  result (``ModelDir.promote``), so the directory's model is the best epoch's.
- Reporting: callbacks (``training/callbacks.py``) see every event. An
  epoch's rows/s leaves out the time numba spent compiling kernels in it
  (``runtime/compile_clock.py``): epoch 1 of a first run compiles them.
"""
from __future__ import annotations

import time

from .. import __version__
from ..errors import InputError
from ..inference.metrics import evaluate_source
from ..io.sources import open_source
from ..models.trained import TrainedModel
from ..runtime.compile_clock import CompileClock
from ..runtime.signals import GracefulStop
from ..store.blocks import Blocks

#: arrays fixed for a run (the scaling, L2's rows per feature: O(features)), written by a chain's base alone
STATIC = ("feature_rows", "std_shift", "std_scale", "std_centred")
from ..store.modeldir import ModelDir
from .callbacks import CallbackEnv
from .early_stopping import EarlyStopping
from .options import RunState, reader_rows
from .runner import CheckpointCadence, RoundRunner


class Trainer:
    """The loop of one run (see the module notes).

    Parameters
    ----------
    store : ModelDir
        The run's model directory; the caller holds its lock.
    trained : TrainedModel
        The model, as of the run's last checkpoint (or initialised).
    run : RunState
        Where the run stands.
    rounds : RoundRunner
        The engine that trains the rows.
    valid_source : DataSource or None
        ``--valid``; None: the held-out rows' spool if the run has one.
    callbacks : sequence of callables taking a CallbackEnv
    cadence : CheckpointCadence or None
        When to checkpoint between rounds; None: the run's options'.
    """

    def __init__(self, store: ModelDir, trained: TrainedModel, run: RunState, rounds: RoundRunner,
                 valid_source=None, callbacks=(), cadence: CheckpointCadence | None = None):
        self.store, self.trained, self.run, self.rounds = store, trained, run, rounds
        self.opts = run.train_options()
        if run.holdout is not None and valid_source is None:
            valid_source = open_source(str(store.path / run.holdout["spool"]))
        self.valid = valid_source
        self.callbacks = list(callbacks)
        self.cadence = cadence or CheckpointCadence(self.opts.checkpoint_rows, self.opts.checkpoint_seconds)
        self.early = EarlyStopping.from_state(run.early_stopping) if run.early_stopping else None
        self._best_ckpt = None  # the checkpoint the manifest keeps as "best"
        if run.best is not None and run.status != "complete" and store.exists():
            kept = store.read_manifest().get("kept", {}).get("best")
            if kept is None:
                raise InputError(f"model directory {store.path} is damaged: its run's best epoch "
                                 f"({run.best['epoch']}) has no checkpoint kept")
            self._best_ckpt = kept["checkpoint"]
        self.unknown_labels = 0
        self.stop: GracefulStop | None = None
        self._rows_this_call = 0
        self._compiling = CompileClock()
        self._compile_start = 0.0  # the clock's seconds when the epoch started

    # --------------------------------------------------------------- store
    def _manifest(self, model_meta: dict) -> dict:
        self.run.engine = self.rounds.record()
        return {"streamfm_version": __version__, "model": model_meta, "training": self.run.to_dict()}

    def save(self, status: str | None = None, *, best: bool = False, epoch: int | None = None) -> str:
        """Checkpoint the model and the run; ``best``: this checkpoint is the best epoch's (kept);
        ``epoch``: the epoch it ends, for the callbacks (default: the one in progress)."""
        if status is not None:
            self.run.status = status
        meta, arrays = self.trained.state()
        keep = None
        if self.run.status != "complete":
            keep = {"best": None} if best else ({"best": self._best_ckpt} if self._best_ckpt else None)
        table = self.trained.model.table
        blocks = None
        if table is not None:  # the hashed store: only the slots changed since its checkpoint
            since = table.origin[1] if table.origin and table.origin[0] == str(self.store.path) else None
            blocks = Blocks(tuple(table.arrays), table.slots, table.block, table.changed_slots(), since,
                            tuple(n for n in STATIC if n in arrays))
        name = self.store.save(self._manifest(meta), arrays, keep=keep, blocks=blocks)
        stored_at(self.trained, self.store, name)
        if best:
            self._best_ckpt = name
        self._notify("checkpoint", epoch=epoch, checkpoint=name)
        return name

    def _commit_best(self, epoch: int) -> None:
        """End the run with the best epoch's checkpoint as its result (its arrays and model meta exactly)."""
        run = self.run
        meta = run.best["model"]
        run.best = {k: v for k, v in run.best.items() if k != "model"}
        run.status = "complete"
        self.store.promote(self._manifest(meta), "best")
        self._best_ckpt = None
        manifest, arrays = self.store.load(mmap_mode="c")
        self.trained = TrainedModel.from_state(manifest["model"], arrays,
                                               ignore_extra=self.opts.ignore_extra_features)
        stored_at(self.trained, self.store, manifest["checkpoint"])
        self._notify("checkpoint", epoch=epoch, checkpoint=manifest["checkpoint"])

    # ---------------------------------------------------------- callbacks
    def _notify(self, event: str, epoch: int | None = None, **fields) -> None:
        if not self.callbacks:
            return
        env = CallbackEnv(event, self, self.run.epoch + 1 if epoch is None else epoch, **fields)
        for callback in self.callbacks:
            callback(env)

    def _on_rows(self, rows: int, losses) -> None:
        self._notify("rows", rows=rows, losses=losses)

    # ---------------------------------------------------------------- loop
    def _epochs_left(self) -> bool:
        return self.run.epoch < self.run.epochs and self.run.status != "complete"

    def _must_stop(self, more_rows: int = 0) -> bool:
        """A signal, or ``--max-rows`` reached once ``more_rows`` more rows are trained."""
        max_rows = self.opts.max_rows
        return self.stop.requested or bool(max_rows and self._rows_this_call + more_rows >= max_rows)

    def _round_ends(self, rows: int) -> bool:
        # checked before a chunk, not after, so a stop at an epoch's last row still finishes that epoch
        return self._must_stop(rows) or self.cadence.due(rows)

    def fit(self) -> dict:
        """Run the remaining epochs; returns a summary. Stops resumably on a signal or max_rows."""
        run, rounds = self.run, self.rounds
        self._rows_this_call = 0
        summary = {"stopped": None, "epochs_done": run.epoch, "last": None}
        try:
            with GracefulStop() as stop, self._compiling:
                self.stop = stop
                rounds.open(self)
                self._notify("run_begin", epoch=run.epoch)
                self.cadence.reset()
                while self._epochs_left():
                    rounds.start_epoch(run.epoch, run.position)
                    self._notify("epoch_begin")
                    t_start, rows_start = time.monotonic(), run.position
                    self._compile_start = self._compiling.seconds
                    while True:
                        if self._must_stop():
                            self.save("interrupted")
                            summary.update(stopped=stop.signal_name or "max_rows", epochs_done=run.epoch,
                                           epoch=run.epoch, position=run.position)
                            self._notify("run_end", epoch=run.epoch, summary=summary)
                            return summary
                        result = rounds.train_round(self._round_ends, self._on_rows)
                        run.position += result.rows
                        run.epoch_loss_sum += result.loss_sum
                        run.epoch_weight_sum += result.weight_sum
                        self.unknown_labels += result.unknown_labels
                        self._rows_this_call += result.rows
                        self.cadence.add(result.rows)
                        self._notify("round_end", result=result)
                        if result.exhausted:
                            break
                        if not self._must_stop() and self.cadence.due():
                            self.save("running")
                            self.cadence.reset()
                    self._end_epoch(t_start, rows_start, summary)
                    self.cadence.reset()
        finally:
            rounds.close()
        summary["epochs_done"] = run.epoch
        if self.early is not None and run.status == "complete":
            summary.update(kept_epoch=run.kept_epoch, stop_reason=run.stop_reason)
        self._notify("run_end", epoch=run.epoch, summary=summary)
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
        run.epoch_weight_sum = 0.0
        done = stop or run.epoch == run.epochs
        if done:
            if self.early is not None:
                run.stop_reason = self.early.reason(epoch)
                run.kept_epoch = self.early.best_epoch if run.best is not None else epoch
            else:
                run.stop_reason, run.kept_epoch = f"last epoch ({epoch}) reached", epoch
            record["stop"], record["kept_epoch"] = run.stop_reason, run.kept_epoch
        # metrics first, so the record is never lost; if the checkpoint then fails (a full disk),
        # the record goes again (a crash between the two leaves it for the next start to drop)
        self.store.append_metrics(record)
        try:
            if done and run.best is not None and run.kept_epoch != epoch:
                self._commit_best(epoch)
            else:
                if done and run.best is not None:
                    run.best = {k: v for k, v in run.best.items() if k != "model"}
                self.save("complete" if done else "running", best=improved and not done, epoch=epoch)
        except BaseException:
            self.store.drop_metrics_after(record["t"] - 1)
            raise
        summary["last"] = record
        self._notify("epoch_end", epoch=epoch, record=record)

    def _epoch_record(self, t_start: float, rows_start: int) -> dict:
        run, model = self.run, self.trained.model
        # the weighted mean (unweighted, the weights sum to the rows; 0 when every row weighed 0)
        rows = run.epoch_weight_sum if run.epoch_weight_sum > 0 else max(run.position, 1)
        seconds = time.monotonic() - t_start
        compiling = min(self._compiling.seconds - self._compile_start, seconds)
        record = {"epoch": run.epoch + 1, "rows": run.position, "train_loss": run.epoch_loss_sum / rows,
                  "seconds": round(seconds, 3),
                  "rows_per_second": round((run.position - rows_start) / max(seconds - compiling, 1e-9), 1),
                  "t": model.t}
        if compiling >= 0.001:
            record["compile_seconds"] = round(compiling, 3)
        engine = self.rounds.end_epoch()
        if model.method != 0:
            record.update({k: round(v, 6) for k, v in model.metrics().items()})
        if self.unknown_labels:
            record["unknown_labels_skipped"] = self.unknown_labels
        if self.trained.standardizer.dropped:
            record["extra_features_dropped"] = self.trained.standardizer.dropped
        if self.valid is not None:
            record["valid"] = evaluate_source(self.trained, self.valid, chunk_rows=reader_rows(model.p),
                                              skip_unknown_labels=self.opts.ignore_unknown_labels)
        record.update(engine)
        return record


def stored_at(trained: TrainedModel, store: ModelDir, checkpoint: str) -> None:
    """The model holds the values of ``checkpoint`` in ``store`` (just saved or loaded): the hashed
    store's next checkpoint may write only the blocks changed from now on."""
    table = trained.model.table
    if table is not None:
        table.committed((str(store.path), checkpoint))
