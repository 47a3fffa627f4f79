"""Data-parallel training on Ray: Ray Data streams Parquet shards to worker actors.

A thin layer over :mod:`streamfm.training.rounds`; the learning core knows
nothing of Ray, and Ray is imported only here, only when ``--engine ray`` is
asked for.

How a run goes
--------------
The driver (the ``streamfm train`` process) starts Ray, makes every epoch's
dataset and starts the workers reading the first epoch (``RayStart``); while
Ray Data comes up it does what the local trainer does before its epochs --
scan, standardiser, k-means anchors -- and gives the workers the model. Then,
per epoch:

1. ``ray.data.read_parquet`` over the shards, ``streaming_split(n,
   equal=True)`` once for the run: one stream per worker, equally long, which
   every epoch reads again (a new execution of the read in the same split
   coordinator; see ``make_datasets``), the shards in the epoch's seeded order
   -- the local trainer's (``engines/ray_shards.py``). A worker starts
   reading the next epoch as soon as it has read this one. (On a Ray older
   than ``SPLIT_PER_RUN_FROM``, a shuffled run makes a dataset and a split
   per epoch instead, attached early.)
2. One actor per worker holds a model and passes the ``N // n`` rows of its
   stream through a shuffle buffer seeded by (seed, epoch) and its rank.
3. Synchronous rounds: the driver broadcasts the merged state with
   ``ray.put``; every worker copies it into its own arrays, trains on its
   next ``sync_rows`` rows and returns its state; the driver merges the
   states (row-weighted average, see :mod:`streamfm.training.rounds`) and writes
   checkpoints through the same model store as the local trainer. With one
   worker the merge is the identity, so nothing is broadcast and the worker
   keeps its FAISS index; with more, each worker rebuilds its index from the
   merged anchors.

An epoch on Ray is therefore ``n`` times ``N // n`` rows (N rows in the
shards; ``equal=True`` leaves out ``N mod n`` of them), split between the
workers by Ray Data from the shards in the epoch's order; within each
worker, a shuffle buffer reseeded every epoch. With one worker this is
exactly the local trainer's stream, so the two engines train the same model.

Resources, and the stall on small machines
------------------------------------------
Ray Data's read tasks need a CPU each. If every worker actor reserved a whole
CPU, a two-core machine with two workers would have none left for reading and
the stream would stall forever; reserving all but one CPU still left one read
task at a time, which on two cores made reading, not training, set the pace.
So the actors reserve a token share of a CPU (``worker_cpus``) and are spread
over the nodes; they still compute on whole cores (a reservation is a
scheduling promise, not a limit), and the operating system shares each core
between reading and training. Each read task pays a start-up of its own, so
an epoch is read in tasks of about ``READ_TASK_BYTES`` (``read_blocks``), and
with the V1 Parquet datasource, which hands out blocks as they are read.
Every worker pulls its stream from a thread, a few chunks ahead, and asks
for the next epoch as soon as the current one is read, so each epoch's
start-up in Ray Data overlaps training on the end of the previous one.

Early stopping
--------------
The driver validates after every epoch and ends epochs in the local
trainer's ``_end_epoch``: with ``--valid`` the run stops early and keeps its
best epoch exactly as the local engine does (with one worker, the same
model). Rows held out of the training data need the membership test in the
reader, and here Ray Data reads the shards in its own tasks: without
``--valid`` a Ray run holds nothing out and trains every epoch (the start-up
line says so).

Failures
--------
A worker that dies mid-round (its actor killed, its node lost) loses only
that round: the driver still holds the state merged after the last complete
round. It checkpoints that state and starts new actors, with a new dataset
and split from the current epoch on, each skipping
the rows its predecessor had trained on in the epoch (``--worker-retries``
times, default 2); after that the run stops with a message, the checkpoint
intact, and ``streamfm train --resume DIR`` continues it.

Step sizes
----------
An average of n workers' updates from one state moves the model about as
far as one worker's update, not n times as far: averaged, n workers make
about 1/n of one worker's progress per row (measured: two workers reach
after 3 epochs the test log loss one worker reaches after 1; see
docs/scaling.md). So, as the linear scaling rule of large-batch SGD does,
each worker takes steps ``n`` times larger (``eta0`` and ``eta_anchor``);
the model directory keeps the steps as given. ``--no-scale-steps`` turns
this off. Many workers make the scaled steps large: there, lower
``--eta0``, or turn the scaling off and give the run more epochs.

With one worker a run is deterministic (Ray Data is asked to preserve
order): it equals the local engine's run and resumes exactly. With several,
Ray Data decides which blocks each worker reads, so a resumed epoch skips
the right number of rows per worker but not necessarily the same rows.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import resource
import socket
import sys
import threading
import time
from dataclasses import asdict

import numpy as np

from ..errors import InputError, StreamFMError
from ..io.options import ReadOptions
from ..io.sources import open_source
from ..models.core import LLFMModel
from ..models.trained import TrainedModel
from ..preprocess.shuffle import epoch_file_order, read_ahead_chunks, shuffled_chunks
from ..progress import progress_bar
from ..runtime.signals import GracefulStop
from ..runtime.prefetch import Prefetch
from ..training.rounds import RoundResult, RowStream, merge_states, train_for_rows
from ..training.trainer import Trainer, reader_rows

INSTALL_HINT = 'pip install "streamfm[ray]"'
#: rows each worker trains between merges when --sync-rows is not given (docs/scaling.md)
DEFAULT_SYNC_ROWS = 65_536
#: Ray Data's object-store budget for blocks read ahead of the workers when every epoch has
#: a dataset of its own (Ray < 2.54, see ``split_per_run``): two epochs' reads then run at
#: once, and without a bound they read far ahead (memory and CPU taken from training). With
#: one split per run, an epoch is read only once the last one has been, and Ray Data keeps
#: its own budget (see ``_data_context``).
READ_AHEAD_BYTES = 1 << 30
#: name prefix of the worker actors (tests and operators find them by it)
ACTOR_PREFIX = "streamfm-worker"
#: reader chunks a worker pulls from its Ray Data stream ahead of its shuffle buffer
READ_AHEAD_CHUNKS = 2


class WorkerLostError(StreamFMError):
    """A worker died more often than --worker-retries allows; the last checkpoint is intact."""

    exit_code = 1


class _WorkerDied(Exception):
    """Internal: an actor died during a round."""


# ---------------------------------------------------------------------------
# Ray itself: import, address, connection
# ---------------------------------------------------------------------------


def import_ray():
    """``ray`` with Ray Data, or an InputError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise InputError(f"--engine ray needs Ray, which is not installed here. Install the extra: "
                         f"{INSTALL_HINT}") from None
    return ray


