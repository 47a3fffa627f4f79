"""A seeded, uniform sample of a stream of rows (the k-means input for the anchors)."""
from __future__ import annotations

import numpy as np

from streamfm.io.chunk import Chunk


class Reservoir:
    """Algorithm R over the row stream, vectorised per chunk.

    Row t (0-based, over the whole stream) with t >= k replaces slot
    j = floor(u * (t + 1)) when j < k, u ~ U[0, 1).  Only rows t >= k draw a
    number, one each, in stream order, so the sample depends on the seed and
    the row order only -- not on how the stream is cut into chunks.
    """

    def __init__(self, size: int, seed) -> None:
        self.k = int(size)
        self.rng = np.random.default_rng(seed)
        self.t = 0  # rows seen
        self.sample: Chunk | None = None

    def add(self, chunk: Chunk) -> None:
        n = chunk.n_rows
        if n == 0 or self.k == 0:
            self.t += n
            return
        parts = []
        fill = max(0, min(n, self.k - self.t))
        if fill:
            parts.append(chunk.take(np.arange(fill)))
        if parts:
            self.sample = Chunk.concat(([self.sample] if self.sample is not None else []) + parts)
        rest = n - fill
        if rest:
            t = self.t + fill + np.arange(rest, dtype=np.float64)  # stream positions
            j = np.floor(self.rng.random(rest) * (t + 1)).astype(np.int64)
            hit = np.flatnonzero(j < self.k)
            if len(hit):
                slots = j[hit]
                rows = fill + hit
                # A slot hit twice in this chunk keeps the later row.
                rev_slots, first = np.unique(slots[::-1], return_index=True)
                winners = rows[::-1][first]
                where = np.arange(self.k)
                where[rev_slots] = self.k + np.arange(len(winners))
                self.sample = Chunk.concat([self.sample, chunk.take(winners)]).take(where)
        self.t += n
