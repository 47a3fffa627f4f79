"""Rounds in this process: :class:`LocalRounds`, the local engine.

One model, one stream: every epoch reads the data's files in the epoch's
seeded order through a bounded shuffle buffer (``preprocess/shuffle.py``),
dropping the rows held out for validation, and standardises the rows; that
runs up to one shuffle round ahead in a background thread
(``runtime/prefetch.py``) while the ``nogil`` kernel trains, in the same
order, so the results do not depend on it. A round is ``train_for_rows``
until the loop's ``until`` says stop (a checkpoint, a stop) or the epoch's
stream ends; a merge of one state is that state.
"""
from __future__ import annotations

from ..io.options import ReadOptions
from ..io.sources import open_source
from ..preprocess.holdout import HoldOut
from ..preprocess.shuffle import shuffled_epoch
from ..runtime.prefetch import Prefetch
from .options import buffer_rows, local_engine, prefetch_depth, reader_rows
from .rounds import RoundResult, RowStream, train_for_rows
from .runner import RoundRunner


class LocalRounds(RoundRunner):
    """The local engine (see the module notes)."""

    name = "local"

    def __init__(self):
        self.loop = None
        self.source = None
        self._ahead: Prefetch | None = None
        self.stream: RowStream | None = None
        self._wait = 0.0

    def record(self) -> dict:
        return local_engine()

    def open(self, loop) -> None:
        self.loop = loop
        run = loop.run
        # read as the model reads its data (a continued model's new files: columns by name, kinds)
        self.source = open_source(run.data["files"], ReadOptions.from_dict(run.data["options"]),
                                  contract=loop.trained.input)
        self.holdout = HoldOut.from_dict(run.holdout) if run.holdout else None
        self.buffer_rows = buffer_rows(loop.opts, run, loop.trained)

    def start_epoch(self, epoch: int, position: int) -> None:
        self._stop_reading()
        opts, trained = self.loop.opts, self.loop.trained
        raw = shuffled_epoch(self.source, epoch=epoch, seed=trained.model.config.seed,
                             buffer_rows=self.buffer_rows, out_rows=opts.batch_rows,
                             shuffle_files=opts.shuffle, skip_rows=position,
                             chunk_rows=reader_rows(trained.model.p), holdout=self.holdout)
        self._ahead = Prefetch(map(trained.standardizer.transform, raw), prefetch_depth(opts, self.buffer_rows))
        self.stream = RowStream(self._ahead.__enter__())
        self._wait = 0.0

    def train_round(self, until, on_rows) -> RoundResult:
        opts = self.loop.opts
        result = train_for_rows(self.loop.trained, self.stream, ignore_unknown_labels=opts.ignore_unknown_labels,
                                until=lambda done: until(done.rows), on_chunk=on_rows, threads=opts.threads,
                                standardized=True)
        self._wait += result.wait_seconds
        return result

    def end_epoch(self) -> dict:
        self._stop_reading()
        # of the epoch's seconds, how long training waited for its input (reading to standardising)
        fields = {"input_wait_seconds": round(self._wait, 3)}
        if self.source.bad_rows:
            fields["bad_rows_skipped"] = self.source.bad_rows
        return fields

    def close(self) -> None:
        self._stop_reading()

    def _stop_reading(self) -> None:
        if self._ahead is not None:
            self._ahead.__exit__(None, None, None)
            self._ahead, self.stream = None, None
