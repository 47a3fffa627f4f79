"""Alternate `streamfm train` runs of two commits on the same data: an A/B of a change's speed.

    python tools/ab_train.py OLD NEW [--rounds 6] [--anchors 64,4096] [--data PARQUET] [-- extra train args]

Each commit is checked out into a throwaway git worktree (its own numba cache:
kernels edited in one file are never served from another's cache, see
docs/architecture.md), compiled once by a tiny run, then for every round and
every m the two commits train llfm-jo for one epoch in fresh processes, in
alternating order. Printed: each round, then a table of the fastest and the
median epoch rows/s and the m ratio round by round. The data default is the
100,000-row dense set of tools/bench_throughput.py's data scaling (generate it
with that tool first). The host is shared and its speed drifts between
phases: read the rounds side by side, not one number.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tools import bench_throughput as bt  # noqa: E402

DATA = os.path.join(REPO, "bench-data", "throughput", "dense-x1-100000-train.parquet")
TINY = os.path.join(REPO, "bench-data", "throughput", "dense-tiny-train.parquet")


def worktree(ref: str, root: str) -> str:
    """A detached worktree of ``ref`` under ``root`` (removed by :func:`cleanup`)."""
    path = os.path.join(root, ref.replace("/", "_"))
    subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", path, ref], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def cleanup(paths: list[str]) -> None:
    for p in paths:
        subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", p], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    subprocess.run(["git", "-C", REPO, "worktree", "prune"], check=False)


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
    root = tempfile.mkdtemp(prefix="streamfm-ab-")
    trees = {}
    try:
        for name in ("old", "new"):
            trees[name] = worktree(getattr(args, name), root)
            if os.path.exists(TINY):  # compile the kernels once, outside the timed rounds
                subprocess.run([sys.executable, "-m", "streamfm", "train", TINY, "--model",
                                os.path.join(root, f"tiny-{name}"), "--method", "llfm-jo", "--quiet",
                                "--epochs", "1"], cwd=trees[name], check=True, stdout=subprocess.DEVNULL)
        res: dict = {}
        for rnd in range(args.rounds):
            order = ["old", "new"] if rnd % 2 == 0 else ["new", "old"]
            for m in ms:
                for name in order:
                    spec = bt.sf_spec(args.data, None, os.path.join(root, f"model-{name}-{m}"),
                                      ["--method", "llfm-jo", "--anchors", str(m), "--epochs", "1", *args.extra])
                    spec["code"] = trees[name]
                    r = bt.measure(spec)
                    eps = r["rows"] / r["epoch_seconds"]
                    res.setdefault((name, m), []).append(eps)
                    print(f"round {rnd + 1} {name} m={m}: {eps:,.0f} epoch rows/s", flush=True)
        print(f"\n| code | {' | '.join(f'm={m} fastest | m={m} median' for m in ms)} |")
        print("|---|" + "---:|" * (2 * len(ms)))
        for name in ("old", "new"):
            cells = " | ".join(f"{max(res[(name, m)]):,.0f} | {np.median(res[(name, m)]):,.0f}" for m in ms)
            print(f"| {name} ({getattr(args, name)}) | {cells} |")
        if len(ms) == 2:
            for name in ("old", "new"):
                per = [a / b for a, b in zip(res[(name, ms[1])], res[(name, ms[0])])]
                print(f"{name}: m={ms[1]} / m={ms[0]} round by round "
                      + ", ".join(f"{x:.2f}" for x in per) + f" (median {np.median(per):.2f})")
    finally:
        cleanup(list(trees.values()))
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
