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


def source_from_args(args: argparse.Namespace, paths: Sequence[str] | None = None):
    """Open the data named on the command line (``args.data`` unless ``paths``)."""
    from streamfm.io.sources import open_source

    return open_source(
        list(paths if paths is not None else args.data),
        format=args.format,
        label_column=args.label_column,
        feature_columns=args.feature_columns,
        indices_column=args.indices_column,
        values_column=args.values_column,
        hash_columns=args.hash_columns,
        n_hash_features=args.n_hash_features,
        zero_based=args.zero_based,
        header=args.header,
        skip_bad_rows=args.skip_bad_rows,
        chunk_rows=args.chunk_rows,
    )


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
        return _info_model(models[0])
    source = source_from_args(args)
    summary = _summarise(source, progress=not args.quiet)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    _report_bad_rows(source)
    return 0


def _info_model(path: str) -> int:
    manifest = os.path.join(path, "manifest.json")
    try:
        with open(manifest, encoding="utf-8") as f:
            content = json.load(f)
    except (OSError, ValueError) as exc:
        raise InputError(f"{manifest}: cannot read the model manifest ({exc})") from None
    print(f"model directory: {path}")
    print(json.dumps(content, indent=2))
    return 0


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
# The parser and main
# ---------------------------------------------------------------------------

#: Subcommand builders, in the order `streamfm --help` lists them.  Each takes
#: the argparse subparsers object, adds one subcommand and sets `func`.
COMMANDS: list[Callable] = [_add_convert_parser, _add_info_parser]


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
