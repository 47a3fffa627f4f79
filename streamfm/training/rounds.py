"""Rounds of training: the engine-free API that every engine drives.

A *round* trains one model on the next rows of one stream of chunks; a
*merge* turns the states of several workers that started a round from the
same state into one. The local engine (``training/local.py``) is this API with one worker (its
rounds end at checkpoints, stops and epoch ends, and a merge of one state is
that state); the Ray engine (``streamfm.engines.ray``) runs one round
per worker in parallel, merges, and broadcasts. Nothing here imports an
engine.

How states merge (:func:`merge_states`)
---------------------------------------
Workers ``k = 1..K`` start a round from the same state ``S0`` and train
``n_k`` rows each, ``N = sum n_k``.

- Parameters (biases ``b``, linear weights ``W``, factors ``V``, anchors
  ``Z``): the row-weighted average ``sum_k n_k P_k / N``, i.e. ``S0`` moved
  by the row-weighted average of the workers' updates (model averaging).
- The optimiser step ``t`` and the counters (rows, neighbours, misses) add
  up: ``t = t0 + sum_k (t_k - t0) = t0 + N``. The learning rate
  ``eta0 * t0' / (t0' + t)`` then continues as if one worker had trained the
  ``N`` rows, so K workers over an epoch decay the step exactly as one
  worker does.
- AdaGrad accumulators (sums of squared gradients) add up the same way,
  ``A0 + sum_k (A_k - A0)``: after the merge a parameter's step size is the
  one a single worker would have after seeing every worker's gradients.
- The training rows per feature (``feature_rows``, the weights of L2) are
  the data's, the same in every worker: passed on unchanged.
- The FAISS index snapshot (``index_Z``) and its IVF list centroids are
  dropped and the rebuild counter reset: the averaged anchors are new
  points, so each worker rebuilds its index from them (training new lists)
  before its next search. A merge of one state is that state
  unchanged (nothing moved: its index stays valid).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from ..io.chunk import Chunk
from ..models.core import ADAGRAD_NAMES, FEATURE_ROWS, PARAM_NAMES

#: model-state arrays averaged by rows, those added up as increments, and those every worker shares unchanged
AVERAGED = PARAM_NAMES
ADDITIVE = ADAGRAD_NAMES
SHARED = (FEATURE_ROWS,)


class RowStream:
    """Chunks of an iterator, handed out cut at exact row counts.

    ``next_chunk(limit)`` returns at most ``limit`` rows; the rest of a cut
    chunk is held and comes first next time, so rounds of exactly R rows
    take the same rows in the same order however the readers chunked them.

    Parameters
    ----------
    chunks : iterable of Chunk
        Consumed lazily.
    """

    def __init__(self, chunks: Iterable[Chunk]):
        self._it: Iterator[Chunk] = iter(chunks)
        self._held: Chunk | None = None
        self.exhausted = False

    def next_chunk(self, limit: int | None = None) -> Chunk | None:
        """The next non-empty chunk, at most ``limit`` rows; None when the stream has ended."""
        chunk, self._held = self._held, None
        while chunk is None or chunk.n_rows == 0:
            chunk = next(self._it, None)
            if chunk is None:
                self.exhausted = True
                return None
        if limit is not None and chunk.n_rows > limit:
            self._held = chunk.take(np.arange(limit, chunk.n_rows))
            chunk = chunk.take(np.arange(limit))
        return chunk

    def take(self, n: int) -> Iterator[Chunk]:
        """The next ``n`` rows (fewer if the stream ends), as chunks; the rest stays."""
        left = int(n)
        while left > 0:
            chunk = self.next_chunk(left)
            if chunk is None:
                return
            left -= chunk.n_rows
            yield chunk

    def unread(self, chunk: Chunk) -> None:
        """Put back the chunk just read: it comes first next time."""
        if self._held is not None:
            chunk = Chunk.concat([chunk, self._held])
        self._held = chunk


@dataclass
class RoundResult:
    """What one round did.

    Attributes
    ----------
    rows : int
        Rows taken from the stream (rows skipped for an unknown label included).
    loss_sum : float
        Sum of the trained rows' losses, each before its own step.
    unknown_labels : int
        Rows skipped because their class is not the model's.
    exhausted : bool
        The stream ended during this round.
    stopped : bool
        ``until`` ended the round before ``max_rows``.
    seconds : float
        Wall seconds of the round.
    wait_seconds : float
        Of those, the seconds spent waiting for the stream's next chunk:
        a large share means training is input-bound (reading, decoding,
        shuffling or standardising cannot keep up).
    """

    rows: int = 0
    loss_sum: float = 0.0
    unknown_labels: int = 0
    exhausted: bool = False
    stopped: bool = False
    seconds: float = 0.0
    wait_seconds: float = 0.0


def training_rows(trained, chunk: Chunk, ignore_unknown_labels: bool = False, standardized: bool = False):
    """(standardised chunk, kernel targets, rows skipped) for one raw chunk.

    With ``ignore_unknown_labels``, rows whose class the model has never seen
    are dropped (and counted) instead of raising. ``standardized``: the
    chunk's values are already standardised (the trainer does it in its
    read-ahead thread; standardising is per row, so where the stream was cut
    does not matter).
    """
    transform = (lambda c: c) if standardized else trained.standardizer.transform
    if not ignore_unknown_labels or trained.task == "regression":
        return transform(chunk), trained.targets(chunk.y), 0
    targets, known = trained.targets(chunk.y, unknown="ignore")
    skipped = int((~known).sum())
    if skipped:
        keep = np.flatnonzero(known)
        chunk, targets = chunk.take(keep), targets[keep]
    return transform(chunk), targets, skipped


def train_for_rows(
    trained,
    stream: RowStream,
    max_rows: int | None = None,
    *,
    ignore_unknown_labels: bool = False,
    until: Callable[[RoundResult], bool] | None = None,
    on_chunk: Callable[[int, np.ndarray], None] | None = None,
    threads: int = 1,
    standardized: bool = False,
) -> RoundResult:
    """Train ``trained`` (a TrainedModel, in place) on the next ``max_rows`` rows of ``stream``.

    Parameters
    ----------
    trained : TrainedModel
        Its core model is updated row by row; its standardiser and classes
        turn raw chunks into kernel inputs.
    stream : RowStream
        Raw (unstandardised) chunks.
    max_rows : int or None
        Rows this round takes (fewer if the stream ends); None: until the
        stream ends or ``until`` says stop.
    ignore_unknown_labels : bool, default False
        Skip (and count) rows of a class the model has never seen.
    until : callable or None
        Called with the result so far once the next chunk is in hand and
        before it is trained on; True ends the round there (the chunk goes
        back to the stream). A stream that ends is noticed first, so a stop
        requested at the last row still sees ``exhausted``.
    on_chunk : callable or None
        Called after each chunk with (rows taken, losses) -- progress bars.
    threads : int, default 1
        Hogwild threads of ``LLFMModel.partial_fit_chunk`` (1: deterministic).
    standardized : bool, default False
        The stream's chunks are already standardised by ``trained.standardizer``.

    Returns
    -------
    RoundResult
        The model's state after the round is ``trained.model.state()``; its
        counters are in ``trained.model.counters``.
    """
    result = RoundResult()
    model = trained.model
    t_round = time.perf_counter()
    while max_rows is None or result.rows < max_rows:
        t_wait = time.perf_counter()
        chunk = stream.next_chunk(None if max_rows is None else max_rows - result.rows)
        result.wait_seconds += time.perf_counter() - t_wait
        if chunk is None:
            result.exhausted = True
            break
        if until is not None and until(result):
            stream.unread(chunk)
            result.stopped = True
            break
        n_in = chunk.n_rows
        rows, targets, skipped = training_rows(trained, chunk, ignore_unknown_labels, standardized)
        losses = model.partial_fit_chunk(rows, targets, threads=threads)
        result.rows += n_in
        result.loss_sum += float(losses.sum())
        result.unknown_labels += skipped
        if on_chunk is not None:
            on_chunk(n_in, losses)
    result.seconds = time.perf_counter() - t_round
    return result


def merge_states(
    states: Sequence[tuple[dict, dict]],
    rows: Sequence[int],
    base: tuple[dict, dict] | None = None,
) -> tuple[dict, dict]:
    """One model state from the states of workers that trained ``rows`` rows each from ``base``.

    Parameters
    ----------
    states : sequence of (meta, arrays)
        ``LLFMModel.state()`` of each worker after its round.
    rows : sequence of int
        Rows each worker trained on in the round (the weights).
    base : (meta, arrays) or None
        The state every worker started the round from; additive quantities
        (optimiser step, counters, AdaGrad accumulators) combine as
        ``base + sum of increments``. None: they simply add up (states
        trained independently from zero).

    Returns
    -------
    (meta, arrays)
        Parameters ``b, W, V, Z``: the row-weighted average (equal weights if
        no worker trained a row). See the module notes for the rest.
    """
    if len(states) != len(rows) or not states:
        raise ValueError(f"need one row count per state, got {len(states)} states and {len(rows)} counts")
    if len(states) == 1:
        return states[0]
    n = np.asarray(rows, dtype=np.float64)
    if (n < 0).any():
        raise ValueError(f"row counts must be non-negative, got {list(rows)}")
    weights = n / n.sum() if n.sum() > 0 else np.full(len(n), 1.0 / len(n))
    metas = [m for m, _ in states]
    arrays = [a for _, a in states]
    merged_arrays = {}
    for name in AVERAGED:
        out = np.multiply(arrays[0][name], weights[0])
        for w, a in zip(weights[1:], arrays[1:]):
            out += w * np.asarray(a[name])
        merged_arrays[name] = out
    for name in ADDITIVE:
        if name in arrays[0]:
            merged_arrays[name] = _add_increments([a[name] for a in arrays], None if base is None else base[1][name])
    for name in SHARED:
        if name in arrays[0]:
            merged_arrays[name] = arrays[0][name]
    meta = dict(metas[0])
    t_base = None if base is None else base[0]["t"]
    meta["t"] = int(_add_increments([m["t"] for m in metas], t_base))
    c_base = None if base is None else base[0]["counters"]
    meta["counters"] = {k: int(_add_increments([m["counters"][k] for m in metas],
                                               None if c_base is None else c_base[k]))
                        for k in metas[0]["counters"]}
    meta["rows_since_rebuild"] = 0  # no index_Z: every worker rebuilds from the merged anchors
    meta["ivf_uses"] = 0  # nor IVF centroids: the rebuild trains new lists
    # an IVF widened by any worker's misses stays widened for all
    meta["search_nprobe"] = max(int(m.get("search_nprobe", 0)) for m in metas)
    return meta, merged_arrays


def _add_increments(values, base):
    """base + sum_k (v_k - base); the plain sum when base is None."""
    if base is None:
        out = np.array(values[0], dtype=np.result_type(values[0]), copy=True)
        for v in values[1:]:
            out = out + v
        return out
    base = np.asarray(base)
    out = np.array(base, copy=True)
    for v in values:
        out = out + (np.asarray(v) - base)
    return out
