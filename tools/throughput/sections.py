"""The sections of the throughput benchmark: what each one measures, into the results ``R``.

``run_all`` runs the sections asked for and stores each one's results (and
the words the page shows with them) under its key of ``R``: ``dense``,
``sparse``, ``sparse_llfm``, ``before_after`` (the A/B of earlier commits
against the current code), ``breakdown``, ``breakdown_fm``, ``anchors``,
``scaling``, ``threads``, ``startup``; then ``targets``.
"""
from __future__ import annotations

import os
import shutil
import sys

from tools import harness
from tools.harness import WORK
from tools.throughput import data, measure
from tools.throughput.data import SEED
from tools.throughput.measure import sf_cmd, sf_spec, vw_cmd
from tools.throughput.report import targets_of

#: the commits the before-after section runs against the current code (an A/B, alternating):
#: e12f9c8 has no read-ahead thread, a second pass over the row for the gradient norm and FAISS on
#: OpenMP threads; b1f1401 has those but not the read-ahead depth of a shuffle round, the gathering
#: shuffle, the fm fast path, numba scan moments or the IVF search; 0947eb0 has those but not the
#: dense fm kernel for full-width rows, shared index arrays or the one-pass wide-table transpose
BEFORE_COMMITS = ("e12f9c8", "b1f1401", "0947eb0")


def peer_table(d, stems, n_rows, sub_rows, n_rounds, log, lrq_rows, extra):
    """Every system on one data set, in rounds: (specs, best results)."""
    os.makedirs(WORK, exist_ok=True)
    tr, te = stems["train"], stems["test"]
    dense = d == "dense"
    specs = []
    if dense:
        specs.append(("floor: bare numba FM SGD, in memory", {"kind": "floor", "train": tr + ".parquet",
                                                             "test": te + ".parquet"}))
    epochs = ["--epochs", "1"]
    specs += [
        ("streamfm fm (Parquet)", sf_spec(tr + ".parquet", te + ".parquet", f"{WORK}/m-fm", ["--method", "fm", *epochs])),
        ("streamfm fm (libsvm)", sf_spec(tr + ".svm", te + ".svm", f"{WORK}/m-fm-svm", ["--method", "fm", *epochs])),
    ]
    if dense or extra.get("sparse_llfm", True):
        specs.append(("streamfm llfm-jo m=50 (Parquet)",
                      sf_spec(tr + ".parquet", te + ".parquet", f"{WORK}/m-jo",
                              ["--method", "llfm-jo", "--anchors", "50", "--rank", "10", *epochs])))
    lrq = "--lrq ff10" if dense else "--lrq ab10"
    vw_base = "--loss_function logistic --link logistic -b 22"
    lrq_train = data.subset_vw(tr, lrq_rows) if lrq_rows < n_rows else tr + ".vw"
    specs += [
        ("VW logistic", {"kind": "vw", "train": tr + ".vw", "test": te + ".vw", "args": vw_base,
                         "model": f"{WORK}/vw-lin.model", "rows": n_rows}),
        (f"VW {lrq}", {"kind": "vw", "train": lrq_train, "test": te + ".vw", "args": f"{vw_base} {lrq}",
                       "model": f"{WORK}/vw-lrq.model", "rows": min(lrq_rows, n_rows)}),
        ("River FMClassifier (subset)", {"kind": "river", "train": tr + ".parquet", "test": te + ".parquet",
                                         "rows": sub_rows, "test_rows": 5_000, "dense": dense}),
        ("sklearn SGDClassifier.partial_fit", {"kind": "sklearn", "train": tr + ".parquet",
                                               "test": te + ".parquet", "dense": dense, "p": 1 << 20}),
    ]
    log(f"{d}: {n_rows:,} training rows, {len(specs)} systems x {n_rounds} rounds")
    return specs, measure.rounds(specs, n_rounds, log)


def anchor_scaling(stems, ms, log, n_rounds):
    specs = []
    for m in ms:
        args = ["--method", "llfm-jo", "--anchors", str(m), "--epochs", "1"]
        specs.append((f"m={m}", sf_spec(stems["train"] + ".parquet", None, f"{WORK}/m-anchors-{m}", args)))
    log(f"anchor scaling: m = {ms}")
    return specs, measure.rounds(specs, n_rounds, log)


