"""Data-parallel training on Ray: Ray Data streams Parquet shards to worker actors.

``--engine ray`` runs the same loop as the local engine (``training/loop.py``)
with :class:`RayRounds` training the rows: every round, each of ``--workers``
actors trains its own copy of the model on ``--sync-rows`` rows of its share
of the epoch, and the driver merges the copies. Ray is an optional extra
(``pip install "streamfm[ray]"``); importing this package does not import it.

- ``options.py``: ``RayOptions`` (workers, sync_rows, address, worker_retries, scale_steps);
- ``cluster.py``: importing and joining Ray, ``preflight``, the actors' CPU share;
- ``data.py``: Ray Data's datasets, read tasks, splits and settings for a run;
- ``shards.py``: each epoch's shard order, the local engine's, as Ray Data's file shuffle;
- ``worker.py``: the ``Worker`` actor;
- ``start.py``: ``RayStart``, a run's Ray side (Ray, datasets, workers), made before the scan;
- ``rounds.py``: ``RayRounds``, the round runner (broadcast, train, merge, replace dead workers).
"""
from .options import RayOptions
from .rounds import RayRounds, WorkerLostError

__all__ = ["RayOptions", "RayRounds", "WorkerLostError"]
