"""Hyper-parameters: one declared table, validated once, with the defaults.

The defaults are for data nobody has looked at yet: AdaGrad steps bounded
per row so that no step overshoots (kernels/llfm.py), L2 as a prior whose
strength does not depend on how often a feature occurs, distances measured
in units of the coding scale (coding/anchors.py). None of them was tuned on
a benchmark's test set (docs/sparse.md and docs/defaults.md measure them).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from ..coding.space import coding_kind
from ..errors import InputError
from .capacity import AUTO

METHODS = ("fm", "llfm-do", "llfm-apl", "llfm-jo")
MULTICLASS_LOSSES = ("softmax", "ovr")
OPTIMIZERS = ("adagrad", "normalized", "sgd")
# eta0 when none is given, per optimiser: AdaGrad's per-parameter step; the
# normalised step's largest change of f per row, in units of |dloss/df|; and
# plain SGD's step (libFM's usual value)
DEFAULT_ETA0 = {"adagrad": 0.1, "normalized": 0.5, "sgd": 0.01}

# the anchor step when none is given, per coding space (coding/space.py): the features themselves
# (up to 1,000), or the count sketch of wider data. On the real dense sets the larger step lets the
# anchors settle where the local FMs need them within the run (docs/dense.md, "The defaults
# against ... anchor step 0.05": Banana, LETTER, Magic04 gain 0.1 to 0.5 points), at a cost on the
# generated two-variances set (1 point), whose best anchors barely move. Sketched rows of sparse
# one-hot data (users, items, hashed fields) have little locality: there faster anchors only
# concentrate each row's coding on fewer local FMs, which then overfit sooner (movielens rating
# RMSE 0.8392 at 0.3 against 0.8345, the anchors moving in every epoch).
DEFAULT_ETA_ANCHOR = {"identity": 0.3, "count_sketch": 0.05}

# the epochs in which the anchors move when none is given, per coding space (0: every epoch). In the
# features' own space the anchors keep settling for the whole run (LETTER's held-out loss falls to
# the 20th epoch). In a count sketch of one-hot rows one pass places them; later moves only
# concentrate each row's coding on fewer local FMs, which then overfit (movielens-small rating,
# mean k 32 falling to 20 over 9 epochs, RMSE 0.8345 against fm's 0.8342; anchors still after the
# first epoch: k stays 32, RMSE 0.8317). One pass over the data is the same either way.
DEFAULT_ANCHOR_EPOCHS = {"identity": 0, "count_sketch": 1}


#: each hyper-parameter's type and meaning, the one text the estimators' docstrings are made from
DOCS = {
    "method": ('{"llfm-jo", "llfm-apl", "llfm-do", "fm"}',
               "The model: LLFM whose rows are coded by Algorithm 1 (adaptive, the anchors learned; jo), "
               "by soft assignment with the anchors learned (apl) or fixed (do), or one FM."),
    "rank": ("int", "r, the rank of the FM factors (the paper's k)."),
    "anchors": ('int or "auto"', "m, the anchor points of an LLFM; \"auto\": chosen from the training rows and "
                                 "features and the memory budget (models/capacity.py; docs/dense.md)."),
    "n_neighbors": ("int", "k, the neighbours of the soft-assignment coding (llfm-do, llfm-apl)."),
    "beta": ("float", "Soft assignment: weights exp(-beta d), d the distance in units of the coding scale."),
    "rho": ("float", "Algorithm 1's Lipschitz-to-noise ratio (llfm-jo), in the same units."),
    "n_candidates": ("int", "K, the anchors the FAISS search returns per row."),
    "rebuild_every": ("int", "Rows between rebuilds of the anchor index (llfm-apl, llfm-jo)."),
    "optimizer": ('{"adagrad", "normalized", "sgd"}',
                  "The FM steps: AdaGrad's per-parameter steps, bounded per row; steps divided by the "
                  "squared gradient norm; or plain SGD (the last two decay with t0)."),
    "eta0": ("float or None", "The FM step size; None: 0.1 (adagrad), 0.5 (normalized), 0.01 (sgd)."),
    "t0": ("float", "The decay eta0 * t0 / (t0 + t) of the normalized and sgd steps and of the anchor "
                    "steps; 0: one epoch's rows."),
    "eta_anchor": ("float or None", "The anchor step, relative to the coding scale; None: 0.3 on up to 1,000 "
                                    "features (the anchors live in the features' space), 0.05 on wider data "
                                    "(they live in a count sketch of the rows)."),
    "anchor_epochs": ("int or None", "The epochs (of t0 rows each: one epoch's rows by default) in which the "
                                     "anchors move, then they stay; 0: every epoch; None: every epoch on up to "
                                     "1,000 features, the first only on wider data (a count sketch of the rows)."),
    "anchor_clip": ("float", "The largest relative move of an anchor in one step."),
    "l2_w": ("float", "L2 on the linear weights: the penalty l2_w/2 ||w||^2 over the whole data (a Gaussian "
                      "prior of that precision), applied to the features each row touches."),
    "l2_v": ("float", "L2 on the factors, as l2_w."),
    "l2_local": ("float", "With a global FM, the anchors' FMs' L2 as a multiple of l2_w and l2_v: they are "
                          "shrunk harder than the global FM, so that the mixture falls back to it where the "
                          "local data say little."),
    "init_std": ("float", "The standard deviation of the initial factors (smaller for rows of large norm)."),
    "global_fm": ("bool", "A global FM beside an LLFM's local mixture; False: the paper's model, the "
                          "mixture alone."),
    "multiclass": ('{"softmax", "ovr"}', "The multiclass loss: softmax, or one-vs-rest as the paper's "
                                         "authors ran it."),
    "jo_exact": ("bool", "llfm-jo's exact anchor gradient; False: the paper's approximation (drops the "
                         "lambda term)."),
    "seed": ("int", "The seed of every random choice."),
}


@dataclass
class Config:
    method: str = "llfm-jo"
    rank: int = 10  # r, the FM factor rank (the paper's k)
    anchors: int | str = "auto"  # m; "auto": models/capacity.py picks it when the model is made
    n_neighbors: int = 5  # k of the soft-assignment coding (do, apl)
    beta: float = 1.0  # soft assignment: exp(-beta d / coding_scale)
    rho: float = 0.3  # adaptive coding: b = rho d / coding_scale (Lipschitz-to-noise ratio)
    n_candidates: int = 32  # K, anchors the FAISS search returns per row
    rebuild_every: int = 8192  # rows between index rebuilds (apl, jo)
    optimizer: str = "adagrad"  # FM steps: "adagrad", "normalized" or "sgd" (kernels/llfm.py)
    eta0: float | None = None  # FM step; None = DEFAULT_ETA0[optimizer]
    t0: float = 0.0  # decay eta_t = eta0 * t0 / (t0 + t) (sgd, normalized, anchors); 0 = one epoch's rows
    eta_anchor: float | None = None  # anchor step, relative to the coding scale; None = DEFAULT_ETA_ANCHOR
    anchor_epochs: int | None = None  # anchors move for anchor_epochs * t0 rows; 0 = always; None = by coding space
    anchor_clip: float = 0.1  # largest relative anchor move in one step
    # L2 as a prior: the penalty (l2_w ||w||^2 + l2_v ||V||^2) / 2 over the whole data
    l2_w: float = 1.0
    l2_v: float = 10.0
    # the anchors' FMs' L2, a multiple of l2_w and l2_v (with the global FM); 1, since 5 cost LETTER's
    # llfm-jo 0.06 in test log loss for 0.001 of movielens-small rating RMSE (docs/design-notes.md)
    l2_local: float = 1.0
    init_std: float = 0.1  # V ~ N(0, init_std^2)
    global_fm: bool = True  # llfm-*: f = global FM + local mixture (False: the paper's mixture alone)
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
        if self.optimizer not in OPTIMIZERS:
            bad(f"optimizer={self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        def number(v) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if self.eta0 is not None and not (number(self.eta0) and self.eta0 > 0):
            bad(f"eta0={self.eta0!r} must be a positive finite number")
        for name in ("rank", "anchors", "n_neighbors", "n_candidates", "rebuild_every"):
            v = getattr(self, name)
            if name == "anchors" and v == AUTO:
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(f"{name}={v!r} must be a positive integer" + (' or "auto"' if name == "anchors" else ""))
        for name in ("beta", "rho", "eta_anchor", "anchor_clip", "init_std"):
            v = getattr(self, name)
            if name == "eta_anchor" and v is None:
                continue
            if not (number(v) and v > 0):
                bad(f"{name}={v!r} must be a positive finite number")
        v = self.anchor_epochs
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            bad(f"anchor_epochs={v!r} must be an integer >= 0 (0: the anchors move in every epoch)")
        for name in ("t0", "l2_w", "l2_v", "l2_local"):
            v = getattr(self, name)
            if not (number(v) and v >= 0):
                bad(f"{name}={v!r} must be a finite number >= 0")
        if not isinstance(self.global_fm, bool) or not isinstance(self.jo_exact, bool):
            bad(f"global_fm={self.global_fm!r} and jo_exact={self.jo_exact!r} must be True or False")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**32:
            bad(f"seed={self.seed!r} must be an integer from 0 to 2**32 - 1")
        return self

    @property
    def step(self) -> float:
        """The FM step eta0 in effect."""
        return float(DEFAULT_ETA0[self.optimizer] if self.eta0 is None else self.eta0)

    def for_features(self, n_features: int) -> "Config":
        """This config with what depends on the data's width resolved: ``eta_anchor`` and
        ``anchor_epochs`` None take their coding space's default (``DEFAULT_ETA_ANCHOR``,
        ``DEFAULT_ANCHOR_EPOCHS``). What a model of ``n_features`` features holds, and its manifest records."""
        kind = coding_kind(n_features)
        return replace(self, eta_anchor=DEFAULT_ETA_ANCHOR[kind] if self.eta_anchor is None else self.eta_anchor,
                       anchor_epochs=DEFAULT_ANCHOR_EPOCHS[kind] if self.anchor_epochs is None else self.anchor_epochs)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        names = {f.name for f in fields(cls)}
        d = dict(d)
        if "optimizer" not in d and ("normalize" in d or "adagrad" in d):
            # a manifest written before the optimiser was one field
            d["optimizer"] = ("adagrad" if d.get("adagrad") else
                              "normalized" if d.get("normalize", True) else "sgd")
        # a manifest written before the global FM: its arrays hold the anchors' FMs only
        d.setdefault("global_fm", False)
        # a manifest written before anchor_epochs: its anchors moved in every epoch
        d.setdefault("anchor_epochs", 0)
        return cls(**{k: v for k, v in d.items() if k in names})
