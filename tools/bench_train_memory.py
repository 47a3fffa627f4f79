"""Training memory does not grow with the data: peak RSS of `streamfm train` on N and 10N rows.

Generates Covtype-shaped libsvm files (tools/datagen.py, seeded; every one of
the 54 features written, as a dense export would) of 600,000 rows (about the
size of Covtype) and 6,000,000 rows (10x), then runs `streamfm train` on each
in a fresh process whose address space is capped (RLIMIT_AS, set by
``tools/harness.py``) *below the size of the larger file*, and records peak
RSS (VmHWM), peak address space (VmPeak), wall time and rows/s. Writes
docs/train-memory.md.

    python tools/bench_train_memory.py [--rows 600000 6000000] [--limit-mb 1800] [--method llfm-jo]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tools import harness  # noqa: E402
from tools.docblock import write_page  # noqa: E402

DATA = os.path.join(ROOT, "bench-data")


def _status(key: str) -> int:
    """A /proc/self/status size in whole MiB (-1 if absent)."""
    mb = harness.status_mb(key)
    return int(mb) if mb == mb else -1


def child(args) -> None:
    """Runs in a fresh process, its address space capped by the parent: train, report."""
    from streamfm.cli import main

    t = time.perf_counter()
    code = main(["train", args.data, "--model", args.model, "--method", args.method, "--epochs", str(args.epochs),
                 "--early-stop", "0", "-q", "--checkpoint-seconds", "1e9"])
    seconds = time.perf_counter() - t
    print(json.dumps({"exit": code, "seconds": seconds, "vm_hwm_mb": _status("VmHWM"),
                      "vm_peak_mb": _status("VmPeak")}), flush=True)


def ensure_file(rows: int) -> str:
    from tools.datagen import write_covtype_libsvm

    os.makedirs(DATA, exist_ok=True)
    path = os.path.join(DATA, f"covtype-dense-{rows}.svm")
    if not os.path.exists(path):
        t = time.perf_counter()
        write_covtype_libsvm(path, rows, seed=0, dense=True)
        print(f"generated {path} in {time.perf_counter() - t:.0f} s", flush=True)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[600_000, 6_000_000])
    ap.add_argument("--limit-mb", type=int, default=1800)
    ap.add_argument("--method", default="llfm-jo")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "train-memory.md"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    results = []
    for rows in args.rows:
        path = ensure_file(rows)
        model = os.path.join(DATA, f"model-{rows}")
        shutil.rmtree(model, ignore_errors=True)
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--data", path, "--model", model,
               "--limit-mb", str(args.limit_mb), "--method", args.method, "--epochs", str(args.epochs)]
        out = harness.run(cmd, limit_as_mb=args.limit_mb)
        if out.returncode != 0 or not out.stdout.strip():
            print(out.stdout, out.stderr, file=sys.stderr)
            raise SystemExit(f"training on {rows} rows failed under the {args.limit_mb} MB limit")
        r = out.last_json()
        r.update(rows=rows, file_mb=os.path.getsize(path) / 2**20)
        r["rows_per_s"] = rows * args.epochs / r["seconds"]
        results.append(r)
        print(r, flush=True)
    small, large = results[0], results[-1]
    ratio = large["vm_hwm_mb"] / small["vm_hwm_mb"]
    lines = [
        "# Training memory does not grow with the data",
        "",
        f"Command: `python tools/bench_train_memory.py --rows {' '.join(map(str, args.rows))} "
        f"--limit-mb {args.limit_mb} --method {args.method} --epochs {args.epochs}`",
        "",
        "Covtype-shaped libsvm files (tools/datagen.py, seed 0, all 54 features written on every row), "
        f"`streamfm train FILE --method {args.method} --epochs {args.epochs} --early-stop 0` (every row trained on, "
        f"no validation) with default settings otherwise, each in a "
        f"fresh process whose address space is capped at {args.limit_mb} MiB with RLIMIT_AS "
        "(`resource.setrlimit`, no cgroup). Peak RSS is VmHWM, peak address space VmPeak, "
        "from /proc/self/status at the end of the run; the time includes the scan pass, k-means, the "
        "epochs and the checkpoints.",
        "",
        "| rows | file MiB | address-space limit MiB | peak RSS MiB | peak address space MiB | seconds | rows/s (epochs) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['rows']:,} | {r['file_mb']:,.0f} | {args.limit_mb:,} | {r['vm_hwm_mb']:,} | "
                     f"{r['vm_peak_mb']:,} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} |")
    lines += ["", f"Peak RSS of the {large['rows']:,}-row run is {ratio:.3f}x that of the {small['rows']:,}-row run "
              f"({'within' if abs(ratio - 1) <= 0.10 else 'NOT within'} 10%); the larger file "
              f"({large['file_mb']:,.0f} MiB) is {'larger' if large['file_mb'] > args.limit_mb else 'NOT larger'} "
              f"than the {args.limit_mb} MiB the process may map, so the data cannot have been held in memory.",
              "",
              "What the memory holds: the model (here 50 anchors x 54 features x rank 10, a few MiB), one reader "
              "chunk, the shuffle buffer (at most 100,000 rows, or 8M stored values) and one training batch — "
              "none of which depends on the number of rows; the libraries (numpy, numba, FAISS, pyarrow, "
              "scikit-learn) account for most of the rest."]
    write_page(args.out, lines)


if __name__ == "__main__":
    main()
