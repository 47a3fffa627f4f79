"""How a block of rows meets the kernel: searched in parts ahead of training, or trained Hogwild.

A block is the rows between two index rebuilds (``coding.search.AnchorSearch``):
every row of it is searched with the same index. ``Schedule.serial`` trains
it on the calling thread while a helper thread searches the next part's
candidates; ``Schedule.hogwild`` trains contiguous parts of it at once on
shared parameters. Both hand the kernel work to a ``run(s, t, cand, stats)``
callable (rows ``s:t`` of the block, their candidates, the counters to add
to), so the kernel's arguments are the model's business alone.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from ..coding.search import AnchorIndex
from ..runtime.threads import pool

#: trains rows s:t of a block with their candidates, adding to the counters ``stats``
RunRows = Callable[[int, int, np.ndarray, np.ndarray], None]


class Schedule:
    """Where and in which parts a block's search and training run.

    With one training thread the search of the next rows runs on a helper
    thread meanwhile (FAISS and the kernels release the GIL). A block's first
    search has nothing to hide behind, so the searches start at
    ``search_first`` rows and double up to ``search_rows``. Every row's
    candidates are its own, so they are those of one search of the block
    (tested). Both sizes are attributes: a benchmark that times the search
    apart sets ``search_first`` above any block (one search per block, on
    the calling thread).
    """

    search_first = 128
    search_rows = 1024

    def parts(self, index: AnchorIndex, phi: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, stop, candidates)`` for consecutive ranges of rows of ``phi``, each range
        searched on a helper thread while the caller works (trains, predicts) on the one before."""
        if len(phi) <= self.search_first:
            yield 0, len(phi), index.search(phi)
            return
        helper = pool(1, "search")
        cuts, size = [0], self.search_first
        while cuts[-1] < len(phi):
            cuts.append(min(len(phi), cuts[-1] + size))
            size = min(2 * size, self.search_rows)
        ahead = helper.submit(index.search, phi[cuts[0]:cuts[1]])
        for j in range(len(cuts) - 1):
            cand = ahead.result()
            if j + 2 < len(cuts):
                ahead = helper.submit(index.search, phi[cuts[j + 1]:cuts[j + 2]])
            yield cuts[j], cuts[j + 1], cand

    def serial(self, index: AnchorIndex | None, phi: np.ndarray, run: RunRows, stats: np.ndarray) -> np.ndarray:
        """Train a block on this thread, part after part (``index`` None: no search, ``fm``);
        returns the block's candidates."""
        if index is None:
            cand = np.zeros((len(phi), 0), dtype=np.int64)
            run(0, len(phi), cand, stats)
            return cand
        found = []
        for s, t, cand in self.parts(index, phi):
            found.append(cand)
            run(s, t, cand, stats)
        return found[0] if len(found) == 1 else np.concatenate(found)

    def hogwild(self, index: AnchorIndex | None, phi: np.ndarray, run: RunRows, stats: np.ndarray,
                threads: int) -> np.ndarray:
        """Train ``threads`` contiguous parts of a block at once (shared parameters, no locks), after
        one search split between the threads; returns the block's candidates."""
        n = len(phi)
        if index is None:
            cand = np.zeros((n, 0), dtype=np.int64)
        elif n >= 64 * threads:
            cand = split_search(index, phi, threads)
        else:
            cand = index.search(phi)
        cuts = np.linspace(0, n, threads + 1).astype(np.int64)
        part_stats = np.zeros((threads, len(stats)), dtype=stats.dtype)
        workers = pool(threads, "hogwild")
        jobs = [workers.submit(run, int(cuts[k]), int(cuts[k + 1]), cand[cuts[k]:cuts[k + 1]], part_stats[k])
                for k in range(threads)]
        for job in jobs:
            job.result()
        stats += part_stats.sum(0)
        return cand


def split_search(index: AnchorIndex, phi: np.ndarray, threads: int) -> np.ndarray:
    """``index.search(phi)`` as ``threads`` searches of contiguous row ranges at once.

    FAISS releases the GIL while it searches and every row's candidates are
    its own, so the result is the serial search's, row for row (tested); on
    2 cores the search took 0.65-0.75 of the time (8,192 rows against 4,096
    anchors (IVF) and 64 anchors (flat), FAISS on one thread in each part).
    """
    cuts = np.linspace(0, len(phi), threads + 1).astype(np.int64)
    parts = [pool(threads, "hogwild").submit(index.search, phi[cuts[k]:cuts[k + 1]]) for k in range(threads)]
    return np.concatenate([f.result() for f in parts])
