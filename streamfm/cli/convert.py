"""``streamfm convert``: libsvm / CSV files -> Parquet shards."""
from __future__ import annotations

import argparse

from streamfm.cli.data import (DATA_HELP, add_data_options, add_quiet, data_paths, report_bad_rows, show_progress,
                               source_from_args)


def add_convert_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "convert",
        help="libsvm / CSV files -> Parquet shards",
        description="Convert libsvm or CSV files to Parquet shards part-00000.parquet, ... in OUT_DIR. "
                    "Dense tables become wide tables (label, f0..f{p-1}); libsvm becomes the sparse layout "
                    "(label, indices, values).  Written atomically: nothing is left behind on failure.",
    )
    p.add_argument("data", nargs="+", metavar="IN", help=DATA_HELP + "; local or URIs: s3://...")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output directory (local or a URI)")
    p.add_argument("--rows-per-shard", type=int, default=1_000_000, metavar="N",
                   help="rows per Parquet shard (default: 1,000,000)")
    p.add_argument("--compression", default="zstd", choices=("zstd", "snappy", "gzip", "brotli", "lz4", "none"),
                   help="Parquet codec (default: zstd)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it is not empty")
    add_data_options(p)
    add_quiet(p)
    p.set_defaults(func=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from streamfm.io.convert import convert
    from streamfm.io.parquet import open_parquet

    with data_paths(args.data, args.format) as paths:
        source = source_from_args(args, paths)
        shards = convert(
            source, args.output, rows_per_shard=args.rows_per_shard, compression=args.compression,
            progress=show_progress(args), overwrite=args.overwrite,
        )
    rows = 0
    for shard in shards:
        with open_parquet(shard) as pf:
            rows += pf.metadata.num_rows
    layout = "wide" if source.dense else "sparse"
    print(f"wrote {rows:,} rows in {len(shards)} {layout} Parquet shard(s) to {args.output}")
    report_bad_rows(source)
    return 0
