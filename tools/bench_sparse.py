"""streamfm with its defaults on real sparse data, beside linear models, Vowpal Wabbit and MCMC FM: docs/sparse.md.

Data sets (paths are arguments; nothing is downloaded):

- movielens-small (``--movielens DIR``): the libsvm files ``{train,test}-rating.svm.gz`` (regression, label
  = rating 0.5..5) and ``{train,test}-liked.svm.gz`` (binary); 10,354 features: user one-hot (1..610), movie
  one-hot (611..10,334), 20 genre features;
- generated CTR data (``tools/datagen.py``, seed 7, as docs/performance.md): ``--ctr-rows`` training rows
  and a fifth as many test rows of one stream, written once into bench-data/sparse/ and reused.

Systems, all in the same run: streamfm through its command line with only ``--task`` and ``--method``
given; scikit-learn Ridge / LogisticRegression and SGD (one pass of ``partial_fit``; ``fit`` with
early stopping); myfm MCMC FM (rank 10, 300 sweeps); Vowpal Wabbit linear and ``--lrq`` (one pass, and
``--passes 10`` with VW's own holdout). Every system is scored from its test predictions by one function
(tools/sparse_peers.py). Peer results are cached in RUNS/peers.json, keyed by data and settings:
``--skip-peers`` reuses them, to re-measure streamfm alone.

    python tools/bench_sparse.py [--movielens DIR] [--ctr-rows N] [--only movielens|ctr] [--skip-peers]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tools import sparse_peers as sp  # noqa: E402

ML_FEATURES = 10_354
ML_NAMESPACES = (("u", 1, 610), ("i", 611, 10_334), ("g", 10_335, 10_354))
KEY_METRIC = {"regression": "rmse", "binary": "log_loss"}
COLUMNS = {"regression": (("rmse", "test RMSE"), ("mae", "test MAE")),
           "binary": (("log_loss", "test log loss"), ("accuracy", "accuracy"), ("auc", "AUC"))}
VW_PASSES = 10
CURVE_LABEL = {"records": "validation metric (metrics.jsonl)",
               "second run": "test metric, the same command with --valid TEST"}


def shown(path: str, args) -> str:
    """A path as the page shows it: movielens files by the data set's name, the rest from the repository root."""
    if not os.path.isabs(path):
        return path
    if os.path.dirname(path) == args.movielens:
        return "movielens-small/" + os.path.basename(path)
    return os.path.relpath(path, REPO)


# --------------------------------------------------------------------------- data sets


def movielens(args) -> list:
    out = []
    for task, label in (("regression", "rating"), ("binary", "liked")):
        files = {s: os.path.join(args.movielens, f"{s}-{label}.svm.gz") for s in ("train", "test")}
        vw = {s: os.path.join(args.data_dir, f"movielens-{label}-{s}.vw") for s in ("train", "test")}
        for s in files:
            sp.svm_to_vw(files[s], vw[s], ML_NAMESPACES, binary=task == "binary")
        st = os.stat(files["train"])
        n = {s: sum(1 for _ in gzip.open(f, "rb")) for s, f in files.items()}
        out.append(sp.Data(
            f"movielens-{label}", task, files["train"], files["test"], vw["train"], vw["test"], "ui10",
            f"movielens-{label}:{st.st_size}:{os.stat(files['test']).st_size}", ML_FEATURES,
            f"movielens-small, {label} ("
            f"{'regression, label = rating 0.5..5' if task == 'regression' else 'binary, label = rating >= 4'}): "
            f"{n['train']:,} training and {n['test']:,} test rows (one seeded random split of the ratings); 10,354 "
            "features: the user (one-hot over 610), the movie (one-hot over 9,724) and its genres (20 features, each "
            "1 / the movie's number of genres). VW: namespaces u (user), i (movie), g (genres)."))
    return out


