"""streamfm with its defaults against what a practitioner tries first, on dense data.

For every data set prepared by tools/benchdata.py (bench-data/<name>/split-<s>/:
the paper's seeded train / test splits) and a generated one where FM's missing
squared terms matter (``two-variances``: the classes differ only in their
variance), on every split of ``--runs``:

- streamfm ``fm`` and ``llfm-jo`` with no flag but ``--method`` and ``--seed``
  (``streamfm train split/train --model M --method M --seed s``), then
  evaluated on the test rows as ``streamfm evaluate`` does; training time is
  the command's wall time;
- ``--variant NAME='--flag value ...'`` adds a streamfm configuration to
  compare (for example a candidate default);
- the peers, fitted on the training split only (features standardised with
  the training split's moments): scikit-learn ``LogisticRegression``,
  ``HistGradientBoostingClassifier`` (its own defaults) and an RBF ``SVC``
  whose C and gamma are chosen by 3-fold cross-validation on the training
  split (``GRID``), refitted with Platt scaling for the log loss.

Writes bench-runs/dense/results.json, docs/dense.md and one learning-curve
figure per data set (docs/figures/<name>-defaults.png: the held-out metric of
each epoch, where early stopping held rows out). Finished runs are reused.

    python tools/bench_dense.py [--bench bench-data] [--runs 5] [--datasets banana magic04 letter two-variances]
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from tools import harness  # noqa: E402

#: the RBF-SVM's grid: C, and gamma as a multiple of scikit-learn's "scale" (1 / (n_features * Var X))
GRID = {"C": (1.0, 10.0, 100.0), "gamma_factor": (0.25, 1.0, 4.0, 16.0)}
PEERS = ("logistic regression", "HistGradientBoosting", "RBF-SVM")
METHODS = ("fm", "llfm-jo")
GENERATED = "two-variances"
#: two-variances: rows, features, and the second class's standard deviation
TWO_VARIANCES = {"train": 8000, "test": 4000, "features": 10, "sd": 1.5}


# ----------------------------------------------------------------------------- data
def split_dir(bench, ds, s, part):
    return os.path.join(bench, ds, f"split-{s}", part)


def write_two_variances(root, s):
    """Class 0 ~ N(0, I), class 1 ~ N(0, sd^2 I): a linear model, and an FM (no x_i^2 terms), see nothing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1000 + s)
    cfg = TWO_VARIANCES
    for part in ("train", "test"):
        path = os.path.join(split_dir(root, GENERATED, s, part), "part-00000.parquet")
        if os.path.exists(path):
            continue
        n, d = cfg[part], cfg["features"]
        y = rng.integers(0, 2, n)
        X = rng.standard_normal((n, d)) * np.where(y == 1, cfg["sd"], 1.0)[:, None]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        cols = {f"f{j}": X[:, j].astype(np.float32) for j in range(d)}
        cols["label"] = y.astype(np.int64)
        pq.write_table(pa.table(cols), path + ".tmp")
        os.replace(path + ".tmp", path)


def load_xy(path):
    """Features (float64) and labels of a prepared split directory of Parquet shards."""
    import pyarrow.dataset as pads

    table = pads.dataset(path, format="parquet").to_table()
    names = [c for c in table.column_names if c != "label"]
    X = np.column_stack([table.column(c).to_numpy().astype(np.float64) for c in names])
    return X, np.asarray(table.column("label").to_pylist())


# ----------------------------------------------------------------------------- peers
def fit_peers(train, test, seed) -> dict:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC

    (Xtr, ytr), (Xte, yte) = load_xy(train), load_xy(test)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd[sd == 0] = 1.0
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    out = {}

    def record(name, model, t0, **extra):
        proba = model.predict_proba(Xte)
        out[name] = {"test_accuracy": float(accuracy_score(yte, model.classes_[proba.argmax(1)])),
                     "test_log_loss": float(log_loss(yte, proba, labels=model.classes_)),
                     "train_seconds": time.perf_counter() - t0, **extra}

    t = time.perf_counter()
    record("logistic regression", LogisticRegression(max_iter=2000).fit(Xtr, ytr), t)
    t = time.perf_counter()
    record("HistGradientBoosting", HistGradientBoostingClassifier(random_state=seed).fit(Xtr, ytr), t)
    t = time.perf_counter()
    scale = 1.0 / Xtr.shape[1]  # "scale" on standardised features
    grid = {"C": list(GRID["C"]), "gamma": [g * scale for g in GRID["gamma_factor"]]}
    search = GridSearchCV(SVC(kernel="rbf"), grid, cv=StratifiedKFold(3, shuffle=True, random_state=seed))
    search.fit(Xtr, ytr)
    best = search.best_params_
    # probabilities by Platt scaling fitted on 5-fold out-of-fold decisions (what LIBSVM's -b 1 does)
    svm = CalibratedClassifierCV(SVC(kernel="rbf", **best), method="sigmoid", cv=5, ensemble=False).fit(Xtr, ytr)
    record("RBF-SVM", svm, t, C=best["C"], gamma=best["gamma"])
    # the SVM's own decisions (Platt scaling's argmax can differ slightly): accuracy as LIBSVM reports it
    out["RBF-SVM"]["test_accuracy"] = float(accuracy_score(yte, svm.calibrated_classifiers_[0].estimator.predict(Xte)))
    return out


