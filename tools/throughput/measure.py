"""Measurements of the throughput benchmark: one spec in a fresh process, and rounds of specs.

A spec is a dict naming a runner of ``peers.py`` or ``breakdown.py``
(``kind``) and its inputs; ``measure`` runs ``tools/bench_throughput.py --run
SPEC`` through ``tools/harness.py`` and returns the runner's result with the
process's own wall time, CPU time and peak RSS. ``spec["code"]``, if given,
is another checkout (``code_at``: a commit extracted with these tools copied
in) whose copy of the tool runs the measurement, so it imports that commit's
streamfm.
"""
from __future__ import annotations

import json
import os
import sys

from tools import harness
from tools.harness import REPO, WORK

TOOL = os.path.join(REPO, "tools", "bench_throughput.py")
LOADS: list = []  # 1-minute load average before every measurement


def code_at(ref: str) -> str:
    """The checkout of commit ``ref`` with these tools (``harness.code_at`` under WORK)."""
    return harness.code_at(ref, WORK)


def measure(spec, env=None):
    """Run one measurement in a fresh process; its result plus the process's wall, CPU time and peak RSS."""
    tool = TOOL
    if spec.get("code"):
        tool = os.path.join(spec["code"], "tools", os.path.basename(TOOL))
    rec = harness.run([sys.executable, tool, "--run", json.dumps(spec)], env=env)
    LOADS.append(rec.load_before[0])
    rec.check(spec["kind"])
    res = rec.last_json()
    res["process_seconds"] = rec.wall
    res["process_cpu_seconds"] = rec.cpu
    res["process_peak_rss_mb"] = rec.peak_rss_mb
    return res


def rounds(specs, n_rounds, log):
    """Run every spec once per round, alternating; each spec's fastest round, with every round's rates.

    ``all_rows_per_s`` and ``all_epoch_rows_per_s`` list every round's rates in
    round order: the rounds alternate the systems, so round i of one pairs up
    with round i of another.
    """
    def job(spec):
        def one():
            res = measure(spec)
            res["rows_per_s"] = res["rows"] / res["seconds"]
            if "epoch_seconds" in res:
                res["epoch_rows_per_s"] = res["rows"] / res["epoch_seconds"]
            return res
        return one

    def show(rnd, name, res):
        log(f"  round {rnd + 1} {name}: {res['rows_per_s']:,.0f} rows/s"
            + (f", epoch {res['epoch_rows_per_s']:,.0f} rows/s" if "epoch_rows_per_s" in res else "")
            + f" ({res['seconds']:.2f} s, RSS {res['train_peak_rss_mb']:.0f} MB"
            + (f", log loss {res['log_loss']:.4f}" if "log_loss" in res else "") + ")")

    runs = harness.alternate([(name, job(spec)) for name, spec in specs], n_rounds, on_result=show)
    best = {}
    for name, results in runs.items():
        top = dict(max(results, key=lambda r: r["rows_per_s"]))
        for key in ("rows_per_s", "epoch_rows_per_s"):
            if key in results[0]:
                top["all_" + key] = [r[key] for r in results]
        best[name] = top
    return best


def sf_spec(train, test, model, args, cleanup=True):
    """A ``streamfm train`` measurement: training files, test file (or None), model directory, options."""
    return {"kind": "streamfm", "train": [train], "test": test, "model": model, "args": args, "cleanup": cleanup}


def sf_cmd(spec):
    return "python -m streamfm train " + " ".join(spec["train"]) + " --model MODEL --quiet --early-stop 0 " \
        + " ".join(spec["args"])


def vw_cmd(spec):
    return f"vw -d {os.path.relpath(spec['train'], REPO)} {spec['args']} -f MODEL   (vowpalwabbit.Workspace + run_parser)"
