"""Ray Data for a run: the datasets over the shards, their read tasks, the splits, the settings.

A run reads its Parquet shards with ``ray.data.read_parquet`` and hands each
worker one stream of ``streaming_split(n, equal=True)``: equally long
streams, ``N // n`` rows each (``N mod n`` rows are left out every epoch),
split by Ray Data from the shards in the epoch's seeded order, the local
engine's (``shards.py``). From Ray ``SPLIT_PER_RUN_FROM`` on, the run makes
one dataset and one split, and every epoch reads the split again (a new
execution of the read in the same split coordinator); on an older Ray a
shuffled run makes a dataset and a split per epoch, the shards listed in
the epoch's order. Reading is tuned so that it never stalls and stays
beside training rather than in its way: read tasks reserve no CPU, one runs
at a time per epoch, each reads about ``READ_TASK_BYTES``.
"""
from __future__ import annotations

import inspect
import logging
import os

from ...preprocess.shuffle import epoch_file_order
from ...training.options import reader_rows

#: Ray Data's object-store budget for blocks read ahead of the workers when every epoch has
#: a dataset of its own (see ``split_per_run``): two epochs' reads then run at once, and
#: without a bound they read far ahead (memory and CPU taken from training). With one split
#: per run, an epoch is read only once the last one has been, and Ray Data keeps its own
#: budget (see ``data_context``).
READ_AHEAD_BYTES = 1 << 30

#: CPUs a Ray Data read task reserves: none. A read task that waits for its consumer keeps what
#: it reserved: with a CPU each, the next epoch's waiting read task and the workers' tokens can
#: leave the current epoch too little for its next read task while the workers wait for its rows
#: (a deadlock, docs/scaling.md). Reserving nothing, reading always progresses, whatever else
#: holds the CPUs (a restart's new dataset, other jobs); the operating system shares the cores.
READ_TASK_CPUS = 0

#: read tasks an epoch's dataset runs at once: with no CPU reserved nothing else bounds them,
#: and more at once take cores from training (docs/scaling.md)
READ_TASKS_AT_ONCE = 1

#: bytes of Parquet one Ray Data read task reads (see read_blocks)
READ_TASK_BYTES = 256 << 20

#: the first Ray whose Parquet reads order the files per execution through
#: ``FileShuffleConfig.get_seed(execution_idx)`` (2.54; 2.53 and 2.46 ignore it)
SPLIT_PER_RUN_FROM = (2, 54)


def read_blocks(files, workers: int) -> int:
    """Read tasks (blocks) for one epoch: one per READ_TASK_BYTES of Parquet, at least 2 per worker.

    Each Ray Data read task pays a start-up of its own (about 2 s on 2 cores),
    so a task per small shard makes reading, not training, set the pace
    (docs/scaling.md). A quarter of a GiB per task keeps the start-up small
    against the reading and leaves several blocks per worker for the stream
    to flow; sizes come from the driver's view of the files (shards on a path
    it cannot stat count as one task's worth each).
    """
    total = 0
    for f in files:
        try:
            total += os.path.getsize(f)
        except OSError:
            total += READ_TASK_BYTES
    return int(max(2 * max(workers, 1), -(-total // READ_TASK_BYTES)))


class data_context:
    """Ray Data settings for a run, restored afterwards (a notebook's own stay as they were).

    - ``preserve_order``: deterministic streams (one worker: exact runs and resumes);
    - with a dataset per epoch (``per_run`` False), an object-store budget for
      blocks read ahead (``READ_AHEAD_BYTES``). With one split per run, Ray
      Data's own budget, half of Ray's object store (which Ray sizes from
      the machine's memory; ``RAY_DATA_OBJECT_STORE_MEMORY_LIMIT_FRACTION``
      changes the half): while the budget is full Ray Data's scheduling
      loop polls without pause, so a budget smaller than an epoch costs CPU
      for most of the epoch (docs/scaling.md);
    - streamfm's progress bar instead of Ray's, and no log line per epoch (newer Ray);
    - the V1 Parquet datasource where Ray has both: the V2 one (Ray 2.60's
      default) hands a worker its first block only when the whole read has
      ended, so training cannot overlap reading;
    - with ``quiet``, Ray Data's own INFO lines (its estimates while planning
      a read) not shown: its logger at WARNING.

    Ray's block size is left at its default (128 MiB): with smaller blocks
    the first rows come sooner, but a long first epoch can then stall for
    good (Ray 2.60: the split coordinator busy, the worker idle; docs/scaling.md).

    Settings a Ray version does not have are left alone.
    """

    def __init__(self, ray, per_run: bool, quiet: bool = False):
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
        self.logger = logging.getLogger("ray.data") if quiet else None
        self.log_level = None

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
        if self.logger is not None:
            self.log_level = self.logger.level
            self.logger.setLevel(max(logging.WARNING, self.logger.getEffectiveLevel()))
        return self

    def __exit__(self, *exc):
        for path, value in self.saved.items():
            setattr(self._owner(path), path[-1], value)
        if self.logger is not None and self.log_level is not None:
            self.logger.setLevel(self.log_level)


def split_per_run(ray) -> bool:
    """True: the run reads one split every epoch (see make_datasets); False: a dataset per epoch.

    Only from ``SPLIT_PER_RUN_FROM`` on, shuffled or not (below it, a
    dataset per epoch, the path tested at the lowest Ray: docs/dependencies.md).
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
    split coordinator (a split per epoch would start a coordinator process,
    which imports Ray Data, every epoch). Ray Data re-plans the read at every
    execution and orders the shards with the run's seed for that epoch
    (``shards.py``): the local engine's order. Rays older than
    ``SPLIT_PER_RUN_FROM`` never ask for that seed, so there a shuffled run
    gets a dataset per epoch, the shards listed in the epoch's order.

    ``opts`` needs ``shuffle`` and ``workers``. All datasets are made before
    any epoch is read: making one runs Ray tasks (``read_parquet`` samples the
    files), each wanting a whole CPU, and once an epoch is being read its
    paused read tasks and the workers' token reservations may leave less than
    that free. Datasets are lazy: nothing is read before the workers pull
    from their splits.
    """
    if per_run:
        return {epochs.start: _dataset(ray, source, opts, seed, epochs, per_run)}
    return {epoch: _dataset(ray, source, opts, seed, range(epoch, epoch + 1), per_run) for epoch in epochs}


def _dataset(ray, source, opts, seed: int, epochs: range, per_run: bool):
    """The dataset that reads ``epochs`` (one per execution: a split per run), or one epoch."""
    files = source.files
    # newer Ray names the read tasks' resources (ray_remote_args is deprecated there)
    params = inspect.signature(ray.data.read_parquet).parameters
    named = "num_cpus" in params
    resources = {"num_cpus": READ_TASK_CPUS} if named else {"ray_remote_args": {"num_cpus": READ_TASK_CPUS}}
    if "concurrency" in params:  # a Ray without it runs read tasks as its resources allow
        resources["concurrency"] = READ_TASKS_AT_ONCE
    if opts.shuffle and per_run:
        from .shards import epoch_shard_order

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