# ----------------------------------------------------------------------------- streamfm
def run_streamfm(train, test, model, argv) -> dict:
    """`streamfm train` in a fresh process (its wall time is the training time), then the test metrics."""
    from streamfm.inference.metrics import evaluate_source
    from streamfm.io.sources import open_source
    from streamfm.run import load

    stamp = os.path.join(model + ".json")
    if os.path.exists(stamp):
        with open(stamp) as fh:
            rec = json.load(fh)
        if rec["argv"] == argv:
            return rec
    import shutil

    shutil.rmtree(model, ignore_errors=True)
    rec = harness.run(harness.streamfm_argv("train", train, "--model", model, *argv, "--quiet"), cwd=ROOT,
                      check=True, what=f"streamfm train {model}")
    wall = rec.wall
    trained = load(model)
    test_m = evaluate_source(trained, open_source(test))
    with open(os.path.join(model, "metrics.jsonl")) as fh:
        recs = {}
        for line in fh:
            r = json.loads(line)
            recs[r["epoch"]] = r
    with open(os.path.join(model, "manifest.json")) as fh:
        manifest = json.load(fh)
    rec = {"argv": argv, "train_seconds": wall, "test_accuracy": test_m["accuracy"],
           "test_log_loss": test_m["log_loss"], "epochs": max(recs),
           "best_epoch": manifest.get("training", {}).get("best_epoch"),
           "anchors": manifest["model"]["config"].get("anchors"),
           "curve": [recs[e].get("valid", {}).get("log_loss") for e in sorted(recs)],
           "train_curve": [recs[e]["train_loss"] for e in sorted(recs)]}
    with open(stamp, "w") as fh:
        json.dump(rec, fh)
    return rec


# ----------------------------------------------------------------------------- report
def _ms(values, fmt="{:.2f}"):
    v = np.asarray(values, float)
    return (fmt + " ± " + fmt).format(v.mean(), v.std(ddof=1) if len(v) > 1 else 0.0)