def data_scaling(base_rows, log, n_rounds):
    specs = []
    for mult in (1, 4, 16):
        stems = data.make_dense(base_rows * mult, 10_000, f"-x{mult}-{base_rows}", parquet_only=True)
        specs.append((f"{mult}x", sf_spec(stems["train"] + ".parquet", None, f"{WORK}/m-scale-{mult}",
                                          ["--method", "fm", "--epochs", "1"])))
    log(f"data scaling: {base_rows:,} x 1, 4, 16 rows")
    return specs, measure.rounds(specs, n_rounds, log)


def threads_table(dense_stems, sparse_stems, log, n_rounds):
    specs = []
    for d, stems, method in (("dense", dense_stems, "fm"), ("dense", dense_stems, "llfm-jo"),
                             ("sparse", sparse_stems, "fm")):
        for th in (1, 2):
            args = ["--method", method, "--epochs", "1", "--threads", str(th)]
            specs.append((f"{d} {method} threads={th}",
                          sf_spec(stems["train"] + ".parquet", stems["test"] + ".parquet",
                                  f"{WORK}/m-th-{d}-{method}-{th}", args)))
    log("threads")
    return specs, measure.rounds(specs, n_rounds, log)


def before_after(dense, n_rounds, log):
    """``streamfm train`` (fm, llfm-jo) at each of BEFORE_COMMITS and at the current code, alternating."""
    codes = [(commit, measure.code_at(commit)) for commit in BEFORE_COMMITS]
    specs = []
    for method, extra_args in (("fm", []), ("llfm-jo", ["--anchors", "50"])):
        for label, code in codes + [("current", None)]:
            sp = sf_spec(dense["train"] + ".parquet", None, f"{WORK}/m-ba-{method}-{label}",
                         ["--method", method, "--epochs", "1", *extra_args])
            sp["code"] = code
            specs.append((f"{method} {label}", sp))
    log(f"A/B: {', '.join(BEFORE_COMMITS)} against the current code")
    return measure.rounds(specs, n_rounds, log)


def sparse_llfm(sparse, log):
    """llfm-jo (m = 50) once on the sparse data: speed, memory and the model directory's size."""
    log("sparse llfm-jo m=50 (once): parameters (m, 2^20, 1, 10) float64")
    ck = os.path.join(WORK, "m-sparse-jo")
    spec = sf_spec(sparse["train"] + ".parquet", sparse["test"] + ".parquet", ck,
                   ["--method", "llfm-jo", "--anchors", "50", "--rank", "10", "--epochs", "1",
                    "--memory-budget", "64G"], cleanup=False)  # the exact store, measured as such
    res = measure.measure(spec)
    res["rows_per_s"] = res["rows"] / res["seconds"]
    res["epoch_rows_per_s"] = res["rows"] / res["epoch_seconds"]
    res["model_dir_mb"] = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(ck) for f in fs) / 2**20
    shutil.rmtree(ck, ignore_errors=True)
    log(f"  {res['rows_per_s']:,.0f} rows/s whole, {res['epoch_rows_per_s']:,.0f} epoch, RSS "
        f"{res['train_peak_rss_mb']:.0f} MB, model dir {res['model_dir_mb']:.0f} MB")
    return res


def startup(log, warm_runs=5):
    """Seconds for `streamfm train --max-rows 1` to begin its first epoch and train its first rows, and the
    whole process, from ``python -m tools.throughput.first_chunk`` (the same training with a callback).

    A fresh numba cache: the first run compiles and caches the kernels, the
    ``warm_runs`` after it load them; the target is on their median.
    """
    small = data.make_dense(2_000, 1_000, "-tiny")["train"] + ".parquet"
    cache = os.path.join(WORK, "numba-cache")
    shutil.rmtree(cache, ignore_errors=True)
    out = {}
    for i in range(1 + warm_runs):
        name = "cold (empty numba cache)" if i == 0 else f"warm run {i}"
        model = os.path.join(WORK, "m-startup")
        shutil.rmtree(model, ignore_errors=True)
        rec = harness.run([sys.executable, "-m", "tools.throughput.first_chunk", small, model],
                          env={"NUMBA_CACHE_DIR": cache}, check=True, what="start-up run")
        measure.LOADS.append(rec.load_before[0])
        stamps = rec.stderr_values("")
        out[name] = {"training_begins": float(stamps["EPOCH_BEGIN"]) - rec.started,
                     "first_chunk": float(stamps["FIRST_ROWS"]) - rec.started, "wall": rec.wall, "cpu": rec.cpu}
        log(f"  start-up {name}: the first epoch begins at {out[name]['training_begins']:.2f} s, its first rows "
            f"are trained at {out[name]['first_chunk']:.2f} s; whole process {rec.wall:.2f} s wall, "
            f"{rec.cpu:.2f} s CPU")
    return out


