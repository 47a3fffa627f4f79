"""The ``streamfm`` command line.

Each subcommand is added by one ``_add_<name>_parser(subparsers)`` function
listed in :data:`COMMANDS`; it declares its arguments and sets ``func`` (a
function of the parsed ``args`` returning an exit code).  ``train``,
``predict`` and ``evaluate`` plug in the same way: write
``_add_train_parser``, give it :func:`add_data_options` for the shared
data-reading flags, open the data with :func:`source_from_args`, and append
it to :data:`COMMANDS`.

Every :class:`~streamfm.errors.StreamFMError` reaches the user as one line,
``streamfm: error: <message>``, and its ``exit_code`` (2 for bad input);
Ctrl-C exits with 130.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, Sequence

from streamfm import __version__
from streamfm.errors import InputError, StreamFMError

PROG = "streamfm"


# ---------------------------------------------------------------------------
# Shared data options
# ---------------------------------------------------------------------------


def _column_list(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The flags that say how to read data files (every data command shares them)."""
    g = parser.add_argument_group("reading the data")
    g.add_argument("--format", choices=("libsvm", "csv", "parquet"),
                   help="input format (default: from the file suffixes)")
    g.add_argument("--label-column", metavar="COL",
                   help="CSV/Parquet label column, a name or a position (default: last CSV column, "
                        "Parquet 'label')")
    g.add_argument("--feature-columns", metavar="A,B,...", type=_column_list,
                   help="CSV/Parquet feature columns (default: all but the label)")
    g.add_argument("--hash-columns", metavar="A,B,...", type=_column_list,
                   help="CSV/Parquet columns hashed as categoricals (default: every text column)")
    g.add_argument("--n-hash-features", metavar="N", type=int, default=2**20,
                   help="size of the hash space of categorical columns (default: 2**20)")
    g.add_argument("--indices-column", metavar="COL", help="Parquet sparse layout: list column of indices")
    g.add_argument("--values-column", metavar="COL", help="Parquet sparse layout: list column of values")
    zb = g.add_mutually_exclusive_group()
    zb.add_argument("--zero-based", dest="zero_based", action="store_const", const=True, default="auto",
                    help="libsvm indices start at 0 (default: detect from the first rows)")
    zb.add_argument("--one-based", dest="zero_based", action="store_const", const=False,
                    help="libsvm indices start at 1")
    hd = g.add_mutually_exclusive_group()
    hd.add_argument("--header", dest="header", action="store_const", const=True, default="auto",
                    help="CSV files start with a header row (default: detect)")
    hd.add_argument("--no-header", dest="header", action="store_const", const=False,
                    help="CSV files have no header row")
    g.add_argument("--skip-bad-rows", action="store_true",
                   help="skip malformed rows (and report how many) instead of stopping")
    g.add_argument("--chunk-rows", metavar="N", type=int, default=65536,
                   help="rows read per chunk (default: 65536); memory grows with it")


def data_options(args: argparse.Namespace) -> dict:
    """The ``open_source`` keyword arguments given on the command line (JSON-able: the
    trainer stores them so that ``--resume`` reopens the data the same way)."""
    return {
        "format": args.format,
        "label_column": args.label_column,
        "feature_columns": args.feature_columns,
        "indices_column": args.indices_column,
        "values_column": args.values_column,
        "hash_columns": args.hash_columns,
        "n_hash_features": args.n_hash_features,
        "zero_based": args.zero_based,
        "header": args.header,
        "skip_bad_rows": args.skip_bad_rows,
        "chunk_rows": args.chunk_rows,
    }


def source_from_args(args: argparse.Namespace, paths: Sequence[str] | None = None):
    """Open the data named on the command line (``args.data`` unless ``paths``)."""
    from streamfm.io.sources import open_source

    return open_source(list(paths if paths is not None else args.data), **data_options(args))


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _report_bad_rows(source) -> None:
    if source.bad_rows:
        print(f"skipped {source.bad_rows:,} bad row(s)", file=sys.stderr)


# ---------------------------------------------------------------------------
# convert
# ---------------------------------------------------------------------------


def _add_convert_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "convert",
        help="libsvm / CSV files -> Parquet shards",
        description="Convert libsvm or CSV files to Parquet shards part-00000.parquet, ... in OUT_DIR. "
                    "Dense tables become wide tables (label, f0..f{p-1}); libsvm becomes the sparse layout "
                    "(label, indices, values).  Written atomically: nothing is left behind on failure.",
    )
    p.add_argument("data", nargs="+", metavar="IN", help="input files, globs or directories")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output directory")
    p.add_argument("--rows-per-shard", type=int, default=1_000_000, metavar="N",
                   help="rows per Parquet shard (default: 1,000,000)")
    p.add_argument("--compression", default="zstd", help="Parquet codec (default: zstd)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it is not empty")
    add_data_options(p)
    _add_quiet(p)
    p.set_defaults(func=_cmd_convert)


