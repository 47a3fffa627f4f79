"""Alternate in-process training of two (or more) commits on rows in memory: an A/B of the training step.

    python tools/ab_kernel.py OLD NEW [MORE ...] [--rounds 6] [--rows 100000] [--llfm-sparse-rows 20000]
                              [--cases fm-dense,...]

No files, no reading, no scaling: each case's rows are made in memory
(``tools/datagen.py``), cut into chunks of 4,096 rows and trained for one
epoch through ``LLFMModel.partial_fit_chunk`` (one thread), after a warm-up
on a few chunks that loads the kernels from numba's cache (or compiles them).
What it measures is the training step alone: the kernel and its Python
driver (search, blocks, kernel calls).

Cases: ``fm-dense`` and ``llfm-dense`` (llfm-jo, m = 50): Covtype-shaped
rows, 54 features, standardised, full width (the kernels' dense path);
``fm-sparse`` and ``llfm-sparse``: CTR-shaped rows, 30 categorical fields
hashed into 2^16 features (about 30 non-zeros a row, value 1), CSR; llfm on
these rows is some 15x slower than on the dense ones, so it trains on fewer
rows. Rank 10, AdaGrad (the defaults).

Each commit is extracted once under bench-data/throughput-work
(``tools/harness.py``'s ``code_at``: a fresh copy with its own numba cache);
every measurement runs in a fresh process (``harness.run``), and every round
runs each case for every commit one after the other, the commits' order
turning round by round (``harness.alternate``).
Printed: every measurement, then per case the fastest and the median rows/s
of each commit and the round-by-round ratio to the first commit, by wall time
and by CPU time (the process's, the search's helper thread included; on a
busy shared host waiting for a core inflates wall time, not CPU time). The
host's speed drifts: read the rounds side by side.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = ("fm-dense", "llfm-dense", "fm-sparse", "llfm-sparse")
CHUNK = 4096
SPARSE_P = 1 << 16


def _rows(case: str, n: int):
    """(list of Chunk, p, sample Chunk) of one case."""
    import scipy.sparse as sp

    from streamfm.io.chunk import Chunk
    from tools.datagen import covtype_blocks, ctr_blocks

    if case.endswith("dense"):
        X, y = next(covtype_blocks(n, seed=7, block=n))
        X = (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1.0)
        make = lambda a, b: Chunk.from_dense(np.ascontiguousarray(X[a:b]), y[a:b].astype(np.float64))  # noqa: E731
    else:
        ids, y = next(ctr_blocks(n, seed=7, block=n))
        rows = np.repeat(np.arange(n), ids.shape[1])
        M = sp.csr_matrix((np.ones(ids.size), (rows, ids.ravel() % SPARSE_P)), shape=(n, SPARSE_P))
        M.sum_duplicates()
        M.data[:] = 1.0
        make = lambda a, b: Chunk.from_scipy(M[a:b], y[a:b].astype(np.float64))  # noqa: E731
    p = X.shape[1] if case.endswith("dense") else SPARSE_P
    return [make(a, min(n, a + CHUNK)) for a in range(0, n, CHUNK)], p, make(0, min(n, 10_000))


def _model(case: str, p: int, sample, n: int):
    from streamfm.models.config import Config
    from streamfm.models.core import LLFMModel

    config = Config(method="fm" if case.startswith("fm") else "llfm-jo", anchors=50, rank=10)
    model = LLFMModel(config, p, "binary")
    model.init_params(mean_sq_norm=float(np.sum(sample.data ** 2)) / sample.n_rows)
    model.set_feature_rows(np.full(p, n))
    model.init_anchors(sample)
    model.set_epoch_rows(n)
    return model


def run_case(case: str, n: int) -> dict:
    """One epoch of ``case`` on ``n`` rows in this process: rows/s of the training step."""
    chunks, p, sample = _rows(case, n)
    warm = _model(case, p, sample, n)
    for c in chunks[:3]:
        warm.partial_fit_chunk(c, c.y)
    model = _model(case, p, sample, n)
    t, cpu = time.perf_counter(), time.process_time()
    for c in chunks:
        model.partial_fit_chunk(c, c.y)
    seconds, cpu_seconds = time.perf_counter() - t, time.process_time() - cpu
    return {"rows": n, "seconds": seconds, "rows_per_s": n / seconds, "rows_per_cpu_s": n / cpu_seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("commits", nargs="*")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--llfm-sparse-rows", type=int, default=20_000)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--run", help=argparse.SUPPRESS)  # JSON {"case", "rows", "code"}: one measurement
    args = ap.parse_args(argv)
    if args.run:
        spec = json.loads(args.run)
        sys.path[:0] = [spec["code"], REPO]  # that commit's streamfm, this checkout's tools
        print(json.dumps(run_case(spec["case"], spec["rows"])))
        return 0
    if len(args.commits) < 2:
        ap.error("give at least two commits")
    sys.path.insert(0, REPO)
    from tools import harness

    cases = args.cases.split(",")
    codes = [(c, harness.code_at(c)) for c in args.commits]

    def job(case, commit, code):
        def one():
            rows = args.llfm_sparse_rows if case == "llfm-sparse" else args.rows
            spec = json.dumps({"case": case, "rows": rows, "code": code})
            rec = harness.run([sys.executable, os.path.abspath(__file__), "--run", spec], cwd=code)
            return rec.check(f"{commit} {case}").last_json()
        return one

    def show(rnd, name, res):
        commit, case = name
        print(f"round {rnd + 1} {case:12s} {commit}: {res['rows_per_s']:,.0f} rows/s, "
              f"{res['rows_per_cpu_s']:,.0f} rows per CPU s", flush=True)

    # every round runs each case for every commit, the commits' order turning round by round
    got = harness.alternate([[((commit, case), job(case, commit, code)) for commit, code in codes]
                             for case in cases], args.rounds, rotate=True, on_result=show)
    first = codes[0][0]
    for key, what in (("rows_per_s", "rows/s"), ("rows_per_cpu_s", "rows per CPU second")):
        print(f"\n{what}\n\n| case | {' | '.join(f'{c} fastest | {c} median' for c, _ in codes)} "
              f"| ratios to {first}, round by round |")
        print("|---|" + "---:|" * (2 * len(codes)) + "---|")
        for case in cases:
            v = {c: [r[key] for r in got[c, case]] for c, _ in codes}
            cells = " | ".join(f"{max(v[c]):,.0f} | {np.median(v[c]):,.0f}" for c, _ in codes)
            ratios = "; ".join(f"{c}: " + ", ".join(f"{a / b:.2f}" for a, b in zip(v[c], v[first]))
                               for c, _ in codes[1:])
            print(f"| {case} | {cells} | {ratios} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
