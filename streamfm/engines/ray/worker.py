"""The Ray worker: a model, its share of each epoch's stream, and rounds of training on it.

:class:`Worker` runs as a Ray actor (``ray.remote(Worker)``) but is a plain
class: the tests can drive it without Ray. It is made before the driver has
a model, so it can start reading its first epoch at once (Ray Data's first
rows take seconds), and gets the model with :meth:`Worker.setup`. Each
epoch, it passes its ``N // n`` rows through a shuffle buffer seeded by
(seed, epoch) and its rank -- with rank 0 the local engine's seed, so one
worker reads what the local engine reads -- and standardises them, in a
thread ahead of training as the local engine does.
"""
from __future__ import annotations

import resource
import threading
from dataclasses import asdict

import numpy as np

from ...io.contract import InputContract
from ...io.options import ReadOptions
from ...io.sources import open_source
from ...models.trained import TrainedModel
from ...preprocess.shuffle import read_ahead_chunks, shuffled_chunks
from ...runtime.prefetch import Prefetch
from ...training.rounds import RowStream, train_for_rows
from . import sparse

#: name prefix of the worker actors (tests and operators find them by it)
ACTOR_PREFIX = "streamfm-worker"
#: reader chunks a worker pulls from its Ray Data stream ahead of its shuffle buffer
READ_AHEAD_CHUNKS = 2


class Worker:
    """One data-parallel worker (see the module notes).

    Parameters
    ----------
    rank : int
        Worker number (seeds its shuffle buffer).
    data : dict
        ``{"files": [...], "options": {open_source kwargs}}``: how to turn the
        streamed Arrow tables into chunks (layout, label column, hashing).
    chunk_rows : int
        Rows per batch pulled from the Ray Data stream (the shuffle's output
        does not depend on it: see preprocess/shuffle.py).
    """

    def __init__(self, rank: int, data: dict, chunk_rows: int):
        try:  # one core per worker: FAISS threads would fight the other workers
            import faiss

            faiss.omp_set_num_threads(1)
        except Exception:  # pragma: no cover - faiss without OpenMP
            pass
        self.rank = rank
        self.chunk_rows = int(chunk_rows)
        self.source = open_source(data["files"], ReadOptions.from_dict(data["options"]),
                                  contract=InputContract.of_data(data))
        self.trained: TrainedModel | None = None
        self.settings: dict = {}
        self.stream: RowStream | None = None
        self.bad_rows = 0
        self.split = None  # this worker's Ray Data split: of the run's dataset, read once per epoch
        self._attached: list[tuple[Prefetch, RowStream]] = []  # epochs' streams, reading, in order
        self._running: list[Prefetch] = []  # the current epoch's threads
        self._read_done: threading.Event | None = None  # set when the last attached epoch is read
        self._closing = threading.Event()

    def setup(self, model_state, settings: dict) -> None:
        """The model to train (``TrainedModel.state()``, copied: the worker owns its arrays) and
        the run's settings: seed, batch_rows, buffer_rows, shuffle, ignore_extra_features,
        ignore_unknown_labels, step_scale (the factor on every step: ``LLFMModel.step_scale``)."""
        meta, arrays = model_state
        self.trained = TrainedModel.from_state(meta, {k: np.array(v) for k, v in arrays.items()},
                                               ignore_extra=settings["ignore_extra_features"])
        # the driver keeps the unscaled steps in the model it saves (RayOptions.scale_steps)
        self.trained.model.step_scale = settings["step_scale"]
        self.settings = settings

    def _chunks(self, split, after: threading.Event | None, done: threading.Event):
        """Chunks of one epoch from ``split`` (Arrow tables), in stream order, once ``after`` is set
        (the previous epoch all read from the same split: a split starts its next epoch when every
        worker asks for it, and asked early it would end the current one)."""
        try:
            while after is not None and not after.wait(0.1):
                if self._closing.is_set():
                    return
            reader = self.source.reader  # the layout (label, features, hashing) of the data set
            where = f"Ray stream of worker {self.rank}"
            row0 = 0
            for table in split.iter_batches(batch_size=self.chunk_rows, batch_format="pyarrow",
                                            prefetch_batches=1):
                for batch in table.to_batches():
                    chunk, bad = reader.batch_chunk(batch, where, row0)
                    row0 += batch.num_rows
                    self.bad_rows += bad
                    yield chunk
        finally:
            done.set()

    def attach(self, split=None) -> None:
        """Start reading a coming epoch: from ``split``, or (None) from this worker's split again.

        Ray Data starts an execution on the first pull, and its first blocks
        come later (task start-up); so the stream is pulled from a thread at
        once, a few chunks ahead, and the driver attaches the next epoch once
        this one's first round is done. Read from the same split, that epoch's
        thread asks for it as soon as this epoch is all read, while training
        still has this epoch's shuffle buffer to go through; a new split (a
        dataset per epoch: see ``data.make_datasets``) is pulled at once.
        """
        after = self._read_done if split is None else None
        if split is not None:
            self.split = split
        done = threading.Event()
        ahead = Prefetch(self._chunks(self.split, after, done), READ_AHEAD_CHUNKS)
        self._read_done = done
        self._attached.append((ahead, RowStream(ahead.__enter__())))

    def start_epoch(self, epoch: int, epoch_rows: int, skip_rows: int = 0) -> None:
        """This epoch: the next attached stream's ``epoch_rows`` rows through the epoch's shuffle
        buffer, the first ``skip_rows`` trained on already; shuffling and standardising run in a
        thread."""
        self._stop_running()
        ahead, raw = self._attached.pop(0)
        s = self.settings
        buffer_rows = s["buffer_rows"] if s["shuffle"] else 0
        seed = (s["seed"], epoch) if self.rank == 0 else (s["seed"], epoch, self.rank)
        rows = shuffled_chunks(raw.take(epoch_rows), buffer_rows=buffer_rows, out_rows=s["batch_rows"],
                               seed=seed, skip_rows=skip_rows)
        ready = Prefetch(map(self.trained.standardizer.transform, rows),
                         read_ahead_chunks(buffer_rows, s["batch_rows"]))
        self._running = [ahead, ready]
        self.stream = RowStream(ready.__enter__())

    def _stop_running(self) -> None:
        for thread in self._running:
            thread.__exit__(None, None, None)
        self._running = []

    def close(self) -> None:
        """Stop every reading thread (the actor is about to go)."""
        self._closing.set()
        self._stop_running()
        for ahead, _ in self._attached:
            ahead.__exit__(None, None, None)
        self._attached = []

    def train_round(self, state, max_rows: int):
        """Load ``state`` (None: keep this worker's own), train on the next ``max_rows`` rows.

        Returns (model state, RoundResult as a dict, peak RSS in MiB).
        """
        model = self.trained.model
        if state is not None and model.table is not None:
            sparse.unpack(model, state)
        elif state is not None:
            model.load_state(*state)
        result = train_for_rows(self.trained, self.stream, max_rows,
                                ignore_unknown_labels=self.settings["ignore_unknown_labels"], standardized=True)
        out = asdict(result)
        out["bad_rows"] = self.bad_rows
        out["dropped"] = self.trained.standardizer.dropped
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
        return (model.state() if model.table is None else sparse.pack(model)), out, peak_mib
