"""``streamfm export``: a model's prediction parameters in one JSON or ``.npz`` file, for other tools."""
from __future__ import annotations

import argparse
import sys


def add_export_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="a model's parameters as JSON or .npz, for use outside streamfm",
        description="Write what computing the model's predictions takes (the scaling, the FMs' weights and "
                    "factors, the anchors and the coding, the labels) to OUT.json or OUT.npz; "
                    "docs/model-directory.md describes the format and computes predictions from it with NumPy.")
    p.add_argument("model", metavar="DIR", help="model directory")
    p.add_argument("-o", "--output", metavar="OUT", required=True, help="output file, *.json or *.npz")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from streamfm.store.export import export_model

    export_model(args.model, args.output)
    print(f"exported {args.model} to {args.output}", file=sys.stderr)
    return 0
