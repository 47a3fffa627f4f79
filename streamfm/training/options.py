"""How a run trains (``TrainOptions``), where it stands (``RunState``), and the sizes derived from them.

``RunState`` is the manifest's ``"training"`` entry: with the model's
checkpoint it is the whole state of a run, so ``--resume`` continues exactly.
Its ``engine`` entry belongs to the engine that runs the rounds:
``{"name": "local" | "ray", "options": {...}, "state": {...}}`` (the Ray
engine keeps its ``RayOptions`` and the rows each worker trained on in the
epoch there). ``RunState.from_dict`` also reads manifests that kept the Ray
fields in ``options`` and ``worker_positions`` beside the run.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from ..errors import InputError
from ..preprocess.shuffle import read_ahead_chunks
from ..preprocess.standardize import SCALE_MODES

#: entries (rows x stored values) a reader chunk and the shuffle buffer may hold
READ_ENTRIES = 4_000_000
BUFFER_ENTRIES = 8_000_000
#: the held-out rows' spool in the model directory
SPOOL = "holdout.parquet"


@dataclass
class TrainOptions:
    """How to run (not what to learn: that is ``Config``; nor on what: that is the engine)."""

    # at most; early stopping (below) ends most runs sooner: the held-out metric stops improving
    epochs: int = 20
    batch_rows: int = 4096  # rows handed to the kernel at a time
    shuffle_buffer: int = 0  # rows; 0 = as many as BUFFER_ENTRIES allows (at most 100,000)
    shuffle: bool = True
    sample_size: int = 10_000  # reservoir sample for k-means
    checkpoint_rows: int = 0  # 0 = only by time and at epoch ends
    checkpoint_seconds: float = 600.0
    max_rows: int = 0  # stop (resumably) after this many rows in this invocation; 0 = no limit
    task: str | None = None
    # per-feature scaling (preprocess/standardize.py): auto | standard | maxabs | none;
    # None = not given: auto for a new model, the stored map for an existing one
    scale: str | None = None
    ignore_extra_features: bool = False
    ignore_unknown_labels: bool = False
    quiet: bool = False  # no messages and no epoch lines
    # progress bars on standard error: True / False, or None = when it is a terminal and not quiet
    progress: bool | None = None
    # chunks read ahead in a background thread; 0 = none (same results either
    # way); None = one shuffle round's output (see prefetch_depth)
    prefetch: int | None = None
    threads: int = 1  # > 1: Hogwild training threads (faster, not reproducible bit for bit)
    # stop after this many epochs without a lower validation metric, and keep the best epoch; 0 = off
    early_stop: int = 5
    # without --valid, on more than AUTO_MIN_ROWS rows: the share of training rows held out to validate
    validation_fraction: float = 0.1
    # the parameter store (models/memory.py): bits forces the hashed store with 2^bits slots; the budget
    # (bytes; None: a share of the available memory) picks the exact store or the largest table that fits
    bits: int | None = None
    memory_budget: int | None = None

    def validate(self) -> "TrainOptions":
        for name in ("epochs", "batch_rows", "sample_size", "threads"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("shuffle_buffer", "checkpoint_rows", "max_rows", "early_stop"):
            if int(getattr(self, name)) < 0:
                raise InputError(f"--{name.replace('_', '-')} must be >= 0")
        seconds = self.checkpoint_seconds
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
            # 0 or less would checkpoint before every round and train nothing
            raise InputError(f"--checkpoint-seconds must be a positive number of seconds, got {seconds}")
        if self.scale is not None and self.scale not in SCALE_MODES:
            raise InputError(f"--scale must be one of {', '.join(SCALE_MODES)}, got {self.scale!r}")
        if not 0.0 < float(self.validation_fraction) < 1.0:
            raise InputError(f"--validation-fraction must be between 0 and 1 (exclusive), got {self.validation_fraction}")
        return self


def local_engine() -> dict:
    """The ``RunState.engine`` entry of a run in this process."""
    return {"name": "local", "options": {}, "state": {}}


#: fields that manifests written before engines kept their own entry hold in ``options``: the
#: engine's name, the Ray engine's options, and a field that was never read
_ENGINE_OPTIONS_BEFORE = ("workers", "sync_rows", "address", "worker_retries", "scale_steps")
_UNUSED_BEFORE = ("classes",)


@dataclass
class RunState:
    """Where a run stands; stored in the manifest under "training"."""

    data: dict  # {"files": [...], "options": {open_source kwargs}}
    valid: dict | None
    options: dict  # TrainOptions
    epochs: int
    epoch: int = 0  # the epoch in progress (0-based)
    position: int = 0  # rows of this epoch's stream already trained on
    epoch_loss_sum: float = 0.0
    epoch_weight_sum: float = 0.0  # the sample weights of those rows, summed (their number when unweighted)
    status: str = "running"  # running | interrupted | complete
    rows_per_epoch: int = 0
    mean_row_entries: float = 0.0  # stored values per row after standardising (sizes the buffer)
    history: list = field(default_factory=list)
    # the engine that runs the rounds: {"name", "options", "state"} (see the module notes)
    engine: dict = field(default_factory=local_engine)
    # rows held out of the training data to validate on: {"fraction", "seed", "rows", "spool"}
    holdout: dict | None = None
    early_stopping: dict | None = None  # EarlyStopping.state(); None: off
    # the best epoch so far: {"epoch", "metric", "value"} and, while the run goes on, "model" (the
    # model meta of its checkpoint, which the manifest keeps as "best"), committed when the run ends
    best: dict | None = None
    kept_epoch: int | None = None  # when complete: the epoch whose model the directory holds
    stop_reason: str | None = None  # when complete: why the run ended, in words

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunState":
        """The run a manifest's ``"training"`` entry holds, in either layout (see the module notes)."""
        d = dict(d)
        options = dict(d["options"])
        positions = d.pop("worker_positions", None)
        if "engine" not in d:
            name = options.pop("engine", "local")
            engine_options = {k: options.pop(k) for k in _ENGINE_OPTIONS_BEFORE if k in options}
            engine = local_engine()
            if name != "local":
                engine = {"name": name, "options": engine_options,
                          "state": {"worker_positions": positions} if positions else {}}
            d["engine"] = engine
        for k in _UNUSED_BEFORE:
            options.pop(k, None)
        d["options"] = options
        d.setdefault("epoch_weight_sum", float(d.get("position", 0)))  # written unweighted, before the field
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def train_options(self) -> TrainOptions:
        return TrainOptions(**self.options)


def reader_rows(p: int) -> int:
    """Rows per chunk the readers make for rows of ``p`` features (about READ_ENTRIES values)."""
    return int(max(1024, min(65536, READ_ENTRIES // max(int(p), 1))))


def buffer_rows(opts: TrainOptions, run: RunState, trained) -> int:
    """Rows the shuffle buffer holds: ``--shuffle-buffer``, or about BUFFER_ENTRIES stored values
    (every feature of a row when the scaling centres them), at most 100,000 rows; 0 unshuffled."""
    if not opts.shuffle:
        return 0
    if opts.shuffle_buffer:
        return opts.shuffle_buffer
    entries = trained.model.p if trained.standardizer.center else run.mean_row_entries
    return int(max(opts.batch_rows, min(100_000, BUFFER_ENTRIES // max(entries, 1.0))))


def prefetch_depth(opts: TrainOptions, buffer: int) -> int:
    """Chunks the read-ahead thread may hold: ``--prefetch``, by default one shuffle round's output."""
    if opts.prefetch is not None:
        return int(opts.prefetch)
    return read_ahead_chunks(buffer, opts.batch_rows)
