"""Training throughput of streamfm against the arithmetic floor and its peers, in one run.

What it measures (every figure in docs/performance.md comes from here):

1. dense, Covtype-shaped data (54 features, binary labels from locally
   different rules; ``tools/datagen.py``), as Parquet and libsvm (and VW
   text): the bare in-memory numba FM SGD loop (``tools/floor.py``, the
   floor), streamfm ``fm`` and ``llfm-jo`` (m = 50, rank 10) trained from the
   files, Vowpal Wabbit plain logistic and ``--lrq`` rank 10 (from its own
   file parser), River ``facto.FMClassifier`` (on a subset) and
   scikit-learn ``SGDClassifier.partial_fit`` over chunks;
2. sparse, CTR-shaped data (30 categorical fields hashed into 2^20
   features): the same peers, VW ``--lrq`` between the two field groups;
3. where llfm-jo's and fm's time goes (reading/decoding, anchor search,
   coding, FM updates, anchor updates);
4. anchor scaling (m = 16 .. 4096) with the candidate-miss rate;
5. data scaling (1x, 4x, 16x rows): wall time and peak RSS;
6. opt-in Hogwild threads against the default single thread;
7. start-up: a second ``streamfm train`` after the numba cache is warm;
8. an A/B of earlier commits against the current code (``before-after``).

Every measurement runs in a fresh Python process (``--run SPEC``, through
``tools/harness.py``). Systems are run in rounds, alternating, and the best
round of each is kept (the machine is shared: ratios within one run are the
numbers to read). The work is split by concern under ``tools/throughput/``:
data, peers, breakdown, measure, sections, report.

Usage::

    python tools/bench_throughput.py [--rounds 2] [--quick] [--no-write] [--sections dense,sparse,...]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tools import harness  # noqa: E402
from tools.throughput import measure, report, sections  # noqa: E402
from tools.throughput.data import make_dense, make_sparse  # noqa: E402

DOC = os.path.join(REPO, "docs", "performance.md")
RESULTS = os.path.join(REPO, "bench-data", "throughput-results.json")
PARTIAL = os.path.join(REPO, "bench-data", "throughput-partial.json")
SECTIONS = "dense,sparse,sparse-llfm,before-after,breakdown,anchors,scaling,threads,startup"


def runners():
    """The measurements a ``--run SPEC`` child can make, by ``spec["kind"]``."""
    from tools.throughput import breakdown, peers

    return {"streamfm": peers.run_streamfm, "vw": peers.run_vw, "river": peers.run_river,
            "sklearn": peers.run_sklearn, "floor": peers.run_floor, "breakdown": breakdown.run_breakdown}


class _Saved(dict):
    """Results that are written to disk as each section finishes (a crash keeps what was measured)."""

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        with open(PARTIAL, "w") as fh:
            json.dump(self, fh)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--dense-rows", type=int, default=500_000)
    ap.add_argument("--sparse-rows", type=int, default=1_000_000)
    ap.add_argument("--sections", default=SECTIONS)
    ap.add_argument("--quick", action="store_true", help="small data, one round (a smoke test)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--doc-only", action="store_true", help="rewrite the doc from the last run's saved results")
    ap.add_argument("--keep", metavar="JSON", help="start from the sections saved in JSON (a partial run's)")
    args = ap.parse_args(argv)
    if args.run:
        spec = json.loads(args.run)
        print(json.dumps(runners()[spec["kind"]](spec)))
        return 0
    if args.quick:
        args.rounds, args.dense_rows, args.sparse_rows = 1, 100_000, 100_000
    sections_asked = args.sections.split(",")
    cmdline = "python tools/bench_throughput.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    tag = "" if not args.quick else "-quick"
    log = lambda s: print(s, flush=True)  # noqa: E731
    t_start = time.time()
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    R = _Saved()
    if args.doc_only:
        with open(RESULTS) as fh:
            saved = json.load(fh)
        R, cmdline, args.rounds = saved["R"], saved["cmdline"], saved["rounds"]
        R["targets"] = report.targets_of(R)  # as this version of the tool states them
    else:
        log("generating data (once; kept in bench-data/throughput/)")
        dense = make_dense(args.dense_rows, 100_000, tag)
        sparse = make_sparse(args.sparse_rows, 200_000, tag)
        if args.keep:
            with open(args.keep) as fh:
                kept = json.load(fh)
            if "R" in kept:  # a finished run's results: keep its command too
                cmdline = kept["cmdline"] + "\n" + cmdline
                kept = kept["R"]
            R.update(kept)
            measure.LOADS.extend(kept.get("loads", []))
        sections.run_all(R, args, sections_asked, dense, sparse, log)
        version = harness.code_version(REPO)
        R["commits"] = {**R.get("commits", {}), **{sec.replace("-", "_"): version for sec in sections_asked}}
        R["loads"] = measure.LOADS
        with open(RESULTS, "w") as fh:
            json.dump({"R": R, "cmdline": cmdline, "rounds": args.rounds}, fh)
    log(f"total {time.time() - t_start:.0f} s")
    text = report.write_doc(R, args, cmdline)
    if not args.no_write:
        with open(DOC, "w") as fh:
            fh.write(text)
        log(f"wrote {DOC}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