def _cmd_convert(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from streamfm.io.convert import convert

    source = source_from_args(args)
    shards = convert(
        source, args.output, rows_per_shard=args.rows_per_shard, compression=args.compression,
        progress=not args.quiet, overwrite=args.overwrite, chunk_rows=args.chunk_rows,
    )
    rows = sum(pq.ParquetFile(s).metadata.num_rows for s in shards)
    layout = "wide" if source.dense else "sparse"
    print(f"wrote {rows:,} rows in {len(shards)} {layout} Parquet shard(s) to {args.output}")
    _report_bad_rows(source)
    return 0


# ---------------------------------------------------------------------------
# info
# ---------------------------------------------------------------------------


def _add_info_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="describe a data set (or a model directory)",
        description="Rows, features, labels, task, density, files and size of a data set, read in one "
                    "streaming pass.  For a model directory (one holding manifest.json), its manifest.",
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="files, globs or directories, or a model directory")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_data_options(p)
    _add_quiet(p)
    p.set_defaults(func=_cmd_info)


def _cmd_info(args: argparse.Namespace) -> int:
    from streamfm.io.sources import is_model_dir

    models = [d for d in args.data if is_model_dir(d)]
    if models:
        if len(args.data) > 1:
            raise InputError(f"{models[0]} is a model directory: give it alone to `streamfm info`")
        return _info_model(models[0], args.json)
    source = source_from_args(args)
    summary = _summarise(source, progress=not args.quiet)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    _report_bad_rows(source)
    return 0


