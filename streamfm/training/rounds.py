"""Rounds of training: the engine-free API that every engine drives.

A *round* trains one model on the next rows of one stream of chunks; a
*merge* turns the states of several workers that started a round from the
same state into one. The local engine (``training/local.py``) is this API with one worker (its
rounds end at checkpoints, stops and epoch ends, and a merge of one state is
that state); the Ray engine (``streamfm.engines.ray``) runs one round
per worker in parallel, merges, and broadcasts. Nothing here imports an
engine.

How states merge: :func:`merge_states`, the manifest form of
``models.state.ModelState.merge`` (row-weighted average of the parameters;
the optimiser step, counters and AdaGrad accumulators add their increments,
so the step-size schedule continues as for one worker; the FAISS index
snapshot dropped, so every worker rebuilds from the merged anchors).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from ..errors import DivergenceError
from ..io.chunk import Chunk
from ..models.state import ModelState


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
        Sum of the trained rows' losses, each before its own step (times its
        sample weight).
    weight_sum : float
        Sum of the weights of the rows taken: their number when unweighted
        (rows skipped for an unknown label weigh 1); the mean training loss
        is ``loss_sum / weight_sum``.
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
    weight_sum: float = 0.0
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
        check_loss(trained.task, losses, targets)
        result.rows += n_in
        if rows.weights is None:
            result.loss_sum += float(losses.sum())
            result.weight_sum += n_in
        else:
            result.loss_sum += float(rows.weights @ losses)
            result.weight_sum += float(rows.weights.sum()) + skipped
        result.unknown_labels += skipped
        if on_chunk is not None:
            on_chunk(n_in, losses)
    result.seconds = time.perf_counter() - t_round
    return result


#: a chunk's mean loss beyond this many times its scale (1 for classification, where a loss of
#: 1e6 means outputs of magnitude 1e6; 1 + the mean squared target for regression) is divergence
EXPLODED_LOSS = 1e6


def check_loss(task: str, losses: np.ndarray, targets: np.ndarray) -> None:
    """Raise DivergenceError for a chunk whose losses exploded while staying finite (the model
    core catches non-finite ones): a step size far too large grows the parameters without bound."""
    if not len(losses):
        return
    scale = 1.0 if task != "regression" else 1.0 + float(np.mean(np.square(targets)))
    mean = float(np.mean(losses))
    if mean > EXPLODED_LOSS * scale:
        raise DivergenceError(f"training diverged (the mean loss of the last rows reached {mean:.3g}). Lower the "
                              "step size (--eta0) or use the default optimiser (--optimizer adagrad); the last "
                              "checkpoint is kept.")


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
        ``ModelState.merge`` of the states, in the same form (a merge of one
        state is that state). Meta entries other than the model's are those
        of the first state.
    """
    if len(states) == len(rows) == 1:
        return states[0]
    merged = ModelState.merge([ModelState.from_manifest(*s) for s in states], rows,
                              None if base is None else ModelState.from_manifest(*base))
    meta, arrays = merged.manifest()
    return dict(states[0][0], **meta), arrays
