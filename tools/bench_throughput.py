"""Training throughput of streamfm against the arithmetic floor and its peers, in one run.

What it measures (every figure in docs/performance.md comes from here):

1. dense, Covtype-shaped data (54 features, binary labels from locally
   different rules; ``tools/datagen.py``), as Parquet and libsvm (and VW
   text): the bare in-memory numba FM SGD loop (``tools/floor.py``, the
   floor), streamfm ``fm`` and ``llfm-jo`` (m = 50, rank 10) trained from the
   files, Vowpal Wabbit plain logistic and ``--lrq`` rank 10 (from its own
   file parser), River ``facto.FMClassifier`` (on a subset) and
   scikit-learn ``SGDClassifier.partial_fit`` over chunks;
2. sparse, CTR-shaped data (30 categorical fields hashed into 2^20
   features): the same peers, VW ``--lrq`` between the two field groups;
3. where llfm-jo's time goes (reading/decoding, anchor search, coding, FM
   updates, anchor updates);
4. anchor scaling (m = 16 .. 4096) with the candidate-miss rate;
5. data scaling (1x, 4x, 16x rows): wall time and peak RSS;
6. opt-in Hogwild threads against the default single thread;
7. start-up: a second ``streamfm train`` after the numba cache is warm.

Every measurement runs in a fresh Python process (``--run SPEC``); the
parent reads that process's peak RSS from ``os.wait4``. Systems are run in
rounds, alternating, and the best round of each is kept (the machine is
shared: ratios within one run are the numbers to read).

Usage::

    python tools/bench_throughput.py [--rounds 2] [--quick] [--no-write] [--sections dense,sparse,...]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
DATA = os.path.join(REPO, "bench-data", "throughput")
WORK = os.path.join(REPO, "bench-data", "throughput-work")
DOC = os.path.join(REPO, "docs", "performance.md")
SEED = 7
# earlier code measured against this one: the branch point of the first performance work,
# the start of the second (pipeline, fm fast path, scan, IVF) and of the third (dense fm path,
# shared index arrays, one-pass wide-table transpose)
BEFORE_COMMITS = ("e12f9c8", "b1f1401", "0947eb0")
LOADS: list = []  # 1-minute load average before every measurement
BLOCK = 100_000

# --------------------------------------------------------------------------- data


def _covtype_split(n_train, n_test):
    """(X, y) blocks of one seeded stream: the first n_train rows train, the next n_test test."""
    from tools.datagen import covtype_blocks

    done = 0
    for X, y in covtype_blocks(n_train + n_test, seed=SEED, block=BLOCK):
        yield done < n_train, X, y
        done += len(y)


def _ctr_split(n_train, n_test):
    from tools.datagen import ctr_blocks

    done = 0
    for ids, y in ctr_blocks(n_train + n_test, seed=SEED, block=BLOCK, sort=False):
        yield done < n_train, ids, y
        done += len(y)


class _Writers:
    """Parquet, libsvm and VW text writers for one split."""

    def __init__(self, stem, schema):
        import pyarrow.parquet as pq

        self.stem = stem
        self.pq = pq.ParquetWriter(stem + ".parquet.tmp", schema, compression="zstd")
        self.svm = open(stem + ".svm.tmp", "w")
        self.vw = open(stem + ".vw.tmp", "w")

    def close(self):
        self.pq.close()
        self.svm.close()
        self.vw.close()
        for ext in ("parquet", "svm", "vw"):
            os.replace(f"{self.stem}.{ext}.tmp", f"{self.stem}.{ext}")


def _fmt(v):
    return f"{v:.6g}"


def make_dense(n_train, n_test, tag, parquet_only=False):
    import pyarrow as pa

    stems = {s: os.path.join(DATA, f"dense{tag}-{s}") for s in ("train", "test")}
    if all(os.path.exists(stems[s] + (".parquet" if parquet_only else ".vw")) for s in stems):
        return stems
    if parquet_only:
        import pyarrow.parquet as pq

        os.makedirs(DATA, exist_ok=True)
        schema = pa.schema([(f"f{j}", pa.float64()) for j in range(54)] + [("label", pa.int64())])
        ws = {k: pq.ParquetWriter(stems[k] + ".parquet.tmp", schema, compression="zstd") for k in stems}
        for is_train, X, y in _covtype_split(n_train, n_test):
            cols = [pa.array(X[:, j]) for j in range(54)] + [pa.array(y)]
            ws["train" if is_train else "test"].write_table(pa.Table.from_arrays(cols, schema=schema),
                                                            row_group_size=65536)
        for k, w in ws.items():
            w.close()
            os.replace(stems[k] + ".parquet.tmp", stems[k] + ".parquet")
        return stems
    os.makedirs(DATA, exist_ok=True)
    p = 54
    schema = pa.schema([(f"f{j}", pa.float64()) for j in range(p)] + [("label", pa.int64())])
    w = {s: _Writers(stems[s], schema) for s in stems}
    for is_train, X, y in _covtype_split(n_train, n_test):
        out = w["train" if is_train else "test"]
        cols = [pa.array(X[:, j]) for j in range(p)] + [pa.array(y)]
        out.pq.write_table(pa.Table.from_arrays(cols, schema=schema), row_group_size=65536)
        svm, vw = [], []
        for xi, yi in zip(X, y):
            nz = np.flatnonzero(xi)
            toks = [(j, _fmt(xi[j])) for j in nz]
            svm.append(f"{yi} " + " ".join(f"{j + 1}:{v}" for j, v in toks))
            vw.append(f"{1 if yi else -1} |f " + " ".join(f"{j}:{v}" for j, v in toks))
        out.svm.write("\n".join(svm) + "\n")
        out.vw.write("\n".join(vw) + "\n")
    for x in w.values():
        x.close()
    return stems


def make_sparse(n_train, n_test, tag):
    import pyarrow as pa

    stems = {s: os.path.join(DATA, f"sparse{tag}-{s}") for s in ("train", "test")}
    if all(os.path.exists(stems[s] + ".vw") for s in stems):
        return stems
    os.makedirs(DATA, exist_ok=True)
    schema = pa.schema([("label", pa.int64()), ("indices", pa.list_(pa.int32())), ("values", pa.list_(pa.float64()))])
    w = {s: _Writers(stems[s], schema) for s in stems}
    for is_train, ids, y in _ctr_split(n_train, n_test):
        out = w["train" if is_train else "test"]
        rows = [np.unique(r) for r in ids]
        offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int32)
        flat = np.concatenate(rows).astype(np.int32)
        ind = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))
        val = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.ones(len(flat))))
        out.pq.write_table(pa.Table.from_arrays([pa.array(y), ind, val], schema=schema))
        out.svm.write("\n".join(f"{yi} " + " ".join(f"{j + 1}:1" for j in r) for r, yi in zip(rows, y)) + "\n")
        # VW: the two field groups of the generator's interactions as namespaces
        # a (fields 0-9) and b (fields 10-29); feature names are the hashed ids
        out.vw.write("\n".join(
            f"{1 if yi else -1} |a " + " ".join(map(str, r[:10])) + " |b " + " ".join(map(str, r[10:]))
            for r, yi in zip(ids.tolist(), y)) + "\n")
    for x in w.values():
        x.close()
    return stems


def count_rows(stem):
    import pyarrow.parquet as pq

    return pq.ParquetFile(stem + ".parquet").metadata.num_rows


def subset_vw(stem, rows):
    """The first ``rows`` lines of a VW file (for the slow peers)."""
    out = f"{stem}-first{rows}.vw"
    if not os.path.exists(out):
        with open(stem + ".vw") as src, open(out + ".tmp", "w") as dst:
            for i, line in enumerate(src):
                if i >= rows:
                    break
                dst.write(line)
        os.replace(out + ".tmp", out)
    return out


# --------------------------------------------------------------------------- runners (child process)


def _binary_metrics(y, p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-15, 1 - 1e-15)
    y = np.asarray(y, dtype=np.float64)
    return {"log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
            "accuracy": float(np.mean((p > 0.5) == (y > 0.5)))}


def run_streamfm(spec):
    """``streamfm train`` as a user runs it (the CLI's main), then the test metrics."""
    from streamfm.cli import main
    from streamfm.io.sources import open_source
    from streamfm.inference.metrics import evaluate_source
    from streamfm.run import load

    model = spec["model"]
    shutil.rmtree(model, ignore_errors=True)
    argv = ["train", *spec["train"], "--model", model, "--quiet", *_every_row_trains(), *spec["args"]]
    t0, c0 = time.perf_counter(), time.process_time()
    code = main(argv)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = _peak_rss_mb()
    if code not in (0, None):
        raise SystemExit(f"streamfm train failed with {code}")
    with open(os.path.join(model, "metrics.jsonl")) as fh:
        recs = [json.loads(x) for x in fh if x.strip()]
    epoch_s = sum(r["seconds"] for r in recs)
    rows = sum(r["rows"] for r in recs)
    out = {"rows": rows, "seconds": wall, "cpu_seconds": cpu, "epoch_seconds": epoch_s, "train_peak_rss_mb": rss,
           "candidate_miss_rate": recs[-1].get("candidate_miss_rate"), "mean_k": recs[-1].get("mean_k"),
           "wanted_more_rate": recs[-1].get("wanted_more_rate")}
    if os.path.exists(os.path.join(model, "manifest.json")):
        with open(os.path.join(model, "manifest.json")) as fh:
            out["search_nprobe"] = json.load(fh)["model"].get("search_nprobe", 0)
    if spec.get("test"):
        trained = load(model, ignore_extra=True)  # hashed test rows may use ids the training rows never did
        m = evaluate_source(trained, open_source(spec["test"]), chunk_rows=65536)
        out.update(log_loss=m["log_loss"], accuracy=m["accuracy"])
    if spec.get("cleanup"):
        shutil.rmtree(model, ignore_errors=True)
    return out


def run_vw(spec):
    import vowpalwabbit

    model = spec["model"]
    t0, c0 = time.perf_counter(), time.process_time()
    ws = vowpalwabbit.Workspace(f"-d {spec['train']} {spec['args']} -f {model} --quiet")
    ws.run_parser()
    ws.finish()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = _peak_rss_mb()
    preds = model + ".preds"
    ws = vowpalwabbit.Workspace(f"-t -i {model} -d {spec['test']} -p {preds} --quiet")
    ws.run_parser()
    ws.finish()
    p = np.loadtxt(preds)
    y = np.array([1.0 if line.startswith("1 ") else 0.0 for line in open(spec["test"])])[: len(p)]
    os.remove(preds)
    os.remove(model)
    return {"rows": spec["rows"], "seconds": wall, "cpu_seconds": cpu, "train_peak_rss_mb": rss,
            **_binary_metrics(y, p)}


def _read_table(path, rows=None):
    """(CSR or dense X, y) of the first ``rows`` rows through streamfm's reader."""
    from streamfm.io.chunk import Chunk
    from streamfm.io.sources import open_source

    chunks, n = [], 0
    for c in open_source(path).iter_chunks(chunk_rows=65536):
        chunks.append(c)
        n += c.n_rows
        if rows and n >= rows:
            break
    c = Chunk.concat(chunks)
    if rows:
        c = c.take(np.arange(min(rows, c.n_rows)))
    return c


def run_river(spec):
    from river import facto, preprocessing

    train = _read_table(spec["train"], spec["rows"])
    test = _read_table(spec["test"], spec["test_rows"])

    def dicts(c):
        for i in range(c.n_rows):
            a, b = c.indptr[i], c.indptr[i + 1]
            yield dict(zip(c.indices[a:b].tolist(), c.data[a:b].tolist())), bool(c.y[i] > 0)

    fm = facto.FMClassifier(n_factors=10, seed=SEED)
    model = (preprocessing.StandardScaler() | fm) if spec["dense"] else fm
    data = list(dicts(train))  # conversion to River's dicts is not timed
    t0, c0 = time.perf_counter(), time.process_time()
    for x, y in data:
        model.learn_one(x, y)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    p = [model.predict_proba_one(x).get(True, 0.0) for x, _ in dicts(test)]
    return {"rows": train.n_rows, "seconds": wall, "cpu_seconds": cpu, "train_peak_rss_mb": _peak_rss_mb(),
            **_binary_metrics(test.y > 0, p)}


def run_sklearn(spec):
    """SGDClassifier(log_loss).partial_fit over the reader's chunks; dense data scaled by a first pass."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.preprocessing import StandardScaler

    from streamfm.io.sources import open_source

    src = open_source(spec["train"])
    dense = spec["dense"]

    def X_of(c):
        return c.to_dense() if dense else c.to_scipy(spec["p"])

    t0, c0 = time.perf_counter(), time.process_time()
    scaler = StandardScaler() if dense else None
    if dense:
        for c in src.iter_chunks(chunk_rows=65536):
            scaler.partial_fit(X_of(c))
    clf = SGDClassifier(loss="log_loss", random_state=SEED)
    rows = 0
    for c in src.iter_chunks(chunk_rows=65536):
        X = X_of(c)
        clf.partial_fit(scaler.transform(X) if dense else X, c.y > 0, classes=[False, True])
        rows += c.n_rows
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = _peak_rss_mb()
    ys, ps = [], []
    for c in open_source(spec["test"]).iter_chunks(chunk_rows=65536):
        X = X_of(c)
        ps.append(clf.predict_proba(scaler.transform(X) if dense else X)[:, 1])
        ys.append(c.y > 0)
    return {"rows": rows, "seconds": wall, "cpu_seconds": cpu, "train_peak_rss_mb": rss,
            **_binary_metrics(np.concatenate(ys), np.concatenate(ps))}


def run_floor(spec):
    """The bare numba FM SGD loop over the standardised training rows, already in memory."""
    from tools.floor import bare_fm_sgd

    c = _read_table(spec["train"])
    X = c.to_dense(54)
    mean, std = X.mean(0), X.std(0)
    std[std == 0] = 1
    X = np.ascontiguousarray((X - mean) / std)
    y = (c.y > 0).astype(np.float64)
    rng = np.random.default_rng(SEED)
    r = 10
    bare_fm_sgd(X[:100], y[:100], np.zeros(1), np.zeros(54), rng.normal(0, 0.1, (54, r)), 0.01, 1e-5)  # compile
    b, w, V = np.zeros(1), np.zeros(54), rng.normal(0, 0.1, (54, r))
    t0, c0 = time.perf_counter(), time.process_time()
    bare_fm_sgd(X, y, b, w, V, 0.01, 1e-5)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    t = _read_table(spec["test"])
    Xt = (t.to_dense(54) - mean) / std
    s = Xt @ V
    f = b[0] + Xt @ w + 0.5 * (s * s - (Xt * Xt) @ (V * V)).sum(1)
    return {"rows": len(y), "seconds": wall, "cpu_seconds": cpu, "train_peak_rss_mb": _peak_rss_mb(),
            **_binary_metrics(t.y > 0, 1 / (1 + np.exp(-f)))}


def run_breakdown(spec):
    """Where llfm-jo's time goes: the trainer's own loop, each stage timed separately.

    Reading/decoding/shuffling/standardising, phi(x), the FAISS search and the
    kernel are timed as the trainer runs them (one epoch from the file). The
    kernel's time is then split by timing, on the same rows and the same
    starting parameters, the coding alone (candidate distances + Algorithm 1)
    and the coding plus the FM forward passes; anchor updates are timed by a
    loop that does only them; FM updates are the rest.
    """
    from streamfm.coding.search import count_misses  # noqa: F401  (imported for its numba warm-up)
    from streamfm.io.sources import open_source
    from streamfm.models.config import Config
    from streamfm.models.init import model_from_scan
    from streamfm.models.trained import TrainedModel
    from streamfm.preprocess.scan import scan
    from streamfm.preprocess.shuffle import shuffled_epoch
    from streamfm.preprocess.standardize import Standardizer
    from tools import _breakdown

    src = open_source(spec["train"])
    cfg = Config(method=spec.get("method", "llfm-jo"), anchors=spec["anchors"], rank=10)
    sc = scan(src, sample_size=10_000, seed=cfg.seed, progress=False)
    std = Standardizer.from_scan(sc, "auto", dense_source=src.dense)  # as the trainer's default
    model = model_from_scan(cfg, sc, std, src.dense)  # the trainer's model
    trained = TrainedModel(model, std, sc.classes)
    T = {"read": 0.0, "phi": 0.0, "kernel": 0.0}
    start = {k: v.copy() for k, v in model.params.items()}  # the first block's starting parameters
    keep = []  # the first block's inputs, for the split of the kernel time

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            T[name] += time.perf_counter() - t
            return out
        return wrapper

    def on_block(args, seconds):
        if not keep:
            keep.append(_breakdown.first_block(args, start))
        T["kernel"] += seconds

    # one search per block, in this thread, between the kernel calls (training otherwise
    # searches the next rows on a helper thread while the kernel runs): what is not timed
    # below is the search, its rebuilds and the miss checks
    model.schedule.search_first = 10**12
    model.on_block = on_block
    model.coding_vectors = timed("phi", model.coding_vectors)
    stream = shuffled_epoch(src, epoch=0, seed=cfg.seed, buffer_rows=100_000, out_rows=4096,
                            chunk_rows=65536)
    t_all = time.perf_counter()
    rows = 0
    it = iter(stream)
    while True:
        t = time.perf_counter()
        c = next(it, None)
        if c is not None:
            tg = trained.targets(c.y)
            c = std.transform(c)
        T["read"] += time.perf_counter() - t
        if c is None:
            break
        model.partial_fit_chunk(c, tg)
        rows += c.n_rows
    total = time.perf_counter() - t_all
    k = T["kernel"]
    if cfg.method == "fm":
        # fm with one output runs kernels.fm.fm_rows_single, one loop for the forward pass and
        # the update: the staged general loop of _breakdown would not split its time
        parts = {"reading, decoding, shuffling, standardising": T["read"],
                 "FM kernel (forward and update, one loop)": k,
                 "Python, chunk and block overhead": total - T["read"] - k}
        return {"rows": rows, "seconds": total, "parts": parts, "mean_k": 1.0}
    split = _breakdown.split_kernel(keep[0])
    parts = {
        "reading, decoding, shuffling, standardising": T["read"],
        "coding vectors phi(x)": T["phi"],
        "anchor search (FAISS) and miss checks": total - sum(T.values()),
        "coding (candidate distances, Algorithm 1)": k * split["coding"],
        "FM forward (f and gradient norm)": k * split["forward"],
        "FM updates": k * split["fm_update"],
        "anchor updates": k * split["anchor_update"],
    }
    return {"rows": rows, "seconds": total, "parts": parts, "kernel_split": split,
            "mean_k": model.metrics()["mean_k"]}


def _peak_rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


RUNNERS = {"streamfm": run_streamfm, "vw": run_vw, "river": run_river, "sklearn": run_sklearn,
           "floor": run_floor, "breakdown": run_breakdown}


# --------------------------------------------------------------------------- parent


def _spawn(cmd, env=None):
    """Run ``cmd``; (returncode, stdout, stderr, wall s, CPU s (user + sys), peak RSS MB) of that process."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=err, text=True,
                                env={**os.environ, **(env or {})})
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read(), wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def measure(spec, env=None):
    """Run one measurement in a fresh process; its result plus the process's CPU time and peak RSS.

    ``spec["code"]``, if given, is another checkout of streamfm (e.g. the code before a change) whose
    copy of this tool runs the measurement, so that it imports that streamfm.
    """
    LOADS.append(os.getloadavg()[0])
    tool = os.path.abspath(__file__)
    if spec.get("code"):
        tool = os.path.join(spec["code"], "tools", os.path.basename(tool))
    code, out, err, wall, cpu, rss = _spawn([sys.executable, tool, "--run", json.dumps(spec)], env)
    if code != 0:
        raise RuntimeError(f"{spec['kind']} failed:\n{err[-3000:]}")
    res = json.loads(out.strip().splitlines()[-1])
    res["process_seconds"] = wall
    res["process_cpu_seconds"] = cpu
    res["process_peak_rss_mb"] = rss
    return res


