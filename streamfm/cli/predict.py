"""``streamfm predict`` and ``streamfm evaluate``: a model over data, streamed."""
from __future__ import annotations

import argparse
import json
import sys

from streamfm.cli.compiling import note_compiling
from streamfm.cli.data import add_data_options, add_quiet, report_bad_rows, source_from_args
from streamfm.errors import InputError


def add_predict_parser(subparsers) -> None:
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
    add_quiet(p)
    p.set_defaults(func=run_predict)


def _progress(args, desc: str):
    from streamfm.progress import progress_bar

    return progress_bar(unit="rows", unit_scale=True, desc=desc, disable=args.quiet, mininterval=0.5)


def run_predict(args: argparse.Namespace) -> int:
    from streamfm.inference.predict import predict_to_file
    from streamfm.run import load

    trained = load(args.model, ignore_extra=args.ignore_extra_features)
    source = source_from_args(args, contract=trained.input, require_label=False)
    if trained.input is not None:
        trained.input.check_extra_columns(source, args.ignore_extra_features)
    note_compiling(args.quiet, ("predict_rows",))
    with _progress(args, "predict") as bar:
        rows = predict_to_file(trained, source, args.output, progress=bar)
    print(f"{rows:,} predictions written to {args.output}", file=sys.stderr)
    _report_dropped(trained)
    report_bad_rows(source)
    return 0


def _report_dropped(trained) -> None:
    std = trained.standardizer
    if std.dropped:
        print(f"dropped {std.dropped:,} value(s) of features beyond the model's {std.n_features:,} "
              f"in {std.dropped_rows:,} row(s)", file=sys.stderr)


def add_evaluate_parser(subparsers) -> None:
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
    add_quiet(p)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from streamfm.inference.metrics import evaluate_source
    from streamfm.run import load

    trained = load(args.model, ignore_extra=args.ignore_extra_features)
    source = source_from_args(args, contract=trained.input)
    if trained.input is not None:
        trained.input.check_extra_columns(source, args.ignore_extra_features)
    note_compiling(args.quiet, ("predict_rows",))
    with _progress(args, "evaluate") as bar:
        result = evaluate_source(trained, source, progress=bar)
    if result["rows"] == 0:
        skipped = f" ({source.bad_rows:,} bad row(s) skipped)" if source.bad_rows else ""
        raise InputError(f"no rows to evaluate in {', '.join(source.files)}{skipped}: no metrics")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k.replace('_', ' '):<9} {v:,}" if isinstance(v, int) else f"{k.replace('_', ' '):<9} {v:.6f}")
    _report_dropped(trained)
    report_bad_rows(source)
    return 0
