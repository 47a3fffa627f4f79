"""The Ray engine's round runner: broadcast, every worker trains ``sync_rows`` rows, merge (:class:`RayRounds`).

The training loop (``training/loop.py``) drives it as it drives the local
engine; what is Ray's is how a round trains:

- the driver broadcasts the merged state with ``ray.put``; every worker
  copies it into its own arrays, trains on its next ``sync_rows`` rows and
  returns its state; the driver merges the states (row-weighted average, see
  :mod:`streamfm.training.rounds`) into the model the loop checkpoints and
  validates. With one worker the merge is the identity, so nothing is
  broadcast and the worker keeps its FAISS index; with more, each worker
  rebuilds its index from the merged anchors.
- the rows each worker has trained on in the epoch are the engine's state in
  the manifest (``worker_positions``): a resumed epoch skips as many rows per
  worker.
- a worker that dies mid-round loses only that round: the driver still holds
  the state merged after the last complete one. It checkpoints that state
  and starts new actors (``RayStart.start_workers``), each skipping the rows
  its predecessor had trained on in the epoch, ``--worker-retries`` times;
  after that the run stops with ``WorkerLostError``, the checkpoint intact,
  and ``streamfm train --resume DIR`` continues it.

An epoch on Ray is ``n`` times ``N // n`` rows (``data.py``). With one worker
a run is deterministic (Ray Data preserves order): it equals the local
engine's run and resumes exactly. With several, Ray Data decides which
blocks each worker reads, so a resumed epoch skips the right number of rows
per worker but not necessarily the same rows. Without ``--valid`` nothing is
held out to validate on (Ray Data's read tasks read the shards), so early
stopping needs ``--valid``.
"""
from __future__ import annotations

import sys
import time
from dataclasses import replace

from ...errors import InputError, StreamFMError
from ...io.contract import InputContract
from ...io.options import ReadOptions
from ...io.sources import open_source
from ...models.config import Config
from ...models.core import LLFMModel
from ...training.options import buffer_rows, reader_rows
from ...training.rounds import RoundResult, merge_states
from ...training.runner import RoundRunner
from .cluster import preflight
from .data import stream_rows
from . import sparse
from .options import RayOptions
from .start import RayStart


class WorkerLostError(StreamFMError):
    """A worker died more often than --worker-retries allows; the last checkpoint is intact."""

    exit_code = 1


class _WorkerDied(Exception):
    """Internal: an actor died during a call."""


