"""``streamfm info``: a data set in one streaming pass, or a model directory's manifest."""
from __future__ import annotations

import argparse
import json

from streamfm.cli.data import add_data_options, add_quiet, data_paths, report_bad_rows, show_progress, source_from_args
from streamfm.errors import InputError


def add_info_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="describe a data set (or a model directory)",
        description="Rows, features, labels, task, density, files and size of a data set, read in one "
                    "streaming pass.  For a model directory (one holding manifest.json), its manifest.",
    )
    p.add_argument("data", nargs="+", metavar="DATA",
                   help="files, globs or directories, - for standard input, or a model directory")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--verify", action="store_true",
                   help="model directory: check every array of the checkpoint against its checksum (reads "
                        "it whole; by default only arrays up to 16 MiB are)")
    p.add_argument("--features", type=int, metavar="N", default=0,
                   help="model directory: also the N features of largest |w| and of largest ||V|| "
                        "(LLFM: the global FM's plus the mean over the anchors' FMs, and per anchor)")
    add_data_options(p)
    add_quiet(p)
    p.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    from streamfm.io.sources import is_model_dir

    models = [d for d in args.data if is_model_dir(d)]
    if models:
        if len(args.data) > 1:
            raise InputError(f"{models[0]} is a model directory: give it alone to `streamfm info`")
        return _info_model(models[0], args.json, args.verify, args.features)
    if args.features:
        raise InputError("--features N describes the features of a model: give a model directory")
    # standard input is copied to a temporary file first, as for the other commands (io/stdin.py):
    # the summary's files and size on disk are then the copy's
    with data_paths(args.data, args.format) as paths:
        source = source_from_args(args, paths)
        summary = _summarise(source, progress=show_progress(args))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    report_bad_rows(source)
    return 0


def _info_model(path: str, as_json: bool = False, verify: bool = False, features: int = 0) -> int:
    """A model directory's manifest in words (or as JSON), whether its checkpoint is sound (a
    damaged one, with a missing or truncated array, a checksum that does not match or a manifest
    that disagrees with its arrays, is reported with exit code 2), and with ``features`` its top
    features."""
    import sys

    from streamfm.models.importance import feature_importance, importance_lines
    from streamfm.store.manifest import damaged
    from streamfm.store.modeldir import ModelDir
    from streamfm.store.trained import MALFORMED, trained_from_manifest

    store = ModelDir(path)
    if features < 0:
        raise InputError(f"--features must be >= 0, got {features}")
    manifest = store.read_manifest()
    problem = None
    try:
        loaded, arrays = store.load("r", verify="all" if verify else "cheap")
        trained_from_manifest(store.path, loaded, arrays)
    except InputError as exc:
        problem = str(exc)
    importance = None
    if features and problem is None:  # the checkpoint just opened and checked
        manifest = loaded
        importance = feature_importance(manifest["model"], arrays, features)
    if as_json:
        print(json.dumps(manifest if importance is None else dict(manifest, feature_importance=importance),
                         indent=2))
    else:
        try:
            rows = _model_rows(path, store, manifest)
        except MALFORMED as exc:
            raise damaged(store.path, f"its manifest cannot be read ({type(exc).__name__}: {exc})") from None
        rows.append(("checkpoint", "DAMAGED (see below)" if problem else
                     "every array matches its checksum" if verify else "readable"))
        width = max(len(k) for k, _ in rows) + 1
        for k, v in rows:
            print(f"{k + ':':<{width}} {v}")
        if importance is not None:
            print("\n".join(importance_lines(importance)))
    if problem:
        print(f"streamfm: error: {problem}", file=sys.stderr)
        return 2
    return 0


