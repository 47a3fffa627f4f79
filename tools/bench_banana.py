"""Banana, the data set where a plain FM fails: the four methods with default settings.

Paper split sizes (3,533 train / 1,767 test), stratified, one seeded split per
run; features standardised with training statistics (by the estimators);
every method with its defaults. Writes docs/banana.md.

    python tools/bench_banana.py [--runs 5] [--data ../shared/data]
"""
import argparse
import os
import sys
import time

import numpy as np
from sklearn.metrics import accuracy_score, log_loss

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from streamfm.estimators import FMClassifier, LLFMClassifier  # noqa: E402
from tools.benchdata import stratified_split  # noqa: E402
from tools.docblock import write_page  # noqa: E402

PAPER = {"fm": (0.6770, 53.53), "llfm-do": (0.2371, 89.80), "llfm-apl": (0.2337, 89.87), "llfm-jo": (0.2201, 90.49)}


def _defaults() -> str:
    est = LLFMClassifier()
    return (f"at most {est.n_epochs} epochs, early stopping {est.early_stopping!r} after {est.n_iter_no_change}, "
            f"rank {est.rank}, anchors {est.anchors!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "banana.md"))
    args = ap.parse_args()
    raw = np.loadtxt(os.path.join(args.data, "banana", "banana.csv"), delimiter=",")
    X, y = raw[:, :2], raw[:, 2]
    res = {m: [] for m in PAPER}
    for run in range(args.runs):
        tr, te = stratified_split(y, 3533, seed=run)
        for method in PAPER:
            est = FMClassifier(random_state=run) if method == "fm" else LLFMClassifier(method=method, random_state=run)
            t = time.perf_counter()
            est.fit(X[tr], y[tr])
            fit_s = time.perf_counter() - t
            P = est.predict_proba(X[te])
            res[method].append((log_loss(y[te], P), 100 * accuracy_score(y[te], est.classes_[P.argmax(1)]), fit_s,
                                est.training_metrics_["mean_k"] if method != "fm" else 1.0))
            print(f"run {run} {method:9s} log loss {res[method][-1][0]:.4f} acc {res[method][-1][1]:.2f}%", flush=True)
    lines = ["# Banana: the four methods with default settings", "",
             "Command: `python tools/bench_banana.py --runs %d` (commit of the run: see git log)." % args.runs, "",
             "Paper split sizes (3,533 train / 1,767 test), stratified, one seeded split per run "
             "(seeds 0..%d); the estimators' defaults (%s); "
             "mean ± standard deviation over the runs. Paper: Table 2 of Liu et al. (2017)." % (args.runs - 1, _defaults()),
             "",
             "| method | test log loss | test accuracy (%) | paper log loss | paper accuracy (%) | mean k | fit seconds |",
             "|---|---|---|---|---|---|---|"]
    for method, rows in res.items():
        a = np.array(rows)
        lines.append(f"| {method} | {a[:, 0].mean():.4f} ± {a[:, 0].std():.4f} | {a[:, 1].mean():.2f} ± {a[:, 1].std():.2f} "
                     f"| {PAPER[method][0]:.4f} | {PAPER[method][1]:.2f} | {a[:, 3].mean():.2f} | {a[:, 2].mean():.2f} |")
    write_page(args.out, lines)


if __name__ == "__main__":
    main()