def check_address(address: str) -> None:
    """Refuse, quickly and in one line, an --address where no Ray cluster can be.

    ``ray.init`` would otherwise wait a long time for a cluster that is not
    there. Accepted: ``auto``, ``HOST:PORT`` and ``ray://HOST:PORT``; the port
    must accept a TCP connection.
    """
    if address == "auto":
        return
    hostport = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--address {address!r} is not a Ray cluster address; give HOST:PORT (the head "
                         "node's port, 6379 by default), ray://HOST:PORT (Ray Client) or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise InputError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
                         "`ray start --head` on the head node, or check --address") from None


def preflight(address: str | None, source=None) -> None:
    """Everything that can fail before any work: Ray installed, the address, Parquet input."""
    import_ray()
    if source is not None and source.format != "parquet":
        raise InputError(f"--engine ray reads Parquet shards, and the data is {source.format}; convert it "
                         f"first: streamfm convert DATA... -o shards/ (then train shards/)")
    if address:
        check_address(address)


def _connect(ray, address: str | None, quiet: bool) -> bool:
    """Join ``address`` or start a local instance sized to the machine; True if this call did.

    A process already connected (a notebook, the tests) is used as it is.
    """
    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=not quiet,
                  runtime_env=_runtime_env(address))
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
    except Exception as exc:  # ray raises ConnectionError, RuntimeError, ValueError ...
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise InputError(f"could not start or join {where}: {exc}") from None
    return True


def _runtime_env(address: str | None) -> dict:
    """How the actors import this streamfm: from this directory on this machine, shipped to a
    cluster (Ray uploads a local package only for a whole job, so this goes to ``ray.init``)."""
    import streamfm

    package = os.path.dirname(os.path.abspath(streamfm.__file__))
    if address:
        return {"py_modules": [package], "excludes": ["__pycache__"]}
    root = os.path.dirname(package)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


#: what a worker actor reserves of a CPU: a token, see worker_cpus
ACTOR_CPU_TOKEN = 0.01


