"""Per-feature importance of a model: how large its weights and factors are, feature by feature.

For one FM, feature j's linear weight ``|w_j|`` (averaged over the outputs
of a multiclass model) and the norm of its factors ``||V_j||`` (over the
outputs and the rank). An LLFM has an FM per anchor and a global FM: a row
sees the global FM plus its anchors' FMs mixed with weights that sum to 1,
so a feature's importance is the global FM's value plus the mean over the
anchors' FMs; the anchors' mean, their largest value and the anchor that
holds it are reported beside it (and every anchor's value in ``per_anchor``).
The weights are those of the scaled features (``--scale``), so they compare
across features whatever their units.
"""
from __future__ import annotations

import numpy as np


def _per_fm(W: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, p) arrays of |w| and ||V|| for every FM, one FM at a time (memory: one FM's arrays)."""
    M, p = W.shape[0], W.shape[1]
    w, v = np.empty((M, p)), np.empty((M, p))
    for i in range(M):
        w[i] = np.abs(np.asarray(W[i])).mean(axis=1)
        Vi = np.asarray(V[i]).reshape(p, -1)
        v[i] = np.sqrt(np.einsum("jk,jk->j", Vi, Vi))
    return w, v


def feature_importance(meta: dict, arrays: dict, top: int) -> dict:
    """The ``top`` features by |w| and by ||V|| of the model a manifest's ``model`` entry and its arrays
    describe: ``{"fms": ..., "by_w": [...], "by_v": [...]}``, each entry a dict per feature."""
    config = meta["config"]
    w, v = _per_fm(arrays["W"], arrays["V"])
    llfm = config["method"] != "fm"
    glob = llfm and bool(config.get("global_fm", False)) and w.shape[0] == config["anchors"] + 1
    m = w.shape[0] - glob
    out = {"fms": "one FM" if not llfm else f"{m} anchors' FMs" + (" and a global FM" if glob else "")}
    for key, values in (("w", w), ("v", v)):
        anchors = values[:m]
        total = anchors.mean(axis=0) + (values[m] if glob else 0.0)
        order = np.argsort(-total, kind="stable")[:top]
        rows = []
        for j in order.tolist():
            row = {"feature": j, key: float(total[j])}
            if llfm:
                a = int(np.argmax(anchors[:, j]))
                row.update(anchor_mean=float(anchors[:, j].mean()), anchor_max=float(anchors[a, j]),
                           at_anchor=a, per_anchor=[float(x) for x in anchors[:, j]])
                if glob:
                    row["global"] = float(values[m, j])
            rows.append(row)
        out[f"by_{key}"] = rows
    return out


def importance_lines(imp: dict) -> list[str]:
    """The importance as text tables, one per ranking."""
    lines = []
    names = {"w": "|w|", "v": "||V||"}
    for key, name in names.items():
        rows = imp[f"by_{key}"]
        llfm = bool(rows) and "anchor_mean" in rows[0]
        glob = llfm and "global" in rows[0]
        how = (f"the global FM's plus the mean over the {imp['fms'].split(' ')[0]} anchors' FMs" if glob else
               f"the mean over the {imp['fms'].split(' ')[0]} anchors' FMs" if llfm else "the FM's")
        lines.append(f"top {len(rows)} features by {name} ({how}; scaled features, numbered from 0):")
        header = ["feature", name] + (["global"] if glob else []) + (["anchor mean", "anchor max", "at anchor"]
                                                                     if llfm else [])
        table = [header]
        for r in rows:
            cells = [str(r["feature"]), f"{r[key]:.4g}"]
            if glob:
                cells.append(f"{r['global']:.4g}")
            if llfm:
                cells += [f"{r['anchor_mean']:.4g}", f"{r['anchor_max']:.4g}", str(r["at_anchor"])]
            table.append(cells)
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        lines += ["  " + "  ".join(c.rjust(wd) for c, wd in zip(row, widths)) for row in table]
    return lines