def breakdown(dense, method, anchors):
    return measure.measure({"kind": "breakdown", "train": dense["train"] + ".parquet", "anchors": anchors,
                            **({"method": method} if method != "llfm-jo" else {})})


DENSE_NOTES = [
    "floor: `tools/floor.py`, one plain logistic FM SGD step per row (rank 10) over the "
    "standardised rows already in memory as a float64 array; no reading, coding, shuffling or "
    "checkpoints. Its log loss is plain SGD at a fixed step of 0.01 (no tuning).",
    "VW `--lrq ff10` expands all pairs of the 54 features; it was run on the first 10,000 rows "
    "(its rows/s does not depend on how many rows it reads).",
    "River: `preprocessing.StandardScaler() | facto.FMClassifier(n_factors=10)`, `learn_one` "
    "on the first 3,000 rows already converted to dicts (the conversion is not timed); tested "
    "on 5,000 test rows.",
    "scikit-learn: a `StandardScaler.partial_fit` pass and an `SGDClassifier(loss='log_loss')."
    "partial_fit` pass over 65,536-row chunks read by streamfm's Parquet reader (a linear model: "
    "no interactions).",
]
SPARSE_NOTES = [
    "River: `facto.FMClassifier(n_factors=10)` with `learn_one` on the first 3,000 rows "
    "(dicts {feature id: 1.0}, conversion not timed), tested on 5,000 test rows.",
    "scikit-learn: `SGDClassifier(loss='log_loss').partial_fit` over CSR chunks of 65,536 rows "
    "read by streamfm's reader.",
    "VW `--lrq ab10` was run on the first 200,000 rows (its rows/s does not depend on how many "
    "rows it reads; its test log loss would improve somewhat with all rows).",
]


def _commands(specs, other):
    return [sf_cmd(sp) if sp["kind"] == "streamfm" else (vw_cmd(sp) if sp["kind"] == "vw" else other(n, sp))
            for n, sp in specs]


