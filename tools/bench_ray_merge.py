"""The bytes a Ray round moves, exact store against hashed store: docs/scaling-merge.md.

Generated CTR data (``tools/datagen.py``, seed 7, 30 hashed fields, 2^20 features) in Parquet; each system
trains one epoch through ``python -m streamfm train --engine ray --workers N --sync-rows R`` in a fresh
process (its own local Ray instance). The engine records, per epoch, the megabytes of arrays the workers'
states carried to the driver per round (``merge_mb_up_per_round``, all workers) and the merge broadcast
to them (``merge_mb_down_per_round``, counted once per worker); the page shows them beside the model's
predicted size (``models.memory.model_bytes``): what a dense merge moves per worker each way.

    pip install ".[ray]"
    python tools/bench_ray_merge.py [--rows 60000] [--workers 2] [--sync-rows 8192]
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from tools.docblock import write_page  # noqa: E402

P = 1 << 20


def make_data(directory: str, rows: int) -> str:
    from tools.bench_clicklog import make_data as write

    return write(directory, rows, max(rows // 10, 1), P)["train"]


def predicted_mb(method: str, anchors: int, bits) -> float:
    from streamfm.models.memory import StoreSpec, hashed_spec, model_bytes

    n_fms = 1 if method == "fm" else anchors + 1
    spec = StoreSpec() if bits is None else hashed_spec(bits)
    return model_bytes(spec, n_fms, P, 1, 10, True) / 2**20


def run(name, extra, data, args) -> dict:
    model = os.path.join(args.runs_dir, "".join(c if c.isalnum() else "-" for c in name))
    subprocess.run(["rm", "-rf", model], check=True)
    cmd = [sys.executable, "-m", "streamfm", "train", data, "--model", model, "--epochs", "1", "-q",
           "--engine", "ray", "--workers", str(args.workers), "--sync-rows", str(args.sync_rows),
           "--early-stop", "0", "--memory-budget", "100G", *extra]
    print(f"[{name}] {' '.join(cmd[3:])}", flush=True)
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                         env=dict(os.environ, PYTHONPATH=REPO))
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    with open(os.path.join(model, "metrics.jsonl")) as fh:
        rec = [json.loads(line) for line in fh if line.strip()][-1]
    return {"name": name, "args": " ".join(extra), "up": rec["merge_mb_up_per_round"],
            "down": rec["merge_mb_down_per_round"], "rows": rec["rows"], "seconds": time.perf_counter() - t,
            "round_seconds": rec["round_seconds"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=60_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sync-rows", type=int, default=8192)
    ap.add_argument("--anchors", type=int, default=50)
    ap.add_argument("--bits", type=int, default=20)
    ap.add_argument("--data-dir", default=os.path.join(REPO, "bench-data", "clicklog"))
    ap.add_argument("--runs-dir", default=os.path.join(REPO, "bench-runs", "ray-merge"))
    ap.add_argument("--out", default=os.path.join(REPO, "docs", "scaling-merge.md"))
    args = ap.parse_args(argv)
    os.makedirs(args.runs_dir, exist_ok=True)
    data = make_data(args.data_dir, args.rows)
    systems = [("fm, exact store", "fm", ["--method", "fm"], None),
               (f"fm --bits {args.bits}", "fm", ["--method", "fm", "--bits", str(args.bits)], args.bits),
               (f"llfm-jo --anchors {args.anchors} --bits {args.bits}", "llfm-jo",
                ["--method", "llfm-jo", "--anchors", str(args.anchors), "--bits", str(args.bits)], args.bits)]
    results = []
    for name, method, extra, bits in systems:
        r = run(name, extra, data, args)
        r["model_mb"] = predicted_mb(method, args.anchors, bits)
        r["exact_mb"] = predicted_mb(method, args.anchors, None)
        results.append(r)
        print(json.dumps(r), flush=True)
    rounds = -(-args.rows // (args.workers * args.sync_rows))
    lines = ["# The bytes a Ray round moves: exact store and hashed store", "",
             "Written by `tools/bench_ray_merge.py`; every figure below is from this run:", "",
             "    python tools/bench_ray_merge.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])), "",
             f"Generated CTR rows (`tools/datagen.py`, seed 7; 30 fields hashed into 2^20 features), "
             f"{args.rows:,} training rows, one epoch on {args.workers} Ray workers, {args.sync_rows:,} rows per "
             f"worker a round (about {rounds} rounds), rank 10, AdaGrad. \"Up\" is the arrays the workers' "
             "states carry to the driver in a round (all workers together); \"down\" the merge broadcast to "
             "them (once per worker). The exact store sends whole states; the hashed store the slots a round "
             "changed (`streamfm/engines/ray/sparse.py`).", "",
             "| system | model MB (predicted) | the exact store's MB | MB up a round | MB down a round |",
             "|---|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['name']} | {r['model_mb']:,.1f} | {r['exact_mb']:,.1f} | {r['up']:,.2f} | "
                     f"{r['down']:,.2f} |")
    write_page(args.out, lines)


if __name__ == "__main__":
    main()
