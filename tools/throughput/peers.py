"""The systems the throughput benchmark measures, each run in a process of its own (``--run SPEC``).

Every runner takes its spec (a dict: the files, the options) and returns
``rows``, ``seconds`` and ``cpu_seconds`` of its training call,
``train_peak_rss_mb`` (the process's high-water mark at the end of
training) and the test ``log_loss`` and ``accuracy``:

- ``streamfm``: ``streamfm train`` as a user runs it (the command line's
  ``main`` in this process), then the test metrics of the model directory;
- ``vw``: Vowpal Wabbit from its own file parser;
- ``river``: River's ``facto.FMClassifier`` over rows already turned into dicts;
- ``sklearn``: ``SGDClassifier.partial_fit`` over the reader's chunks;
- ``floor``: the bare numba FM SGD loop over rows in memory (``tools/floor.py``).
"""
from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np

from tools.harness import peak_rss_mb
from tools.throughput.data import DENSE_P, SEED


def binary_metrics(y, p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-15, 1 - 1e-15)
    y = np.asarray(y, dtype=np.float64)
    return {"log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
            "accuracy": float(np.mean((p > 0.5) == (y > 0.5)))}


def every_row_trains() -> list[str]:
    """``--early-stop 0``: the benchmark measures training, every row of the file trained on and no
    validation pass (without it, on more than 10,000 rows 10% would be held out); a streamfm without
    early stopping (an A/B's older commit) has no such option and holds nothing out."""
    try:
        from streamfm.training.options import TrainOptions
    except ImportError:  # an older commit's layout
        try:
            from streamfm.train.options import TrainOptions
        except ImportError:
            return []
    return ["--early-stop", "0"] if "early_stop" in TrainOptions.__dataclass_fields__ else []


def run_streamfm(spec):
    """``streamfm train`` as a user runs it (the CLI's main), then the test metrics."""
    from streamfm.cli import main

    model = spec["model"]
    shutil.rmtree(model, ignore_errors=True)
    argv = ["train", *spec["train"], "--model", model, "--quiet", *every_row_trains(), *spec["args"]]
    t0, c0 = time.perf_counter(), time.process_time()
    code = main(argv)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = peak_rss_mb()
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
        from streamfm.inference.metrics import evaluate_source
        from streamfm.io.sources import open_source
        from streamfm.run import load

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
    rss = peak_rss_mb()
    preds = model + ".preds"
    ws = vowpalwabbit.Workspace(f"-t -i {model} -d {spec['test']} -p {preds} --quiet")
    ws.run_parser()
    ws.finish()
    p = np.loadtxt(preds)
    y = np.array([1.0 if line.startswith("1 ") else 0.0 for line in open(spec["test"])])[: len(p)]
    os.remove(preds)
    os.remove(model)
    return {"rows": spec["rows"], "seconds": wall, "cpu_seconds": cpu, "train_peak_rss_mb": rss,
            **binary_metrics(y, p)}


def read_table(path, rows=None):
    """One Chunk of the first ``rows`` rows (all if None) of a file, through streamfm's reader."""
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

    train = read_table(spec["train"], spec["rows"])
    test = read_table(spec["test"], spec["test_rows"])

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
    return {"rows": train.n_rows, "seconds": wall, "cpu_seconds": cpu, "train_peak_rss_mb": peak_rss_mb(),
            **binary_metrics(test.y > 0, p)}


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
    rss = peak_rss_mb()
    ys, ps = [], []
    for c in open_source(spec["test"]).iter_chunks(chunk_rows=65536):
        X = X_of(c)
        ps.append(clf.predict_proba(scaler.transform(X) if dense else X)[:, 1])
        ys.append(c.y > 0)
    return {"rows": rows, "seconds": wall, "cpu_seconds": cpu, "train_peak_rss_mb": rss,
            **binary_metrics(np.concatenate(ys), np.concatenate(ps))}


def run_floor(spec):
    """The bare numba FM SGD loop over the standardised training rows, already in memory."""
    from tools.floor import bare_fm_sgd

    c = read_table(spec["train"])
    X = c.to_dense(DENSE_P)
    mean, std = X.mean(0), X.std(0)
    std[std == 0] = 1
    X = np.ascontiguousarray((X - mean) / std)
    y = (c.y > 0).astype(np.float64)
    rng = np.random.default_rng(SEED)
    r = 10
    bare_fm_sgd(X[:100], y[:100], np.zeros(1), np.zeros(DENSE_P), rng.normal(0, 0.1, (DENSE_P, r)), 0.01, 1e-5)  # compile
    b, w, V = np.zeros(1), np.zeros(DENSE_P), rng.normal(0, 0.1, (DENSE_P, r))
    t0, c0 = time.perf_counter(), time.process_time()
    bare_fm_sgd(X, y, b, w, V, 0.01, 1e-5)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    t = read_table(spec["test"])
    Xt = (t.to_dense(DENSE_P) - mean) / std
    s = Xt @ V
    f = b[0] + Xt @ w + 0.5 * (s * s - (Xt * Xt) @ (V * V)).sum(1)
    return {"rows": len(y), "seconds": wall, "cpu_seconds": cpu, "train_peak_rss_mb": peak_rss_mb(),
            **binary_metrics(t.y > 0, 1 / (1 + np.exp(-f)))}
