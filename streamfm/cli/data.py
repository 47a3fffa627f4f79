"""The data flags every data command shares, and opening the data they name.

:func:`add_data_options` declares them, :func:`read_options` turns them into the
:class:`~streamfm.io.options.ReadOptions` that every reader takes (and that
``train`` stores in the model, so ``--resume`` reads the data the same way).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from contextlib import contextmanager
from typing import Iterator, Sequence

from streamfm.io.options import ReadOptions


#: the data argument's help of the commands that read standard input too
DATA_HELP = "files, globs or directories, or - for standard input (libsvm or CSV, gzip, bzip2 or xz too)"


def column_list(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The flags that say how to read data files (every data command shares them)."""
    g = parser.add_argument_group("reading the data")
    g.add_argument("--format", choices=("libsvm", "csv", "parquet"),
                   help="input format (default: from the file suffixes; standard input's from its first "
                        "lines)")
    g.add_argument("--label-column", metavar="COL",
                   help="CSV/Parquet label column, a name or a position (default: last CSV column, "
                        "Parquet 'label')")
    g.add_argument("--feature-columns", metavar="A,B,...", type=column_list,
                   help="CSV/Parquet feature columns (default: all but the label)")
    g.add_argument("--hash-columns", metavar="A,B,...", type=column_list,
                   help="CSV/Parquet columns hashed as categoricals (default: every text column)")
    g.add_argument("--n-hash-features", metavar="N", type=int, default=2**20,
                   help="size of the hash space of categorical columns (default: 2**20)")
    g.add_argument("--weight-column", metavar="COL",
                   help="CSV/Parquet column of sample weights (finite, >= 0; not a feature); libsvm lines "
                        "carry theirs as label:weight")
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



def read_options(args: argparse.Namespace) -> ReadOptions:
    """The read options given on the command line (each flag's ``dest`` is the option's name)."""
    return ReadOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ReadOptions)})


def source_from_args(args: argparse.Namespace, paths: Sequence[str] | None = None, *, contract=None,
                     require_label: bool = True):
    """Open the data named on the command line (``args.data`` unless ``paths``); with a model's
    ``contract``, read as the model reads its data (``io/contract.py``)."""
    from streamfm.io.sources import open_source

    return open_source(list(paths if paths is not None else args.data), read_options(args), contract=contract,
                       require_label=require_label)


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` and ``--progress / --no-progress`` (every data command has them)."""
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no messages and no epoch lines (the result line and errors stay)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="draw progress bars on standard error, or not (default: only when standard error "
                             "is a terminal and without --quiet)")


def show_progress(args: argparse.Namespace) -> bool:
    """Whether this command draws progress bars (``--progress``, ``--quiet``, a terminal)."""
    from streamfm.progress import show_progress as show

    return show(args.progress, args.quiet)


@contextmanager
def data_paths(data: Sequence[str], format: str | None, spool_dir: str | None = None) -> Iterator[list[str]]:
    """The data arguments, with ``-`` (standard input) replaced by a temporary copy of it in
    ``spool_dir`` (default: ``$TMPDIR``), removed on leaving (``io/stdin.py``)."""
    from streamfm.io.stdin import names_stdin, spooled_stdin

    if not names_stdin(data):
        yield list(data)
        return
    with spooled_stdin(spool_dir, format) as path:
        yield [path]


def report_bad_rows(source) -> None:
    if source.bad_rows:
        print(f"skipped {source.bad_rows:,} bad row(s)", file=sys.stderr)