def rounds(specs, n_rounds, log):
    """Run every spec once per round, alternating; keep each spec's fastest round."""
    best, history = {}, {}
    for rnd in range(n_rounds):
        for name, spec in specs:
            res = measure(spec)
            res["rows_per_s"] = res["rows"] / res["seconds"]
            if "epoch_seconds" in res:
                res["epoch_rows_per_s"] = res["rows"] / res["epoch_seconds"]
            log(f"  round {rnd + 1} {name}: {res['rows_per_s']:,.0f} rows/s "
                f"({res['seconds']:.2f} s, RSS {res['train_peak_rss_mb']:.0f} MB"
                + (f", log loss {res['log_loss']:.4f}" if "log_loss" in res else "") + ")")
            # every round's rates, in round order (rounds alternate the systems: a round's ratios pair up)
            seen = history.setdefault(name, {})
            for key in ("rows_per_s", "epoch_rows_per_s"):
                if key in res:
                    seen.setdefault("all_" + key, []).append(res[key])
            if name not in best or res["rows_per_s"] > best[name]["rows_per_s"]:
                best[name] = res
            best[name].update(seen)
    return best


def sf_spec(train, test, model, args, cleanup=True):
    return {"kind": "streamfm", "train": [train], "test": test, "model": model, "args": args, "cleanup": cleanup}


