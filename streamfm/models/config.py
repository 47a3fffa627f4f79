"""Hyper-parameters: one declared table, validated once, with the defaults.

The defaults are for data nobody has looked at yet: steps are normalised
(see kernels/llfm.py), distances are measured in units of the coding scale
(coding/anchors.py), and the learning-rate decay is counted in epochs when
the epoch length is known. None of them was tuned on a benchmark's test set.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import InputError

METHODS = ("fm", "llfm-do", "llfm-apl", "llfm-jo")
MULTICLASS_LOSSES = ("softmax", "ovr")


@dataclass
class Config:
    method: str = "llfm-jo"
    rank: int = 10  # r, the FM factor rank (the paper's k)
    anchors: int = 50  # m
    n_neighbors: int = 5  # k of the soft-assignment coding (do, apl)
    beta: float = 1.0  # soft assignment: exp(-beta d / coding_scale)
    rho: float = 0.3  # adaptive coding: b = rho d / coding_scale (Lipschitz-to-noise ratio)
    n_candidates: int = 32  # K, anchors the FAISS search returns per row
    rebuild_every: int = 8192  # rows between index rebuilds (apl, jo)
    eta0: float = 0.5  # FM step (normalised: at most eta0 * |dloss/df| change in f per row)
    t0: float = 0.0  # decay eta_t = eta0 * t0 / (t0 + t); 0 = one epoch's rows (or 10,000)
    eta_anchor: float = 0.05  # anchor step, relative to the coding scale
    anchor_clip: float = 0.1  # largest relative anchor move in one step
    l2_w: float = 1e-5
    l2_v: float = 1e-5
    init_std: float = 0.1  # V ~ N(0, init_std^2)
    normalize: bool = True
    adagrad: bool = False
    multiclass: str = "softmax"  # or "ovr", as the paper's authors ran it
    jo_exact: bool = True  # False: the paper's anchor gradient (drops the lambda term)
    seed: int = 0

    def validate(self) -> "Config":
        def bad(msg):
            raise InputError(f"invalid hyper-parameter: {msg}")

        if self.method not in METHODS:
            bad(f"method={self.method!r}; choose one of {', '.join(METHODS)}")
        if self.multiclass not in MULTICLASS_LOSSES:
            bad(f"multiclass={self.multiclass!r}; choose softmax or ovr")
        for name in ("rank", "anchors", "n_neighbors", "n_candidates", "rebuild_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(f"{name}={v!r} must be a positive integer")
        for name in ("beta", "rho", "eta0", "eta_anchor", "anchor_clip", "init_std"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0):
                bad(f"{name}={v!r} must be a positive number")
        for name in ("t0", "l2_w", "l2_v"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v >= 0):
                bad(f"{name}={v!r} must be >= 0")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
