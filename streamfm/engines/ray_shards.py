"""The shards' order per epoch on Ray: Ray Data's own file shuffle, seeded as the local trainer's.

Imported only by the Ray engine (it needs ``ray.data``). A Ray run reads its
shards through one ``streaming_split`` that every epoch iterates again (one
split coordinator for the whole run; see ``engines/ray_engine.py``). Ray Data
re-plans the read at every such execution and orders the files with
``np.random.default_rng(get_seed(execution_idx)).shuffle``; this config's
``get_seed`` gives the seed of the local trainer's order for the epoch that
execution is (``preprocess.shuffle.shard_order_seed``), so every epoch goes
through the shards in the same order on both engines.
"""
from __future__ import annotations

import dataclasses

from ray.data import FileShuffleConfig

from ..preprocess.shuffle import shard_order_seed


@dataclasses.dataclass
class EpochShardOrder(FileShuffleConfig):
    """Ray Data's file shuffle for a run whose first read is epoch ``first_epoch``.

    ``seed`` is the run's seed; Ray Data counts the executions of the dataset
    (0, 1, ...), one per epoch here, so execution i is epoch first_epoch + i.
    """

    first_epoch: int = 0

    def get_seed(self, execution_idx: int = 0) -> int:
        return shard_order_seed(self.seed, self.first_epoch + execution_idx)