def worker_cpus(cluster_cpus: float, workers: int) -> float:
    """CPUs each worker actor reserves: a token share, leaving every CPU to Ray Data's reads.

    A reservation is a scheduling promise, not a limit: the actors compute on
    whole cores either way. What it changes is how many read tasks Ray Data
    runs. Actors holding every CPU leave none, and the stream stalls forever
    (the issue's two-core pitfall); actors holding all but one (what streamfm
    did first) left one read task at a time, and a worker's stream then
    delivered 600,000 rows in 17.9 s, against 6.0 s with no reservation
    (measured on 2 cores: reading, not training, set the pace). So the actors
    reserve a token (``ACTOR_CPU_TOKEN``, and together at most 5% of the
    cluster's CPUs), which still places them on nodes that have CPUs, and they
    are spread over the nodes; the operating system shares each core between
    reading and training.

    >>> worker_cpus(2, 2), worker_cpus(2, 1), worker_cpus(64, 8), worker_cpus(0.5, 5)
    (0.01, 0.01, 0.01, 0.005)
    """
    return float(min(ACTOR_CPU_TOKEN, 0.05 * cluster_cpus / max(workers, 1)))


#: CPUs a Ray Data read task reserves: none. A read task that waits for its consumer keeps what
#: it reserved: with a CPU each, when two epochs were read at once (a dataset per epoch, the
#: next one attached early), the next epoch's waiting read task and the workers' tokens left the
#: current epoch 0.99 of a CPU, too little for its next read task, while the workers waited for
#: its rows (seen: 5,810,120 rows, 2 workers on 2 CPUs, Ray Data's scheduler spinning, the
#: workers idle). Reserving nothing, reading always progresses, whatever else holds the CPUs
#: (a restart's new dataset, other jobs); the operating system shares the cores.
READ_TASK_CPUS = 0

#: read tasks an epoch's dataset runs at once: with no CPU reserved nothing else bounds them,
#: and more at once took cores from training (measured, see docs/scaling.md)
READ_TASKS_AT_ONCE = 1

#: bytes of Parquet one Ray Data read task reads (see read_blocks)
READ_TASK_BYTES = 256 << 20


