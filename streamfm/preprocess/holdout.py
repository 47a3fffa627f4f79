"""Held-out validation rows: a seeded fraction of the training rows, fixed by where each row is.

Without a validation set, early stopping validates on rows held out of the
training data.  Which rows are held out is decided from each row's place in
the unshuffled data -- (index of its file in the sorted file list, row number
within that file) -- through a seeded hash, before any shuffling.  So the
held-out rows are the same in every epoch, after a resume, and whatever the
readers' chunk sizes, and nothing needs remembering but (fraction, seed).

The scan pass reads every row anyway: it sets the held-out rows aside (into a
spool file, see ``io/spool.py``) and computes the training statistics without
them; every epoch's stream (``preprocess/shuffle.py``) drops them before the
shuffle buffer, so they are never trained on.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from streamfm.io.chunk import Chunk

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 arrays (wrapping arithmetic): a bijection that spreads bits."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


class HoldOut:
    """Which rows of a data set are held out: ``fraction`` of them, chosen by ``seed``.

    Parameters
    ----------
    fraction : float
        In (0, 1): the expected share of rows held out.
    seed : int
        Non-negative; another seed holds out other rows.
    """

    def __init__(self, fraction: float, seed: int):
        fraction, seed = float(fraction), int(seed)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")
        if seed < 0:
            raise ValueError(f"the seed must be non-negative, got {seed}")
        self.fraction, self.seed = fraction, seed
        self._threshold = np.uint64(min(int(fraction * 2.0**64), 2**64 - 1))
        self._key = _mix(np.array([seed], dtype=np.uint64) + _GOLDEN)

    def to_dict(self) -> dict:
        return {"fraction": self.fraction, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> "HoldOut":
        return cls(d["fraction"], d["seed"])

    def mask(self, file_index: int, row0: int, n: int) -> np.ndarray:
        """True for the held-out rows among rows ``row0 .. row0 + n - 1`` of file ``file_index``."""
        file_key = _mix(self._key ^ _mix(np.array([file_index], dtype=np.uint64) * _GOLDEN + _GOLDEN))
        rows = np.arange(row0, row0 + n, dtype=np.uint64)
        return _mix(file_key + (rows + np.uint64(1)) * _GOLDEN) < self._threshold

    def split(self, chunk: Chunk, file_index: int, row0: int) -> tuple[Chunk, Chunk | None]:
        """(training rows, held-out rows or None) of a chunk starting at row ``row0`` of its file."""
        held = self.mask(file_index, row0, chunk.n_rows)
        if not held.any():
            return chunk, None
        return chunk.take(np.flatnonzero(~held)), chunk.take(np.flatnonzero(held))

    def file_chunks(self, source, path: str, file_index: int, *, chunk_rows: int | None = None,
                    held: bool = False) -> Iterator[Chunk]:
        """The training rows (or with ``held=True`` the held-out ones) of one file, in file order."""
        row0 = 0
        for chunk in source.iter_file(path, chunk_rows=chunk_rows):
            train, out = self.split(chunk, file_index, row0)
            row0 += chunk.n_rows
            part = out if held else train
            if part is not None and part.n_rows:
                yield part

    def __repr__(self) -> str:
        return f"HoldOut(fraction={self.fraction}, seed={self.seed})"
