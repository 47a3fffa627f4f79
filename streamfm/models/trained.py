"""A trained model as the store keeps it: the core model, its standardiser and its labels.

This is what ``streamfm.load(DIR)`` returns and what ``predict`` and
``evaluate`` use: raw rows in, standardised with the training statistics,
scores and labels out.
"""
from __future__ import annotations

import numpy as np

from ..io.chunk import Chunk
from ..preprocess.labels import encode_labels
from ..preprocess.standardize import Standardizer
from .core import LLFMModel


def _json_labels(classes) -> list | None:
    return None if classes is None else np.asarray(classes).tolist()


def labels_as_written(classes) -> list:
    """The class labels as a data file writes them: a numeric label read as 1.0 is 1 (so prediction
    columns are ``proba_1``, not ``proba_1.0``); text and fractional labels unchanged."""
    values = np.asarray(classes).tolist()
    if all(isinstance(v, float) and v.is_integer() for v in values):
        return [int(v) for v in values]
    return values


class TrainedModel:
    """``model`` (LLFMModel) + ``standardizer`` + ``classes`` (None for regression)."""

    def __init__(self, model: LLFMModel, standardizer: Standardizer, classes=None):
        self.model = model
        self.standardizer = standardizer
        self.classes = None if classes is None else np.asarray(classes)

    @property
    def task(self) -> str:
        return self.model.task

    # ------------------------------------------------------------ labels
    def targets(self, y_raw, *, unknown: str = "error"):
        """Raw labels to kernel targets (0/1, class codes or values)."""
        return encode_labels(y_raw, self.classes, self.task, unknown=unknown)

    # --------------------------------------------------------- prediction
    def decision_chunk(self, chunk: Chunk) -> np.ndarray:
        return self.model.decision_chunk(self.standardizer.transform(chunk))

    def decision_function(self, X) -> np.ndarray:
        """Raw outputs for an array or scipy sparse matrix of raw (unstandardised) rows."""
        import scipy.sparse as sp

        chunk = Chunk.from_scipy(sp.csr_matrix(X), np.zeros(X.shape[0])) if sp.issparse(X) else \
            Chunk.from_dense(np.asarray(X, dtype=np.float64), np.zeros(len(X)))
        f = self.decision_chunk(chunk)
        return f[:, 0] if f.shape[1] == 1 else f

    def predict_proba(self, X) -> np.ndarray:
        f = self.decision_function(X)
        return self.model.proba_from_scores(f[:, None] if f.ndim == 1 else f)

    def predict(self, X) -> np.ndarray:
        if self.task == "regression":
            return self.decision_function(X)
        return self.classes[self.predict_proba(X).argmax(1)]

    # -------------------------------------------------------------- state
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta, arrays = self.model.state()
        meta["classes"] = _json_labels(self.classes)
        std = self.standardizer
        meta["standardizer"] = std.meta()
        arrays = dict(arrays, std_shift=std.shift, std_scale=std.scale, std_centred=std.centred)
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict, *, ignore_extra: bool = False) -> "TrainedModel":
        model = LLFMModel.from_state(meta, arrays)
        classes = meta.get("classes")
        return cls(model, standardizer_from_state(meta["standardizer"], arrays, ignore_extra=ignore_extra),
                   None if classes is None else np.asarray(classes))


def scale_mode(meta: dict) -> str:
    """The ``--scale`` mode a model's manifest records (``standard`` for models saved before there were modes)."""
    return meta["standardizer"].get("scale", "standard")


def standardizer_from_state(meta: dict, arrays: dict, *, ignore_extra: bool = False) -> Standardizer:
    """The stored map: ``std_shift``, ``std_scale``, ``std_centred``; or, as saved before ``--scale``,
    the training mean and variance and a centring flag (the ``standard`` map they define)."""
    if "std_shift" in arrays:
        counts = {k: meta[k] for k in ("kept", "standardised", "maxabs", "centred")}
        return Standardizer(np.asarray(arrays["std_shift"]), np.asarray(arrays["std_scale"]),
                            np.asarray(arrays["std_centred"]), mode=meta["scale"], counts=counts,
                            ignore_extra=ignore_extra)
    return Standardizer.from_moments(np.asarray(arrays["std_mean"]), np.asarray(arrays["std_var"]),
                                     meta["center"], ignore_extra=ignore_extra)
