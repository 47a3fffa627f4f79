"""How a run validates: on ``--valid``, on training rows held out for it, or not at all (:class:`Validation`).

Early stopping (``--early-stop N``, ``training/early_stopping.py``) validates
on ``--valid``, or else, on more than 10,000 rows, on a seeded fraction of
the training rows held out by position (``preprocess/holdout.py``): the scan
pass spools them into the model directory (``holdout.parquet``) and leaves
them out of the statistics, every epoch's stream drops them before
shuffling, and each epoch is validated on the spool. Only an engine whose
stream can drop rows holds any out (the local one: Ray Data's read tasks
read the shards themselves).
"""
from __future__ import annotations

import pathlib

from ..io.spool import ParquetSpool
from ..preprocess.holdout import HoldOut
from ..preprocess.scan import AllRowsHeldOut, scan
from ..store.modeldir import ModelDir
from .early_stopping import AUTO_MIN_ROWS, EarlyStopping, metric_for
from .options import SPOOL, TrainOptions


class Validation:
    """How a new run (or a continued model's) validates, set up before and during its scan pass.

    Held-out rows are spooled during the scan pass into a temporary file in
    the model directory (``ModelDir.temp_path``), installed as ``SPOOL`` under
    the lock before the run's first checkpoint. On 10,000 rows or fewer they
    are dropped (the spool writes nothing before it holds a row group, so
    usually nothing was written; else the file goes) and the data is scanned
    again without holding out: a second pass over at most 10,000 rows.

    ``engine``: the name of the run's engine; ``holds_out``: whether its
    stream can drop held-out rows.
    """

    def __init__(self, store: ModelDir, options: TrainOptions, valid_source, seed: int,
                 engine: str = "local", holds_out: bool = True):
        self.store, self.options = store, options
        self.valid = valid_source is not None
        self.holdout = None
        self.held_rows = 0
        self._tmp = None
        self._made_dir = False
        if options.early_stop == 0:
            self.note = "off (--early-stop 0)"
        elif self.valid:
            self.note = f"on --valid (stop after {options.early_stop} epochs without improvement)"
        elif not holds_out:
            self.note = f"off (--engine {engine} validates only on --valid)"
        else:
            self.holdout = HoldOut(options.validation_fraction, seed)
            self.note = None  # known after the scan

    def scan(self, source, **kwargs):
        """The scan pass; holds out rows (and spools them) when the run validates on held-out rows."""
        if self.holdout is None:
            return scan(source, **kwargs)
        self._made_dir = not self.store.path.exists()
        spool = ParquetSpool(lambda: self.store.temp_path(SPOOL), n_features_hint=source.n_features_hint)
        try:
            try:
                sc = scan(source, holdout=self.holdout, on_held=spool.write, **kwargs)
            except AllRowsHeldOut:  # a handful of rows
                sc = None
            held_out = sc is not None and sc.n_rows + sc.n_held > AUTO_MIN_ROWS and sc.n_held > 0
            if held_out:
                spool.close()
        except BaseException:
            spool.abort()
            raise
        finally:
            self._tmp = spool.path and pathlib.Path(spool.path)
        if held_out:
            self.held_rows = sc.n_held
            self.note = (f"on a held-out {self.holdout.fraction:.0%} of the training rows ({sc.n_held:,} rows; "
                         f"stop after {self.options.early_stop} epochs without improvement)")
            return sc
        spool.abort()
        self.close()
        self.holdout = None
        self.note = f"off ({AUTO_MIN_ROWS:,} rows or fewer and no --valid)"
        return scan(source, **dict(kwargs, progress=False))

    def run_fields(self, task: str) -> dict:
        """The RunState fields of this plan."""
        fields = {}
        if self.holdout is not None:
            fields["holdout"] = dict(self.holdout.to_dict(), rows=self.held_rows, spool=SPOOL)
        if self.options.early_stop > 0 and (self.valid or self.holdout is not None):
            fields["early_stopping"] = EarlyStopping(self.options.early_stop, metric_for(task)).state()
        return fields

    def install(self) -> None:
        """Under the lock, before the run's first checkpoint: the spool in place (or an earlier run's gone)."""
        if self.holdout is not None:
            self.store.install(self._tmp, SPOOL)
            self._tmp = None
        elif self.store.path.is_dir():
            self.store.discard(SPOOL)
        self._made_dir = False  # the directory is the run's now

    def close(self) -> None:
        """After a failure: remove the spool's temporary file, and the directory if this made it empty."""
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
        if self._made_dir:
            try:
                self.store.path.rmdir()
            except OSError:  # not empty: a run committed there
                pass
            self._made_dir = False
