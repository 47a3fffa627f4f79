"""Epoch shuffling with bounded memory: shard order plus a shuffle buffer.

SGD wants rows in random order, but the data never fits in memory.  Two
cheap layers of randomness approximate a full shuffle:

1. the order of the shards (files) is a fresh permutation every epoch;
2. rows pass through a bounded shuffle buffer.

Everything is a deterministic function of (seed, epoch) and the row stream,
so an interrupted epoch can be replayed to the row it stopped at
(``skip_rows``).

The shuffle buffer, by rounds
-----------------------------
Let ``T = max(buffer_rows, out_rows)``.  A round fills the buffer to exactly
``T`` rows (an input chunk that would overflow it is split, the rest waits
for the next round), draws one random permutation of the ``T`` rows, emits
the first ``E`` rows of that permutation as chunks of ``out_rows`` rows, and
keeps the other ``T - E`` (at most half of the buffer) to mix with the next
round's rows.  When the input ends, the rows still held are permuted and all
emitted (the last chunk may be shorter).

Why this design:

- Memory is bounded: at most ``T`` rows in the buffer plus the unconsumed
  part of one input chunk (``T + chunk_rows - 1`` rows read but not yet
  emitted), plus transient copies while a round gathers its output.
- Vectorised: one ``permutation`` and a few ``Chunk.take_from`` gathers
  per round (straight from the chunks the buffer holds, never concatenated),
  no Python loop over rows.  At least half
  the buffer leaves each round, so a row is copied a bounded number of times
  on average (a retained row once more per round it survives: 1 + 1/2 +
  1/4 ...): the cost per row is O(1) whatever ``buffer_rows``.
- Mixing: a retained row survives each further round with probability <= 1/2,
  so rows spread over several rounds' outputs, as in a streaming
  (tf.data-style) buffer of ``buffer_rows`` rows.
- Rounds are cut at fixed row counts, not at chunk boundaries, so the output
  is the same however the readers cut the stream into chunks.
- The output is a permutation of the input: each row enters the buffer once
  and leaves it once.

``buffer_rows=0`` is the same machinery with the identity permutation: rows
pass through in order, re-chunked to ``out_rows``.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Sequence

import numpy as np

from streamfm.io.chunk import Chunk

# Independent random streams derived from one (seed, epoch): shard order and
# row order must not be correlated.
_FILES_STREAM = 0
_ROWS_STREAM = 1


def _rng(seed, stream: int) -> np.random.Generator:
    entropy = [int(s) for s in np.atleast_1d(np.asarray(seed, dtype=object))]
    if any(s < 0 for s in entropy):
        raise ValueError(f"seeds must be non-negative integers, got {seed!r}")
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(stream,)))


def epoch_file_order(files: Sequence, epoch: int, seed: int) -> list:
    """The shards in a seeded order, a different one for every epoch.

    Parameters
    ----------
    files : sequence
        The shards (any objects, typically paths).
    epoch : int
        Epoch number (0-based).
    seed : int
        Run seed.

    Returns
    -------
    list
        ``files`` permuted; the same (files, epoch, seed) give the same list.
    """
    files = list(files)
    np.random.default_rng(shard_order_seed(seed, epoch)).shuffle(files)
    return files


def shard_order_seed(seed: int, epoch: int) -> int:
    """The integer seed of epoch ``epoch``'s shard order: ``epoch_file_order`` is
    ``np.random.default_rng(shard_order_seed(seed, epoch)).shuffle(files)``.

    Spelled this way (one integer, then a shuffle of the list) because it is
    exactly how Ray Data's ``FileShuffleConfig`` orders files from the seed its
    ``get_seed(execution_idx)`` gives: the Ray engine hands this function to
    Ray Data (``engines/ray/shards.py``), so one split re-read every epoch goes
    through the shards in the local trainer's order (tested).
    """
    return int(_rng((seed, epoch), _FILES_STREAM).integers(2**32))


def _round_sizes(buffer_rows: int, out_rows: int) -> tuple[int, int]:
    """(T, E): rows in a full buffer and rows emitted per round (a multiple of out_rows)."""
    if buffer_rows == 0:
        return out_rows, out_rows
    total = max(buffer_rows, out_rows)
    retain = max(0, min(buffer_rows // 2, buffer_rows - out_rows))
    # Whole output chunks covering at least the non-retained part, so at least
    # half the buffer leaves each round (the copying cost per row stays O(1)).
    n_chunks = min(-(-(total - retain) // out_rows), total // out_rows)
    return total, n_chunks * out_rows


def round_chunks(buffer_rows: int, out_rows: int) -> int:
    """Output chunks one round of the shuffle emits at once (see the module notes)."""
    _, emit = _round_sizes(int(buffer_rows), int(out_rows))
    return -(-emit // int(out_rows))


def read_ahead_chunks(buffer_rows: int, out_rows: int) -> int:
    """Chunks a read-ahead thread should hold for this shuffle: one round's output (at least 2).

    The shuffle mixes a buffer's worth of rows, then emits a round's chunks at
    once. A queue of two chunks made the reader wait while a round was
    emitted and the kernel wait while the next one was mixed (measured: 1.3
    of 2 cores busy, the queue empty ~1/3 of the epoch); room for one round
    lets the two alternate. Memory: at most one more round's rows (half the
    shuffle buffer) in flight.
    """
    return max(2, round_chunks(buffer_rows, out_rows))


def shuffled_chunks(
    chunks: Iterable[Chunk],
    *,
    buffer_rows: int,
    out_rows: int,
    seed,
    skip_rows: int = 0,
) -> Iterator[Chunk]:
    """Rows of ``chunks`` through a bounded shuffle buffer (see the module notes).

    Parameters
    ----------
    chunks : iterable of Chunk
        The input stream, consumed lazily.
    buffer_rows : int
        Shuffle buffer size in rows; 0: no shuffling, rows re-chunked in order.
    out_rows : int
        Rows per output chunk (the last one may be shorter).
    seed : int or sequence of int
        E.g. ``(seed, epoch)``.
    skip_rows : int, default 0
        Drop the first ``skip_rows`` output rows (resume): the rest is exactly
        the tail of the stream without skipping.  Skipped rows are still read
        and pass through the buffer, but are not gathered.

    Yields
    ------
    Chunk
        At most ``out_rows`` rows each.  After a skip, the first chunk holds
        the rest of the chunk the skip ended in; later ones line up with the
        chunks of the unskipped stream.
    """
    buffer_rows, out_rows, skip_rows = int(buffer_rows), int(out_rows), int(skip_rows)
    if out_rows < 1 or buffer_rows < 0 or skip_rows < 0:
        raise ValueError(
            f"need out_rows >= 1, buffer_rows >= 0, skip_rows >= 0; got {out_rows}, {buffer_rows}, {skip_rows}"
        )
    total, emit = _round_sizes(buffer_rows, out_rows)
    rng = _rng(seed, _ROWS_STREAM) if buffer_rows else None
    emitted = 0  # output rows so far, skipped ones included

    def output(parts: list[Chunk], order: np.ndarray, lo: int, hi: int) -> Iterator[Chunk]:
        """Emit positions lo:hi of the rows held in ``parts`` permuted by ``order``, honouring skip_rows."""
        nonlocal emitted
        for a in range(lo, hi, out_rows):
            b = min(a + out_rows, hi)
            start = a + max(0, min(b - a, skip_rows - emitted))  # first row not skipped
            emitted += b - a
            if start < b:
                yield Chunk.take_from(parts, order[start:b])

    stream = iter(chunks)
    held: list[Chunk] = []
    n_held = 0
    pending: Chunk | None = None  # rest of an input chunk that did not fit
    exhausted = False
    while not exhausted:
        while n_held < total:
            if pending is None:
                pending = next(stream, None)
                if pending is None:
                    exhausted = True
                    break
                if pending.n_rows == 0:
                    pending = None
                    continue
            need = total - n_held
            if pending.n_rows <= need:
                held.append(pending)
                n_held += pending.n_rows
                pending = None
            else:
                # views: they keep the reader chunk alive until both parts have left the
                # buffer (at most one reader chunk beyond its rows, as the bound above counts)
                held.append(pending.slice(0, need))
                pending = pending.slice(need, pending.n_rows)
                n_held = total
        if n_held == 0:
            break
        parts, held = held, []
        order = rng.permutation(n_held) if rng is not None else np.arange(n_held)
        n_out = emit if not exhausted else n_held
        yield from output(parts, order, 0, n_out)
        if n_out < n_held:
            held = [Chunk.take_from(parts, order[n_out:])]
        n_held -= n_out
        del parts


def shuffled_epoch(
    source,
    *,
    epoch: int,
    seed: int,
    buffer_rows: int,
    out_rows: int,
    shuffle_files: bool = True,
    skip_rows: int = 0,
    chunk_rows: int | None = None,
    holdout=None,
) -> Iterator[Chunk]:
    """One epoch of ``source``: shards in this epoch's order, rows shuffled.

    Parameters
    ----------
    source : DataSource
        Anything with ``files`` and ``iter_file(path, chunk_rows=None)``.
    epoch, seed : int
        The stream is a deterministic function of (seed, epoch) and the data.
    buffer_rows, out_rows : int
        See :func:`shuffled_chunks`.
    shuffle_files : bool, default True
        Permute the shards per epoch (else read them in ``source.files`` order).
    skip_rows : int, default 0
        Resume: drop the first ``skip_rows`` rows of this epoch's stream.
    chunk_rows : int or None
        Passed to the reader; the output does not depend on it.
    holdout : HoldOut or None
        Rows held out for validation (``preprocess/holdout.py``): dropped as
        each file is read, before the shuffle buffer, so the stream (and
        ``skip_rows``) counts training rows only.

    Yields
    ------
    Chunk
    """
    files = list(source.files)
    index = {path: i for i, path in enumerate(files)}  # a file's place in the sorted list
    if shuffle_files:
        files = epoch_file_order(files, epoch, seed)

    def rows_in_order() -> Iterator[Chunk]:
        # iter_file per shard: the order chosen here is the order read.
        for path in files:
            if holdout is None:
                yield from source.iter_file(path, chunk_rows=chunk_rows)
            else:
                yield from holdout.file_chunks(source, path, index[path], chunk_rows=chunk_rows)

    return shuffled_chunks(
        rows_in_order(), buffer_rows=buffer_rows, out_rows=out_rows, seed=(seed, epoch), skip_rows=skip_rows
    )
