"""A trained model as the store keeps it: the core model, its standardiser and its labels.

This is what ``streamfm.load(DIR)`` returns and what ``predict`` and
``evaluate`` use: raw rows in, standardised with the training statistics,
scores and labels out.  A model trained from files also keeps its input
contract (``io/contract.py``: how its training data mapped onto its
features), stored as the manifest's ``model.input``; every later read of
data for it opens the files with it.
"""
from __future__ import annotations

import numpy as np

from ..coding.space import MAX_CODING_VALUE
from ..errors import RowError
from ..io.chunk import Chunk
from ..io.contract import InputContract
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
    """``model`` (LLFMModel) + ``standardizer`` + ``classes`` (None for regression) + ``input``
    (the InputContract of a model trained from files; None for one trained in memory)."""

    def __init__(self, model: LLFMModel, standardizer: Standardizer, classes=None,
                 input: InputContract | None = None):
        self.model = model
        self.standardizer = standardizer
        self.classes = None if classes is None else np.asarray(classes)
        self.input = input

    @property
    def task(self) -> str:
        return self.model.task

    # ------------------------------------------------------------ labels
    def targets(self, y_raw, *, unknown: str = "error"):
        """Raw labels to kernel targets (0/1, class codes or values)."""
        return encode_labels(y_raw, self.classes, self.task, unknown=unknown)

    # --------------------------------------------------------- prediction
    def decision_chunk(self, chunk: Chunk) -> np.ndarray:
        """Raw outputs (n, C) of raw rows.

        Raises
        ------
        RowError
            A row the model cannot score: a feature index beyond it, a value
            so far outside the training data's range that the anchor search
            (float32) or the output overflows, or non-finite parameters.
        """
        rows = self.standardizer.transform(chunk)
        if self.model.config.method != "fm" and len(rows.data):  # the anchor search computes in float32
            big = np.abs(rows.data) > MAX_CODING_VALUE
            if big.any():
                e = int(np.flatnonzero(big)[0])
                row = int(np.searchsorted(rows.indptr, e, side="right")) - 1
                raise RowError(row, f"feature {int(rows.indices[e])} is {rows.data[e]:.3g} after scaling, far outside "
                                    "the training data's range: the anchor search cannot place this row")
        f = self.model.decision_chunk(rows)
        finite = np.isfinite(f).all(axis=1)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            raise RowError(row, "the model's output is not finite for this row: its values are far outside the "
                                "training data's range, or the model's parameters are damaged "
                                "(check with: streamfm info --verify MODEL_DIR)")
        return f

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
        if self.input is not None:
            meta["input"] = self.input.to_dict()
        arrays = dict(arrays, std_shift=std.shift, std_scale=std.scale, std_centred=std.centred)
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict, *, ignore_extra: bool = False) -> "TrainedModel":
        model = LLFMModel.from_state(meta, arrays)
        classes = meta.get("classes")
        contract = meta.get("input")
        return cls(model, standardizer_from_state(meta["standardizer"], arrays, ignore_extra=ignore_extra),
                   None if classes is None else np.asarray(classes),
                   None if contract is None else InputContract.from_dict(contract))


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
