"""The ``streamfm`` command line: the parser and :func:`main`.

Each subcommand lives in its own module (``train``, ``predict`` with
``evaluate``, ``convert``, ``info``, ``export``,
``plot``) as an ``add_<name>_parser(subparsers)``
function listed in :data:`COMMANDS`: it declares the command's arguments and
sets ``func`` (a function of the parsed ``args`` returning an exit code).
Data commands share the flags of :mod:`streamfm.cli.data`
(:func:`~streamfm.cli.data.add_data_options`) and open their data with
:func:`~streamfm.cli.data.source_from_args`.

Every :class:`~streamfm.errors.StreamFMError` reaches the user as one line,
``streamfm: error: <message>``, and its ``exit_code`` (2 for bad input);
Ctrl-C exits with 130; running out of memory is one line too, exit 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from streamfm import __version__
from streamfm.cli.convert import add_convert_parser
from streamfm.cli.export import add_export_parser
from streamfm.cli.info import add_info_parser
from streamfm.cli.plot import add_plot_parser
from streamfm.cli.predict import add_evaluate_parser, add_predict_parser
from streamfm.cli.train import add_train_parser
from streamfm.errors import StreamFMError

__all__ = ["COMMANDS", "PROG", "build_parser", "main"]

PROG = "streamfm"

#: Subcommand builders, in the order `streamfm --help` lists them.  Each takes
#: the argparse subparsers object, adds one subcommand and sets `func`.
COMMANDS: list[Callable] = [add_train_parser, add_predict_parser, add_evaluate_parser,
                            add_convert_parser, add_info_parser, add_export_parser, add_plot_parser]


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
    except MemoryError:
        print(f"{PROG}: error: out of memory. Give a smaller --memory-budget (the model is then hashed "
              f"into a table that fits), a smaller --bits, fewer --anchors, a lower --rank or --method fm; "
              f"or smaller --batch-rows", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `streamfm info ... | head`: the reader left; say nothing more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:  # disk full, permission denied: not a bug, no traceback
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