def read_blocks(files, workers: int) -> int:
    """Read tasks (blocks) for one epoch: one per READ_TASK_BYTES of Parquet, at least 2 per worker.

    Each Ray Data read task pays a start-up of its own, about 2 s here (2
    cores): left to Ray, a task per shard of 75,000 rows (8 shards, 46 MB)
    streamed 600,000 rows to a worker in 10-15 s; with 2 or 4 tasks, in 3.3-4.7 s
    (measured, Ray 2.60). A quarter of a GiB per task keeps the start-up
    small against the reading and leaves several blocks per worker for the
    stream to flow; sizes come from the driver's view of the files (shards
    on a path it cannot stat count as one task's worth each).
    """
    total = 0
    for f in files:
        try:
            total += os.path.getsize(f)
        except OSError:
            total += READ_TASK_BYTES
    return int(max(2 * max(workers, 1), -(-total // READ_TASK_BYTES)))


class _data_context:
    """Ray Data settings for a run, restored afterwards (a notebook's own stay as they were).

    - ``preserve_order``: deterministic streams (one worker: exact runs and resumes);
    - with a dataset per epoch (``per_run`` False), an object-store budget for
      blocks read ahead (``READ_AHEAD_BYTES``). With one split per run, Ray
      Data's own budget, half of Ray's object store (which Ray sizes from
      the machine's memory; ``RAY_DATA_OBJECT_STORE_MEMORY_LIMIT_FRACTION``
      changes the half): while the budget is full Ray Data's scheduling
      loop polls without pause, and with 1 GiB it was full for most of every
      epoch larger than that, and two workers gained more from Ray's budget
      than one (measured on 5,810,120 rows, 2.4 GB an epoch: docs/scaling.md);
    - streamfm's progress bar instead of Ray's, and no log line per epoch (newer Ray);
    - the V1 Parquet datasource where Ray has both: with V2 (Ray 2.60's default)
      a worker's first block came only when the whole read had ended (measured,
      600,000 rows in 8 shards: every batch at 7.5 s, against the first at 2.9 s
      and a steady stream to 5.9 s with V1), so training could not overlap reading.

    Ray's block size is left at its default (128 MiB), although a Parquet read
    task yields nothing before it has decoded a block's worth: with 32 MiB
    blocks a worker's first batch came after 1.9 s instead of 3.8-5.0 s, but
    on 2,000,000 rows in 8 shards one worker's first epoch then never ended
    (Ray 2.60: the SplitCoordinator busy, the worker idle for 19 minutes).

    Settings a Ray version does not have are left alone.
    """

    def __init__(self, ray, per_run: bool):
        from ray.data import ExecutionResources

        self.ctx = ray.data.DataContext.get_current()
        self.settings = {("execution_options", "preserve_order"): True,
                         ("enable_progress_bars",): False,
                         ("print_on_execution_start",): False,
                         ("use_datasource_v2",): False}
        if not per_run:
            self.settings[("execution_options", "resource_limits")] = ExecutionResources(
                object_store_memory=READ_AHEAD_BYTES)
        self.saved = {}

    def _owner(self, path):
        obj = self.ctx
        for name in path[:-1]:
            obj = getattr(obj, name)
        return obj

    def __enter__(self):
        for path, value in self.settings.items():
            owner = self._owner(path)
            if hasattr(owner, path[-1]):
                self.saved[path] = getattr(owner, path[-1])
                setattr(owner, path[-1], value)
        return self

    def __exit__(self, *exc):
        for path, value in self.saved.items():
            setattr(self._owner(path), path[-1], value)


# ---------------------------------------------------------------------------
# The worker
# ---------------------------------------------------------------------------


class Worker:
    """One data-parallel worker: a model, its share of an epoch's stream, and rounds on it.

    Runs as a Ray actor (``ray.remote(Worker)``), but is a plain class: the
    tests can drive it without Ray.

    Made before the driver has a model (see :class:`RayStart`): it can take its
    epoch's stream at once, and gets the model with :meth:`setup`.

    Parameters
    ----------
    rank : int
        Worker number (seeds its shuffle buffer).
    data : dict
        ``{"files": [...], "options": ReadOptions.to_dict()}``: how to turn the
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
        self.source = open_source(data["files"], ReadOptions.from_dict(data["options"]))
        self.trained: TrainedModel | None = None
        self.settings: dict = {}
        self.stream: RowStream | None = None
        self.bad_rows = 0
        self.split = None  # this worker's Ray Data split: of the run's dataset, read once per epoch
        self._attached: list[tuple[Prefetch, RowStream]] = []  # epochs' streams, reading, in order
        self._running: list[Prefetch] = []  # the current epoch's threads
        self._read_done: threading.Event | None = None  # set when the last attached epoch is read
        self._closing = threading.Event()

    def setup(self, model_state, settings: dict) -> int:
        """The model to train (``TrainedModel.state()``, copied: the worker owns its arrays) and
        the run's settings: seed, batch_rows, buffer_rows, shuffle, ignore_extra_features,
        ignore_unknown_labels, step_scale (the factor on every step: ``LLFMModel.step_scale``)."""
        meta, arrays = model_state
        self.trained = TrainedModel.from_state(meta, {k: np.array(v) for k, v in arrays.items()},
                                               ignore_extra=settings["ignore_extra_features"])
        # see RayTrainer: the driver keeps the unscaled steps in the model it saves
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
        dataset per epoch: see ``make_datasets``) is pulled at once. (Attached
        a few rounds before the end instead, the lead time shrank with
        ``--sync-rows``: one worker trained 89,000 rows/s with rounds of 16,384
        rows and 128,000 with rounds of 65,536, measured with a dataset per
        epoch.)
        """
        after = self._read_done if split is None else None
        if split is not None:
            self.split = split
        done = threading.Event()
        ahead = Prefetch(self._chunks(self.split, after, done), READ_AHEAD_CHUNKS)
        self._read_done = done
        self._attached.append((ahead, RowStream(ahead.__enter__())))

    def start_epoch(self, epoch: int, epoch_rows: int, skip_rows: int = 0) -> None:
        """This epoch: the next attached stream's ``epoch_rows`` rows through a shuffle buffer
        seeded by (seed, epoch) -- the local trainer's seed, so one worker reads what the local
        engine reads -- and the rank for the other workers; the first ``skip_rows`` trained on
        already. Shuffling and standardising run in a thread, as in the local trainer."""
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
        if state is not None:
            self.trained.model.load_state(*state)
        result = train_for_rows(self.trained, self.stream, max_rows,
                                ignore_unknown_labels=self.settings["ignore_unknown_labels"], standardized=True)
        out = asdict(result)
        out["bad_rows"] = self.bad_rows
        out["dropped"] = self.trained.standardizer.dropped
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
        return self.trained.model.state(), out, peak_mib


# ---------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------


#: the first Ray whose Parquet reads order the files per execution through
#: ``FileShuffleConfig.get_seed(execution_idx)`` (2.54; 2.53 and 2.46 ignore it: checked)
SPLIT_PER_RUN_FROM = (2, 54)


def split_per_run(ray) -> bool:
    """True: the run reads one split every epoch (see make_datasets); False: a dataset per epoch.

    Only from ``SPLIT_PER_RUN_FROM`` on, shuffled or not: below it the
    engine keeps the path the suite was run with at the lowest Ray (a dataset
    per epoch; docs/dependencies.md).
    """
    try:
        version = tuple(int(v) for v in ray.__version__.split(".")[:2])
    except ValueError:  # a development build: assume it is recent
        return True
    return version >= SPLIT_PER_RUN_FROM


def make_datasets(ray, source, opts, seed: int, epochs: range, per_run: bool) -> dict:
    """Ray Data's datasets of a run, by the epoch each is first read in.

    ``per_run`` (see ``split_per_run``): one dataset and one
    ``streaming_split`` for the whole run, ``{epochs.start: dataset}``; each
    epoch iterates the split again, which re-executes the read in the same
    split coordinator. With a dataset per epoch, every epoch started a
    coordinator process, and each one spent 2.7-4.2 CPU seconds importing Ray
    Data before its first block (measured, 2 cores). Ray Data re-plans the
    read at every execution and orders the shards with the run's seed for
    that epoch (``engines.ray_shards``): the local trainer's order. Rays
    older than ``SPLIT_PER_RUN_FROM`` never ask for that seed (2.53 and 2.46
    draw every epoch's order from one generator of their own), so there a
    shuffled run gets a dataset per epoch, the shards listed in the epoch's
    order. (Chaining the epochs' reads into one execution instead would keep
    Ray Data holding blocks back, and its scheduling loop polling, for the
    whole run: half a core here whenever it holds blocks back; measured
    with tools/bench_ray_reads.py --pace, docs/scaling.md.)

    All made before any epoch is read: making one runs Ray tasks
    (``read_parquet`` samples the files), and each wants a whole CPU; once an
    epoch is being read, its read tasks may hold the CPUs, paused until the
    workers take their blocks, and the workers' token reservations hold a
    little more (seen on 5,810,120 rows, one worker, 2 CPUs: 0.99 CPU free,
    the sampling task queued for good). Datasets are lazy: nothing is read
    before the workers pull from their splits.
    """
    if per_run:
        return {epochs.start: _dataset(ray, source, opts, seed, epochs, per_run)}
    return {epoch: _dataset(ray, source, opts, seed, range(epoch, epoch + 1), per_run) for epoch in epochs}


def _dataset(ray, source, opts, seed: int, epochs: range, per_run: bool):
    """The dataset that reads ``epochs`` (one per execution: a split per run), or one epoch."""
    import inspect

    files = source.files
    # newer Ray names the read tasks' resources (ray_remote_args is deprecated there)
    params = inspect.signature(ray.data.read_parquet).parameters
    named = "num_cpus" in params
    resources = {"num_cpus": READ_TASK_CPUS} if named else {"ray_remote_args": {"num_cpus": READ_TASK_CPUS}}
    if "concurrency" in params:  # a Ray without it runs read tasks as its resources allow
        resources["concurrency"] = READ_TASKS_AT_ONCE
    if opts.shuffle and per_run:
        from .ray_shards import epoch_shard_order

        resources["shuffle"] = epoch_shard_order(ray, seed, epochs)
    elif opts.shuffle:
        files = epoch_file_order(files, epochs.start, seed)
    ds = ray.data.read_parquet(files, file_extensions=None,
                               override_num_blocks=read_blocks(files, opts.workers), **resources)
    return ds.select_columns(list(source.reader.columns))


def attach_streams(workers, dataset) -> list:
    """Hand every worker its split of ``dataset`` (``streaming_split``, equal shares, in order);
    they start reading its (first) epoch at once. Returns the calls' refs."""
    splits = dataset.streaming_split(len(workers), equal=True)
    return [w.attach.remote(it) for w, it in zip(workers, splits)]


def stream_rows(source) -> int:
    """Rows per batch a worker pulls from its stream: the local reader's chunk size where the
    data's width is known before the scan (a wide table, or shards from ``convert``)."""
    hint = source.n_features_hint
    return reader_rows(hint) if hint else source.options.chunk_rows


class RayStart:
    """Ray, the run's dataset, and the workers reading the first epoch: a run's Ray side.

    A new run makes this before its scan pass (``train.trainer.train``).
    Ray Data takes seconds from an epoch's first pull to its first rows (the
    worker actors, the read tasks and the split coordinator start processes
    of their own: 4.5-7.5 s measured here), and a new run's driver spends
    seconds before its first round (the scan over the data, the
    standardiser, k-means for the anchors): started first, the one overlaps
    the other. The workers get the model when it exists (``Worker.setup``).
    A resumed or continued run makes it in ``RayTrainer.fit``, with nothing
    to overlap. (Making the dataset and the workers in a thread beside the
    scan, after ``ray.init``, gained nothing on 2 cores: the two competed
    for them; measured, 2 runs each. ``ray.init`` itself must run in the
    thread that then uses Ray.)

    ``close()`` stops the workers, restores Ray Data's settings and stops a
    Ray instance this started; the trainer calls it at the end of its run,
    and ``train`` if the scan fails.
    """

    def __init__(self, source, data: dict, opts, seed: int, epochs: range, chunk_rows: int):
        self.ray = ray = import_ray()
        self.opts, self.data, self.chunk_rows = opts, data, int(chunk_rows)
        self.workers: list = []
        self.pending: list = []
        self._context = None
        self.started = _connect(ray, opts.address, opts.quiet)
        try:
            # a Ray someone else connected (a notebook, the tests) gets the import path per actor
            self.actor_env = None if self.started or opts.address else _runtime_env(None)
            self.per_run = split_per_run(ray)
            self._context = _data_context(ray, self.per_run).__enter__()
            self.cpus = worker_cpus(float(ray.cluster_resources().get("CPU", 1.0)), opts.workers)
            self.source, self.seed, self.epochs = source, seed, epochs
            self.datasets = make_datasets(ray, source, opts, seed, epochs, self.per_run)
            self.start_workers(epochs.start)
        except BaseException:
            self.close()
            raise

    def start_workers(self, epoch: int) -> None:
        """New worker actors, reading ``epoch`` at once; ``pending`` holds the calls' refs.

        A restart (a worker died) reads the epoch through new splits: with a
        split per run, of a new dataset whose first read is this epoch (the dead
        worker's split, its coordinator and its place in the epoch go with it;
        every worker starts the epoch again, each skipping what it had trained
        on)."""
        actor = self.ray.remote(Worker)
        token = os.urandom(4).hex()
        self.workers = [
            actor.options(num_cpus=self.cpus, scheduling_strategy="SPREAD",
                          name=f"{ACTOR_PREFIX}-{token}-{k}", max_restarts=0,
                          runtime_env=self.actor_env).remote(k, self.data, self.chunk_rows)
            for k in range(self.opts.workers)]
        if epoch not in self.datasets:  # a restart in a later epoch of a split-per-run run
            self.datasets = {epoch: _dataset(self.ray, self.source, self.opts, self.seed,
                                             range(epoch, self.epochs.stop), self.per_run)}
        self.pending = attach_streams(self.workers, self.datasets[epoch])

    def setup(self, state, settings: dict) -> list:
        """Give the workers the model (``Worker.setup``); returns the refs to wait on, those of
        their first epoch's attach calls included (a failed attach shows there)."""
        refs = self.pending + [w.setup.remote(state, settings) for w in self.workers]
        self.pending = []
        return refs

    def attach(self, epoch: int) -> list:
        """Every worker starts reading ``epoch`` (after the current one): from its split again, or
        from a new split of the epoch's dataset. Returns the calls' refs."""
        if self.per_run:
            return [w.attach.remote() for w in self.workers]
        return attach_streams(self.workers, self.datasets[epoch])

    def stop_workers(self) -> None:
        for w in self.workers:
            try:
                self.ray.get(w.close.remote(), timeout=10)
            except Exception:  # dead, or stuck: killed below anyway
                pass
            try:
                self.ray.kill(w)
            except Exception:  # already dead
                pass
        self.workers = []

    def close(self) -> None:
        self.stop_workers()
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = None
        if self.started:
            self.ray.shutdown()
            self.started = False


class RayTrainer(Trainer):
    """The streaming trainer with its epochs run by Ray workers (same store, records and resume).

    ``ray_start``: the run's :class:`RayStart` if it was made before the scan
    (a new run); otherwise ``fit`` makes it.
    """

    def __init__(self, *args, ray_start: RayStart | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._up = ray_start

    def fit(self) -> dict:
        if self._up is None:
            self._up = RayStart(self.source, self.run.data, self.opts, self.trained.model.config.seed,
                                range(self.run.epoch, self.run.epochs), self._reader_rows())
        up = self._up
        self._ray, self._restarts = up.ray, 0
        try:
            return self._fit_with_restarts()
        finally:
            up.close()

    # ------------------------------------------------------------ workers
    def _settings(self) -> dict:
        opts, run, model = self.opts, self.run, self.trained.model
        std = self.trained.standardizer
        return {"seed": model.config.seed, "batch_rows": opts.batch_rows, "shuffle": opts.shuffle,
                "buffer_rows": self._buffer_rows(model.p if std.center else run.mean_row_entries),
                "ignore_extra_features": opts.ignore_extra_features,
                "ignore_unknown_labels": opts.ignore_unknown_labels, "step_scale": self._step_scale()}

    def _step_scale(self) -> float:
        """Workers' step sizes are eta0 and eta_anchor times this (see the module notes)."""
        return float(self.opts.workers) if self.opts.scale_steps else 1.0

    @property
    def _workers(self) -> list:
        return self._up.workers

    def _start_workers(self) -> None:
        """Workers reading the current epoch (already, if the run's RayStart made them), given the model."""
        up = self._up
        if not up.workers:  # a restart after a worker died
            up.start_workers(self.run.epoch)
        self._get(up.setup(self._ray.put(self.trained.state()), self._settings()))

    def _stop_workers(self) -> None:
        self._up.stop_workers()

    def _get(self, refs):
        ray = self._ray
        try:
            return ray.get(refs)
        except ray.exceptions.RayActorError as exc:
            raise _WorkerDied(str(exc).splitlines()[0]) from None
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, StreamFMError):
                raise cause from None
            raise

    def _attach(self, epoch: int) -> None:
        """Every worker starts reading ``epoch`` (see RayStart.attach)."""
        self._get(self._up.attach(epoch))

    # -------------------------------------------------------------- loop
    def _fit_with_restarts(self) -> dict:
        while True:
            try:
                return self._fit_rounds()
            except _WorkerDied as died:
                self._stop_workers()
                if self._stop.requested or self._restarts >= self.opts.worker_retries:
                    status = "interrupted"
                    self.save(status)
                    if self._stop.requested:
                        return self._stopped_summary()
                    raise WorkerLostError(
                        f"a Ray worker died ({died}) and --worker-retries {self.opts.worker_retries} "
                        f"{'is' if self.opts.worker_retries == 1 else 'are'} used up; the model is "
                        f"checkpointed at epoch {self.run.epoch + 1}, row {self.run.position:,}. "
                        f"Continue with: streamfm train --resume {self.store.path}") from None
                self._restarts += 1
                self.save("running")
                print(f"streamfm: a Ray worker died ({died}); restarting the workers from the state "
                      f"after the last complete round (epoch {self.run.epoch + 1}, row {self.run.position:,}; "
                      f"restart {self._restarts} of {self.opts.worker_retries})", file=sys.stderr, flush=True)

    def _stopped_summary(self) -> dict:
        return {"stopped": self._stop.signal_name or "max_rows", "epochs_done": self.run.epoch,
                "epoch": self.run.epoch, "position": self.run.position, "last": None}

    def _fit_rounds(self) -> dict:
        opts, run = self.opts, self.run
        n = opts.workers
        sync_rows = opts.sync_rows or DEFAULT_SYNC_ROWS
        summary = {"stopped": None, "epochs_done": run.epoch, "last": None}
        if run.rows_per_epoch < n:
            raise InputError(f"--workers {n} is more than the {run.rows_per_epoch} rows of the data")
        state = self.trained.model.state()  # the state every worker holds at a round's start
        config = dict(state[0]["config"])
        rows_this_call, rows_since_ckpt, last_ckpt_t = 0, 0, time.monotonic()
        self._peak_mib = [0.0] * n
        with GracefulStop() as stop:
            self._stop = stop
            self._start_workers()
            # each worker's share of an epoch (equal=True: the same for all; N mod n rows wait)
            epoch_rows = run.rows_per_epoch // n
            broadcast = None  # the workers were given `state`; later rounds send the merge
            attached = run.epoch  # the last epoch whose streams the workers hold
            while self._epochs_left():
                if len(run.worker_positions) != n:
                    run.worker_positions = [0] * n
                if attached < run.epoch:
                    self._attach(run.epoch)
                    attached = run.epoch
                self._get([w.start_epoch.remote(run.epoch, epoch_rows, pos)
                           for w, pos in zip(self._workers, run.worker_positions)])
                bar = progress_bar(total=run.rows_per_epoch or None, initial=run.position, unit="rows", unit_scale=True,
                           desc=f"epoch {run.epoch + 1}/{run.epochs} ({n} worker{'s' * (n > 1)})",
                           disable=opts.quiet, leave=True, mininterval=0.5)
                t_start, rows_start = time.monotonic(), run.position
                self._round_seconds, self._worker_seconds, self._worker_wait = 0.0, [0.0] * n, [0.0] * n
                while True:
                    if stop.requested or (opts.max_rows and rows_this_call >= opts.max_rows):
                        self.save("interrupted")
                        bar.close()
                        summary.update(self._stopped_summary())
                        return summary
                    if attached == run.epoch and run.epoch + 1 < run.epochs and run.position > rows_start:
                        # after this epoch's first round: the next one's start-up overlaps training
                        self._attach(run.epoch + 1)
                        attached = run.epoch + 1
                    t_round = time.monotonic()
                    outs = self._get([w.train_round.remote(broadcast, sync_rows) for w in self._workers])
                    results = [RoundResult(**{k: o[1][k] for k in RoundResult.__dataclass_fields__}) for o in outs]
                    self._round_seconds += time.monotonic() - t_round
                    self._worker_seconds = [a + r.seconds for a, r in zip(self._worker_seconds, results)]
                    self._worker_wait = [a + r.wait_seconds for a, r in zip(self._worker_wait, results)]
                    rows = [r.rows for r in results]
                    state = merge_states([o[0] for o in outs], rows, base=state)
                    state[0]["config"] = config  # the model's steps, not the workers' scaled ones
                    # one worker keeps its own state (the merge is the identity); more get the merge
                    broadcast = self._ray.put(state) if n > 1 else None
                    self.trained.model = LLFMModel.from_state(*state)
                    self._worker_bad_rows = sum(o[1]["bad_rows"] for o in outs)
                    self._peak_mib = [max(a, o[2]) for a, o in zip(self._peak_mib, outs)]
                    done = sum(rows)
                    run.position += done
                    run.worker_positions = [p + r for p, r in zip(run.worker_positions, rows)]
                    run.epoch_loss_sum += sum(r.loss_sum for r in results)
                    self.unknown_labels += sum(r.unknown_labels for r in results)
                    rows_this_call += done
                    rows_since_ckpt += done
                    bar.update(done)
                    if all(r.exhausted for r in results):
                        break
                    now = time.monotonic()
                    if (opts.checkpoint_rows and rows_since_ckpt >= opts.checkpoint_rows) or \
                            now - last_ckpt_t >= opts.checkpoint_seconds:
                        self.save("running")
                        last_ckpt_t, rows_since_ckpt = now, 0
                bar.close()
                self._end_epoch(t_start, rows_start, summary)
                last_ckpt_t, rows_since_ckpt = time.monotonic(), 0
        return self._finish_summary(summary)

    def _epoch_record(self, t_start: float, rows_start: int) -> dict:
        record = super()._epoch_record(t_start, rows_start)
        record["engine"] = "ray"
        record["workers"] = self.opts.workers
        record["step_scale"] = self._step_scale()
        record["worker_peak_rss_mib"] = [round(m, 1) for m in self._peak_mib]
        # where an epoch's seconds went: the driver's rounds (a round ends with its slowest
        # worker), each worker's training inside them, and of that its wait for input
        record["round_seconds"] = round(self._round_seconds, 3)
        record["worker_round_seconds"] = [round(s, 3) for s in self._worker_seconds]
        record["worker_input_wait_seconds"] = [round(s, 3) for s in self._worker_wait]
        if getattr(self, "_worker_bad_rows", 0):
            record["bad_rows_skipped"] = self._worker_bad_rows
        return record


__all__ = ["RayStart", "RayTrainer", "Worker", "WorkerLostError", "check_address", "import_ray", "preflight", "worker_cpus"]
