"""The hashed store's table: W, V and AdaGrad's accumulators per slot, the slots' tags and dirty flags.

Every (FM, feature) pair is one slot of a table of 2^bits rows
(kernels/hashing.py): ``W`` (1, S, C), ``V`` (1, S, C, r), and with AdaGrad
``AW``, ``AV`` shaped alike, float32; ``tags`` (S,) uint32, the tag of the
pair that first touched each slot (0: untouched). All are ``np.zeros`` at
first, so an untouched slot's pages are never written and cost no memory.
The biases and the anchors stay exact (``LLFMModel.params``).

``dirty`` (S,) uint8 marks the slots training changed since the last
checkpoint (bit 1) and since the last merge of an engine's round (bit 2).
A checkpoint may write only the dirty slots (store/blocks.py: a chain of a
whole base and deltas of the changed slots, their ids and rows); ``origin`` is the (directory, checkpoint) whose
values the clean slots hold (None: unknown, so the next checkpoint writes
the table whole).

How slot rows merge (``merge_rows``): as the exact store's parameters,
``start + sum_k n_k / N (P_k - start_k)``, where a worker's start is the
round's base value of the slot, or for a slot first touched in the round
the initial factors of the pair that touched it (its tag); the
accumulators add their increments.
"""
from __future__ import annotations

import numpy as np

from ..kernels.hashing import DIRTY_CHECKPOINT, DIRTY_ROUND, initial_rows, seed_key

#: slots per block of a checkpoint's delta (store/blocks.py): one, since hashing spreads the slots a
#: stretch of training changes evenly over the table (any larger block would hold one of them)
BLOCK = 1
#: the table's arrays, beside the tags: parameters (averaged by a merge) and accumulators (increments add)
TABLE_PARAMS = ("W", "V")
TABLE_ACCUMS = ("AW", "AV")
TAGS = "tags"


class HashedTable:
    """The arrays of the hashed store (see the module notes).

    Parameters
    ----------
    arrays : dict
        ``W``, ``V``, ``tags`` and with AdaGrad ``AW``, ``AV`` (the model's own arrays).
    bits : int
    dirty : ndarray or None
        The slots' flags (None: all clean).
    origin : (str, str) or None
        The model directory and checkpoint whose blocks hold the clean slots' values.
    """

    def __init__(self, arrays: dict, bits: int, dirty: np.ndarray | None = None, origin=None):
        self.arrays = arrays
        self.bits = int(bits)
        self.slots = 1 << self.bits
        self.block = BLOCK
        self.dirty = np.zeros(self.slots, np.uint8) if dirty is None else dirty
        self.origin = origin

    @classmethod
    def new(cls, bits: int, C: int, r: int, adagrad: bool, dtype: str = "float32") -> "HashedTable":
        S = 1 << int(bits)
        arrays = {"W": np.zeros((1, S, C), dtype), "V": np.zeros((1, S, C, r), dtype), TAGS: np.zeros(S, np.uint32)}
        if adagrad:
            arrays.update(AW=np.zeros((1, S, C), dtype), AV=np.zeros((1, S, C, r), dtype))
        return cls(arrays, bits)

    @property
    def tags(self) -> np.ndarray:
        return self.arrays[TAGS]

    def kernel_args(self, sigma: float, seed: int) -> tuple:
        """The kernels' ``table`` argument: (shift, tags, dirty, sigma, seed key)."""
        return (np.uint64(64 - self.bits), self.tags, self.dirty, float(sigma), seed_key(seed))

    def fill(self) -> int:
        """Slots touched."""
        return int(np.count_nonzero(self.tags))

    def rows(self, name: str) -> np.ndarray:
        """Array ``name`` as (S, values per slot), a view; the tags as (S,)."""
        a = self.arrays[name]
        return a if name == TAGS else a.reshape(self.slots, -1)

    # ------------------------------------------------------------ checkpoints (store/blocks.py)
    def changed_slots(self) -> np.ndarray:
        """Slots changed since the last checkpoint (sorted ids): a delta's blocks of one slot."""
        return np.flatnonzero(self.dirty & DIRTY_CHECKPOINT)

    def committed(self, origin) -> None:
        """The table's values are those of ``origin`` = (directory, checkpoint): every slot clean."""
        np.bitwise_and(self.dirty, np.uint8(~DIRTY_CHECKPOINT & 0xFF), out=self.dirty)
        self.origin = origin

    # ------------------------------------------------------------ rounds (engines)
    def take_round(self) -> np.ndarray:
        """The slots changed since the last call (sorted), their round flags cleared."""
        slots = np.flatnonzero(self.dirty & DIRTY_ROUND)
        self.dirty[slots] &= np.uint8(~DIRTY_ROUND & 0xFF)
        return slots

    def read_rows(self, slots: np.ndarray) -> dict:
        """The table's values at ``slots``: {name: (n, ...) copy}."""
        return {name: self.rows(name)[slots] for name in self.arrays}

    def write_rows(self, slots: np.ndarray, values: dict, *, dirty: bool) -> None:
        """Set the table's rows at ``slots``; ``dirty``: mark them changed for the next checkpoint."""
        for name, v in values.items():
            target = self.rows(name)
            target[slots] = np.asarray(v).reshape((len(slots),) + target.shape[1:])
        if dirty:
            self.dirty[slots] |= np.uint8(DIRTY_CHECKPOINT)


def merge_rows(base: dict | None, workers: list[dict | None], weights, C: int, r: int, sigma: float,
               seed: int) -> dict:
    """One set of slot rows from the rows of workers that trained from ``base`` (see the module notes).

    ``base``: {name: rows} of the slots at the round's start (None: every slot untouched then);
    ``workers``: each worker's rows of the same slots, or None for a worker that touched none of
    them (it holds the base's). ``weights``: the workers' row shares (summing to 1).
    """
    template = base if base is not None else next(w for w in workers if w is not None)
    n = len(template[TAGS])
    base_tags = base[TAGS] if base is not None else np.zeros(n, np.uint32)
    fresh = base_tags == 0
    skey = seed_key(seed)

    def start_v(tags):
        """V's value at the round's start, as a worker with these tags saw it."""
        v = base["V"].astype(np.float64) if base is not None else np.zeros((n, 1, C, r))
        v = v.reshape(n, C, r)
        new = fresh & (tags != 0)
        if new.any():
            v = v.copy()
            v[new] = initial_rows(tags[new], C, r, sigma, skey)
        return v

    # the slot's tag: the base's, or the first (lowest-ranked) worker's that touched it
    tags = base_tags.copy()
    for w in workers:
        if w is not None:
            take = (tags == 0) & (w[TAGS] != 0)
            tags[take] = w[TAGS][take]
    out = {TAGS: tags}
    shapes = {name: template[name].shape for name in template if name != TAGS}
    for name in (nm for nm in (*TABLE_PARAMS, *TABLE_ACCUMS) if nm in shapes):
        if name == "V":
            start = start_v(tags).reshape(shapes[name])
        else:
            start = base[name].astype(np.float64) if base is not None else np.zeros(shapes[name])
        total = start.copy()
        for w, weight in zip(workers, weights):
            if w is None:
                continue
            mine = start_v(w[TAGS]).reshape(shapes[name]) if name == "V" else start
            inc = w[name].astype(np.float64) - mine
            total += inc if name in TABLE_ACCUMS else weight * inc
        out[name] = total.astype(template[name].dtype)
    return out
