"""A trained model out of its model directory, every field and array checked.

The store checks its own fields and the arrays' files (``manifest.py``,
``checkpoints.py``); this reads the manifest's ``model`` entry into a
:class:`~streamfm.models.trained.TrainedModel` and checks what the arrays
must agree on (every parameter shaped for the recorded width, outputs and
rank; the scaling as wide as the model), so that a damaged or hand-edited
manifest is one message naming the directory, never a traceback from the
kernels or FAISS.
"""
from __future__ import annotations

import pathlib

import numpy as np

from streamfm.errors import InputError
from streamfm.io.contract import InputContract
from streamfm.models.state import ADAGRAD_NAMES, FEATURE_ROWS
from streamfm.models.trained import TrainedModel
from streamfm.store.arrays import CHEAP_VERIFY_BYTES
from streamfm.store.manifest import MANIFEST, damaged

#: what reading a malformed entry can raise (a missing key, a value of the wrong type)
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def trained_from_manifest(path: pathlib.Path, manifest: dict, arrays: dict, *,
                          ignore_extra: bool = False) -> TrainedModel:
    """The model of a loaded checkpoint (``ModelDir.load``).

    Raises
    ------
    InputError
        The ``model`` entry is missing or malformed, or an array's shape
        disagrees with it ("model directory DIR is damaged: ...").
    """
    meta = manifest.get("model")
    if not isinstance(meta, dict):
        raise damaged(path, f"{MANIFEST} has no 'model' entry")
    try:
        trained = TrainedModel.from_state(meta, arrays, ignore_extra=ignore_extra)
    except InputError as exc:
        raise damaged(path, f"{MANIFEST}'s model entry: {exc}") from None
    except MALFORMED as exc:
        raise damaged(path, f"{MANIFEST}'s model entry cannot be read ({_what(exc)})") from None
    wrong = shape_problem(trained, arrays) or nonfinite_problem(arrays)
    if wrong is not None:
        raise damaged(path, wrong)
    return trained


def nonfinite_problem(arrays: dict, up_to: int = CHEAP_VERIFY_BYTES) -> str | None:
    """The first floating array (of at most ``up_to`` bytes: larger ones are memory-mapped and
    read only as used) holding a NaN or an infinity; training never commits one."""
    for name, arr in arrays.items():
        a = np.asarray(arr)
        if a.dtype.kind == "f" and a.nbytes <= up_to and not np.isfinite(a).all():
            return f"{name}.npy holds NaN or infinite values"
    return None


def stored_contract(store):
    """The input contract of the model in ``store`` (None: a model saved without one)."""
    meta = store.read_manifest().get("model")
    contract = meta.get("input") if isinstance(meta, dict) else None
    if contract is None:
        return None
    try:
        return InputContract.from_dict(contract)
    except MALFORMED as exc:
        raise damaged(store.path, f"{MANIFEST}'s model.input cannot be read ({_what(exc)})") from None


def shape_problem(trained: TrainedModel, arrays: dict) -> str | None:
    """What disagrees between the model's recorded sizes and its arrays (None: nothing)."""
    m = trained.model
    C, p, r, k = m.n_outputs, m.p, m.config.rank, m.n_fms
    expected = {"b": (k, C), "W": (k, p, C), "V": (k, p, C, r), "Z": (m.m, m.q), "index_Z": (m.m, m.q),
                FEATURE_ROWS: (p,)}
    if m.store.hashed:  # W and V are the table's rows: one per slot, not per (FM, feature)
        S = 1 << m.store.bits
        expected.update(W=(1, S, C), V=(1, S, C, r), tags=(S,))
    for name, like in zip(ADAGRAD_NAMES, ("b", "W", "V")):
        expected[name] = expected[like]
    for name, shape in expected.items():
        if name in arrays and np.shape(arrays[name]) != shape:
            return (f"{name}.npy has shape {tuple(np.shape(arrays[name]))}, but the manifest's model "
                    f"(n_features {p}, {C} output(s), rank {r}) needs {shape}")
    if trained.standardizer.n_features != p:
        return (f"the scaling covers {trained.standardizer.n_features} features, but the manifest's model has "
                f"n_features {p}")
    if trained.input is not None and trained.input.n_features != p:
        return f"the input contract has {trained.input.n_features} features, the model {p}"
    return None


def load_trained(store, mmap_mode: str | None = "r", *, ignore_extra: bool = False, verify: str = "cheap",
                 kept: str | None = None) -> tuple[dict, TrainedModel]:
    """(manifest, model) of a model directory's committed checkpoint (or one it keeps);
    ``verify`` as ``ModelDir.load``."""
    manifest, arrays = store.load(mmap_mode, verify=verify, kept=kept)
    return manifest, trained_from_manifest(store.path, manifest, arrays, ignore_extra=ignore_extra)


def _what(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"no field {exc}"
    return f"{type(exc).__name__}: {exc}"