def _info_model(path: str, as_json: bool = False) -> int:
    """A model directory's manifest in words (or as JSON)."""
    from streamfm.models.config import Config
    from streamfm.store.modeldir import ModelDir

    store = ModelDir(path)
    manifest = store.read_manifest()
    if as_json:
        print(json.dumps(manifest, indent=2))
        return 0
    m, t = manifest["model"], manifest["training"]
    c = m["config"]
    rows = [("model directory", path), ("method", c["method"]),
            ("task", m["task"] + (f", {m['n_outputs']} classes ({c['multiclass']})" if m["task"] == "multiclass" else ""))]
    if m.get("classes") is not None:
        rows.append(("classes", ", ".join(str(v) for v in m["classes"][:20]) + (" ..." if len(m["classes"]) > 20 else "")))
    from streamfm.preprocess.standardize import describe_scaling

    rows.append(("features", f"{m['n_features']:,}"))
    rows.append(("scaling", describe_scaling(m["standardizer"], m["n_features"])))
    shape = f"rank {c['rank']}"
    if c["method"] != "fm":
        shape += f", {c['anchors']} anchors, coding scale {m['coding_scale']:.4g}"
    rows.append(("model", shape))
    cfg = Config.from_dict(c)
    rows.append(("steps", f"{cfg.optimizer}, eta0 {cfg.step:g}, t0 {m['t0']:g}, anchor step {c['eta_anchor']}, "
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
    rows.append(("data", f"{len(t['data']['files'])} file(s), {t['rows_per_epoch']:,} rows per epoch"))
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
    width = max(len(k) for k, _ in rows) + 1
    for k, v in rows:
        print(f"{k + ':':<{width}} {v}")
    return 0


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



# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------

#: model options: (flag, Config field, type, help); the help's default is read from Config. Default
#: None = "not given", so continuing a model can tell a changed hyper-parameter from an omitted one.
_MODEL_OPTIONS = [
    ("--method", "method", str, "fm, llfm-do, llfm-apl or llfm-jo"),
    ("--rank", "rank", int, "factor rank r"),
    ("--anchors", "anchors", int, "anchor points m"),
    ("--neighbors", "n_neighbors", int, "neighbours k of the soft-assignment coding, do/apl"),
    ("--beta", "beta", float, "soft-assignment sharpness, in units of the coding scale"),
    ("--rho", "rho", float, "llfm-jo Lipschitz-to-noise ratio, in units of the coding scale"),
    ("--candidates", "n_candidates", int, "anchors the FAISS search returns per row"),
    ("--rebuild-every", "rebuild_every", int, "rows between anchor-index rebuilds"),
    ("--optimizer", "optimizer", str, "FM steps: adagrad (per-parameter, bounded per row), normalized "
                                      "(divided by the gradient norm, decaying) or sgd (plain, decaying)"),
    ("--eta0", "eta0", float, "FM step size (default: 0.1 for adagrad, 0.5 for normalized, 0.01 for sgd)"),
    ("--t0", "t0", float, "step decay eta0*t0/(t0+t) of sgd, normalized and the anchors; 0 = one epoch of rows"),
    ("--eta-anchor", "eta_anchor", float, "anchor step size"),
    ("--l2-w", "l2_w", float, "L2 on linear weights: the penalty l2/2 ||w||^2 over the whole data, "
                              "a prior of that precision"),
    ("--l2-v", "l2_v", float, "L2 on factors, as --l2-w"),
    ("--init-std", "init_std", float, "initial factor standard deviation"),
    ("--multiclass", "multiclass", str, "softmax or ovr (one-vs-rest, as the paper's authors ran it)"),
    ("--seed", "seed", int, "random seed"),
]
_CHOICES = {"method": "METHODS", "optimizer": "OPTIMIZERS", "multiclass": "MULTICLASS_LOSSES"}


def _model_option_help(field: str, text: str) -> str:
    from streamfm.models.config import Config

    default = getattr(Config(), field)
    return text if default is None else f"{text} (default: {default})"


def _add_train_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model from files (or continue one)",
        description="Train FM / LLFM on data streamed from files into the model directory --model. "
                    "If the directory holds a model, continue training it on the new data (keeping its "
                    "standardisation, classes, anchors and optimiser state). `--resume DIR` finishes an "
                    "interrupted run. Without DATA, trains on the Banana data shipped with streamfm.",
    )
    p.add_argument("data", nargs="*", metavar="DATA", help="files, globs or directories")
    p.add_argument("--model", metavar="DIR", help="model directory (created if missing)")
    p.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR")
    p.add_argument("--valid", nargs="+", metavar="DATA",
                   help="data evaluated after every epoch (and watched by --early-stop)")
    p.add_argument("--task", choices=("binary", "multiclass", "regression"),
                   help="the task (default: detected from the labels)")
    p.add_argument("--scale", choices=("auto", "standard", "maxabs", "none"), default=None,
                   help="how features are scaled, from the scan pass's statistics, and recorded in the model "
                        "(default: auto). auto, per feature: binary (0/1) features kept as they are, features "
                        "non-zero in at least half of the rows standardised (centred, divided by the standard "
                        "deviation), any other feature divided by its largest absolute value (not centred); "
                        "standard: every feature divided by its standard deviation, and centred if the data is "
                        "a dense table or has at most 1,000 features; maxabs: every feature divided by its "
                        "largest absolute value; none: values as they are. A model that exists keeps its "
                        "scaling: --scale must then be left out or name the model's mode")
    from streamfm.models import config

    g = p.add_argument_group("the model")
    for flag, field, typ, text in _MODEL_OPTIONS:
        choices = getattr(config, _CHOICES[field]) if field in _CHOICES else None
        g.add_argument(flag, dest=f"cfg_{field}", type=typ, default=None, choices=choices,
                       metavar=None if choices else flag.lstrip("-").replace("-", "_").upper(),
                       help=_model_option_help(field, text))
    g.add_argument("--no-global-fm", dest="cfg_global_fm", action="store_const", const=False, default=None,
                   help="llfm-*: the paper's model, the local mixture alone (default: a global FM beside it)")
    g.add_argument("--paper-anchor-gradient", dest="cfg_jo_exact", action="store_const", const=False,
                   default=None, help="llfm-jo: the paper's approximate anchor gradient (drops the lambda term)")
    r = p.add_argument_group("the run")
    r.add_argument("--epochs", type=int, default=10, help="passes over the data, at most (default: 10)")
    r.add_argument("--early-stop", type=int, default=3, metavar="N",
                   help="stop after N epochs in a row without a lower validation log loss (RMSE for "
                        "regression) and keep the best epoch's model; 0 = off, train every epoch and keep "
                        "the last (default: 3). Validates on --valid, else on more than 10,000 rows on "
                        "held-out training rows (--validation-fraction), else not at all")
    r.add_argument("--validation-fraction", type=float, default=0.1, metavar="F",
                   help="without --valid: the share of training rows held out for early stopping, chosen "
                        "by --seed from each row's place in the data, never trained on (default: 0.1)")
    r.add_argument("--batch-rows", type=int, default=4096, help="rows per kernel call (default: 4096)")
    r.add_argument("--shuffle-buffer", type=int, default=0,
                   help="rows held for shuffling (default: 0 = sized to ~8M stored values, at most 100,000)")
    r.add_argument("--no-shuffle", action="store_true", help="read rows in file order every epoch")
    r.add_argument("--sample-size", type=int, default=10_000, help="rows sampled for k-means (default: 10000)")
    r.add_argument("--checkpoint-rows", type=int, default=0, help="checkpoint every N rows (default: off)")
    r.add_argument("--checkpoint-seconds", type=float, default=600.0,
                   help="checkpoint every T seconds (default: 600)")
    r.add_argument("--threads", type=int, default=1,
                   help="training threads (default: 1, deterministic); N > 1 trains Hogwild-style on shared "
                        "parameters without locks (and splits each anchor search between the threads): for "
                        "machines with more than 2 cores (the default already searches on a second one), not "
                        "reproducible bit for bit")
    r.add_argument("--max-rows", type=int, default=0,
                   help="stop (resumably) after N rows in this invocation (default: no limit)")
    r.add_argument("--ignore-extra-features", action="store_true",
                   help="drop feature indices beyond the model's (and report how many) instead of stopping")
    r.add_argument("--ignore-unknown-labels", action="store_true",
                   help="skip rows whose class the model has never seen (and report how many)")
    e = p.add_argument_group("the engine")
    e.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process (default); ray: data-parallel workers on Ray over Parquet shards "
                        '(pip install "streamfm[ray]")')
    e.add_argument("--workers", type=int, default=2, help="ray: worker actors (default: 2)")
    e.add_argument("--address", metavar="ADDRESS",
                   help="ray: join the cluster at ADDRESS (HOST:PORT, ray://HOST:PORT or auto); "
                        "default: start a local Ray instance sized to this machine")
    e.add_argument("--sync-rows", type=int, default=0, metavar="R",
                   help="ray: rows each worker trains between two merges (default: 65536)")
    e.add_argument("--worker-retries", type=int, default=2,
                   help="ray: restarts after a worker dies before the run stops resumably (default: 2)")
    e.add_argument("--no-scale-steps", action="store_true",
                   help="ray: workers take the model's steps, not steps times --workers (see docs/scaling.md)")
    add_data_options(p)
    _add_quiet(p)
    p.set_defaults(func=_cmd_train)


