"""Alternate `streamfm train` runs of two commits on the same data: an A/B of a change's speed.

    python tools/ab_train.py OLD NEW [--rounds 6] [--anchors 64,4096] [--data PARQUET] [-- extra train args]

Each commit is extracted once under bench-data/throughput-work
(``tools/harness.py``'s ``code_at``: a fresh copy with its own numba cache,
so kernels edited in one file are never served from a cache compiled before
the edit, see docs/architecture.md) and compiled by a tiny run; then, in
every round, the two commits train llfm-jo for one epoch per m in fresh
processes, one after the other (the rounds of bench_throughput's
``measure.rounds``). Printed: each round, then a table of the fastest and
the median epoch rows/s and the m ratio round by round. The data default is
the 100,000-row dense set of bench_throughput's data scaling (generate it
with that tool first). The host is shared and its speed drifts between
phases: read the rounds side by side, not one number.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tools import harness  # noqa: E402
from tools.harness import WORK  # noqa: E402
from tools.throughput import measure  # noqa: E402

DATA = os.path.join(REPO, "bench-data", "throughput", "dense-x1-100000-train.parquet")
TINY = os.path.join(REPO, "bench-data", "throughput", "dense-tiny-train.parquet")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--anchors", default="64,4096", help="comma-separated m values (default: 64,4096)")
    ap.add_argument("--data", default=DATA)
    ap.add_argument("extra", nargs="*", help="more `streamfm train` arguments (after --)")
    args = ap.parse_args(argv)
    if not os.path.exists(args.data):
        sys.exit(f"ab_train: no data at {args.data}; run tools/bench_throughput.py once to generate it")
    ms = [int(x) for x in args.anchors.split(",")]
    codes = {"old": measure.code_at(args.old), "new": measure.code_at(args.new)}
    if os.path.exists(TINY):  # compile the kernels once, outside the timed rounds
        for name, code in codes.items():
            tiny = os.path.join(WORK, f"ab-tiny-{name}")
            harness.run(harness.streamfm_argv("train", TINY, "--model", tiny, "--method", "llfm-jo", "--quiet",
                                              "--epochs", "1"), cwd=code, check=True, what=f"{name} warm-up")
            shutil.rmtree(tiny, ignore_errors=True)
    specs = []
    for m in ms:
        for name, code in codes.items():
            spec = measure.sf_spec(args.data, None, os.path.join(WORK, f"ab-{name}-{m}"),
                                   ["--method", "llfm-jo", "--anchors", str(m), "--epochs", "1", *args.extra])
            spec["code"] = code
            specs.append((f"{name} m={m}", spec))
    best = measure.rounds(specs, args.rounds, print)
    eps = {(name, m): best[f"{name} m={m}"]["all_epoch_rows_per_s"] for m in ms for name in codes}
    print(f"\n| code | {' | '.join(f'm={m} fastest | m={m} median' for m in ms)} |")
    print("|---|" + "---:|" * (2 * len(ms)))
    for name in codes:
        cells = " | ".join(f"{max(eps[(name, m)]):,.0f} | {np.median(eps[(name, m)]):,.0f}" for m in ms)
        print(f"| {name} ({getattr(args, name)}) | {cells} |")
    if len(ms) == 2:
        for name in codes:
            per = [a / b for a, b in zip(eps[(name, ms[1])], eps[(name, ms[0])])]
            print(f"{name}: m={ms[1]} / m={ms[0]} round by round "
                  + ", ".join(f"{x:.2f}" for x in per) + f" (median {np.median(per):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
