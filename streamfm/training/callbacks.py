"""What a training run tells its observers: ``CallbackEnv`` and the callbacks that report a run.

The loop (:class:`streamfm.training.loop.Trainer`) calls every callback with
one :class:`CallbackEnv` at each point of a run, its ``event`` naming the
point:

- ``run_begin``: before the first epoch this call trains;
- ``epoch_begin``: an epoch starts (or resumes at ``run.position``);
- ``rows``: rows were trained: ``rows`` and their ``losses`` (each row's
  loss before its step) after every chunk on the local engine; after every
  round, without losses, on Ray;
- ``round_end``: a round ended: ``result`` (a ``RoundResult``: rows, loss,
  ``exhausted`` when the epoch's stream ended);
- ``checkpoint``: a checkpoint was committed: ``checkpoint`` (its name) and
  ``run.status`` (a new run's first one, of the initialised model, comes
  before ``run_begin``; an epoch's last one belongs to that epoch);
- ``epoch_end``: an epoch ended; ``record`` is its line of ``metrics.jsonl``
  (already written), ``stop`` in it when the run ends there;
- ``run_end``: this call returns ``summary``.

A callback is any callable taking the env; :class:`Callback` dispatches to
``on_<event>`` methods. The progress bar and the printed epoch lines are
callbacks (:func:`reporting`), so a benchmark or a notebook can watch a run
(or replace them) without touching the loop. Callbacks observe: they must
not change the run or the model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..progress import progress_bar, show_progress

EVENTS = ("run_begin", "epoch_begin", "rows", "round_end", "checkpoint", "epoch_end", "run_end")


@dataclass(frozen=True)
class CallbackEnv:
    """One point of a run, as the loop hands it to every callback.

    ``epoch`` is the 1-based number of the epoch the event belongs to (at
    ``run_begin`` and ``run_end``: the epochs completed so far). The fields
    after it are set for the events that have them (see the module notes).
    """

    event: str
    trainer: Any  # the loop: store, trained, run, opts, early
    epoch: int
    rows: int = 0
    losses: np.ndarray | None = None
    result: Any = None  # RoundResult
    record: dict | None = None
    checkpoint: str | None = None
    summary: dict | None = None

    @property
    def run(self):
        """The run's ``RunState`` (epoch, position, status, ...)."""
        return self.trainer.run

    @property
    def trained(self):
        """The ``TrainedModel`` being trained (the merged model on Ray)."""
        return self.trainer.trained

    @property
    def model(self):
        return self.trainer.trained.model

    @property
    def options(self):
        """The run's ``TrainOptions``."""
        return self.trainer.opts


class Callback:
    """A callback with one method per event (``on_run_begin`` ... ``on_run_end``); override any."""

    def __call__(self, env: CallbackEnv) -> None:
        getattr(self, f"on_{env.event}")(env)

    def on_run_begin(self, env: CallbackEnv) -> None:
        pass

    def on_epoch_begin(self, env: CallbackEnv) -> None:
        pass

    def on_rows(self, env: CallbackEnv) -> None:
        pass

    def on_round_end(self, env: CallbackEnv) -> None:
        pass

    def on_checkpoint(self, env: CallbackEnv) -> None:
        pass

    def on_epoch_end(self, env: CallbackEnv) -> None:
        pass

    def on_run_end(self, env: CallbackEnv) -> None:
        pass


class ProgressBar(Callback):
    """A bar per epoch: rows trained of the epoch's, the running loss and (LLFM) the mean k."""

    def __init__(self):
        self.bar = None
        self.running: float | None = None

    def on_epoch_begin(self, env: CallbackEnv) -> None:
        self._close()
        run = env.run
        self.bar = progress_bar(total=run.rows_per_epoch or None, initial=run.position, unit="rows",
                                unit_scale=True, desc=f"epoch {env.epoch}/{run.epochs}{env.trainer.rounds.label}",
                                disable=False, leave=True, mininterval=0.5)
        self.running = None

    def on_rows(self, env: CallbackEnv) -> None:
        if self.bar is None:
            return
        if env.losses is not None:
            mean = float(env.losses.mean()) if len(env.losses) else 0.0
            self.running = mean if self.running is None else 0.9 * self.running + 0.1 * mean
            post = {"loss": f"{self.running:.4f}"}
            if env.model.method != 0:
                post["k"] = f"{env.model.metrics()['mean_k']:.2f}"
            self.bar.set_postfix(post, refresh=False)
        self.bar.update(env.rows)

    def on_epoch_end(self, env: CallbackEnv) -> None:
        self._close()

    def on_run_end(self, env: CallbackEnv) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class PrintEpochs(Callback):
    """Each epoch's line (train loss, validation metrics, best epoch, rows/s), and why the run ended."""

    def on_epoch_end(self, env: CallbackEnv) -> None:
        record = env.record
        print(format_record(record), flush=True)
        if "stop" in record and env.trainer.early is not None:
            print(f"{record['stop']}: the model is epoch {record['kept_epoch']}'s", flush=True)


def format_record(r: dict) -> str:
    """An epoch's record in one line."""
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


def reporting(quiet: bool, progress: bool | None = None) -> list[Callable[[CallbackEnv], None]]:
    """The callbacks of a run on the command line: a line per epoch (not if ``quiet``) and a progress
    bar (as :func:`streamfm.progress.show_progress` decides from ``progress`` and ``quiet``)."""
    return ([ProgressBar()] if show_progress(progress, quiet) else []) + ([] if quiet else [PrintEpochs()])