def _embedded(name: str) -> str:
    from importlib.resources import files

    return str(files("streamfm") / "data" / f"{name}.parquet")


def _cmd_train(args: argparse.Namespace) -> int:
    from streamfm.models.config import Config
    from streamfm.run import resume, train
    from streamfm.training.options import TrainOptions

    if args.resume:
        if args.data or args.model:
            raise InputError("--resume DIR continues a run as it was started: give no DATA and no --model")
        if args.scale is not None:
            from streamfm.store.modeldir import ModelDir
            from streamfm.training.setup import check_scale

            check_scale(ModelDir(args.resume).read_manifest()["model"], args.scale, args.resume)
        summary = resume(args.resume, quiet=args.quiet or None)
        if summary.get("already_complete"):
            print(f"the run in {args.resume} is complete; to train more, give data: "
                  f"streamfm train DATA... --model {args.resume}")
            return 0
        return _report_run(summary, args.resume)
    if not args.model:
        raise InputError("name the model directory with --model DIR (or continue a run with --resume DIR)")
    data, valid = args.data, args.valid
    if not data:
        data, valid = [_embedded("banana-train")], valid or [_embedded("banana-test")]
        if not args.quiet:
            print("no DATA given: training on the Banana data shipped with streamfm "
                  "(3,533 rows; validated on its 1,767 held-out rows)", flush=True)
    given = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    config = Config(**given) if given else None
    options = TrainOptions(
        epochs=args.epochs, batch_rows=args.batch_rows, shuffle_buffer=args.shuffle_buffer,
        shuffle=not args.no_shuffle, sample_size=args.sample_size, checkpoint_rows=args.checkpoint_rows,
        checkpoint_seconds=args.checkpoint_seconds, max_rows=args.max_rows, task=args.task, scale=args.scale,
        ignore_extra_features=args.ignore_extra_features, ignore_unknown_labels=args.ignore_unknown_labels,
        quiet=args.quiet, threads=args.threads, early_stop=args.early_stop,
        validation_fraction=args.validation_fraction)
    engine = args.engine
    if engine == "ray":
        from streamfm.engines.ray.options import RayOptions

        engine = RayOptions(workers=args.workers, address=args.address, sync_rows=args.sync_rows,
                            worker_retries=args.worker_retries, scale_steps=not args.no_scale_steps)
    summary = train(data, args.model, config=config, options=options, data_options=data_options(args),
                    valid=valid, engine=engine)
    return _report_run(summary, args.model)


