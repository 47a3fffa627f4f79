"""Reproduce Table 2 and Figure 1 of Liu et al. (IJCAI 2017) with streamfm's command line.

For every data set prepared by tools/benchdata.py (bench-data/<name>/split-<s>/)
and every split s of ``--runs``:

1. tuning (tools/tune.py), per method, on the split's training data only:
   ``streamfm train tune-fit --valid tune-valid --method M --eta0 E ...`` for
   every point of the method's grid (eta0; rho for JO, beta for DO/APL); the
   lowest validation log loss wins;
2. the final run on the whole training set with the chosen values, validated
   on the test set after every epoch (the curve of Figure 1 only: nothing is
   chosen from it): ``streamfm train train --valid test --method M ...``;
3. LLFM-JO once more with ``--paper-anchor-gradient`` (same values), to
   measure what the exact anchor gradient is worth;
4. every final model evaluated as ``streamfm evaluate`` does (train and test
   log loss, accuracy), its mean number of neighbours k on the test set, and
   its test time (best of several timed passes over the test rows, in
   memory), relative to FM's on the same split.

Writes bench-runs/results.json, docs/results.md and docs/figures/<name>-test-logloss.png.
Runs already finished with the same arguments are reused (the script can be
interrupted and started again).

    python tools/reproduce.py [--runs 5] [--workers 2] [--datasets banana magic04 letter] [--no-tune]
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor

# one thread per process (FAISS's OpenMP): steadier timings on a shared machine, same results
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from streamfm.models.config import Config  # noqa: E402
from tools import tune as tuning  # noqa: E402
from tools.benchdata import DATASETS  # noqa: E402

METHODS = ("fm", "llfm-do", "llfm-apl", "llfm-jo")
LABELS = {"fm": "FM", "llfm-do": "LLFM-DO", "llfm-apl": "LLFM-APL", "llfm-jo": "LLFM-JO",
          "llfm-jo-paper": "LLFM-JO, paper's anchor gradient"}
PAPER_GRADIENT = "llfm-jo-paper"
PAPER_ANCHORS = 50  # the paper's m
#: the anchor step of Table 2's runs, below the default on dense data: the defaults' own results are the
#: table tools/bench_dense.py writes into the same page
PAPER_ETA_ANCHOR = 0.05

#: Table 2 of the paper: method -> (train loss, test loss, accuracy %, test time relative to FM)
PAPER_TABLE2 = {
    "banana": {"fm": (0.6810, 0.6770, 53.53, 1.0), "llfm-do": (0.2614, 0.2371, 89.80, 5.84),
               "llfm-apl": (0.2573, 0.2337, 89.87, 5.89), "llfm-jo": (0.2396, 0.2201, 90.49, 7.00)},
    "magic04": {"fm": (0.3783, 0.3804, 83.98, 1.0), "llfm-do": (0.3661, 0.3715, 84.22, 4.92),
                "llfm-apl": (0.3582, 0.3670, 84.44, 5.14), "llfm-jo": (0.3220, 0.3364, 85.95, 6.30)},
    "ijcnn1": {"fm": (0.0949, 0.0928, 96.70, 1.0), "llfm-do": (0.0815, 0.0760, 97.58, 4.97),
               "llfm-apl": (0.0786, 0.0682, 97.92, 5.16), "llfm-jo": (0.0564, 0.0511, 98.55, 4.87)},
    "letter": {"fm": (1.3899, 1.2166, 83.19, 1.0), "llfm-do": (0.6966, 0.5753, 92.57, 5.01),
               "llfm-apl": (0.6315, 0.4819, 93.70, 4.92), "llfm-jo": (0.5129, 0.3958, 94.56, 4.33)},
    "mnist": {"fm": (0.4733, 0.4247, 95.61, 1.0), "llfm-do": (0.3051, 0.3331, 95.40, 5.01),
              "llfm-apl": (0.2586, 0.3080, 95.86, 5.27), "llfm-jo": (0.2558, 0.2822, 96.26, 1.74)},
    "covtype": {"fm": (0.4713, 0.4557, 78.42, 1.0), "llfm-do": (0.4509, 0.4374, 79.70, 6.83),
                "llfm-apl": (0.4312, 0.4178, 80.34, 6.87), "llfm-jo": (0.4270, 0.4130, 80.78, 4.99)},
}
#: the paper's Figure 1 curves are keyed by these names
FIGURE1_KEYS = {"banana": "banana", "ijcnn1": "ijcnn", "letter": "letter", "mnist": "mnist", "covtype": "covtype"}
FIGURE1_JSON = os.path.normpath(os.path.join(ROOT, "..", "shared", "paper", "figure1-test-logloss.json"))


# ----------------------------------------------------------------------------- jobs
def rel(path: str) -> str:
    return os.path.relpath(path, ROOT)


class Plan:
    """Paths and command lines of every run."""

    def __init__(self, bench: str, work: str, datasets, runs, tune: bool, epochs: dict, extra: dict):
        self.bench, self.work = bench, work
        self.datasets, self.runs, self.tune = list(datasets), list(runs), tune
        self.epochs, self.extra = epochs, extra

    def split(self, ds, s, part):
        return rel(os.path.join(self.bench, ds, f"split-{s}", part))

    def model(self, ds, s, name):
        return rel(os.path.join(self.work, ds, f"split-{s}", name))

    def tune_jobs(self, ds, s):
        jobs = []
        if not self.tune:
            return jobs
        for method in METHODS:
            for point in tuning.grid_points(method):
                model = self.model(ds, s, os.path.join("tune", f"{method}-{tuning.point_name(point)}"))
                argv = tuning.train_argv(self.split(ds, s, "tune-fit"), model, method=method,
                                         epochs=self.epochs[ds], seed=s, valid=self.split(ds, s, "tune-valid"),
                                         params=point, extra=self.extra.get(ds, ()))
                jobs.append({"kind": "tune", "ds": ds, "seed": s, "method": method, "point": point,
                             "model": model, "argv": argv})
        return jobs

    def final_jobs(self, ds, s, chosen: dict):
        jobs = []
        for name in METHODS + (PAPER_GRADIENT,):
            method = "llfm-jo" if name == PAPER_GRADIENT else name
            extra = list(self.extra.get(ds, ())) + (["--paper-anchor-gradient"] if name == PAPER_GRADIENT else [])
            model = self.model(ds, s, name)
            argv = tuning.train_argv(self.split(ds, s, "train"), model, method=method, epochs=self.epochs[ds],
                                     seed=s, valid=self.split(ds, s, "test"), params=chosen.get(method, {}),
                                     extra=extra)
            jobs.append({"kind": "final", "ds": ds, "seed": s, "method": name, "model": model, "argv": argv})
        return jobs


def _run(job):
    os.chdir(ROOT)
    t = time.perf_counter()
    tuning.run_streamfm(job["argv"], job["model"])
    return job, time.perf_counter() - t


def run_all(jobs, workers, log):
    out = []
    if workers <= 1:
        for j in jobs:
            out.append(_run(j))
            log(f"  {j['kind']:5s} {j['ds']} split-{j['seed']} {j['method']} {out[-1][1]:.1f} s")
        return out
    import multiprocessing as mp

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
        for j, sec in ex.map(_run, jobs):
            out.append((j, sec))
            log(f"  {j['kind']:5s} {j['ds']} split-{j['seed']} {j['method']} {sec:.1f} s")
    return out


# ----------------------------------------------------------------------------- evaluation
def _chunks(path):
    from streamfm.io.sources import open_source

    return list(open_source(path).iter_chunks())


def evaluate(plan: Plan, ds: str, s: int, repeats: int = 5) -> dict:
    """Metrics of every final model of one split (as `streamfm evaluate` computes them) and test times."""
    from streamfm.io.sources import open_source
    from streamfm.inference.metrics import evaluate_source
    from streamfm.run import load

    train_src, test_src = open_source(plan.split(ds, s, "train")), open_source(plan.split(ds, s, "test"))
    test_chunks = _chunks(plan.split(ds, s, "test"))
    out = {}
    models = {}
    for name in METHODS + (PAPER_GRADIENT,):
        model_dir = plan.model(ds, s, name)
        trained = load(model_dir)
        models[name] = trained
        train_m = evaluate_source(trained, train_src)
        test_m = evaluate_source(trained, test_src)
        ks = [trained.model.decision_chunk(trained.standardizer.transform(ch), return_k=True)[1] for ch in test_chunks]
        with open(os.path.join(model_dir, "metrics.jsonl")) as fh:
            recs = {}
            for line in fh:
                r = json.loads(line)
                recs[r["epoch"]] = r
        curve = [recs[e]["valid"]["log_loss"] for e in sorted(recs)]
        last = recs[max(recs)]
        with open(os.path.join(model_dir, "manifest.json")) as fh:
            cfg = json.load(fh)["model"]["config"]
        out[name] = {"train_log_loss": train_m["log_loss"], "train_accuracy": train_m["accuracy"],
                     "test_log_loss": test_m["log_loss"], "test_accuracy": test_m["accuracy"],
                     "test_auc": test_m.get("auc"), "curve": curve,
                     "online_train_loss": last["train_loss"],
                     "mean_k_test": float(np.concatenate(ks).mean()),
                     "mean_k_train": last.get("mean_k", 1.0),
                     "wanted_more_rate": last.get("wanted_more_rate"),
                     "candidate_miss_rate": last.get("candidate_miss_rate"),
                     "train_seconds": sum(r["seconds"] for r in recs.values()),
                     "eta0": cfg["eta0"], "rho": cfg["rho"], "beta": cfg["beta"],
                     "multiclass": cfg["multiclass"]}
    # test time: every model predicts the test rows (in memory) in turn, several times; the best pass counts
    best = {name: np.inf for name in models}
    for _ in range(repeats):
        for name, trained in models.items():
            t = time.perf_counter()
            for ch in test_chunks:
                trained.decision_chunk(ch)
            best[name] = min(best[name], time.perf_counter() - t)
    for name in models:
        out[name]["test_seconds"] = best[name]
        out[name]["test_time_vs_fm"] = best[name] / best["fm"]
    return out


# ----------------------------------------------------------------------------- report
def _ms(values, fmt="{:.4f}"):
    a = np.asarray(values, dtype=float)
    return fmt.format(a.mean()) + " ± " + fmt.replace("+", "").format(a.std())


def _figure(ds, runs_out, path):
    """Test log loss per epoch, mean ± sd of the runs, beside the paper's curves; right: the LLFMs up close."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    paper = {}
    if ds in FIGURE1_KEYS and os.path.exists(FIGURE1_JSON):
        with open(FIGURE1_JSON) as fh:
            paper = json.load(fh).get(FIGURE1_KEYS[ds], {})
    colors = {"fm": "tab:gray", "llfm-do": "tab:blue", "llfm-apl": "tab:green", "llfm-jo": "tab:red"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, methods in zip(axes, (METHODS, METHODS[1:])):
        for m in methods:
            curves = np.array([r[m]["curve"] for r in runs_out])
            e = np.arange(1, curves.shape[1] + 1)
            mu, sd = curves.mean(0), curves.std(0)
            ax.plot(e, mu, color=colors[m], marker="o", ms=3, label=f"{LABELS[m]} (streamfm)")
            ax.fill_between(e, mu - sd, mu + sd, color=colors[m], alpha=0.15, lw=0)
            if LABELS[m] in paper:
                pe = np.arange(1, len(paper[LABELS[m]]) + 1)
                ax.plot(pe, paper[LABELS[m]], color=colors[m], ls="--", lw=1, label=f"{LABELS[m]} (paper)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("test log loss")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    axes[0].set_title(f"{ds}: test log loss per epoch, mean ± sd of {len(runs_out)} runs"
                      + ("" if paper else " (no curve in the paper)"), fontsize=9)
    axes[1].set_title("the three LLFMs up close", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _ordering(res, paper) -> str:
    """The methods ranked by mean test log loss and by mean accuracy, beside the paper's ranking."""
    def rank(key, sign, source):
        return " < ".join(LABELS[m] for m in sorted(METHODS, key=lambda m: sign * source(m, key)))

    ours = lambda m, k: np.mean([r[m][k] for r in res])  # noqa: E731
    text = (f"Ranked by test log loss (lowest first): {rank('test_log_loss', 1, ours)}"
            + (f" (paper: {rank(1, 1, lambda m, k: paper[m][k])})" if paper else "")
            + f"; by test accuracy (highest first): {rank('test_accuracy', -1, ours).replace(' < ', ' > ')}"
            + (f" (paper: {rank(2, -1, lambda m, k: paper[m][k]).replace(' < ', ' > ')})" if paper else "") + ".")
    return text


def _grid_text(grids) -> str:
    def vals(v):
        return "{" + ", ".join(f"{x:g}" for x in v) + "}"

    parts = []
    for m, g in grids.items():
        parts.append(f"{LABELS[m]}: " + " × ".join(f"{k} ∈ {vals(v)}" for k, v in
                                                  sorted(g.items(), key=lambda kv: (kv[0] != "eta0", kv[0]))))
    return "; ".join(parts)


def write_report(results: dict, chosen: dict, plan: Plan, argv_line: str, path: str, fig_dir: str, grids: dict,
                 grid_scores: dict | None = None) -> None:
    L = []
    w = L.append
    runs = plan.runs
    w("# Table 2 and Figure 1 of the LLFM paper, reproduced with streamfm")
    w("")
    w("Every number on this page was written by one run of")
    w("")
    w("```bash")
    w("python tools/benchdata.py                  # the splits (bench-data/, git-ignored)")
    w(argv_line)
    w("```")
    w("")
    w(f"on {time.strftime('%Y-%m-%d')} (streamfm {_version()}, commit `{_commit()}`); the `streamfm` command lines of "
      "every training run are listed under each data set. The script reuses a model directory that an earlier "
      "invocation finished with the same command line, so an interrupted reproduction continues and a changed "
      "report is rewritten without retraining; the test times are measured afresh each time. Paper: Table 2 "
      "and Figure 1 of Liu et al., *Locally Linear Factorization Machines*, IJCAI 2017.")
    w("")
    w("## Set-up")
    w("")
    w(f"- **Splits**: the paper's train / test sizes (Table 1), stratified, one seeded split per run "
      f"(seeds {', '.join(map(str, runs))}), written as Parquet shards by `tools/benchdata.py`; features "
      "standardised with the training rows' statistics. The runs differ in split, anchors, initial factors and "
      "row order (all seeded by the run's seed).")
    c = Config()
    w(f"- **One set of defaults** for every data set: the paper's {PAPER_ANCHORS} anchors and an anchor step of "
      f"{PAPER_ETA_ANCHOR:g} (`--anchors {PAPER_ANCHORS} --eta-anchor {PAPER_ETA_ANCHOR:g}`), and streamfm's "
      f"defaults for the rest: rank {c.rank}, k = {c.n_neighbors} neighbours "
      f"(DO, APL), beta = {c.beta:g}, rho = {c.rho:g} (JO), {c.optimizer} steps (eta0 {c.step:g} unless tuned), "
      f"L2 as a prior of precision {c.l2_w:g} (w) and {c.l2_v:g} (V), "
      + ("a global FM beside the local mixture, " if c.global_fm else "") +
      f"exact anchor gradient; {c.n_candidates} FAISS candidates per row. Epochs: the length of the paper's "
      "Figure 1 curve (Banana, IJCNN1 20; LETTER, Covtype 15; MNIST 10; Magic04, which has no curve, 15), "
      "every epoch trained (`--early-stop 0`).")
    if plan.tune:
        w("- **Tuning, training data only** (`tools/tune.py`), for every method, data set and run: each "
          "point of a small grid is trained on 80% of the split's training rows (`tune-fit/`, stratified, "
          "seeded) with the final run's epochs and seed, and the point with the lowest log loss on the other "
          "20% (`tune-valid/`) after the last epoch wins; the final model is then trained on all training "
          "rows with it. The test rows are never read for a choice. Grids: " + _grid_text(grids) +
          " (the step size, and each coding's locality). Everything else stays at its default.")
    else:
        w("- **No tuning**: every method runs with streamfm's default eta0.")
    w("- **LETTER** (26 classes) is trained with streamfm's default multiclass loss, softmax cross-entropy; "
      "the paper's authors ran one-vs-rest (`--multiclass ovr`).")
    w("- **Reported**: train log loss = the final model's log loss on all training rows; test log loss and "
      "accuracy on the test rows; test time = time to predict the test rows (in memory, best of 5 passes, "
      "one thread) relative to FM on the same split -- the machine was shared with other jobs, so read the "
      "ratios, not the seconds; mean k = neighbours per test row (Algorithm 1's adaptive k for JO). "
      "Mean ± standard deviation over the runs.")
    w("")
    w("## Summary: LLFM-JO against the paper")
    w("")
    w("| data set | LLFM-JO accuracy (%) | paper | JO − paper (points) | FM accuracy (%) | JO ≥ paper − 0.5 and > FM |")
    w("|---|---|---|---|---|---|")
    for ds, res in results.items():
        jo = np.array([r["llfm-jo"]["test_accuracy"] for r in res]) * 100
        fm = np.array([r["fm"]["test_accuracy"] for r in res]) * 100
        paper = PAPER_TABLE2.get(ds, {}).get("llfm-jo")
        ok = "n/a" if paper is None else ("yes" if jo.mean() >= paper[2] - 0.5 and jo.mean() > fm.mean() else "**no**")
        w(f"| {ds} | {_ms(jo, '{:.2f}')} | {paper[2]:.2f} | {jo.mean() - paper[2]:+.2f} | {_ms(fm, '{:.2f}')} | {ok} |"
          if paper else f"| {ds} | {_ms(jo, '{:.2f}')} | - | - | {_ms(fm, '{:.2f}')} | {ok} |")
    w("")
    for ds, res in results.items():
        paper = PAPER_TABLE2.get(ds, {})
        w(f"## {ds}")
        w("")
        meta = DATASETS[ds]
        w(f"{meta.description}; {meta.n_train:,} train / {meta.n_test:,} test rows; {plan.epochs[ds]} epochs; "
          f"{len(res)} runs.")
        w("")
        w("| method | train log loss | test log loss | test accuracy (%) | test time (× FM) | mean k "
          "| paper: train loss | test loss | accuracy (%) | test time |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for m in METHODS:
            rows = [r[m] for r in res]
            p = paper.get(m)
            ptxt = f"{p[0]:.4f} | {p[1]:.4f} | {p[2]:.2f} | {p[3]:.2f}×" if p else "- | - | - | -"
            w(f"| {LABELS[m]} | {_ms([x['train_log_loss'] for x in rows])} | {_ms([x['test_log_loss'] for x in rows])} "
              f"| {_ms([100 * x['test_accuracy'] for x in rows], '{:.2f}')} "
              f"| {_ms([x['test_time_vs_fm'] for x in rows], '{:.2f}')} "
              f"| {np.mean([x['mean_k_test'] for x in rows]):.2f} | {ptxt} |")
        w("")
        w(_ordering(res, paper))
        w("")
        if os.path.exists(os.path.join(fig_dir, f"{ds}-test-logloss.png")):
            w(f"![{ds}: test log loss per epoch](figures/{ds}-test-logloss.png)")
            w("")
            w("Solid: streamfm, mean of the runs (band: ± one standard deviation); dashed: the paper's Figure 1.")
            w("")
        if plan.tune:
            w("Values chosen on the validation split, per run:")
            w("")
            w("| method | " + " | ".join(f"split {s}" for s in runs) + " |")
            w("|---|" + "---|" * len(runs))
            for m in METHODS:
                w(f"| {LABELS[m]} | " + " | ".join(tuning.point_label(chosen[(ds, s)][m]) for s in runs) + " |")
            w("")
        w("<details><summary>Command lines of every run</summary>")
        w("")
        w("```bash")
        for s in runs:
            for job in plan.tune_jobs(ds, s):
                w(tuning.command_line(job["argv"]))
            for job in plan.final_jobs(ds, s, chosen.get((ds, s), {})):
                w(tuning.command_line(job["argv"]))
            for name in METHODS + (PAPER_GRADIENT,):
                for part in ("train", "test"):
                    w(f"python -m streamfm evaluate {plan.split(ds, s, part)} --model {plan.model(ds, s, name)}")
        w("```")
        w("")
        w("</details>")
        w("")
    w("## Reading the numbers")
    w("")
    w("- **Test time** is streamfm's prediction time, not the paper's MATLAB's: FM predicts a row in one "
      "O(nnz · r) numba pass, an LLFM adds a FAISS search over the 50 anchors and k FM evaluations, so the "
      "ratio to FM depends on how cheap that one pass is and grows with k (LLFM-JO's adaptive k is smallest "
      "where Algorithm 1 picks few neighbours). Timings were taken on a machine shared with other jobs.")
    w("- **Train log loss** is the final model's log loss over the training rows (not the online average "
      "while training, which `metrics.jsonl` also records). The paper does not say which it reports.")
    w("- **The baselines are tuned the same way as LLFM-JO** (same grid of steps, each coding's own "
      "locality), so where a streamfm baseline beats the paper's (FM on LETTER, say), a better-chosen step "
      "is the likely reason; the comparison between the four methods here is like for like.")
    w("")
    w("## Exact anchor gradient against the paper's approximation")
    w("")
    w("LLFM-JO as above (exact gradient, lambda differentiated too) and again with `--paper-anchor-gradient` "
      "(eqs. 13-14: lambda held constant), same split, seed and eta0. Difference = paper's − exact, per run, "
      "then mean ± sd (positive log loss / negative accuracy: the exact gradient is better).")
    w("")
    w("| data set | exact: test log loss | paper's: test log loss | difference | exact: accuracy (%) "
      "| paper's: accuracy (%) | difference (points) |")
    w("|---|---|---|---|---|---|---|")
    for ds, res in results.items():
        ex_l = np.array([r["llfm-jo"]["test_log_loss"] for r in res])
        pa_l = np.array([r[PAPER_GRADIENT]["test_log_loss"] for r in res])
        ex_a = np.array([r["llfm-jo"]["test_accuracy"] for r in res]) * 100
        pa_a = np.array([r[PAPER_GRADIENT]["test_accuracy"] for r in res]) * 100
        w(f"| {ds} | {_ms(ex_l)} | {_ms(pa_l)} | {_ms(pa_l - ex_l)} | {_ms(ex_a, '{:.2f}')} | {_ms(pa_a, '{:.2f}')} "
          f"| {_ms(pa_a - ex_a, '{:+.2f}')} |")
    w("")
    w("## Neighbours chosen by Algorithm 1")
    w("")
    w("Mean k of LLFM-JO: per test row with the final anchors, and over all training rows "
      "(counted while training, every epoch); how often Algorithm 1 used every one of the 32 candidates "
      "(it may have wanted more) and how often the true nearest anchor was missing from the candidates.")
    w("")
    w("| data set | mean k (test) | mean k (training) | min / max over runs (test) | used all candidates | nearest anchor missed |")
    w("|---|---|---|---|---|---|")
    for ds, res in results.items():
        kt = [r["llfm-jo"]["mean_k_test"] for r in res]
        ktr = [r["llfm-jo"]["mean_k_train"] for r in res]
        wm = [r["llfm-jo"]["wanted_more_rate"] or 0 for r in res]
        cm = [r["llfm-jo"]["candidate_miss_rate"] or 0 for r in res]
        w(f"| {ds} | {np.mean(kt):.2f} | {np.mean(ktr):.2f} | {min(kt):.2f} / {max(kt):.2f} | "
          f"{100 * np.mean(wm):.3f}% | {100 * np.mean(cm):.3f}% |")
    w("")
    if grid_scores:
        _validation_section(w, grid_scores, results, plan)
    from tools.benchdata import DEFAULT_DATA, find_files

    missing = [d for d in PAPER_TABLE2 if d not in results and find_files(DATASETS[d], DEFAULT_DATA) is None]
    if missing:
        w("## Not run here")
        w("")
        w(f"{', '.join(missing)}: the files are not on this machine. With the published files, "
          "`python tools/benchdata.py --ijcnn1 ijcnn1 ijcnn1.t --mnist mnist mnist.t --covtype covtype.libsvm.binary` "
          f"then `python tools/reproduce.py --datasets {' '.join(missing)}` run them unchanged "
          "(`--covtype-uci covtype.data.gz` prepares the UCI original, 7 classes, as `covtype-uci`).")
        w("")
    from tools.docblock import read_block

    kept = read_block(path, DENSE_BLOCK)  # tools/bench_dense.py's table: its own part of the page
    if kept:
        L += [kept, ""]
    with open(path, "w") as fh:
        fh.write("\n".join(L))


#: the block of docs/results.md that tools/bench_dense.py writes (tools/docblock.py)
DENSE_BLOCK = "bench_dense"


def _validation_section(w, grid_scores, results, plan):
    """Every grid point's validation log loss (mean over the runs): can one setting serve every data set?"""
    dsets = [d for d in results if d in grid_scores]
    w("## The grids on the validation splits: is there one setting for every data set?")
    w("")
    w("Validation log loss (on `tune-valid/`, 20% of each split's training rows; mean over the runs) of every "
      "grid point, from the tuning runs above. Bold: the best point of a method on a data set. "
      "The last column is the mean, over the data sets, of the point's excess over that best "
      "(the regret of using it everywhere, as a single default). The same question on generated data "
      "nobody tuned for: [defaults.md](defaults.md).")
    w("")
    w("| method | setting | " + " | ".join(dsets) + " | mean regret |")
    w("|---|---|" + "---|" * len(dsets) + "---|")
    for m in METHODS:
        points = tuning.grid_points(m)
        pts = [tuning.point_name(p) for p in points]
        best = {d: min(np.mean([v[0] for v in grid_scores[d][(m, p)]]) for p in pts) for d in dsets}
        for point, p in zip(points, pts):
            cells, regret = [], []
            for d in dsets:
                mu = np.mean([v[0] for v in grid_scores[d][(m, p)]])
                regret.append(mu - best[d])
                txt = f"{mu:.4f}"
                cells.append(f"**{txt}**" if mu == best[d] else txt)
            default = " (default)" if _is_default(point) else ""
            w(f"| {LABELS[m]} | {tuning.point_label(point)}{default} | " + " | ".join(cells) + f" | {np.mean(regret):.4f} |")
    w("")


def _is_default(point):
    from streamfm.models.config import Config

    c = Config()
    # eta0's default is the optimiser's step (Config.step)
    return all(abs(float(v) - float(c.step if k == "eta0" else getattr(c, k))) < 1e-12 for k, v in point.items())


def _version():
    from streamfm import __version__

    return __version__


def _commit():
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip() or "?"
    except OSError:
        return "?"


# ----------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description="Reproduce the paper's Table 2 and Figure 1 with streamfm.")
    ap.add_argument("--bench", default=os.path.join(ROOT, "bench-data"), help="prepared data (tools/benchdata.py)")
    ap.add_argument("--work", default=os.path.join(ROOT, "bench-runs"), help="model directories")
    ap.add_argument("--datasets", nargs="+", help="default: every data set prepared under --bench")
    ap.add_argument("--runs", type=int, default=5, help="runs (splits 0..runs-1) per data set (default: 5)")
    ap.add_argument("--workers", type=int, default=2, help="training processes at a time (default: 2)")
    ap.add_argument("--no-tune", action="store_true", help="every method at streamfm's default eta0")
    ap.add_argument("--epochs", type=int, help="epochs for every data set (default: the paper's Figure 1 lengths)")
    ap.add_argument("--multiclass", choices=("softmax", "ovr"), help="multiclass loss (default: streamfm's, softmax)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results.md"))
    ap.add_argument("--figures", default=os.path.join(ROOT, "docs", "figures"))
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    if args.datasets:
        datasets = args.datasets
    else:
        datasets = [d for d in DATASETS if os.path.isdir(os.path.join(args.bench, d, "split-0"))]
    if not datasets:
        raise SystemExit(f"no prepared data under {args.bench}: run python tools/benchdata.py first")
    runs = list(range(args.runs))
    for d in datasets:
        for s in runs:
            if not os.path.exists(os.path.join(args.bench, d, f"split-{s}", "meta.json")):
                raise SystemExit(f"{d} split-{s} is not prepared: python tools/benchdata.py --only {d} "
                                 f"--seeds {' '.join(map(str, runs))}")
    epochs = {d: args.epochs or DATASETS[d].epochs for d in datasets}
    # the setting of Table 2: m = 50 anchors and its anchor step, whatever streamfm's defaults
    extra = {d: ["--anchors", str(PAPER_ANCHORS), "--eta-anchor", f"{PAPER_ETA_ANCHOR:g}"]
             + (["--multiclass", args.multiclass] if args.multiclass else []) for d in datasets}
    plan = Plan(args.bench, args.work, datasets, runs, not args.no_tune, epochs, extra)
    t0 = time.perf_counter()
    chosen, grid_scores = {}, {}
    if plan.tune:
        jobs = [j for d in datasets for s in runs for j in plan.tune_jobs(d, s)]
        log(f"tuning: {len(jobs)} runs")
        done = run_all(jobs, args.workers, log)
        scores = {}
        for j, _ in done:
            v = tuning.last_valid(j["model"])
            scores.setdefault((j["ds"], j["seed"], j["method"]), []).append((j["point"], v["log_loss"]))
            grid_scores.setdefault(j["ds"], {}).setdefault((j["method"], tuning.point_name(j["point"])), []).append(
                (v["log_loss"], v["accuracy"]))
        for (d, s, m), sc in scores.items():
            chosen.setdefault((d, s), {})[m] = tuning.choose(sc)
    jobs = [j for d in datasets for s in runs for j in plan.final_jobs(d, s, chosen.get((d, s), {}))]
    log(f"final runs: {len(jobs)}")
    run_all(jobs, args.workers, log)
    log("evaluating")
    results = {d: [evaluate(plan, d, s) for s in runs] for d in datasets}
    with open(os.path.join(args.work, "results.json"), "w") as fh:
        json.dump({"argv": sys.argv, "results": results,
                   "chosen": {f"{d}/{s}": c for (d, s), c in chosen.items()},
                   "validation": {d: {f"{m} {p}": v for (m, p), v in g.items()} for d, g in grid_scores.items()}},
                  fh, indent=1)
    os.makedirs(args.figures, exist_ok=True)
    for d in datasets:
        _figure(d, results[d], os.path.join(args.figures, f"{d}-test-logloss.png"))
    line = "python tools/reproduce.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    write_report(results, chosen, plan, line.strip(), args.out, args.figures, tuning.GRIDS, grid_scores)
    log(f"wrote {rel(args.out)} and {rel(args.figures)}/ in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
