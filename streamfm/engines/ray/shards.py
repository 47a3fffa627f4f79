"""The shards' order per epoch on Ray: Ray Data's own file shuffle, seeded as the local engine's.

Imported only by the Ray engine (it needs ``ray.data``). A Ray run reads its
shards through one ``streaming_split`` that every epoch iterates again (one
split coordinator for the whole run; see ``data.py``). Ray Data
re-plans the read at every such execution and orders the files with
``np.random.default_rng(get_seed(execution_idx)).shuffle``; this config's
``get_seed`` gives the seed of the local engine's order for the epoch that
execution is (``preprocess.shuffle.shard_order_seed``), so every epoch goes
through the shards in the same order on both engines.

The seeds are worked out here, on the driver, and the config travels to the
split coordinator by value (``cloudpickle.register_pickle_by_value``): that
process imports Ray Data but need not be able to import streamfm (a Ray
started by someone else, whose jobs do not carry streamfm's path).
"""
from __future__ import annotations

import dataclasses
import sys

from ray.data import FileShuffleConfig

from ...preprocess.shuffle import shard_order_seed


@dataclasses.dataclass
class EpochShardOrder(FileShuffleConfig):
    """Ray Data's file shuffle for a run that reads ``epochs``, one per execution of the dataset.

    ``seed`` is the run's seed; ``seeds[i]`` the shard-order seed of the i-th
    epoch read (Ray Data counts the executions 0, 1, ...).
    """

    seeds: tuple = ()

    def get_seed(self, execution_idx: int = 0) -> int:
        if execution_idx < len(self.seeds):
            return self.seeds[execution_idx]
        # past the run's epochs (streamfm never reads that far): Ray Data's own reseeding
        return hash((self.seed, execution_idx)) % (2**32)


def epoch_shard_order(ray, seed: int, epochs: range) -> EpochShardOrder:
    """The config for a run reading ``epochs`` in order, set to travel by value."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return EpochShardOrder(seed=int(seed), seeds=tuple(shard_order_seed(seed, e) for e in epochs))
