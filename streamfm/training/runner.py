"""The interface between the training loop and an engine: :class:`RoundRunner`, and the checkpoint cadence.

The loop (``training/loop.py``) owns everything a run is made of besides
training itself: epochs, stops, checkpoints, validation, early stopping,
records and callbacks. A *round runner* owns how rows get trained: where
the stream comes from, how many models train it, and how their states
become one. The loop drives it as::

    runner.prepare(...)                       # a new run, before its scan pass (optional)
    runner.open(loop)                         # once per call: the model, the run, the stop flag
    for each epoch left:
        runner.start_epoch(epoch, position)   # the epoch's stream(s), ``position`` rows in
        while the epoch's stream lasts:
            result = runner.train_round(until, on_rows)   # broadcast, train, merge
            (checkpoints, stops, progress between rounds)
        fields = runner.end_epoch()           # the engine's fields of the epoch record
    runner.close()                            # always, also after an error

After ``train_round`` returns, ``loop.trained`` holds the model the round
produced (the merged one, for several workers), and ``runner.record()`` the
engine's part of the manifest (``RunState.engine``), so that any checkpoint
written between rounds resumes exactly.

``LocalRounds`` (``training/local.py``) trains in this process;
``RayRounds`` (``streamfm.engines.ray``) on Ray workers.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .rounds import RoundResult


class RoundRunner:
    """What the loop needs of an engine (see the module notes); subclasses implement the rounds.

    Attributes
    ----------
    name : str
        The engine's name in the manifest and on the command line (``--engine``).
    label : str
        Words the progress bar adds to an epoch's name (" (2 workers)").
    holds_out : bool
        Whether the engine's stream can leave out rows held out for
        validation (the local reader can; Ray Data's read tasks cannot).
    """

    name = "?"
    label = ""
    holds_out = True

    def check(self, source=None) -> None:
        """Fail before any work if this engine cannot run (``source``: the training data, if known)."""

    def record(self) -> dict:
        """The engine's entry of the manifest: ``{"name", "options", "state"}`` as of the last round."""
        return {"name": self.name, "options": {}, "state": {}}

    def prepare(self, source, data: dict, options, seed: int) -> None:
        """A new run, before its scan pass: start what can overlap it (``data``: ``RunState.data``;
        ``options``: its ``TrainOptions``; ``seed``: the model's)."""

    def open(self, loop) -> None:
        """Start of a call of ``loop.fit()``: ``loop.trained``, ``loop.run``, ``loop.opts``, ``loop.stop``."""
        raise NotImplementedError

    def start_epoch(self, epoch: int, position: int) -> None:
        """Make epoch ``epoch``'s stream (0-based), its first ``position`` rows trained on already."""
        raise NotImplementedError

    def train_round(self, until: Callable[[int], bool],
                    on_rows: Callable[[int, np.ndarray | None], None]) -> RoundResult:
        """Train one round; ``exhausted`` in the result when the epoch's stream has ended.

        ``until(rows)``, with the rows this round has trained so far, says
        whether the round may end before its next chunk (a stop, a
        checkpoint); an engine whose rounds have a fixed length may ignore
        it. ``on_rows(rows, losses)`` reports progress (losses may be None).
        """
        raise NotImplementedError

    def end_epoch(self) -> dict:
        """The epoch's stream is done: the engine's fields of its metrics record."""
        return {}

    def close(self) -> None:
        """Release threads, processes and connections (idempotent)."""


class CheckpointCadence:
    """When the loop checkpoints between rounds: every ``rows`` rows (0: never by rows) or ``seconds``."""

    def __init__(self, rows: int = 0, seconds: float = 600.0):
        self.rows, self.seconds = int(rows), float(seconds)
        self.reset()

    def reset(self) -> None:
        """A checkpoint was just written (or an epoch ended)."""
        self.since_rows, self.since = 0, time.monotonic()

    def add(self, rows: int) -> None:
        self.since_rows += rows

    def due(self, more_rows: int = 0) -> bool:
        """Whether a checkpoint is due once ``more_rows`` more rows are trained."""
        return bool(self.rows and self.since_rows + more_rows >= self.rows) \
            or time.monotonic() - self.since >= self.seconds
