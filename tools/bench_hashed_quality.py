"""The hashed store forced small against the exact store on real data: docs/hashed-quality.md.

movielens-small (``--movielens DIR``: the libsvm files ``{train,test}-{rating,liked}.svm.gz``; 10,354 features:
user and movie one-hot, 20 genre features), regression (rating: test RMSE) and binary (rating >= 4: test log
loss). Every run is ``python -m streamfm train TRAIN --model DIR --task T --method M --epochs E -q`` with the
defaults otherwise (the exact store fits the default budget), then ``--bits B`` for each ``--bits``, and is
scored by ``streamfm evaluate TEST --json``. Collisions and fill come from the model's manifest.

    python tools/bench_hashed_quality.py [--movielens DIR] [--bits 16 20] [--epochs 5]
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from tools.docblock import write_page  # noqa: E402
TASKS = (("regression", "rating", "rmse"), ("binary", "liked", "log_loss"))


def cli(*argv) -> str:
    out = subprocess.run([sys.executable, "-m", "streamfm", *map(str, argv)], capture_output=True, text=True,
                         cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO))
    if out.returncode != 0:
        raise SystemExit(f"streamfm {' '.join(map(str, argv))} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--movielens", default=os.path.normpath(os.path.join(REPO, "..", "shared", "data",
                                                                         "movielens-small")))
    ap.add_argument("--bits", type=int, nargs="+", default=[16, 20])
    ap.add_argument("--methods", nargs="+", default=["fm", "llfm-jo"])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--runs-dir", default=os.path.join(REPO, "bench-runs", "hashed-quality"))
    ap.add_argument("--out", default=os.path.join(REPO, "docs", "hashed-quality.md"))
    args = ap.parse_args(argv)
    rows = []
    for task, label, metric in TASKS:
        train, test = (os.path.join(args.movielens, f"{s}-{label}.svm.gz") for s in ("train", "test"))
        for method in args.methods:
            exact = None
            for bits in [None, *args.bits]:
                model = os.path.join(args.runs_dir, f"{label}-{method}-{bits or 'exact'}")
                subprocess.run(["rm", "-rf", model], check=True)
                extra = [] if bits is None else ["--bits", bits]
                cli("train", train, "--model", model, "--task", task, "--method", method, "--epochs", args.epochs,
                    "-q", *extra)
                value = json.loads(cli("evaluate", test, "--model", model, "--json"))[metric]
                with open(os.path.join(model, "manifest.json")) as fh:
                    m = json.load(fh)["model"]
                exact = value if bits is None else exact
                rows.append({"task": f"{label} ({metric.replace('_', ' ')})", "method": method,
                             "store": "exact" if bits is None else f"hashed 2^{bits}", "value": value,
                             "diff": value - exact, "fill": m.get("table_fill"),
                             "collisions": m["counters"].get("collisions", 0)})
                print(json.dumps(rows[-1]), flush=True)
    lines = ["# The hashed store forced small, against the exact store (movielens-small)", "",
             "Written by `tools/bench_hashed_quality.py`; every figure below is from this run:", "",
             "    python tools/bench_hashed_quality.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
             "", f"Each model trains {args.epochs} epochs with the defaults (early stopping on a held-out share "
             "of the training rows, AdaGrad, rank 10, 50 anchors for llfm-jo) and is scored on the test rows "
             "by `streamfm evaluate`. \"difference\" is the hashed model's metric minus the exact one's (lower "
             "is better for both metrics).", "",
             "| data (metric) | method | store | test metric | difference | slots touched | collisions |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        fill = "-" if r["fill"] is None else f"{r['fill']:,}"
        coll = "-" if r["store"] == "exact" else f"{r['collisions']:,}"
        lines.append(f"| {r['task']} | {r['method']} | {r['store']} | {r['value']:.4f} | {r['diff']:+.4f} | "
                     f"{fill} | {coll} |")
    write_page(args.out, lines)


if __name__ == "__main__":
    main()
