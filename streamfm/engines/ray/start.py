"""A run's Ray side: Ray, the Ray Data settings, the run's datasets and the worker actors (:class:`RayStart`).

A new run makes it before its scan pass (``RayRounds.prepare``): Ray Data
takes seconds from an epoch's first pull to its first rows (the worker
actors, the read tasks and the split coordinator start processes of their
own), and a new run's driver spends seconds before its first round (the
scan, the scaling, k-means for the anchors); started first, the one overlaps
the other. The workers get the model once it exists (``Worker.setup``). A
resumed or continued run makes it when its loop starts, with nothing to
overlap. ``ray.init`` must run in the thread that then uses Ray.
"""
from __future__ import annotations

import os
from types import SimpleNamespace

from .cluster import connect, import_ray, runtime_env, worker_cpus
from .data import attach_streams, data_context, make_datasets, split_per_run
from .options import RayOptions
from .worker import ACTOR_PREFIX, Worker


class RayStart:
    """Ray, the run's dataset(s), and the workers reading the first epoch.

    ``close()`` stops the workers, restores Ray Data's settings and stops a
    Ray instance this started; the round runner calls it when the run ends
    or fails.
    """

    def __init__(self, source, data: dict, options: RayOptions, shuffle: bool, quiet: bool, seed: int,
                 epochs: range, chunk_rows: int):
        self.ray = ray = import_ray()
        self.options, self.data, self.chunk_rows = options, data, int(chunk_rows)
        self.workers: list = []
        self.pending: list = []
        self._context = None
        self.started = connect(ray, options.address, quiet)
        try:
            # a Ray someone else connected (a notebook, the tests) gets the import path per actor
            self.actor_env = None if self.started or options.address else runtime_env(None)
            self.per_run = split_per_run(ray)
            self._context = data_context(ray, self.per_run, quiet).__enter__()
            self.cpus = worker_cpus(float(ray.cluster_resources().get("CPU", 1.0)), options.workers)
            self.source, self.seed, self.epochs = source, seed, epochs
            self.read = SimpleNamespace(shuffle=shuffle, workers=options.workers)
            self.datasets = make_datasets(ray, source, self.read, seed, epochs, self.per_run)
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
            for k in range(self.options.workers)]
        if epoch not in self.datasets:  # a restart in a later epoch of a split-per-run run
            self.datasets = make_datasets(self.ray, self.source, self.read, self.seed,
                                          range(epoch, self.epochs.stop), self.per_run)
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