def run_all(R, args, sections, dense, sparse, log):
    """Run ``sections`` (names as ``--sections`` gives them) into ``R``."""
    nd, ns = data.count_rows(dense["train"]), data.count_rows(sparse["train"])
    if "dense" in sections:
        specs, best = peer_table("dense", dense, nd, 3_000, args.rounds, log, lrq_rows=10_000, extra={})
        R["dense"] = {"best": best, "info": {
            "title": "Dense, Covtype-shaped data",
            "desc": (f"{nd:,} training rows, 100,000 test rows, 54 features (10 real-valued, one-hots of 4 and "
                     "40), binary labels from locally different linear rules (`tools/datagen.py`, seed "
                     f"{SEED}). Parquet: a wide table, read as dense rows; libsvm: the non-zeros (12 a row); "
                     "VW: the same non-zeros in one namespace `f`. One pass (epoch) over the rows for every "
                     "system."),
            "notes": DENSE_NOTES,
            "commands": _commands(specs, lambda n, sp: f"# {n}: tools/bench_throughput.py --run "
                                                       f"'{{\"kind\": \"{sp['kind']}\", ...}}'"),
        }}
    if "sparse" in sections:
        specs, best = peer_table("sparse", sparse, ns, 3_000, args.rounds, log, lrq_rows=min(ns, 200_000),
                                 extra={"sparse_llfm": False})
        R["sparse"] = {"best": best, "info": {
            "title": "Sparse, CTR-shaped data",
            "desc": (f"{ns:,} training rows, 200,000 test rows: 30 categorical fields (Zipf-distributed "
                     "values) hashed into 2^20 features, 30 non-zeros a row (value 1), labels from a "
                     "logistic model with interactions between fields 0-9 and 10-19 (`tools/datagen.py`, "
                     f"seed {SEED}). Parquet: the sparse layout (list columns `indices`, `values`); VW: "
                     "fields 0-9 in namespace `a`, fields 10-29 in namespace `b`, so `--lrq ab10` is the "
                     "rank-10 interaction between the two field groups."),
            "notes": SPARSE_NOTES,
            "commands": _commands(specs, lambda n, sp: f"# {n}: see the notes"),
        }}
    if "sparse-llfm" in sections:
        R["sparse_llfm"] = sparse_llfm(sparse, log)
    if "before-after" in sections:
        R["before_after"] = {"best": before_after(dense, args.rounds, log)}
    if "breakdown" in sections:
        log("breakdown of llfm-jo (dense, m = 50)")
        b = breakdown(dense, "llfm-jo", 50)
        b["desc"] = ("One epoch of the trainer's own loop over the dense Parquet file (shuffle buffer of "
                     "100,000 rows, 4,096-row chunks), in one process and one thread (no prefetch; one search per "
                     "block, in the training thread, where `streamfm train` searches the next rows on a helper "
                     "thread while the kernel trains), each stage timed where it runs (phi(x) by computing it "
                     "once more beside the training step, which is taken out of the total). The kernel's time is "
                     "split by timing, on its first block (same rows, same starting parameters), coding alone, "
                     "coding + FM forward, and + anchor updates (`tools/throughput/breakdown.py`); FM updates "
                     "are the rest.")
        R["breakdown"] = b
        for k, v in b["parts"].items():
            log(f"  {k}: {v:.2f} s")
    small = data.make_dense(max(nd // 5, 10_000), 10_000, f"-x1-{max(nd // 5, 10_000)}", parquet_only=True)
    n_small = data.count_rows(small["train"])
    if "breakdown-fm" in sections:
        log("breakdown of fm (dense)")
        b = breakdown(dense, "fm", 1)
        b["desc"] = ("The same instrumented loop for `fm` (no coding vectors, no search, no anchors): what the "
                     "end-to-end pass adds to the floor's arithmetic.")
        R["breakdown_fm"] = b
        for k, v in b["parts"].items():
            log(f"  {k}: {v:.2f} s")
    if "anchors" in sections:
        specs, best = anchor_scaling(small, [16, 64, 256, 1024, 4096], log, args.rounds)
        R["anchors"] = {"best": best, "desc": (
            f"`streamfm train` of llfm-jo on {n_small:,} dense training rows (the 1x set of the data scaling), "
            "one epoch, K = 32 candidates "
            "from the FAISS index (all anchors when m <= 32, exact flat index below 1,024 anchors, an IVF "
            "over ~2 sqrt(m) lists from 1,024 on, scanning 8 of them and more after a miss), rebuilt every "
            "8,192 rows (an IVF's lists trained at one rebuild in 8); \"us per row per neighbour\" divides the "
            "epoch's time per row by the mean k; k-means on the default sample of 10,000 rows (thin for "
            "m = 4096, and k-means then takes most of the whole command's time: the epoch columns exclude it). The "
            "candidate-miss rate is the share of checked rows whose true nearest anchor (brute force over "
            "the current anchors) was not among the candidates (32 rows checked per block, the rows that "
            "saw the most-moved anchors).")}
    if "scaling" in sections:
        specs, best = data_scaling(max(nd // 5, 10_000), log, args.rounds)
        R["scaling"] = {"best": best}
    if "threads" in sections:
        specs, best = threads_table(small, sparse, log, args.rounds)
        R["threads"] = {"best": best, "desc": (
            "`--threads 2` splits every block of rows between two threads that run the kernel at once "
            "on shared parameters, without locks (Hogwild): updates race, so results are not "
            "reproducible bit for bit; the default (`--threads 1`) is deterministic. One epoch each; dense: "
            f"the {n_small:,}-row 1x set of the data scaling, sparse: the {ns:,} sparse training rows.")}
    if "startup" in sections:
        log("start-up")
        R["startup"] = startup(log)
    R["targets"] = targets_of(R)