def _model_rows(path: str, store, manifest: dict) -> list[tuple[str, str]]:
    from streamfm.io.contract import InputContract
    from streamfm.models.config import Config

    m, t = manifest["model"], manifest["training"]
    c = m["config"]
    rows = [("model directory", path), ("method", c["method"]),
            ("task", m["task"] + (f", {m['n_outputs']} classes ({c['multiclass']})" if m["task"] == "multiclass" else ""))]
    if m.get("classes") is not None:
        from streamfm.models.trained import labels_as_written

        classes = labels_as_written(m["classes"])
        rows.append(("classes", ", ".join(str(v) for v in classes[:20]) + (" ..." if len(classes) > 20 else "")))
    from streamfm.preprocess.standardize import describe_scaling

    rows.append(("features", f"{m['n_features']:,}"))
    if m.get("input") is not None:
        rows.append(("input", InputContract.from_dict(m["input"]).describe()))
    rows.append(("scaling", describe_scaling(m["standardizer"], m["n_features"])))
    shape = f"rank {c['rank']}"
    if c["method"] != "fm":
        auto = " (auto: chosen from the training rows and features)" if m.get("anchors_auto") else ""
        shape += f", {c['anchors']} anchors{auto}, coding scale {m['coding_scale']:.4g}"
    rows.append(("model", shape))
    rows.append(("store", _store_text(m)))
    cfg = Config.from_dict(c)
    moves = "" if not cfg.anchor_epochs else f" for {cfg.anchor_epochs} epoch{'s' * (cfg.anchor_epochs > 1)}"
    rows.append(("steps", f"{cfg.optimizer}, eta0 {cfg.step:g}, t0 {m['t0']:g}, anchor step {c['eta_anchor']}{moves}, "
                          f"L2 {cfg.l2_w:g} (w) {cfg.l2_v:g} (V)"))
    rows.append(("status", f"{t['status']}: epoch {min(t['epoch'] + (t['status'] != 'complete'), t['epochs'])} "
                           f"of {t['epochs']}" + (f", row {t['position']:,}" if t["position"] else "")))
    rows.append(("early stopping", _early_stopping_text(t)))
    if t.get("kept_epoch"):
        b = t.get("best")
        value = f", valid {b['metric'].replace('_', ' ')} {b['value']:.4f}" if b and b["epoch"] == t["kept_epoch"] else ""
        rows.append(("kept", f"epoch {t['kept_epoch']}{value} ({t['stop_reason']})"))
    elif t.get("best"):
        b = t["best"]
        rows.append(("best so far", f"epoch {b['epoch']}, valid {b['metric'].replace('_', ' ')} {b['value']:.4f} "
                                    f"(kept as {manifest.get('kept', {}).get('best', {}).get('checkpoint', '?')})"))
    rows.append(("rows trained", f"{m['t']:,} (runs before this one: {len(t.get('history', []))})"))
    source = t["data"].get("source") or f"{len(t['data']['files'])} file(s)"
    rows.append(("data", f"{source}, {t['rows_per_epoch']:,} rows per epoch"))
    rows.append(("saved", f"{manifest.get('saved_at', '?')} ({manifest.get('checkpoint', '?')})"))
    metrics = store.read_metrics()
    if metrics:
        last = metrics[-1]
        text = f"epoch {last['epoch']}: train loss {last['train_loss']:.4f}"
        for k, v in (last.get("valid") or {}).items():
            if k != "rows":
                text += f", valid {k.replace('_', ' ')} {v:.4f}"
        if "mean_k" in last:
            text += f", mean k {last['mean_k']:.2f}, candidate misses {100 * last['candidate_miss_rate']:.2f}%"
        rows.append(("last epoch", text))
    return rows


def _early_stopping_text(t: dict) -> str:
    es = t.get("early_stopping")
    if not es:
        return "off"
    on = (f"on {t['holdout']['rows']:,} held-out training rows ({100 * t['holdout']['fraction']:g}%)"
          if t.get("holdout") else "on --valid")
    return f"{on}, valid {es['metric'].replace('_', ' ')}, patience {es['patience']}"


def _summarise(source, progress: bool) -> dict:
    """One pass over the data: what `info` prints."""
    from streamfm.preprocess.scan import scan

    result = scan(source, sample_size=0, progress=progress)
    labels = None
    if result.labels is not None:
        labels = [
            {"label": _label_value(v), "rows": int(c)}
            for v, c in zip(result.labels.tolist(), result.label_counts.tolist())
        ]
    return {
        "files": len(source.files),
        "bytes": source.n_bytes,
        "format": source.format,
        "layout": _layout(source),
        "rows": int(result.n_rows),
        "features": int(result.n_features),
        "nnz": int(result.nnz),
        "density": float(result.density),
        "task": result.task,
        "labels": labels,
        "label_mean": result.label_mean,
        "label_std": None if result.label_var is None else float(result.label_var) ** 0.5,
        "bad_rows": int(source.bad_rows),
    }


def _label_value(v):
    """3.0 -> 3 so that labels print as the file writes them."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _layout(source) -> str:
    if source.format == "libsvm":
        return f"sparse, {'0' if source.zero_based else '1'}-based indices"
    if source.dense:
        parts = ["dense table"]
    elif source.hashed_columns:
        parts = ["table with hashed columns " + ", ".join(source.hashed_columns)]
    else:
        parts = ["sparse index/value lists"]
    if source.label_column is not None:
        parts.append(f"label column '{source.label_column}'")
    return "; ".join(parts)


def _human_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def _print_summary(s: dict) -> None:
    rows = [
        ("files", f"{s['files']} ({_human_bytes(s['bytes'])} on disk)"),
        ("format", f"{s['format']} ({s['layout']})"),
        ("rows", f"{s['rows']:,}"),
        ("features", f"{s['features']:,}"),
        ("non-zeros", f"{s['nnz']:,} (density {100 * s['density']:.2f}%)"),
        ("task", s["task"]),
    ]
    if s["labels"] is not None:
        shown = ", ".join(f"{d['label']} ({d['rows']:,})" for d in s["labels"][:30])
        more = f", ... ({len(s['labels'])} in all)" if len(s["labels"]) > 30 else ""
        rows.append(("labels", f"{len(s['labels'])} distinct: {shown}{more}"))
    else:
        rows.append(("labels", f"many distinct values (mean {s['label_mean']:.6g}, std {s['label_std']:.6g})"))
    if s["bad_rows"]:
        rows.append(("bad rows", f"{s['bad_rows']:,} skipped"))
    width = max(len(k) for k, _ in rows) + 1
    for k, v in rows:
        print(f"{k + ':':<{width}} {v}")


def _store_text(m: dict) -> str:
    """The parameter store of a model's manifest: its kind, table size and fill."""
    from streamfm.models.memory import StoreSpec

    spec = StoreSpec.from_dict(m.get("store"))
    if not spec.hashed:
        return spec.describe()
    fill = int(m.get("table_fill", 0))
    collisions = int(m.get("counters", {}).get("collisions", 0))
    return (f"{spec.describe()}, {fill:,} touched ({fill / (1 << spec.bits):.1%}), "
            f"{collisions:,} collisions (touches of a slot another pair holds)")
