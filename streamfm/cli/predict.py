"""``streamfm predict`` and ``streamfm evaluate``: a model over data, streamed."""
from __future__ import annotations

import argparse
import json
import sys

from streamfm.cli.compiling import note_compiling
from streamfm.cli.data import (DATA_HELP, column_list, add_data_options, add_quiet, data_paths, report_bad_rows,
                               show_progress, source_from_args)
from streamfm.errors import InputError


def add_predict_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="stream predictions to Parquet or CSV",
        description="One output row per input row, in input order: the predicted label and the "
                    "probability of every class (classification) or the prediction (regression). "
                    "The file appears only when complete; with -o - the CSV goes to standard output as it "
                    "is made (messages go to standard error).")
    p.add_argument("data", nargs="+", metavar="DATA", help=DATA_HELP)
    p.add_argument("--model", metavar="DIR", required=True, help="model directory")
    p.add_argument("-o", "--output", metavar="OUT", required=True,
                   help="output file, *.parquet or *.csv, a local path or a URI (s3://...); - writes CSV to "
                        "standard output")
    p.add_argument("--keep-columns", metavar="A,B,...", type=column_list,
                   help="CSV/Parquet columns (identifiers, say) copied into each output row, before the "
                        "predictions")
    p.add_argument("--raw", action="store_true",
                   help="margins (the model's raw scores before the sigmoid or softmax) instead of "
                        "probabilities: a column margin (binary: the log-odds of the second class) or "
                        "margin_LABEL per class")
    p.add_argument("--ignore-extra-features", action="store_true",
                   help="drop feature indices beyond the model's instead of stopping")
    add_data_options(p)
    add_quiet(p)
    p.set_defaults(func=run_predict)


def _progress(args, desc: str):
    from streamfm.progress import progress_bar

    return progress_bar(unit="rows", unit_scale=True, desc=desc, disable=not show_progress(args), mininterval=0.5)


def run_predict(args: argparse.Namespace) -> int:
    with data_paths(args.data, args.format) as paths:
        return _predict(args, paths)


def _predict(args: argparse.Namespace, paths: list[str]) -> int:
    from streamfm.inference.predict import STDOUT, predict_to_file
    from streamfm.io.kept import KeptColumns
    from streamfm.run import load

    trained = load(args.model, ignore_extra=args.ignore_extra_features)
    source = source_from_args(args, paths, contract=trained.input, require_label=False)
    keep = KeptColumns(source, args.keep_columns) if args.keep_columns else None
    if trained.input is not None:
        trained.input.check_extra_columns(source, args.ignore_extra_features, kept=args.keep_columns or ())
    note_compiling(args.quiet, ("predict_rows",))
    with _progress(args, "predict") as bar:
        rows = predict_to_file(trained, source, args.output, progress=bar, keep=keep, raw=args.raw)
    where = "standard output" if args.output == STDOUT else args.output
    print(f"{rows:,} predictions written to {where}", file=sys.stderr)  # the last line, as train's, stays
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
    p.add_argument("data", nargs="+", metavar="DATA", help=DATA_HELP)
    p.add_argument("--model", metavar="DIR", required=True, help="model directory")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--ignore-extra-features", action="store_true",
                   help="drop feature indices beyond the model's instead of stopping")
    add_data_options(p)
    add_quiet(p)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    with data_paths(args.data, args.format) as paths:
        return _evaluate(args, paths)


def _evaluate(args: argparse.Namespace, paths: list[str]) -> int:
    from streamfm.inference.metrics import evaluate_source
    from streamfm.run import load

    trained = load(args.model, ignore_extra=args.ignore_extra_features)
    source = source_from_args(args, paths, contract=trained.input)
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