def ctr(args) -> list:
    test_rows = max(args.ctr_rows // 5, 1)
    f = sp.make_ctr(args.data_dir, args.ctr_rows, test_rows)
    return [sp.Data(
        "ctr", "binary", f["train.parquet"], f["test.parquet"], f["train.vw"], f["test.vw"], "ab10",
        f"ctr:seed7:{args.ctr_rows}:{test_rows}", 1 << 20,
        f"Generated CTR-shaped data (`tools/datagen.py`, seed 7): {args.ctr_rows:,} training and {test_rows:,} test "
        "rows of one stream; 30 categorical fields (Zipf-distributed values) hashed into 2^20 features, 30 "
        "non-zeros a row (value 1); labels from a logistic model with interactions between fields 0-9 and "
        "10-19. streamfm reads Parquet (the sparse layout); VW: fields 0-9 in namespace a, 10-29 in b.")]


# --------------------------------------------------------------------------- systems


def peers(data, args) -> list:
    """(system, settings, run) for every peer of this data set; run() -> (predictions, seconds)."""
    reg = data.task == "regression"
    sgd = "SGDRegressor()" if reg else "SGDClassifier(loss='log_loss')"
    out = []
    if data.name == "movielens-rating":
        out.append(("scikit-learn Ridge", "alpha=3", lambda: sp.run_sklearn_batch(data, 3.0)))
    elif data.name == "movielens-liked":
        out.append(("scikit-learn LogisticRegression", "C=1, lbfgs, max_iter=1000",
                    lambda: sp.run_sklearn_batch(data, 1.0)))
    out += [("scikit-learn SGD, one pass", f"{sgd}, partial_fit over {sp.CHUNK:,}-row chunks in file order",
             lambda: sp.run_sgd_one_pass(data)),
            ("scikit-learn SGD, early stopping", f"{sgd[:-1]}{'' if reg else ', '}early_stopping=True), fit "
             "(10% held out, stops after 5 epochs without improvement)", lambda: sp.run_sgd_early_stop(data))]
    if data.name != "ctr":
        out.append(("myfm MCMC FM", "rank 10, 300 sweeps, the last 295 samples averaged", lambda: sp.run_myfm(data)))
    elif args.ctr_myfm:  # its default 295 kept samples of 2^20 features would need 27 GB
        out.append(("myfm MCMC FM", "rank 10, 300 sweeps, the last 20 samples averaged",
                    lambda: sp.run_myfm(data, kept=20)))
    for lrq in (False, True):
        for passes in (1, VW_PASSES):
            a = sp.vw_args(data, lrq, passes)
            name = ("VW --lrq " + data.lrq if lrq else "VW linear") + (
                ", one pass" if passes == 1 else f", --passes {passes}")
            out.append((name, f"`{a}`", lambda a=a: sp.run_vw(data, a, os.path.join(args.runs_dir, "vw"))))
    return out


def streamfm_runs(data) -> list:
    """(system, method, extra options): only --task and --method, or one pass (--epochs 1) on the CTR data."""
    if data.name == "ctr":
        return [("streamfm fm, one pass", "fm", ["--epochs", "1"]), ("streamfm fm", "fm", [])]
    return [("streamfm fm", "fm", []), ("streamfm llfm-jo", "llfm-jo", [])]


def run_peer(data, system, settings, run, cache, args, log) -> dict:
    key = f"{data.key}|{system}|{settings}"
    if args.skip_peers and key in cache:
        return dict(cache[key], cached=True)
    needs = {"myfm": "myfm", "VW": "vowpalwabbit"}.get(system.split()[0])
    if needs:
        try:
            __import__(needs)
        except ImportError:
            return {"system": system, "settings": settings, "missing": f"{needs} is not installed"}
    log(f"  {data.name}: {system}")
    pred, sec = run()
    res = {"system": system, "settings": settings, "metrics": sp.metrics(data.task, data.matrices[3], pred),
           "seconds": sec}
    cache[key] = res
    return res


def run_streamfm(data, system, method, extra, args, log, curve=None) -> dict:
    """Train through the command line, score the model directory; ``curve`` (default: for runs with the
    defaults) reads the validation curve, or makes one with --valid TEST when the run recorded none."""
    model_dir = os.path.join(args.runs_dir, data.name + "-" + system.replace("streamfm ", "").replace(", ", "-")
                             .replace(" ", "-"))
    shutil.rmtree(model_dir, ignore_errors=True)
    argv = sp.streamfm_argv(data, model_dir, method, extra)
    log(f"  {data.name}: {system}")
    sec = sp.run_cli(argv)
    y, p = sp.streamfm_predictions(model_dir, data.test)
    records = sp.read_records(model_dir)
    res = {"system": system, "settings": " ".join(["--method", method, *extra]), "seconds": sec,
           "metrics": sp.metrics(data.task, y, p), "command": "python -m streamfm " + shlex.join(
               [shown(a, args) if a != model_dir else "MODEL" for a in argv]),
           "epochs": len(records), "best_epoch": sp.best_epoch(model_dir),
           "curve": sp.valid_curve(records, KEY_METRIC[data.task]), "curve_source": "records"}
    if (not extra if curve is None else curve) and not res["curve"]:
        # the defaults wrote no validation records: the same command once more with --valid TEST, for the figure
        shutil.rmtree(model_dir + "-curve", ignore_errors=True)
        sp.run_cli(argv[:2] + ["--valid", data.test] + argv[2:-1] + [model_dir + "-curve"])
        res["curve"] = sp.valid_curve(sp.read_records(model_dir + "-curve"), KEY_METRIC[data.task])
        res["curve_source"] = "second run"
    return res


def warm_up(data, args):
    """Compile (or load) numba's cache for each method before the timed runs."""
    for method in sorted({m for _, m, _ in streamfm_runs(data)}):
        shutil.rmtree(os.path.join(args.runs_dir, "warm-up"), ignore_errors=True)
        sp.run_cli(["train", data.test, "--task", data.task, "--method", method, "--epochs", "1",
                    "--max-rows", "2000", "--quiet", "--model", os.path.join(args.runs_dir, "warm-up")])


def measure(data, args, cache, log) -> list:
    warm_up(data, args)
    res = [run_streamfm(data, s, m, e, args, log) for s, m, e in streamfm_runs(data)]
    return res + [run_peer(data, *p, cache, args, log) for p in peers(data, args)]


# --------------------------------------------------------------------------- report


def find(results, system):
    return next((r for r in results if r["system"] == system and "metrics" in r), None)


def targets(R: dict) -> list:
    """(target, measured, met: True/False/None when not measured) from the numbers of this run."""
    def m(ds, system, key):
        r = find(R.get(ds, []), system)
        return r["metrics"][key] if r else None

    out = []

    def add(text, a, op, b, shown):
        met = None if a is None or b is None else (a <= b if op == "<=" else a >= b if op == ">=" else a < b)
        out.append((text, shown(a, b) if met is not None else "not measured", met))

    if "movielens-rating" in R:
        fm, jo = m("movielens-rating", "streamfm fm", "rmse"), m("movielens-rating", "streamfm llfm-jo", "rmse")
        add("movielens rating: `fm` test RMSE <= 0.840", fm, "<=", 0.840, lambda a, b: f"{a:.4f}")
        add("movielens rating: `llfm-jo` RMSE <= `fm`", jo, "<=", fm, lambda a, b: f"{a:.4f} vs {b:.4f}")
    if "movielens-liked" in R:
        g = lambda s, k: m("movielens-liked", s, k)  # noqa: E731
        add("movielens liked: `fm` log loss <= 0.545", g("streamfm fm", "log_loss"), "<=", 0.545, lambda a, b: f"{a:.4f}")
        add("movielens liked: `fm` AUC >= 0.797", g("streamfm fm", "auc"), ">=", 0.797, lambda a, b: f"{a:.4f}")
        add("movielens liked: `llfm-jo` log loss <= `fm`", g("streamfm llfm-jo", "log_loss"), "<=",
            g("streamfm fm", "log_loss"), lambda a, b: f"{a:.4f} vs {b:.4f}")
    if "ctr" in R:
        for fm, peers_ in (("streamfm fm, one pass", ("VW linear, one pass", "scikit-learn SGD, one pass")),
                           ("streamfm fm", (f"VW linear, --passes {VW_PASSES}", "scikit-learn SGD, early stopping"))):
            vals = [m("ctr", p, "log_loss") for p in peers_]
            best = None if None in vals else min(vals)
            when = "after one pass" if "one pass" in fm else "with its defaults (early stopping)"
            add(f"CTR: `fm` {when} below {' and '.join(peers_)} in test log loss", m("ctr", fm, "log_loss"), "<",
                best, lambda a, b, v=vals: f"{a:.4f} vs " + " / ".join(f"{x:.4f}" for x in v))
    return out


def figure(name, task, results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    key, label = COLUMNS[task][0]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    curved = [r for r in results if r.get("curve")]
    lines = [r for r in results if "metrics" in r and not r.get("curve")]
    for r in curved:
        e, v = zip(*r["curve"])
        ax.plot(e, v, marker="o", ms=3, lw=2, label=f"{r['system']}: {CURVE_LABEL[r['curve_source']]}")
        if r.get("best_epoch") in e:
            ax.plot([r["best_epoch"]], [v[e.index(r["best_epoch"])]], "k*", ms=10)
    # the scale follows the curves; a line far above them (a diverged peer) is only named in the legend
    ys = [v for r in curved for _, v in r["curve"]] or [r["metrics"][key] for r in lines]
    lo = min(ys + [r["metrics"][key] for r in lines])
    hi = max(ys + [r["metrics"][key] for r in lines if r["metrics"][key] <= max(ys) + (max(ys) - lo)])
    for i, r in enumerate(lines):
        v = r["metrics"][key]
        ax.axhline(v, ls=("--", ":", "-.")[i % 3], lw=1, color=f"C{(i + 2) % 10}",
                   label=f"{r['system']}: test {v:.4f}" + (" (above the chart)" if v > hi else ""))
    pad = 0.05 * (hi - lo) or 0.01
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("epoch")
    ax.set_ylabel(label.replace("test ", ""))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.set_title(f"{name}: streamfm's {label.replace('test ', '')} per epoch; lines: the systems' test values", fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(task, results) -> list:
    cols = COLUMNS[task]
    lines = ["| system | settings | " + " | ".join(c for _, c in cols) + " | train seconds |",
             "|---|---|" + "---:|" * (len(cols) + 1)]
    for r in results:
        if "metrics" not in r:
            lines.append(f"| {r['system']} | {r['settings']} | " + " | ".join("" for _ in cols) + f" | {r['missing']} |")
            continue
        s = r["settings"] if "command" not in r else (
            f"`{r['settings']}`, {r['epochs']} epoch{'s' if r['epochs'] != 1 else ''} run") + (
            f", epoch {r['best_epoch']} kept" if r.get("best_epoch") else "")
        lines.append(f"| {r['system']} | {s} | " + " | ".join(f"{r['metrics'][k]:.4f}" for k, _ in cols)
                     + f" | {r['seconds']:.1f}{' (cached)' if r.get('cached') else ''} |")
    return lines


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("numpy", "numba", "scikit-learn", "myfm", "vowpalwabbit"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            out.append(f"{pkg} (not installed)")
    return ", ".join(out)


def write_doc(R: dict, datasets: dict, cmdline: str, commit: str, seconds: float, fig_dir: str) -> str:
    L = ["# Sparse data: streamfm's defaults against linear models, Vowpal Wabbit and MCMC FM\n",
         f"Every number on this page was measured in one run of the command at the end, at commit {commit}; "
         "the whole run took {:.1f} minutes on {} ({} CPUs, Python {}). Versions: {}.\n".format(
             seconds / 60, platform.machine(), os.cpu_count(), platform.python_version(), versions()),
         "streamfm ran through its command line with only `--task` and `--method` given (the CTR one-pass run "
         "adds `--epochs 1`), so every data set gets the same defaults. Every system is scored from its test "
         "predictions by the same code: RMSE and MAE; log loss with natural logarithms and the probabilities "
         "clipped to [1e-15, 1 - 1e-15], accuracy at 0.5, AUC by scikit-learn's `roc_auc_score`. \"train "
         "seconds\" is the wall time of training only (for streamfm the whole `python -m streamfm train` process: "
         "start-up, scan, training, checkpoints), on a shared machine: the metrics are the machine-independent "
         "part.\n", "## Targets\n", "| target | measured | met |", "|---|---|---|"]
    L += [f"| {t} | {v} | {'not measured' if ok is None else 'yes' if ok else 'no'} |" for t, v, ok in targets(R)]
    L.append("")
    for name, results in R.items():
        data = datasets[name]
        L += [f"## {name}\n", data.description + "\n"] + table(data.task, results) + [""]
        if name == "ctr" and not any(r["system"].startswith("myfm") for r in results):
            L.append("- myfm MCMC FM runs on this data only with `--ctr-myfm`: it keeps every averaged sample in "
                     "memory (by default 295 of 2^20 x 11 float64, 27 GB; `--ctr-myfm` keeps the last 20), and on "
                     "this machine five of its 300 sweeps over 1,000,000 rows took 100 s.")
        L.append(f"- VW `--passes {VW_PASSES} -c`: VW holds out every 10th training row and saves its model whenever "
                 "the holdout loss improves; it stops after 3 passes without improvement, keeping the best pass's "
                 f"model (a run that reaches pass {VW_PASSES} keeps the last).")
        if any(r.get("cached") for r in results):
            L.append("- peers marked in the cache (`--skip-peers`) were measured by an earlier run of the tool on "
                     "the same data and settings.")
        L += ["\nstreamfm's commands:\n", "```"] + [r["command"] for r in results if "command" in r] + ["```\n"]
        L.append(f"![{name}](figures/{os.path.basename(figure_path(fig_dir, name))})\n")
        L.append(curve_text(data.task, results))
    L += ["## Command\n", "```", cmdline, "```", "Peers come from the `bench` extra (`pip install \".[bench]\"`).\n"]
    return "\n".join(L)


def curve_text(task, results) -> str:
    metric = COLUMNS[task][0][1].replace("test ", "")
    by = {src: " and ".join(r["system"] for r in results if r.get("curve_source") == src and r.get("curve"))
          for src in CURVE_LABEL}
    parts = []
    if by["records"]:
        parts.append(f"{by['records']}: the validation {metric} the run recorded after every epoch (metrics.jsonl)")
    if by["second run"]:
        parts.append(f"{by['second run']}: the test {metric} after every epoch of a second run of the same command "
                     "given `--valid` the test file (the defaults record no validation metric; the table's runs "
                     "never see the test rows)")
    return ("The curves of " + "; of ".join(parts) if parts else "No curves (no validation records)") + \
        ". A star marks the epoch a model directory keeps; the horizontal lines are the other systems' test values.\n"


def figure_path(fig_dir, name):
    return os.path.join(fig_dir, f"sparse-{name}.png")


def commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "streamfm"], cwd=REPO, capture_output=True, text=True)
    return (r.stdout.strip() or "?") + (" (streamfm/ with uncommitted changes)" if dirty.stdout.strip() else "")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--movielens", default=os.path.normpath(os.path.join(REPO, "..", "shared", "data", "movielens-small")))
    ap.add_argument("--ctr-rows", type=int, default=1_000_000, help="CTR training rows (test: a fifth as many)")
    ap.add_argument("--only", choices=("movielens", "ctr"))
    ap.add_argument("--skip-peers", action="store_true", help="reuse the peers' cached results (measure the missing)")
    ap.add_argument("--ctr-myfm", action="store_true", help="run myfm on the CTR data too (hours; 2 GB)")
    ap.add_argument("--runs-dir", default=os.path.join(REPO, "bench-runs", "sparse"))
    ap.add_argument("--data-dir", default=os.path.join(REPO, "bench-data", "sparse"))
    ap.add_argument("--out", default=os.path.join(REPO, "docs", "sparse.md"))
    ap.add_argument("--figures", default=os.path.join(REPO, "docs", "figures"))
    args = ap.parse_args(argv)
    for a in ("movielens", "runs_dir", "data_dir", "out", "figures"):
        setattr(args, a, os.path.abspath(getattr(args, a)))
    cmdline = "python tools/bench_sparse.py" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv))
    t0 = time.time()
    log = lambda s: print(s, flush=True)  # noqa: E731
    os.makedirs(args.runs_dir, exist_ok=True)
    os.makedirs(args.data_dir, exist_ok=True)
    cache_path = os.path.join(args.runs_dir, "peers.json")
    cache = json.load(open(cache_path)) if os.path.exists(cache_path) else {}
    datasets = (movielens(args) if args.only != "ctr" else []) + (ctr(args) if args.only != "movielens" else [])
    R = {}
    for data in datasets:
        log(f"{data.name}")
        R[data.name] = measure(data, args, cache, log)
        with open(cache_path + ".tmp", "w") as fh:
            json.dump(cache, fh, indent=1)
        os.replace(cache_path + ".tmp", cache_path)
        print("\n".join([f"\n{data.name}"] + table(data.task, R[data.name])), flush=True)
    os.makedirs(args.figures, exist_ok=True)
    for data in datasets:
        figure(data.name, data.task, R[data.name], figure_path(args.figures, data.name))
    with open(os.path.join(args.runs_dir, "results.json"), "w") as fh:
        json.dump(R, fh, indent=1)
    doc = write_doc(R, {d.name: d for d in datasets}, cmdline, commit(), time.time() - t0, args.figures)
    with open(args.out, "w") as fh:
        fh.write(doc)
    for t, v, ok in targets(R):
        log(f"{'met' if ok else 'NOT met' if ok is False else 'not measured'}: {t} ({v})")
    log(f"wrote {args.out} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