def _every_row_trains() -> list[str]:
    """``--early-stop 0``: the benchmark measures training, every row of the file trained on and no
    validation pass (without it, on more than 10,000 rows 10% would be held out); a streamfm from
    before early stopping (an A/B's old side) has no such option and holds nothing out."""
    from streamfm.training.options import TrainOptions

    return ["--early-stop", "0"] if "early_stop" in TrainOptions.__dataclass_fields__ else []


def sf_cmd(spec):
    return "python -m streamfm train " + " ".join(spec["train"]) + " --model MODEL --quiet --early-stop 0 " \
        + " ".join(spec["args"])


def vw_cmd(spec):
    return f"vw -d {os.path.relpath(spec['train'], REPO)} {spec['args']} -f MODEL   (vowpalwabbit.Workspace + run_parser)"


def peer_table(d, stems, n_rows, sub_rows, n_rounds, log, lrq_rows, extra):
    """specs of one data set: name -> spec, plus the commands."""
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
    lrq_train = subset_vw(tr, lrq_rows) if lrq_rows < n_rows else tr + ".vw"
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
    return specs, rounds(specs, n_rounds, log)


def anchor_scaling(stems, ms, log, n_rounds):
    specs = []
    for m in ms:
        args = ["--method", "llfm-jo", "--anchors", str(m), "--epochs", "1"]
        specs.append((f"m={m}", sf_spec(stems["train"] + ".parquet", None, f"{WORK}/m-anchors-{m}", args)))
    log(f"anchor scaling: m = {ms}")
    return specs, rounds(specs, n_rounds, log)


def data_scaling(base_rows, log, n_rounds):
    specs = []
    for mult in (1, 4, 16):
        stems = make_dense(base_rows * mult, 10_000, f"-x{mult}-{base_rows}", parquet_only=True)
        specs.append((f"{mult}x", sf_spec(stems["train"] + ".parquet", None, f"{WORK}/m-scale-{mult}",
                                          ["--method", "fm", "--epochs", "1"])))
    log(f"data scaling: {base_rows:,} x 1, 4, 16 rows")
    return specs, rounds(specs, n_rounds, log)


def threads_table(dense_stems, sparse_stems, log, n_rounds):
    specs = []
    for d, stems, method in (("dense", dense_stems, "fm"), ("dense", dense_stems, "llfm-jo"),
                             ("sparse", sparse_stems, "fm")):
        for th in (1, 2):
            args = ["--method", method, "--epochs", "1", "--threads", str(th)]
            if d == "sparse" and method != "fm":
                continue
            specs.append((f"{d} {method} threads={th}",
                          sf_spec(stems["train"] + ".parquet", stems["test"] + ".parquet",
                                  f"{WORK}/m-th-{d}-{method}-{th}", args)))
    log("threads")
    return specs, rounds(specs, n_rounds, log)


def startup(log, warm_runs=5):
    """Seconds for `python -m streamfm train --max-rows 1`: to its first trained chunk, and the whole process.

    A fresh numba cache: the first run compiles and caches the kernels, the
    ``warm_runs`` after it load them; the target is on their median.
    """
    small = make_dense(2_000, 1_000, "-tiny")["train"] + ".parquet"
    cache = os.path.join(WORK, "numba-cache")
    shutil.rmtree(cache, ignore_errors=True)
    probe = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_first_chunk.py")
    out = {}
    for i in range(1 + warm_runs):
        name = "cold (empty numba cache)" if i == 0 else f"warm run {i}"
        model = os.path.join(WORK, "m-startup")
        shutil.rmtree(model, ignore_errors=True)
        t_spawn = time.time()
        code, _, err, wall, cpu, _ = _spawn(
            [sys.executable, probe, "train", small, "--model", model, "--method", "llfm-jo",
             "--epochs", "1", "--max-rows", "1", "--quiet"], {"NUMBA_CACHE_DIR": cache})
        if code != 0:
            raise RuntimeError(err[-2000:])
        stamps = dict(line.split() for line in err.splitlines() if line.startswith("FIRST_CHUNK_"))
        out[name] = {"first_chunk_in": float(stamps["FIRST_CHUNK_IN"]) - t_spawn,
                     "first_chunk": float(stamps["FIRST_CHUNK_OUT"]) - t_spawn, "wall": wall, "cpu": cpu}
        log(f"  start-up {name}: first chunk enters training at {out[name]['first_chunk_in']:.2f} s, is trained "
            f"at {out[name]['first_chunk']:.2f} s; whole process {wall:.2f} s wall, {cpu:.2f} s CPU")
    return out


class _Saved(dict):
    """Results that are written to disk as each section finishes (a crash keeps what was measured)."""

    path = os.path.join(REPO, "bench-data", "throughput-partial.json")

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        with open(self.path, "w") as fh:
            json.dump(self, fh)


def code_at(ref: str) -> str:
    """streamfm as of commit ``ref``, extracted once under WORK (``code-<commit>``), with this
    checkout's benchmark tools copied in: ``measure`` then runs the same harness on that code."""
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=os.path.dirname(os.path.abspath(__file__)),
                         capture_output=True, text=True).stdout.strip() or REPO
    commit = subprocess.run(["git", "rev-parse", "--short=7", "--verify", f"{ref}^{{commit}}"], cwd=top,
                            capture_output=True, text=True, check=True).stdout.strip()
    path = os.path.join(WORK, f"code-{commit}")
    if not os.path.exists(path):
        os.makedirs(path)
        subprocess.run(f"git archive {commit} | tar -x -C {path}", shell=True, cwd=top, check=True)
        for f in ("bench_throughput.py", "floor.py", "_breakdown.py", "datagen.py"):
            shutil.copy(os.path.join(REPO, "tools", f), os.path.join(path, "tools", f))
    return path


