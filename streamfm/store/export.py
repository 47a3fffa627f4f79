"""A model's prediction parameters in one portable file (``streamfm export``): JSON or NumPy ``.npz``.

Only what computing a prediction needs, under names that say what they are
(docs/model-directory.md, "Exported models", gives the formulas): the
scaling (``shift``, ``scale``), the FMs (``b``, ``W``, ``V``), the anchors and
the coding (the count sketch's bucket and sign per feature written out, so a
reader needs no hash), the local coding's settings, the labels and the
probability link. Training state (AdaGrad sums, counters, the search's
snapshots) is left out: an exported model is read, never trained further.
"""
from __future__ import annotations

import json
import os

import numpy as np

from ..coding.space import SKETCH_DIM, _sketch, coding_kind
from ..errors import InputError
from ..io.atomic import atomic_output
from ..models.trained import TrainedModel, labels_as_written
from .modeldir import ModelDir

EXPORT_FORMATS = (".json", ".npz")
EXPORT_VERSION = 1


def exported(trained: TrainedModel) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays): the export of a trained model, JSON-able settings and named arrays."""
    model, config = trained.model, trained.model.config
    p = model.p
    link = {"binary": "logistic", "regression": "identity"}.get(model.task, config.multiclass)
    classes = None if trained.classes is None else labels_as_written(trained.classes)
    meta = {"format": "streamfm-export", "version": EXPORT_VERSION, "method": config.method,
            "task": model.task, "classes": classes, "n_features": p, "n_outputs": model.n_outputs,
            "rank": config.rank, "link": link}
    arrays = {"shift": np.asarray(trained.standardizer.shift, dtype=np.float64),
              "scale": np.asarray(trained.standardizer.scale, dtype=np.float64)}
    params = model.params
    if config.method == "fm":
        arrays.update(b=params["b"][:1], W=params["W"][:1], V=params["V"][:1])
        return meta, arrays
    m = model.m
    meta["global_fm"] = bool(model.glob)
    meta["coding"] = coding_kind(p)
    meta["coding_scale"] = float(model.coding_scale)
    if config.method == "llfm-jo":
        meta["local_coding"] = {"kind": "adaptive", "rho": config.rho, "n_candidates": config.n_candidates}
    else:
        meta["local_coding"] = {"kind": "soft_assignment", "beta": config.beta,
                                "n_neighbors": config.n_neighbors}
    arrays.update(b=params["b"][:m], W=params["W"][:m], V=params["V"][:m], anchors=params["Z"])
    if model.glob:
        arrays.update(global_b=params["b"][m], global_W=params["W"][m], global_V=params["V"][m])
    if meta["coding"] == "count_sketch":
        bucket, sign = _sketch(np.arange(p), SKETCH_DIM)
        arrays.update(coding_bucket=bucket.astype(np.int64), coding_sign=sign)
    return meta, arrays


def export_model(model_dir, out_path) -> str:
    """Write the model of ``model_dir`` to ``out_path`` (``*.json`` or ``*.npz``), atomically."""
    out_path = os.fspath(out_path)
    fmt = os.path.splitext(out_path)[1]
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"cannot tell the export format of {out_path!r}: name it *.json or *.npz")
    directory = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(directory):
        raise InputError(f"the output directory {directory} does not exist")
    manifest, arrays = ModelDir(model_dir).load(mmap_mode="r")
    meta, out = exported(TrainedModel.from_state(manifest["model"], arrays))
    with atomic_output(out_path) as tmp:
        if fmt == ".json":
            doc = dict(meta, arrays={k: np.asarray(v).tolist() for k, v in out.items()})
            tmp.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        else:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **out)
    return out_path
