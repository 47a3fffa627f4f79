"""Choosing hyper-parameters from training data alone: a small grid on a validation split.

The procedure (the one tools/reproduce.py runs for every method, data set and split):

1. split the training set once more, stratified and seeded, into a fit part
   (80%) and a validation part (20%) -- tools/benchdata.py writes them as
   ``tune-fit/`` and ``tune-valid/``; the test set is never read;
2. for every point of the method's grid (``GRIDS``: the step size eta0 in
   0.03, 0.1, 0.3; for the LLFMs also their locality, rho in 0.3, 1 for LLFM-JO,
   beta in 1, 3 for LLFM-DO and LLFM-APL; every other hyper-parameter at
   streamfm's default), train on the fit part with the same command line,
   epochs and seed as the final run (``streamfm train FIT --valid VALID ...``);
3. keep the point with the lowest validation log loss after the last epoch
   (ties: the smaller step; every run trains all its epochs: ``--early-stop 0``,
   so the final run never stops on, or keeps an epoch chosen by, the test set);
4. retrain on the whole training set with it.

Why these two: eta0 is the bias-variance knob of SGD (the grid brackets the
default AdaGrad step, 0.1, by a factor of 3 each way). Noisy data sets
(Banana, Magic04: ~10-15% Bayes error) want small final steps; nearly
separable ones with many classes (LETTER) want large steps for longer. rho
is by definition a property of the data (the Lipschitz-to-noise
ratio of the paper's eq. 8; the paper searched it on a grid too), and beta is
its counterpart in the soft-assignment coding. Measured on validation splits
(docs/results.md): no single value of either suits all three data sets.

    python tools/tune.py FIT VALID --method llfm-jo --epochs 15 [--seed 0] [--work DIR] [-- EXTRA TRAIN ARGS]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

#: the grids, per method: hyper-parameter (a `streamfm train` flag without --) -> values;
#: the steps are AdaGrad's (the default optimiser)
STEPS = (0.03, 0.1, 0.3)
GRIDS = {
    "fm": {"eta0": STEPS},
    "llfm-do": {"eta0": STEPS, "beta": (1.0, 3.0)},
    "llfm-apl": {"eta0": STEPS, "beta": (1.0, 3.0)},
    "llfm-jo": {"eta0": STEPS, "rho": (0.3, 1.0)},
}


def grid_points(method=None, grid=None):
    """Every combination of the method's grid, as a list of {flag: value} dicts, eta0 varying slowest."""
    import itertools

    grid = grid if grid is not None else GRIDS[method]
    names = sorted(grid, key=lambda n: (n != "eta0", n))
    return [dict(zip(names, vals)) for vals in itertools.product(*(grid[n] for n in names))]


def point_name(point: dict) -> str:
    """The point as a directory name: "beta=1,eta0=0.5"."""
    return ",".join(f"{k}={v:g}" for k, v in sorted(point.items()))


def point_label(point: dict) -> str:
    """The point for people: "eta0 0.5, rho 0.3" (eta0 first)."""
    return ", ".join(f"{k} {v:g}" for k, v in sorted(point.items(), key=lambda kv: (kv[0] != "eta0", kv[0])))


def train_argv(data, model, *, method, epochs, seed, valid=None, params=None, extra=()) -> list[str]:
    """The `streamfm train` arguments of one run (what `python -m streamfm` is given)."""
    argv = ["train", data, "--model", model]
    if valid:
        argv += ["--valid", valid]
    argv += ["--method", method, "--epochs", str(epochs), "--seed", str(seed)]
    for k, v in sorted((params or {}).items()):
        argv += [f"--{k.replace('_', '-')}", v if isinstance(v, str) else f"{v:g}"]
    if valid:  # the procedure compares last epochs (and the final run's --valid is the test set)
        argv += ["--early-stop", "0"]
    return argv + list(extra) + ["--quiet"]


def command_line(argv) -> str:
    return "python -m streamfm " + " ".join(argv)


def run_streamfm(argv, model) -> None:
    """Run `streamfm train` in this process, unless ``model`` already holds the finished run of ``argv``.

    The command line's output goes to ``model.log``; ``model.argv.json`` records the arguments.
    """
    from streamfm.cli import main

    stamp = model.rstrip("/") + ".argv.json"
    manifest = os.path.join(model, "manifest.json")
    if os.path.exists(stamp) and os.path.exists(manifest):
        with open(stamp) as fh:
            same = json.load(fh) == list(argv)
        with open(manifest) as fh:
            done = json.load(fh)["training"]["status"] == "complete"
        if same and done:
            return
    shutil.rmtree(model, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(model)), exist_ok=True)
    with open(model.rstrip("/") + ".log", "w") as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        rc = main(list(argv))
    if rc != 0:
        raise RuntimeError(f"{command_line(argv)} exited with {rc}; see {model}.log")
    with open(stamp, "w") as fh:
        json.dump(list(argv), fh)


def last_valid(model) -> dict:
    """The validation metrics after the last epoch of a finished run."""
    with open(os.path.join(model, "metrics.jsonl")) as fh:
        recs = {}
        for line in fh:
            r = json.loads(line)
            recs[r["epoch"]] = r  # a repeated epoch (after a crash): the later record wins
    return recs[max(recs)]["valid"]


def choose(scores: list[tuple[dict, float]]) -> dict:
    """The point with the lowest validation log loss; ties go to the earlier grid point (the smaller step)."""
    best = min(range(len(scores)), key=lambda i: (round(scores[i][1], 12), i))
    return scores[best][0]


def tune(fit, valid, work, *, method, epochs, seed, grid=None, extra=()) -> tuple[dict, list]:
    """Run the grid (in this process) and return (chosen point, [(point, valid log loss, argv)])."""
    rows = []
    for point in grid_points(method, grid):
        model = os.path.join(work, f"{method}-{point_name(point)}")
        argv = train_argv(fit, model, method=method, epochs=epochs, seed=seed, valid=valid, params=point, extra=extra)
        run_streamfm(argv, model)
        rows.append((point, last_valid(model)["log_loss"], argv))
    return choose([(p, s) for p, s, _ in rows]), rows


def main(argv=None):
    ap = argparse.ArgumentParser(description="Choose hyper-parameters on a validation split (training data only).")
    ap.add_argument("fit", help="training part (files, glob or directory)")
    ap.add_argument("valid", help="validation part, carved from the training data")
    ap.add_argument("--method", default="llfm-jo")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="tune-runs", help="folder for the grid's models (default: ./tune-runs)")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="further `streamfm train` arguments, after --")
    args = ap.parse_args(argv)
    extra = [a for a in args.extra if a != "--"]
    chosen, rows = tune(args.fit, args.valid, args.work, method=args.method, epochs=args.epochs, seed=args.seed,
                        extra=extra)
    for point, score, run_argv in rows:
        print(f"{point_label(point):18s} valid log loss {score:.4f}   {command_line(run_argv)}")
    print(f"chosen: {point_label(chosen)}")


if __name__ == "__main__":
    main()