def _figure(ds, per_split, names, path):
    drawn = {}
    for name in names:
        curves = [r[name]["curve"] for r in per_split if name in r]
        if curves and not any(c is None for cv in curves for c in cv):
            drawn[name] = curves
    if not drawn:  # no held-out rows: nothing to draw
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, curves in drawn.items():
        for i, c in enumerate(curves):
            ax.plot(range(1, len(c) + 1), c, color=f"C{names.index(name)}", alpha=0.7,
                    label=name if i == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("held-out log loss")
    ax.set_title(f"{ds}: streamfm defaults, every split")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(results, names, argv_line, out, fig_dir):
    lines = ["# Dense data: streamfm's defaults against the first peers", "",
             "Every data set's seeded train / test splits (tools/benchdata.py prepares the public ones; "
             f"`{GENERATED}` is generated: two classes that differ only in their variance, "
             f"{TWO_VARIANCES['features']} features, standard deviations 1 and {TWO_VARIANCES['sd']}). "
             "streamfm runs with no flag but `--method` and `--seed`; the peers are fitted on the training "
             "split only, features standardised: scikit-learn `LogisticRegression`, "
             "`HistGradientBoostingClassifier` (its defaults) and an RBF `SVC` with C and gamma chosen by "
             f"3-fold cross-validation on the training split (C in {list(GRID['C'])}, gamma in "
             f"{list(GRID['gamma_factor'])} x 1 / n_features). Mean ± standard deviation over the splits; "
             "training seconds are wall time (streamfm: the whole `streamfm train` command, numba's "
             "compilation from its cache included).", "",
             "Measured with:", "", "    " + argv_line, ""]
    for ds, per_split in results.items():
        lines += [f"## {ds} ({len(per_split)} splits)", "",
                  "| | test accuracy (%) | test log loss | training seconds |", "|---|---|---|---|"]
        for name in names:
            rs = [r[name] for r in per_split if name in r]
            if not rs:
                continue
            lines.append(f"| {name} | {_ms([100 * r['test_accuracy'] for r in rs])} | "
                         f"{_ms([r['test_log_loss'] for r in rs], '{:.4f}')} | "
                         f"{_ms([r['train_seconds'] for r in rs], '{:.1f}')} |")
        lines.append("")
        streamfm = [n for n in names if n not in PEERS]
        epochs = {n: [r[n]["epochs"] for r in per_split if n in r] for n in streamfm}
        lines.append("Epochs run (early stopping): " + "; ".join(
            f"{n} {min(e)}-{max(e)}" for n, e in epochs.items() if e) + ".")
        svm = [r["RBF-SVM"] for r in per_split if "RBF-SVM" in r]
        if svm:
            lines.append("RBF-SVM's chosen (C, gamma): " + ", ".join(
                f"({r['C']:g}, {r['gamma']:.3g})" for r in svm) + ".")
        fig = os.path.join(fig_dir, f"{ds}-defaults.png")
        if _figure(ds, per_split, streamfm, fig):
            lines += ["", f"![{ds}: held-out log loss per epoch]({os.path.relpath(fig, os.path.dirname(out))})"]
        lines.append("")
    with open(out, "w") as fh:
        fh.write("\n".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default=os.path.join(ROOT, "bench-data"), help="tools/benchdata.py's output")
    ap.add_argument("--work", default=os.path.join(ROOT, "bench-runs", "dense"))
    ap.add_argument("--datasets", nargs="+", default=None,
                    help=f"default: every prepared data set, and {GENERATED}")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                    help="another streamfm configuration, e.g. 'jo-m200=--method llfm-jo --anchors 200'")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "dense.md"))
    ap.add_argument("--figures", default=os.path.join(ROOT, "docs", "figures"))
    args = ap.parse_args(argv)

    datasets = args.datasets or sorted(
        d for d in os.listdir(args.bench) if os.path.isdir(os.path.join(args.bench, d, "split-0", "train"))
    ) + [GENERATED]
    configs = {m: ["--method", m] for m in METHODS}
    for v in args.variant:
        name, _, flags = v.partition("=")
        configs[name] = shlex.split(flags)
    names = list(configs) + ([] if args.no_peers else list(PEERS))
    results = {}
    for ds in datasets:
        per_split = []
        for s in range(args.runs):
            # the generated set lives beside the runs, not among tools/benchdata.py's prepared sets
            root = os.path.join(args.work, "data") if ds == GENERATED else args.bench
            if ds == GENERATED:
                write_two_variances(root, s)
            train, test = split_dir(root, ds, s, "train"), split_dir(root, ds, s, "test")
            work = os.path.join(args.work, ds, f"split-{s}")
            os.makedirs(work, exist_ok=True)
            rec = {}
            for name, flags in configs.items():
                rec[name] = run_streamfm(train, test, os.path.join(work, name), flags + ["--seed", str(s)])
                print(f"{ds} split-{s} {name}: accuracy {rec[name]['test_accuracy']:.4f} "
                      f"log loss {rec[name]['test_log_loss']:.4f} {rec[name]['train_seconds']:.1f} s", flush=True)
            if not args.no_peers:
                peers_file = os.path.join(work, "peers.json")
                if os.path.exists(peers_file):
                    with open(peers_file) as fh:
                        peers = json.load(fh)
                else:
                    peers = fit_peers(train, test, s)
                    with open(peers_file, "w") as fh:
                        json.dump(peers, fh)
                rec.update(peers)
                print(f"{ds} split-{s} peers: " + ", ".join(
                    f"{k} {v['test_accuracy']:.4f}" for k, v in peers.items()), flush=True)
            per_split.append(rec)
        results[ds] = per_split
    os.makedirs(args.work, exist_ok=True)
    with open(os.path.join(args.work, "results.json"), "w") as fh:
        json.dump(results, fh, indent=1)
    os.makedirs(args.figures, exist_ok=True)
    line = "python tools/bench_dense.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    write_report(results, names, line, args.out, args.figures)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