def run_all(R, args, sections, dense, sparse, log):
    nd, ns = count_rows(dense["train"]), count_rows(sparse["train"])
    rel = lambda p: os.path.relpath(p, REPO)  # noqa: E731
    if "dense" in sections:
        specs, best = peer_table("dense", dense, nd, 3_000, args.rounds, log, lrq_rows=10_000, extra={})
        R["dense"] = {"best": best, "info": {
            "title": "Dense, Covtype-shaped data",
            "desc": (f"{nd:,} training rows, 100,000 test rows, 54 features (10 real-valued, one-hots of 4 and "
                     "40), binary labels from locally different linear rules (`tools/datagen.py`, seed "
                     f"{SEED}). Parquet: a wide table, read as dense rows; libsvm: the non-zeros (12 a row); "
                     "VW: the same non-zeros in one namespace `f`. One pass (epoch) over the rows for every "
                     "system."),
            "notes": [
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
            ],
            "commands": [sf_cmd(sp) if sp["kind"] == "streamfm" else
                         (vw_cmd(sp) if sp["kind"] == "vw" else f"# {n}: tools/bench_throughput.py --run "
                          f"'{{\"kind\": \"{sp['kind']}\", ...}}'") for n, sp in specs],
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
            "notes": [
                "River: `facto.FMClassifier(n_factors=10)` with `learn_one` on the first 3,000 rows "
                "(dicts {feature id: 1.0}, conversion not timed), tested on 5,000 test rows.",
                "scikit-learn: `SGDClassifier(loss='log_loss').partial_fit` over CSR chunks of 65,536 rows "
                "read by streamfm's reader.",
                "VW `--lrq ab10` was run on the first 200,000 rows (its rows/s does not depend on how many "
                "rows it reads; its test log loss would improve somewhat with all rows).",
            ],
            "commands": [sf_cmd(sp) if sp["kind"] == "streamfm" else
                         (vw_cmd(sp) if sp["kind"] == "vw" else f"# {n}: see the notes") for n, sp in specs],
        }}
    if "sparse-llfm" in sections:
        log("sparse llfm-jo m=50 (once): parameters (m, 2^20, 1, 10) float64")
        spec = sf_spec(sparse["train"] + ".parquet", sparse["test"] + ".parquet", f"{WORK}/m-sparse-jo",
                       ["--method", "llfm-jo", "--anchors", "50", "--rank", "10", "--epochs", "1",
                        "--memory-budget", "64G"], cleanup=False)  # the exact store, measured as such
        res = measure(spec)
        res["rows_per_s"] = res["rows"] / res["seconds"]
        res["epoch_rows_per_s"] = res["rows"] / res["epoch_seconds"]
        ck = os.path.join(WORK, "m-sparse-jo")
        res["model_dir_mb"] = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(ck) for f in fs) / 2**20
        shutil.rmtree(ck, ignore_errors=True)
        R["sparse_llfm"] = res
        log(f"  {res['rows_per_s']:,.0f} rows/s whole, {res['epoch_rows_per_s']:,.0f} epoch, RSS "
            f"{res['train_peak_rss_mb']:.0f} MB, model dir {res['model_dir_mb']:.0f} MB")
    if "before-after" in sections:
        codes = [(commit, code_at(commit)) for commit in BEFORE_COMMITS]
        specs = []
        for method, extra_args in (("fm", []), ("llfm-jo", ["--anchors", "50"])):
            for label, code in codes + [("now", None)]:
                sp = sf_spec(dense["train"] + ".parquet", None, f"{WORK}/m-ba-{method}-{label}",
                             ["--method", method, "--epochs", "1", *extra_args])
                sp["code"] = code
                specs.append((f"{method} {label}", sp))
        log(f"before ({', '.join(BEFORE_COMMITS)}) / now")
        R["before_after"] = {"best": rounds(specs, args.rounds, log)}
    if "breakdown" in sections:
        log("breakdown of llfm-jo (dense, m = 50)")
        b = measure({"kind": "breakdown", "train": dense["train"] + ".parquet", "anchors": 50})
        b["desc"] = ("One epoch of the trainer's own loop over the dense Parquet file (shuffle buffer of "
                     "100,000 rows, 4,096-row chunks), in one process and one thread (no prefetch; one search per "
                     "block, in the training thread, where `streamfm train` searches the next rows on a helper "
                     "thread while the kernel trains), each stage timed where it runs. The kernel's time is split by timing, on its first block (same rows, "
                     "same starting parameters), coding alone, coding + FM forward, and + anchor updates "
                     "(`tools/_breakdown.py`); FM updates are the rest.")
        R["breakdown"] = b
        for k, v in b["parts"].items():
            log(f"  {k}: {v:.2f} s")
    small = make_dense(max(nd // 5, 10_000), 10_000, f"-x1-{max(nd // 5, 10_000)}", parquet_only=True)
    n_small = count_rows(small["train"])
    if "breakdown-fm" in sections:
        log("breakdown of fm (dense)")
        b = measure({"kind": "breakdown", "train": dense["train"] + ".parquet", "anchors": 1, "method": "fm"})
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
            "8,192 rows (an IVF's lists trained at one rebuild in 8); \"us per row per neighbour\" divides the epoch's time per row by the mean k; k-means on the default sample of 10,000 rows (thin for "
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


def _met(fastest, per_round, target):
    """A ratio measured round by round meets its target when both the fastest epochs and the median round do."""
    return fastest >= target and (len(per_round) < 2 or float(np.median(per_round)) >= target)


def targets_of(R):
    """The issue's targets as (what, measured, met) rows, from the results in ``R``."""
    targets = []
    if "dense" in R:
        d = R["dense"]["best"]
        fl = d["floor: bare numba FM SGD, in memory"]["rows_per_s"]
        fm = d["streamfm fm (Parquet)"]
        fl_all = d["floor: bare numba FM SGD, in memory"].get("all_rows_per_s", [])
        per_round = [a / b for a, b in zip(fm.get("all_epoch_rows_per_s", []), fl_all)]
        rounds_note = (f"; round by round {', '.join(f'{x:.2f}' for x in per_round)}, median "
                       f"{float(np.median(per_round)):.2f}" if len(per_round) > 1 else "")
        targets.append(("streamfm fm end-to-end from Parquet >= 0.5 x floor (epoch rows/s)",
                        f"{fm['epoch_rows_per_s'] / fl:.2f} (fastest epoch {fmt_rate(fm['epoch_rows_per_s'])} vs "
                        f"fastest floor {fmt_rate(fl)}{rounds_note}; whole command {fm['rows_per_s'] / fl:.2f})",
                        _met(fm["epoch_rows_per_s"] / fl, per_round, 0.5)))
        jo = d["streamfm llfm-jo m=50 (Parquet)"]
        targets.append(("llfm-jo (m = 50) >= 1/5 of fm (dense)",
                        f"{jo['rows_per_s'] / fm['rows_per_s']:.2f} (epoch {jo['epoch_rows_per_s'] / fm['epoch_rows_per_s']:.2f})",
                        jo["rows_per_s"] / fm["rows_per_s"] >= 0.2))
    if "sparse" in R:
        s = R["sparse"]["best"]
        fm, lrq = s["streamfm fm (Parquet)"], s["VW --lrq ab10"]
        ok = fm["rows_per_s"] >= 2 * lrq["rows_per_s"] and fm["log_loss"] <= lrq["log_loss"]
        targets.append(("sparse: streamfm fm >= 2x VW --lrq rows/s at equal or better test log loss",
                        f"{fm['rows_per_s'] / lrq['rows_per_s']:.2f}x; log loss {fm['log_loss']:.4f} vs "
                        f"{lrq['log_loss']:.4f}", ok))
    if "anchors" in R:
        a = R["anchors"]["best"]
        if "m=4096" in a and "m=64" in a:
            r = a["m=4096"]["epoch_rows_per_s"] / a["m=64"]["epoch_rows_per_s"]
            # the rounds alternate the m values: round i of one pairs with round i of the other
            per_round = [x / y for x, y in zip(a["m=4096"].get("all_epoch_rows_per_s", []),
                                               a["m=64"].get("all_epoch_rows_per_s", []))]
            note = (f" (fastest epochs; round by round {', '.join(f'{x:.2f}' for x in per_round)}, median "
                    f"{float(np.median(per_round)):.2f})" if len(per_round) > 1 else "")
            targets.append(("m = 4096 >= 1/4 of m = 64 (epoch rows/s)", f"{r:.2f}{note}", _met(r, per_round, 0.25)))
    if "startup" in R:
        first, whole = _warm_startup(R["startup"])
        targets.append(("a second `streamfm train` starts training within 2 s",
                        f"{first:.2f} s to the first trained chunk (median of {len(R['startup']) - 1} warm runs; "
                        f"whole process {whole:.2f} s)", first <= 2.0))
    return targets


def _warm_startup(runs):
    """Medians over the warm runs of (seconds to the first trained chunk, whole-process seconds)."""
    warm = [v for k, v in runs.items() if not k.startswith("cold")]
    return float(np.median([v["first_chunk"] for v in warm])), float(np.median([v["wall"] for v in warm]))


# --------------------------------------------------------------------------- report

def reading(R):
    """What the tables of this run say, in words (every figure from R)."""
    out = ["## Reading the results\n"]
    d, s = (R.get(k, {}).get("best", {}) for k in ("dense", "sparse"))
    fl, fm = d.get("floor: bare numba FM SGD, in memory"), d.get("streamfm fm (Parquet)")
    if fl and fm:
        out.append(f"- **fm against the floor.** The bare loop trained {fmt_rate(fl['rows_per_s'])} rows/s; "
                   f"streamfm fm's training pass from Parquet {fmt_rate(fm['epoch_rows_per_s'])} rows/s "
                   f"({fm['epoch_rows_per_s'] / fl['rows_per_s']:.2f} of it) and the whole command, with its "
                   f"start-up, scan pass and checkpoints, {fmt_rate(fm['rows_per_s'])} rows/s "
                   f"({fm['rows_per_s'] / fl['rows_per_s']:.2f}).")
        b = R.get("breakdown_fm")
        if b:
            p = b["parts"]
            rd = p["reading, decoding, shuffling, standardising"]
            ker = p.get("FM kernel (forward and update, one loop)",
                        p.get("FM forward (f and gradient norm)", 0.0) + p.get("FM updates", 0.0))
            out.append(f"  In one thread, reading, decoding, shuffling and standardising took {rd:.2f} s and the "
                       f"kernel {ker:.2f} s of {b['seconds']:.2f} s for {b['rows']:,} rows (the floor's loop: "
                       f"{b['rows'] / fl['rows_per_s']:.2f} s; the kernel also computes the gradient norm of the "
                       "normalised step). The read-ahead thread runs the file pipeline on the second core, "
                       "but the two threads share the machine's memory bandwidth and caches, and each ran slower "
                       "beside the other than alone (timed by hand while developing: the kernel's 500,000 rows "
                       "in 0.55-0.74 s alone, 0.66-0.90 s beside the reader): the overlapped training pass took "
                       "about as long as this serial one.")
    jo = d.get("streamfm llfm-jo m=50 (Parquet)")
    if jo and fm:
        out.append(f"- **llfm-jo against fm.** {jo['rows_per_s'] / fm['rows_per_s']:.2f} of fm's rows/s (whole "
                   f"command), {jo['epoch_rows_per_s'] / fm['epoch_rows_per_s']:.2f} (training pass), with test "
                   f"log loss {jo['log_loss']:.4f} against fm's {fm['log_loss']:.4f}.")
    sfm, lrq, lin = s.get("streamfm fm (Parquet)"), s.get("VW --lrq ab10"), s.get("VW logistic")
    if sfm and lrq:
        out.append(f"- **Sparse data against Vowpal Wabbit.** streamfm fm trained {sfm['rows_per_s'] / lrq['rows_per_s']:.1f}x "
                   f"VW `--lrq ab10`'s rows/s, at test log loss {sfm['log_loss']:.4f} against {lrq['log_loss']:.4f}. "
                   + (f"Plain VW logistic regression is faster still ({fmt_rate(lin['rows_per_s'])} rows/s) and, "
                      f"after one pass, {'better' if lin['log_loss'] < sfm['log_loss'] else 'no better'} "
                      f"({lin['log_loss']:.4f}): one epoch of an FM over 2^20 hashed features leaves most factors "
                      "barely trained." if lin else ""))
    a = R.get("anchors", {}).get("best", {})
    if "m=64" in a and "m=4096" in a:
        r64, r4k = a["m=64"], a["m=4096"]
        out.append(f"- **Anchors.** From m = 64 to m = 4096 (64x) the cost per row grew "
                   f"{r64['epoch_rows_per_s'] / r4k['epoch_rows_per_s']:.1f}x, in step with the number of "
                   f"neighbours Algorithm 1 chooses (mean k {r64['mean_k']:.2f} -> {r4k['mean_k']:.2f}; each "
                   "neighbour is one FM evaluated and updated per row)"
                   + (f", which is also why m = 16 (mean k {a['m=16']['mean_k']:.2f}) is slower than m = 64"
                      if 'm=16' in a and a['m=16']['epoch_rows_per_s'] < r64['epoch_rows_per_s'] else "")
                   + ". The "
                   "search is an exact flat FAISS index below m = 1,024 and an IVF from there on, and the cost "
                   "per row per neighbour went from "
                   f"{1e6 / r64['epoch_rows_per_s'] / r64['mean_k']:.2f} us at m = 64 (where the search and the "
                   f"reading dominate) to {1e6 / r4k['epoch_rows_per_s'] / r4k['mean_k']:.2f} us at m = 4096: what "
                   "grows with m is the neighbours the coding uses, not the search. Candidate misses stayed at "
                   + ", ".join(f"{100 * (v['candidate_miss_rate'] or 0):.2f}%" for v in a.values())
                   + " for m = " + ", ".join(k[2:] for k in a) + ".")
    sc = R.get("scaling", {}).get("best", {})
    if {"1x", "16x"} <= set(sc):
        e1, e16 = sc["1x"], sc["16x"]
        out.append(f"- **Data scaling.** 16x the rows: the training pass took {e16['epoch_seconds'] / e1['epoch_seconds']:.1f}x "
                   f"as long, the whole command {e16['seconds'] / e1['seconds']:.1f}x (its fixed start-up is "
                   f"amortised), and peak RSS went from {e1['train_peak_rss_mb']:.0f} to "
                   f"{e16['train_peak_rss_mb']:.0f} MB.")
    th = R.get("threads", {}).get("best", {})
    if th:
        ups = [f"{k.replace(' threads=2', '')} {v['epoch_rows_per_s'] / th[k.replace('threads=2', 'threads=1')]['epoch_rows_per_s']:.2f}x"
               for k, v in th.items() if k.endswith("threads=2")]
        out.append("- **Hogwild.** Speed-up of the training pass with 2 threads over 1: " + ", ".join(ups) +
                   ", with test metrics within noise of the single thread's.")
    return "\n".join(out) + "\n"


STATIC_NOTES = """## What streamfm does for speed

- **One pass over a row for f and the step size.** The normalised step needs
  ||grad_theta f||^2, whose factor part sum_j x_j^2 ||s - V_j x_j||^2 was a
  second pass over the row's factors. It is now expanded as
  ||x||^2 ||s||^2 - 2 <s, sum_j x_j^3 V_j> + sum_j x_j^4 ||V_j||^2 and
  accumulated beside s in the same pass (`kernels/fm.py`). Same arithmetic
  up to rounding, same tests.
- **Session 9's A/B runs** ("alternating `streamfm train` runs" below) were
  measured by the script `tools/ab_train.py OLD NEW` grew from: both
  commits train llfm-jo for one epoch on the 100,000 dense rows of the data
  scaling, in fresh processes, alternating, for each m (the script swapped
  the two commits' order every other round; the tool keeps one order, as
  the other sections here do).
- **The factor loops in vector registers** (session 9, `kernels/_simd.py`).
  Numba compiled each neighbour's factor loops (rank 10) to scalar code, and
  nothing written in Python made LLVM pack them. In a bare loop, per-factor
  scalar accumulators, flat sweeps of the anchor's block (vectorised, with
  their accumulators in memory) and two features at a time came within 8%
  of the plain loop; `fastmath` (reassociation, contraction) was 10-14%
  faster, with results that then differ between the full-width and CSR
  specialisations (its A/B in the trainer ran on a stale numba cache, see
  docs/architecture.md, and measured nothing). `fm_eval` and `fm_update` now sweep the row
  once per block of 4, 2 and 1 factors through small LLVM intrinsics that
  hold the block in one <4 x double> register. The update is the scalar
  expression lane by lane (bit for bit the previous results); the
  evaluation sums the squared norms per factor first (the same sums in
  another order). In a bare evaluate-and-update loop (dense 54 features,
  rank 10, 13 neighbours a row) a neighbour took 0.69-0.99 us against
  1.35-1.97 at m = 64 and 1.05-1.43 against 1.93-2.50 at m = 4096 (three
  alternating pairs of processes in a noisy phase of the host; in a quiet
  one the old loop ran 0.93 and 1.15); `streamfm train` llfm-jo, 100,000
  rows, 4 alternating rounds: m = 4096 epoch rows/s 30.0k against 25.0k
  (fastest), 24.7k against 21.9k (median), m = 64 unchanged. The `fm` fast
  paths below stay scalar.
- **A fast path for `fm` with one output** (`kernels/fm.py`,
  `fm_rows_single`): the general loop serves every method and C outputs
  through a one-neighbour coding and 4-d parameter indexing; with one FM and
  one output (binary or regression, plain SGD) the parameters are 1-d/2-d
  arrays and f, the factor sums and the gradient norm come out of one pass
  into locals, 1.2-1.35x the general loop's rows/s. Equal to the general
  loop to 1e-12 (tested).
- **A dense path for full-width rows** (`kernels/fm.py`, `fm_rows_dense`):
  when every row of a chunk holds all p features (a wide table, or rows the
  standardiser centred), the fm fast path reads the rows as an (n, p) array
  and never touches the index array: the feature loop sweeps W and V
  contiguously and reads a third less memory. 0.76-0.79M rows/s against
  0.60-0.62M for the CSR loop on 200,000 rows of 54 features, rank 10 (the
  bare floor loop: 0.86-0.90M); bit for bit the CSR loop's result (tested).
  The general loop (llfm-*, and fm with several outputs or AdaGrad) does the
  same since session 8: a full-width chunk passes `indices=None`, for which
  numba compiles `fm_eval`, `fm_update` and the prefetch once more without
  index loads, sweeping each anchor's W and V in order: in a bare loop of 12
  neighbours a row, 15-25% less time per neighbour (0.90 against 1.13-1.19 us
  in cache, 1.36-1.43 against 1.59-1.65 with 4,096 anchors); bit for bit the
  CSR loop's result (tested).
- **Reading overlaps training.** The kernels are `nogil`; the trainer
  prepares the next chunks (read, decode, shuffle, standardise) in a
  background thread (`runtime/prefetch.py`, `TrainOptions.prefetch`). Its
  queue holds one shuffle round's output by default: the shuffle mixes a
  buffer's worth of rows, then emits a round's chunks at once, and a queue
  of two chunks left the kernel waiting a third of the epoch while the next
  round was mixed (measured: 1.3 of 2 cores busy). Items arrive in the same
  order, so results are bit-for-bit those of the serial loop (tested).
- **Fewer copies per row.** The shuffle buffer gathers each output chunk
  straight from the chunks it holds (`Chunk.take_from`, numba loops), never
  concatenating them first; for full-width (dense) rows only the values move
  (the indices of such rows are 0..p-1, and all full-width chunks share
  one cached index array per width instead of tiling their own; a chunk
  made full width says so, so nothing re-derives it from the row lengths).
  Standardising is one numba pass that checks finiteness and
  centres/scales. A wide table's numeric columns become rows in one numba
  pass over blocks of 64 rows with the finiteness check summed into it
  (11-12 ms per 65,536 x 54 batch, against 20 ms for NumPy's strided copy
  and a check per column). Together: the read-shuffle-standardise pass over
  the 500,000 dense rows in 0.55 s of CPU instead of 0.66 s (one thread,
  median of 5 alternating runs).
- **The search of the next rows runs while the kernel trains** (session
  10, `models/schedule.py`). With one training thread (the default), a block's
  FAISS search is cut into parts of 128 rows, doubling up to 1,024, and a
  helper thread searches the next part while the kernel trains on the
  current one. The index is built from the block's snapshot of the anchors,
  so the candidates, and the model, are those of one search per block, bit
  for bit (tested). In-process, one epoch of 100,000 dense rows, 4
  alternating rounds, us per row fastest (median): m = 4096 25.7 (29.0) one
  search per block, 22.4 (25.4) parts of 1,024, 18.6 (22.6) parts from 128
  up; m = 64 6.0 (6.2), 5.0 (5.3), 4.5 (5.2). `streamfm train`
  (`tools/ab_train.py b2fdd9e 4b95235 --rounds 4`): m = 4096 epoch rows/s
  38.9k against 31.3k (fastest), 35.3k against 25.8k (median); m = 64 125k
  against 119k, 119k against 107k; later, at 9528c42 (`--anchors 16,64`),
  m = 16, whose "search" lists all anchors, 132k against 134k and m = 64
  118k against 106k (fastest). At m = 64 the search takes about as long as
  the kernel, and the helper's core also reads the data, so less of it is
  hidden. Predictions (`decision_chunk`: `predict`, `evaluate`,
  validation) search the same way: at m = 4096, 17.7 (18.2) against 24.8
  (27.8) us per row over the same 100,000 rows, 4 alternating rounds; at
  m = 64, 5.2 (5.6) against 5.6 (6.9).
- **Two things made FAISS stall beside other threads** (session 10,
  `coding/_faiss.py`), found when the first pipelined search was no
  faster. (1) FAISS's Python module installs a Ctrl-C callback that takes
  the GIL during a search, for every IVF query: beside a busy Python
  thread, 8,192 IVF queries took 41 s instead of 0.14 s, each waiting up to
  Python's 5 ms switch interval. The trainer's own reading thread is such a
  thread. The callback is now cleared (training polls for Ctrl-C between
  chunks anyway), and put back only around the initial k-means. (2)
  OpenMP keeps its thread count per thread: FAISS was set to one thread in
  the thread that loaded it, and any other thread (the Hogwild search
  split, the helper above) searched on 2 OpenMP threads, spinning on the
  kernel's core. Every search now sets its own thread's count. Both are
  tested without timing: a search must finish while another thread holds
  the GIL (switching every 50 ms: 4,000 queries would need 200 s with
  the callback, and take 0.17 s without it), and a fresh thread's search
  must run FAISS on one thread.
- **FAISS on one thread** (`coding/_faiss.py`): streamfm's k-means and
  searches are small and run beside the kernel and the prefetch thread; with
  two OpenMP threads they ran 2-15x slower here, and k-means depended on the
  core count. With `--threads N` (opt-in, below) a block's search is split
  into N row ranges searched at once by the Hogwild threads (FAISS releases
  the GIL; every row's candidates are the serial search's, tested): on 2
  cores 8,192 rows searched in 0.65-0.75 of the serial time (4,096 anchors,
  IVF, and 64, flat; measured before session 10, when those threads still
  ran FAISS on 2 OpenMP threads each). **An IVF index from 1,024 anchors** (`coding/search.py`): a
  flat search costs O(m) per row, an IVF over ~2 sqrt(m) lists scanning 8 of
  them about O(sqrt(m)) (twice as many lists as before session 5: half the
  anchors scanned per row, 8% off llfm-jo's time per row at m = 4096 with
  no nearest anchor missed). It is rebuilt as often as the flat one, but
  since session 8 its lists (a 10-iteration k-means of the anchors, which
  balances them) are trained at one rebuild in 8 and reused in between:
  training was 14 of the 15.4 ms of a rebuild at m = 4096 (about 1.8 us a
  row), routing the anchors into trained lists takes 1.7 ms, and fewer
  k-means iterations were no way out (unbalanced lists: a search over
  unstructured anchors took 1.4-1.6x longer). The centroids are part of the
  model state, so a resumed run searches as the uninterrupted one did.
  An approximate search can miss a row's nearest
  anchor on data without cluster structure: the model's per-block
  brute-force check (32 rows) doubles the lists scanned after a miss, up to
  all of them (exact), and keeps that setting in the model state.
- **No spinning BLAS threads** (session 8). That per-block check multiplied
  the 32 rows by the anchors with NumPy, whose OpenBLAS threads busy-wait
  between calls: from 1,024 anchors on, where OpenBLAS splits the product,
  the second core was kept busy for the whole run (0.31-0.34 CPU s per 0.31 s
  of wall time, measured), and that is the core the prefetch thread reads
  on. The check is now one FAISS pairwise-distance product on FAISS's one
  thread (0.55 ms for 32 rows and 4,096 anchors; a flat-index search, below
  FAISS's query threshold, took the distances one by one: 1.4-1.6 ms).
- **Prefetching the neighbours' parameters** (`kernels/_prefetch.py`, LLVM's
  prefetch intrinsic): once parameters outgrow the caches (many anchors, or
  many features) each neighbour's FM evaluation began with cache misses on
  its W and V. A row's neighbours are known before their evaluations start,
  so the kernel requests the blocks of later neighbours (a full-width row:
  the anchor's whole W[i] and V[i]; a sparse row: its features' slices).
  Measured in alternating runs of the trainer's loop on in-memory chunks
  (thread time): dense m = 4096 58 -> 48-53 us a row (with the IVF change;
  the prefetch alone: 3-5% in 8 alternations in one process), m = 1024 40-44
  -> 29-37, m = 64 unchanged; sparse llfm-jo (2^20 features, m = 50) 79-82
  -> 39 us a row. Since session 9 the requests are spread over the previous
  neighbour's evaluation, feature by feature (W in its sweep, V in the first
  vector sweep), not issued in one burst: ~75 prefetches at once filled the
  core's queue of outstanding misses and stalled it. In a bare
  evaluate-and-update loop (13 neighbours a row) a neighbour at m = 4096
  took 1.04-1.06 us spread against 1.37 in a burst and 1.35 with none;
  `streamfm train` llfm-jo m = 4096, 4 alternating rounds: epoch rows/s
  27.7k against 23.9k (fastest), 24.1k against 21.9k (median), m = 64
  unchanged (6 rounds). On sparse rows (2^20 features, m = 8 and 50, 30
  non-zeros) spread and burst measured within noise of each other (bare
  loop, 5 alternating rounds each, three configurations; and 8 rounds of
  `streamfm train`). The first neighbours of a row still come in a burst.
  Also tried and not kept: prefetching the next row's first candidates
  during this row's updates (no difference in 6 alternating runs), the next
  row's features in the sparse `fm` loop (no difference), and (session 9)
  the next neighbour's block during the updates (within noise in 6 rounds).
  The distance was two neighbours until the evaluations ran in vector
  registers; one is faster since (in the bare loop at m = 4096 0.91-1.00
  against 0.97-1.05 us a neighbour, three and four slower still; `streamfm
  train`, 6 alternating rounds: 32.6k against 30.3k epoch rows/s, 26.1k
  against 24.4k in the median round; before the vector registers the two
  were within noise).
  **m = 4096 against m = 64: 0.21 before session 8, 0.23 after it, about 1/4
  after session 9 (not reliably above it); in session 10, 0.34 (rounds
  0.33, 0.29, 0.31) at 4b95235, 0.29 (rounds 0.28, 0.33, 0.32) at
  f36b8aa, and 0.33 (rounds 0.33, 0.28, 0.34) in the run recorded below,
  after the review.** Session 10 moved the FAISS
  search off the training thread (the pipelined search above, after the
  two FAISS stalls it uncovered): a third of m = 4096's time per row, and
  as large a share at m = 64, but there the helper's core, which also
  reads the data, has less spare time to hide it in. In alternating
  `streamfm train` runs against session 9's last commit (4 rounds), the
  ratio went from 0.22, 0.30, 0.22, 0.26 to 0.45, 0.28, 0.26, 0.30 round
  by round. Also tried in session 10 and not kept: the next row's first
  candidate prefetched in parts before each of this row's updates (4
  rounds: 38.0k against 38.5k epoch rows/s fastest, 34.3k against 33.4k
  median, at m = 4096). Session 8 made m = 4096 faster where m = 64 barely moves: the full-width
  kernel specialisation (per neighbour, and m = 4096 uses 12.8 neighbours a
  row against 1.19), IVF lists reused between trainings (rebuilds 2.0 ->
  0.55 us a row), and a miss check that no longer leaves OpenBLAS threads
  spinning on the second core. Session 9 did the same with the prefetch
  spread over the evaluations and the factor loops in vector registers (both
  above): in alternating `streamfm train` runs against the code before each,
  m = 4096's epoch rows/s rose 16% and then 20% (fastest rounds; 10% and 13%
  in the median round), m = 64's stayed within noise. The anchors section's
  own runs in session 9 (3 rounds each) gave, from their fastest epochs and
  round by round: 0.24 (0.27, 0.24, 0.22) with the spread prefetch; 0.22
  (0.26, 0.21, 0.24) and 0.27 (0.23, 0.24, 0.27) with the vector registers;
  0.27 (0.27, 0.25, 0.23; median round 0.246) with the prefetch one
  neighbour ahead; 0.24 (0.26, 0.18, 0.21) after ||x||^2 moved into the
  sweep for W, whose m = 4096 fell from 31.1k to 21.8k epoch rows/s between
  its first and last rounds; and 0.25 (0.24, 0.29, 0.20) after the review's
  prefetch_anchor refactor. Over those 18 rounds the median is 0.24
  (session 8's recorded run: 0.23). The
  host's speed drifts by a third between phases, and m = 4096, bound by
  memory, drifts more than m = 64. What remains at m = 4096, per row, is
  mostly the neighbours' FM evaluations and updates on the training thread
  (12.8 of them; a bare
  loop's neighbour costs about 0.65 us in cache and 0.9-1.0 us at m = 4096
  on a quiet host) and the IVF search (9-15 us a row against 2.6-3.3 us for
  the flat search at m = 64 in session 9's measurements of FAISS alone, now
  mostly hidden on the helper thread:
  about 384 distances in 54 dimensions and a heap of K = 32, whose upkeep is
  about a third of it: the same search for K = 1 took 5.6 against 9.0 us).
  Tried in session 8 and not kept: two partial sums for the factor norm, the
  factors in register blocks of 4 written in Python, fewer k-means
  iterations for the lists (unbalanced lists: slower searches on
  unstructured anchors), prefetching the next row's first candidates or its
  candidates' anchors, a prefetch distance of 1 or 4 neighbours, huge pages
  for the parameters (no difference in a bare loop), FAISS's OpenMP threads
  for the search (1.5-1.9x faster searches, but as much faster at m = 64:
  the ratio falls), and float32 W and V (half the bytes per anchor, yet in
  the same bare loop no faster). Tried in session 9 and not kept: the
  search's rows grouped by their first list (to reuse the lists in cache:
  identical candidates, no faster), the search dimension padded to 56 (8.4
  against 8.9 us a row at m = 4096, once: a padded copy of every block for
  half a microsecond), the candidates' anchor rows prefetched two
  candidates ahead of their distances in the coding (m = 4096, 6
  alternating rounds twice: median 26.4k against 24.5k epoch rows/s, then
  29.1k against 34.1k) or a few per update during the row before (6
  rounds: 32.0k against 31.3k, fastest 36.9k against 37.2k), and the loop
  variants listed under the vector registers above.
- **Start-up.** `pyarrow.Array.to_numpy` imported pandas (0.5 s) on the first
  chunk; fixed-width columns are now read from their Arrow buffers. The numba
  kernels are compiled once and cached (`cache=True`). The scan pass's
  per-feature moments are one numba pass per sum (three weighted
  `np.bincount`s before: 0.8 s of a dense 500,000-row scan, now 0.27 s).
  A `--quiet` run imports neither tqdm (`streamfm/progress.py` draws no bar
  without it) nor `pyarrow.compute` (needed only to cast unusual column
  types): about 0.1 s (`python -X importtime`). What remains is mostly
  numba's own initialisation (about 0.5 s, which imports scipy.linalg), the
  imports of numba, pyarrow and FAISS; and after training, the
  interpreter's exit (0.3-0.7 s here from the end of `main()` to the end of
  the process: module teardown; atexit handlers take under 1 ms).
- **Hogwild threads, opt-in** (`streamfm train --threads N`,
  `TrainOptions.threads`): every block of rows is cut into N contiguous parts
  trained at once on shared parameters without locks. Races make the result
  non-reproducible bit for bit, so the default stays one deterministic thread.
  On this 2-core machine it gains little and varies from run to run:
  1.13-1.20x in session 9's run; in session 10, where the single training
  thread already has the second core searching the next rows' anchors and
  reading the data, 0.95-0.99x at 4b95235 and 0.80-1.20x in the run below
  (sparse fm slower, dense fm and llfm-jo faster). It is for machines with
  more cores than that.

## Wide sparse data with LLFM: what it costs, and what streamfm does

In the exact store every anchor owns an FM over all p features, so the
parameters are m x p x C x (1 + r) float64: for hashed CTR data (p = 2^20),
m = 50, r = 10 that is 4.6 GB, initialised before the first row and written
whole by every checkpoint. The section below measures that store (its run
gives a memory budget the model fits in). A model over the budget, or any
with `--bits B`, gets the hashed store instead: each (anchor, feature) pair
hashed into a float32 table of 2^B slots, factors initialised on a slot's
first touch, checkpoints writing the slots that changed; `docs/clicklog.md`
measures it at 2^24 features and 1,024 anchors.
"""


def anchor_index_kind(m: int, nprobe=None) -> str:
    """The index streamfm searched for m anchors (coding/search.py), in words."""
    from streamfm.coding.search import IVF_FROM, NPROBE, ivf_lists

    if m <= 32:
        return "all anchors (m <= K)"
    if m < IVF_FROM:
        return "flat"
    return f"IVF, {nprobe or NPROBE} of {ivf_lists(m)} lists"


def fmt_rate(x):
    return f"{x:,.0f}"


def cpu_rate(r):
    """Rows per CPU second (all threads) of the training call."""
    return fmt_rate(r["rows"] / r["cpu_seconds"]) if r.get("cpu_seconds") else ""


def code_version() -> str:
    """The commit the streamfm package is at (``-dirty``: with uncommitted changes under streamfm/)."""
    def git(*argv):
        return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("-dirty" if git("status", "--porcelain", "--", "streamfm") else "")


def _commits_sentence(R) -> str:
    """Which commit of streamfm each section was measured at, in words."""
    by_commit = {}
    for sec, commit in R.get("commits", {}).items():
        if sec in R:
            by_commit.setdefault(commit, []).append(sec)
    if len(by_commit) == 1:
        return f"the streamfm code was the same throughout, commit {next(iter(by_commit))}"
    return "; ".join(f"sections {', '.join(secs)} at commit {c}" for c, secs in by_commit.items())


def write_doc(R, args, cmdline):
    L = []
    add = L.append
    add("# Performance: throughput against the floor and the peers\n")
    several = "\n" in cmdline  # a run that kept sections of an earlier one (--keep)
    add("Every number on this page was measured by `tools/bench_throughput.py` on this machine, by the "
        + ("commands listed at the end (a later command re-measured some sections and kept the others' "
           f"results with `--keep`; {_commits_sentence(R)}). " if several else
           f"command at the end, in one run ({_commits_sentence(R)}). ")
        + "Each system was run in rounds (two, or as the command's `--rounds` says), alternating with the "
        "others, and its fastest round is shown; the ratios between systems of one run are the figures to read.\n")
    loads = R.get("loads") or [float("nan")]
    median = float(np.median(loads))
    busy = ("other jobs shared the machine throughout, so absolute rates are far below what an idle machine "
            "gives; the rows per CPU second and the ratios within one round are the steadier figures."
            if median >= 2.5 else
            "about one core's worth, the benchmark's own; the machine is a virtual one on a shared host, and "
            "the same run's speed varied by up to a third from round to round, so the ratios within one round "
            "are the figures to read.")
    add(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()}; page written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. The 1-minute load "
        f"average before the {len(loads)} measurements ranged from {min(loads):.1f} to {max(loads):.1f} (median "
        f"{median:.1f}) on {os.cpu_count()} cores: {busy}\n")
    from importlib.metadata import version

    vers = []
    for pkg in ("numpy", "numba", "pyarrow", "faiss-cpu", "vowpalwabbit", "river", "scikit-learn"):
        try:
            vers.append(f"{pkg} {version(pkg)}")
        except Exception:  # noqa: BLE001 - a peer that is not installed
            vers.append(f"{pkg} (not installed)")
    add("Versions: " + ", ".join(vers) + ".\n")
    add("rows/s = training rows / wall seconds of the training call (for streamfm the whole "
        "`streamfm train`: scan pass, k-means, one epoch from the file, checkpoints; not the interpreter "
        "start). \"rows per CPU s\" divides by the CPU time (user + sys, all threads) of the same call: "
        "on a shared machine it shows the work done, whatever share of the cores the call was given. "
        "\"epoch rows/s\" is streamfm's training pass alone (reading, decoding, shuffling, "
        "standardising, training). Peak RSS is the measuring process's high-water mark at the end of "
        "training. Test metrics are on held-out rows of the same generator.\n")
    for d in ("dense", "sparse"):
        if d not in R:
            continue
        res, info = R[d]["best"], R[d]["info"]
        add(f"## {info['title']}\n")
        add(info["desc"] + "\n")
        ref = res.get("streamfm fm (Parquet)")
        add("| system | rows trained | rows/s | epoch rows/s | vs streamfm fm | rows per CPU s | test log loss | test accuracy | peak RSS MB |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, r in res.items():
            er = fmt_rate(r["epoch_rows_per_s"]) if "epoch_rows_per_s" in r else ""
            ratio = f"{r['rows_per_s'] / ref['rows_per_s']:.3g}" if ref else ""
            add(f"| {name} | {r['rows']:,} | {fmt_rate(r['rows_per_s'])} | {er} | {ratio} | {cpu_rate(r)} | "
                f"{r.get('log_loss', float('nan')):.4f} | {r.get('accuracy', float('nan')):.4f} | "
                f"{r['train_peak_rss_mb']:.0f} |")
        add("")
        for line in info.get("notes", []):
            add(f"- {line}")
        add("")
        add("Commands:\n")
        add("```")
        for c in info["commands"]:
            add(c)
        add("```\n")
    add(STATIC_NOTES)
    if "targets" in R:
        add("## Targets (ratios measured in this run)\n")
        add("A ratio measured round by round is met when both the fastest epochs and the median round meet it "
            "(the machine is shared: one round's speed says little on its own).\n")
        add("| target | measured | met |")
        add("|---|---|---|")
        for t in R["targets"]:
            add(f"| {t[0]} | {t[1]} | {'yes' if t[2] else 'NO'} |")
        add("")
    if "before_after" in R:
        res = R["before_after"]["best"]
        first = BEFORE_COMMITS[0]
        add(f"## Before and after the performance work (commits {', '.join(BEFORE_COMMITS)} against this one)\n")
        add(f"The same `streamfm train` runs (dense Parquet, one epoch, default options), alternating the code "
            f"of each commit in one run: {first} is where the performance work began, "
            f"{BEFORE_COMMITS[1]} where its second round (read-ahead depth, shuffle gather, fm fast path, "
            f"scan moments, IVF search) began, {BEFORE_COMMITS[2]} where its third (a dense fm kernel for "
            "full-width rows, shared index arrays, wide tables turned into rows in one pass) began.\n")
        add(f"| run | rows/s (whole train) | epoch rows/s | rows per CPU s | speed-up (epoch) vs {first} |")
        add("|---|---:|---:|---:|---:|")
        for name, r in res.items():
            base = res.get(f"{name.split()[0]} {first}")
            if not base:  # an older results file: "before" / "after"
                base = res.get(name.replace("after", "before"), r)
            add(f"| {name} | {fmt_rate(r['rows_per_s'])} | {fmt_rate(r['epoch_rows_per_s'])} | {cpu_rate(r)} | "
                f"{r['epoch_rows_per_s'] / base['epoch_rows_per_s']:.2f} |")
        add("")
    if "sparse_llfm" in R:
        r = R["sparse_llfm"]
        add("## llfm-jo on the sparse data, and what it costs\n")
        add("Every anchor owns a full FM over all p features: for p = 2^20, m = 50, C = 1, r = 10 the "
            "parameters are 50 x 2^20 x (1 + 10) float64 = 4.6 GB in the exact store, allocated and "
            "initialised before the first row, and written whole by every checkpoint (one at the start, one "
            "at the end of every epoch); measured with a budget it fits in, one epoch over the sparse "
            "training rows" + (f" ({r['note']})" if r.get("note") else "") + ":\n")
        add("| rows/s (whole train) | epoch rows/s | peak RSS MB | model directory MB | test log loss | test accuracy | mean k |")
        add("|---:|---:|---:|---:|---:|---:|---:|")
        add(f"| {fmt_rate(r['rows_per_s'])} | {fmt_rate(r['epoch_rows_per_s'])} | {r['train_peak_rss_mb']:.0f} | "
            f"{r['model_dir_mb']:.0f} | {r['log_loss']:.4f} | {r['accuracy']:.4f} | {r['mean_k']:.2f} |")
        add("")
    for key, title, keep in (("breakdown", "Where llfm-jo's time goes (dense data, m = 50)", None),
                             ("breakdown_fm", "Where fm's time goes (dense data)", None)):
        if key not in R:
            continue
        b = R[key]
        add(f"## {title}\n")
        add(b["desc"] + "\n")
        add("| stage | seconds | share |")
        add("|---|---:|---:|")
        parts = dict(b["parts"])
        tot = sum(parts.values())
        for k, v in parts.items():
            add(f"| {k} | {v:.2f} | {100 * v / tot:.0f}% |")
        add(f"| total ({b['rows']:,} rows, {b['rows'] / b['seconds']:,.0f} rows/s, one thread) | {b['seconds']:.2f} | |")
        add("")
    if "anchors" in R:
        add("## Anchor scaling (llfm-jo, dense data)\n")
        add(R["anchors"]["desc"] + "\n")
        add("| m | index | rows/s | epoch rows/s | vs m=64 (epoch) | us per row (epoch) | us per row per neighbour | candidate-miss rate | wanted more than K | mean k | peak RSS MB |")
        add("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        res = R["anchors"]["best"]
        ref = res.get("m=64")
        for name, r in res.items():
            m = int(name[2:])
            kind = anchor_index_kind(m, r.get("search_nprobe"))
            vs = f"{r['epoch_rows_per_s'] / ref['epoch_rows_per_s']:.2f}" if ref else ""
            add(f"| {m} | {kind} | {fmt_rate(r['rows_per_s'])} | {fmt_rate(r['epoch_rows_per_s'])} | {vs} | "
                f"{1e6 / r['epoch_rows_per_s']:.2f} | {1e6 / r['epoch_rows_per_s'] / max(r['mean_k'], 1e-9):.2f} | "
                f"{100 * (r['candidate_miss_rate'] or 0):.3f}% | "
                f"{100 * (r['wanted_more_rate'] or 0):.3f}% | {r['mean_k']:.2f} | {r['train_peak_rss_mb']:.0f} |")
        add("")
    if "scaling" in R:
        add("## Data scaling (streamfm fm, dense Parquet, one epoch)\n")
        add("| rows | wall s (whole train) | epoch s | rows/s | wall / 1x wall | peak RSS MB |")
        add("|---:|---:|---:|---:|---:|---:|")
        res = R["scaling"]["best"]
        w1 = res["1x"]["seconds"]
        for name, r in res.items():
            add(f"| {r['rows']:,} ({name}) | {r['seconds']:.2f} | {r['epoch_seconds']:.2f} | "
                f"{fmt_rate(r['rows_per_s'])} | {r['seconds'] / w1:.2f} | {r['train_peak_rss_mb']:.0f} |")
        add("")
    if "threads" in R:
        add("## Hogwild threads (opt-in `--threads N`)\n")
        add(R["threads"]["desc"] + "\n")
        add("| run | rows/s | epoch rows/s | speed-up (epoch) | test log loss | test accuracy |")
        add("|---|---:|---:|---:|---:|---:|")
        res = R["threads"]["best"]
        for name, r in res.items():
            base = res[name.replace("threads=2", "threads=1")]
            add(f"| {name} | {fmt_rate(r['rows_per_s'])} | {fmt_rate(r['epoch_rows_per_s'])} | "
                f"{r['epoch_rows_per_s'] / base['epoch_rows_per_s']:.2f} | {r['log_loss']:.4f} | {r['accuracy']:.4f} |")
        add("")
    if "startup" in R:
        add("## Start-up (numba cache)\n")
        add("`python -m streamfm train DATA --method llfm-jo --max-rows 1` on a 2,000-row Parquet file, with a "
            "fresh `NUMBA_CACHE_DIR`: the first run compiles the kernels and caches them, later runs load them. "
            "Seconds from spawning the process to the first chunk entering the model's training step "
            "(interpreter start, imports, scan pass, k-means) and to that chunk being trained (the training "
            "kernels loaded from the cache, or compiled in the cold run, and run); `tools/_first_chunk.py` runs "
            "the command line and notes both moments. \"Whole process\" adds the checkpoint the run stops "
            "with and the interpreter's exit.\n")
        add("| run | s to the first chunk's training step | s to the first trained chunk | whole process, wall s "
            "| CPU s (user + sys) |")
        add("|---|---:|---:|---:|---:|")
        for k, v in R["startup"].items():
            add(f"| {k} | {v['first_chunk_in']:.2f} | {v['first_chunk']:.2f} | {v['wall']:.2f} | {v['cpu']:.2f} |")
        first, whole = _warm_startup(R["startup"])
        add(f"| median of the warm runs | | {first:.2f} | {whole:.2f} | |")
        add("")
    add(reading(R))
    add("## Command\n")
    add("```")
    add(cmdline)
    add("```")
    add("Peers come from the `bench` extra (`pip install \".[bench]\"`), never the runtime dependencies.\n")
    import re

    # the runs used a snapshot of the repository under bench-data/snap: show paths from the repository root
    return re.sub(r"/\S*?/bench-data/(snap/bench-data/)?", "bench-data/", "\n".join(L) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--dense-rows", type=int, default=500_000)
    ap.add_argument("--sparse-rows", type=int, default=1_000_000)
    ap.add_argument("--sections",
                    default="dense,sparse,sparse-llfm,before-after,breakdown,anchors,scaling,threads,startup")
    ap.add_argument("--quick", action="store_true", help="small data, one round (a smoke test)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--doc-only", action="store_true", help="rewrite the doc from the last run's saved results")
    ap.add_argument("--keep", metavar="JSON", help="start from the sections saved in JSON (a partial run's)")
    args = ap.parse_args(argv)
    if args.run:
        spec = json.loads(args.run)
        print(json.dumps(RUNNERS[spec["kind"]](spec)))
        return 0
    if args.quick:
        args.rounds, args.dense_rows, args.sparse_rows = 1, 100_000, 100_000
    sections = args.sections.split(",")
    cmdline = "python tools/bench_throughput.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    tag = "" if not args.quick else "-quick"
    log = lambda s: print(s, flush=True)  # noqa: E731
    t_start = time.time()
    log("generating data (once; kept in bench-data/throughput/)")
    dense = make_dense(args.dense_rows, 100_000, tag) if not args.doc_only else None
    sparse = make_sparse(args.sparse_rows, 200_000, tag) if not args.doc_only else None
    R = _Saved()
    results = os.path.join(REPO, "bench-data", "throughput-results.json")
    if args.doc_only:
        with open(results) as fh:
            saved = json.load(fh)
        R, cmdline, args.rounds = saved["R"], saved["cmdline"], saved["rounds"]
        R["targets"] = targets_of(R)  # as this version of the tool states them
    else:
        if args.keep:
            with open(args.keep) as fh:
                kept = json.load(fh)
            if "R" in kept:  # a finished run's results: keep its command too
                cmdline = kept["cmdline"] + "\n" + cmdline
                kept = kept["R"]
            R.update(kept)
            LOADS.extend(kept.get("loads", []))
        run_all(R, args, sections, dense, sparse, log)
        version = code_version()
        R["commits"] = {**R.get("commits", {}), **{sec.replace("-", "_"): version for sec in sections}}
        R["loads"] = LOADS
        with open(results, "w") as fh:
            json.dump({"R": R, "cmdline": cmdline, "rounds": args.rounds}, fh)
    log(f"total {time.time() - t_start:.0f} s")
    text = write_doc(R, args, cmdline)
    if not args.no_write:
        with open(DOC, "w") as fh:
            fh.write(text)
        log(f"wrote {DOC}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