def _report_run(summary: dict, model_dir: str) -> int:
    stopped = summary.get("stopped")
    if stopped:
        print(f"stopped ({stopped}) at epoch {summary['epoch'] + 1}, row {summary['position']:,}; "
              f"checkpoint saved. Continue with: streamfm train --resume {model_dir}", file=sys.stderr)
        return {"SIGINT": 130, "SIGTERM": 143}.get(stopped, 0)
    kept = summary.get("kept_epoch")
    print(f"model saved in {model_dir}" + (f" (epoch {kept}'s: {summary['stop_reason']})" if kept else ""))
    return 0


# ---------------------------------------------------------------------------
# predict and evaluate
# ---------------------------------------------------------------------------


def _add_predict_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="stream predictions to Parquet or CSV",
        description="One output row per input row, in input order: the predicted label and the "
                    "probability of every class (classification) or the prediction (regression). "
                    "The file appears only when complete.")
    p.add_argument("data", nargs="+", metavar="DATA", help="files, globs or directories")
    p.add_argument("--model", metavar="DIR", required=True, help="model directory")
    p.add_argument("-o", "--output", metavar="OUT", required=True, help="output file, *.parquet or *.csv")
    p.add_argument("--ignore-extra-features", action="store_true",
                   help="drop feature indices beyond the model's instead of stopping")
    add_data_options(p)
    _add_quiet(p)
    p.set_defaults(func=_cmd_predict)


def _progress(args, desc: str):
    from streamfm.progress import progress_bar

    return progress_bar(unit="rows", unit_scale=True, desc=desc, disable=args.quiet, mininterval=0.5)


def _cmd_predict(args: argparse.Namespace) -> int:
    from streamfm.inference.predict import predict_to_file
    from streamfm.run import load

    trained = load(args.model, ignore_extra=args.ignore_extra_features)
    source = source_from_args(args)
    with _progress(args, "predict") as bar:
        rows = predict_to_file(trained, source, args.output, progress=bar)
    print(f"{rows:,} predictions written to {args.output}", file=sys.stderr)
    _report_dropped(trained)
    _report_bad_rows(source)
    return 0


def _report_dropped(trained) -> None:
    std = trained.standardizer
    if std.dropped:
        print(f"dropped {std.dropped:,} value(s) of features beyond the model's {std.n_features:,} "
              f"in {std.dropped_rows:,} row(s)", file=sys.stderr)


def _add_evaluate_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="log loss, accuracy, AUC (or RMSE, MAE) of a model on data",
        description="Stream DATA through the model and print its metrics: log loss, accuracy and (binary) "
                    "AUC for classification; RMSE and MAE for regression.")
    p.add_argument("data", nargs="+", metavar="DATA", help="files, globs or directories")
    p.add_argument("--model", metavar="DIR", required=True, help="model directory")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--ignore-extra-features", action="store_true",
                   help="drop feature indices beyond the model's instead of stopping")
    add_data_options(p)
    _add_quiet(p)
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from streamfm.inference.metrics import evaluate_source
    from streamfm.run import load

    trained = load(args.model, ignore_extra=args.ignore_extra_features)
    source = source_from_args(args)
    with _progress(args, "evaluate") as bar:
        result = evaluate_source(trained, source, progress=bar)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k.replace('_', ' '):<9} {v:,}" if isinstance(v, int) else f"{k.replace('_', ' '):<9} {v:.6f}")
    _report_dropped(trained)
    _report_bad_rows(source)
    return 0


# ---------------------------------------------------------------------------
# The parser and main
# ---------------------------------------------------------------------------

#: Subcommand builders, in the order `streamfm --help` lists them.  Each takes
#: the argparse subparsers object, adds one subcommand and sets `func`.
COMMANDS: list[Callable] = [_add_train_parser, _add_predict_parser, _add_evaluate_parser,
                            _add_convert_parser, _add_info_parser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Streaming, out-of-core Factorization Machines and Locally Linear FMs.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (never raises for bad input).

    Parameters
    ----------
    argv : list of str or None
        Arguments without the program name (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse exits
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except StreamFMError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # `streamfm info ... | head`: the reader left; say nothing more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:  # disk full, permission denied: not a bug, no traceback
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