class RayRounds(RoundRunner):
    """Rounds on Ray worker actors (see the module notes).

    Parameters
    ----------
    options : RayOptions
    positions : list of int or None
        Rows each worker had trained on in the epoch in progress (a resumed run).
    """

    name = "ray"
    holds_out = False

    def __init__(self, options: RayOptions, positions: list | None = None):
        self.options = options.validate()
        n = self.options.workers
        self.label = f" ({n} worker{'s' * (n > 1)})"
        self.positions = list(positions or [])
        self.up: RayStart | None = None
        self.loop = None
        self.restarts = 0
        self._restart_due = False
        self._epoch_begun = False

    @classmethod
    def from_record(cls, record: dict) -> "RayRounds":
        """The runner of a manifest's engine entry."""
        return cls(RayOptions.from_dict(record.get("options") or {}),
                   (record.get("state") or {}).get("worker_positions"))

    def record(self) -> dict:
        return {"name": self.name, "options": self.options.to_dict(),
                "state": {"worker_positions": list(self.positions)}}

    def check(self, source=None) -> None:
        preflight(self.options.address, source)

    def prepare(self, source, data: dict, options, seed: int) -> None:
        self.up = RayStart(source, data, self.options, options.shuffle, options.quiet, seed,
                           range(options.epochs), stream_rows(source))

    # ------------------------------------------------------------- the loop's calls
    def open(self, loop) -> None:
        self.loop = loop
        run, opts, model = loop.run, loop.opts, loop.trained.model
        if self.up is None:
            source = open_source(run.data["files"], ReadOptions.from_dict(run.data["options"]),
                                 contract=InputContract.of_data(run.data))
            self.up = RayStart(source, run.data, self.options,
                               opts.shuffle, opts.quiet, model.config.seed, range(run.epoch, run.epochs),
                               reader_rows(model.p))
        self.ray = self.up.ray
        n = self.options.workers
        if run.rows_per_epoch < n:
            raise InputError(f"--workers {n} is more than the {run.rows_per_epoch} rows of the data")
        # each worker's share of an epoch (equal=True: the same for all; N mod n rows wait)
        self.epoch_rows = run.rows_per_epoch // n
        self.attached = run.epoch  # the last epoch whose streams the workers hold
        self._call(self._start_workers)

    def start_epoch(self, epoch: int, position: int) -> None:
        n = self.options.workers
        if len(self.positions) != n:
            self.positions = [0] * n
        self.round_seconds, self.worker_seconds, self.worker_wait = 0.0, [0.0] * n, [0.0] * n
        # the arrays' bytes the epoch's rounds moved: workers' states up, the merge down to each worker
        self.bytes_up = self.bytes_down = self.rounds_done = 0
        self._call(self._begin_epoch)

    def train_round(self, until, on_rows) -> RoundResult:
        # a round is sync_rows per worker: ``until`` (a checkpoint or stop due) waits for its end
        result = self._call(self._round)
        if result is None:  # a worker died while a stop was requested: the loop stops
            return RoundResult()
        on_rows(result.rows, None)
        return result

    def end_epoch(self) -> dict:
        self.positions = []
        self._epoch_begun = False
        # where an epoch's seconds went: the driver's rounds (a round ends with its slowest
        # worker), each worker's training inside them, and of that its wait for input
        fields = {"engine": self.name, "workers": self.options.workers, "step_scale": self.options.step_scale,
                  "worker_peak_rss_mib": [round(m, 1) for m in self.peak_mib],
                  "round_seconds": round(self.round_seconds, 3),
                  "worker_round_seconds": [round(s, 3) for s in self.worker_seconds],
                  "worker_input_wait_seconds": [round(s, 3) for s in self.worker_wait],
                  "merge_mb_up_per_round": round(self.bytes_up / max(self.rounds_done, 1) / 2**20, 3),
                  "merge_mb_down_per_round": round(self.bytes_down / max(self.rounds_done, 1) / 2**20, 3)}
        if self.worker_bad_rows:
            fields["bad_rows_skipped"] = self.worker_bad_rows
        return fields

    def close(self) -> None:
        if self.up is not None:
            self.up.close()

    # ------------------------------------------------------------- workers
    def _settings(self) -> dict:
        opts, trained = self.loop.opts, self.loop.trained
        return {"seed": trained.model.config.seed, "batch_rows": opts.batch_rows, "shuffle": opts.shuffle,
                "buffer_rows": buffer_rows(opts, self.loop.run, trained),
                "ignore_extra_features": opts.ignore_extra_features,
                "ignore_unknown_labels": opts.ignore_unknown_labels, "step_scale": self.options.step_scale}

    def _start_workers(self) -> None:
        """Workers reading the current epoch (already, if ``prepare`` made them), given the model."""
        up, trained = self.up, self.loop.trained
        if not up.workers:  # a restart after a worker died
            up.start_workers(self.loop.run.epoch)
            self.attached = self.loop.run.epoch
        self._get(up.setup(self.ray.put(trained.state()), self._settings()))
        self.state = trained.model.state()  # the state every worker holds at a round's start
        self.config = dict(self.state[0]["config"])  # the model's steps, not the workers' scaled ones
        self.broadcast = None  # the workers were given `state`; later rounds send the merge
        self.peak_mib = [0.0] * self.options.workers
        self.worker_bad_rows = 0

    def _begin_epoch(self) -> None:
        """Every worker starts the epoch, skipping the rows it has trained on in it."""
        epoch = self.loop.run.epoch
        if self.attached < epoch:
            self._get(self.up.attach(epoch))
            self.attached = epoch
        self._get([w.start_epoch.remote(epoch, self.epoch_rows, pos)
                   for w, pos in zip(self.up.workers, self.positions)])
        self._epoch_begun = True
        self._rows_since_begin = 0

    def _round(self) -> RoundResult:
        run, n = self.loop.run, self.options.workers
        if self.attached == run.epoch and run.epoch + 1 < run.epochs and self._rows_since_begin > 0:
            # after this epoch's first round: the next one's start-up overlaps training
            self._get(self.up.attach(run.epoch + 1))
            self.attached = run.epoch + 1
        t_round = time.monotonic()
        outs = self._get([w.train_round.remote(self.broadcast, self.options.round_rows) for w in self.up.workers])
        results = [RoundResult(**{k: o[1][k] for k in RoundResult.__dataclass_fields__}) for o in outs]
        seconds = time.monotonic() - t_round
        self.round_seconds += seconds
        self.worker_seconds = [a + r.seconds for a, r in zip(self.worker_seconds, results)]
        self.worker_wait = [a + r.wait_seconds for a, r in zip(self.worker_wait, results)]
        rows = [r.rows for r in results]
        model = self.loop.trained.model
        self.bytes_up += sum(sparse.payload_bytes(o[0]) for o in outs)
        if model.table is not None:  # the hashed store: the slots the round changed (engines/ray/sparse.py)
            merged, send = sparse.merge([o[0] for o in outs], rows, self.state, model)
            merged = replace(merged, config=Config.from_dict(self.config))
            self.state = merged.manifest()
            self.loop.trained.model = LLFMModel.from_model_state(merged)
        else:
            self.state = send = merge_states([o[0] for o in outs], rows, base=self.state)
        self.state[0]["config"] = self.config
        send[0]["config"] = self.config
        # one worker keeps its own state (the merge is the identity); more get the merge
        self.broadcast = self.ray.put(send) if n > 1 else None
        self.bytes_down += sparse.payload_bytes(send) * n if n > 1 else 0
        self.rounds_done += 1
        if model.table is None:
            self.loop.trained.model = LLFMModel.from_state(*self.state)
        self.worker_bad_rows = sum(o[1]["bad_rows"] for o in outs)
        self.peak_mib = [max(a, o[2]) for a, o in zip(self.peak_mib, outs)]
        self.positions = [p + r for p, r in zip(self.positions, rows)]
        self._rows_since_begin += sum(rows)
        return RoundResult(rows=sum(rows), loss_sum=sum(r.loss_sum for r in results),
                           weight_sum=sum(r.weight_sum for r in results),
                           unknown_labels=sum(r.unknown_labels for r in results),
                           exhausted=all(r.exhausted for r in results), seconds=seconds,
                           wait_seconds=max(r.wait_seconds for r in results))

    def _get(self, refs):
        ray = self.ray
        try:
            return ray.get(refs)
        except ray.exceptions.RayActorError as exc:
            raise _WorkerDied(str(exc).splitlines()[0]) from None
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, StreamFMError):
                raise cause from None
            raise

    def _call(self, step):
        """``step()``, with dead workers replaced from the last merged state (``--worker-retries``
        times) and the step done again; None if a worker died while a stop was requested."""
        loop = self.loop
        while True:
            try:
                if self._restart_due and loop.stop.requested:
                    return None
                if self._restart_due:
                    self._restart_due = False
                    self._start_workers()
                    if self._epoch_begun and step != self._begin_epoch:
                        self._begin_epoch()
                return step()
            except _WorkerDied as died:
                self.up.stop_workers()
                self._restart_due = True
                retries = self.options.worker_retries
                if loop.stop.requested:
                    return None
                if self.restarts >= retries:
                    loop.save("interrupted")
                    raise WorkerLostError(
                        f"a Ray worker died ({died}) and --worker-retries {retries} "
                        f"{'is' if retries == 1 else 'are'} used up; the model is "
                        f"checkpointed at epoch {loop.run.epoch + 1}, row {loop.run.position:,}. "
                        f"Continue with: streamfm train --resume {loop.store.path}") from None
                self.restarts += 1
                loop.save("running")
                print(f"streamfm: a Ray worker died ({died}); restarting the workers from the state "
                      f"after the last complete round (epoch {loop.run.epoch + 1}, row {loop.run.position:,}; "
                      f"restart {self.restarts} of {retries})", file=sys.stderr, flush=True)
