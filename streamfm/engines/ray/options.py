"""How a run uses Ray: :class:`RayOptions` (the ``--workers``, ``--sync-rows``, ... of ``--engine ray``).

Stored in the model directory's manifest with the engine's state
(``training.engine = {"name": "ray", "options": {...}, "state": {...}}``), so
``--resume`` runs the same way. Importing this module does not import Ray.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

from ...errors import InputError

#: rows each worker trains between merges when --sync-rows is not given (docs/scaling.md)
DEFAULT_SYNC_ROWS = 65_536


@dataclass
class RayOptions:
    """The Ray engine's options.

    Attributes
    ----------
    workers : int
        Worker actors, each training its own copy of the model.
    sync_rows : int
        Rows each worker trains between two merges; 0: ``DEFAULT_SYNC_ROWS``.
    address : str or None
        An existing cluster to join (``HOST:PORT``, ``ray://HOST:PORT`` or
        ``auto``); None: start a local instance sized to this machine.
    worker_retries : int
        Times dead workers are replaced, from the last merged state, before
        the run stops resumably.
    scale_steps : bool
        Workers take steps ``workers`` times the model's (``eta0`` and
        ``eta_anchor``): an average of n workers' updates moves the model
        about as far as one worker's, so without it n workers make about 1/n
        of one worker's progress per row (docs/scaling.md). The model
        directory keeps the steps as given. Many workers make the scaled
        steps large: there, lower ``eta0``, or turn the scaling off and give
        the run more epochs.
    """

    name: ClassVar[str] = "ray"

    workers: int = 2
    sync_rows: int = 0
    address: str | None = None
    worker_retries: int = 2
    scale_steps: bool = True

    def validate(self) -> "RayOptions":
        if int(self.workers) < 1:
            raise InputError("--workers must be at least 1")
        for name in ("sync_rows", "worker_retries"):
            if int(getattr(self, name)) < 0:
                raise InputError(f"--{name.replace('_', '-')} must be >= 0")
        return self

    @property
    def round_rows(self) -> int:
        """Rows each worker trains in a round."""
        return int(self.sync_rows or DEFAULT_SYNC_ROWS)

    @property
    def step_scale(self) -> float:
        """The factor on the workers' step sizes (see ``scale_steps``)."""
        return float(self.workers) if self.scale_steps else 1.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RayOptions":
        return cls(**d)
