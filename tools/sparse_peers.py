"""Data, metrics and runners of tools/bench_sparse.py: the peers and streamfm's command line.

Every system is scored by ``metrics`` from its test predictions, so all of
them share one definition: RMSE and MAE; natural-log log loss with the
probabilities clipped to [1e-15, 1 - 1e-15], accuracy at 0.5, and
scikit-learn's ``roc_auc_score``. "seconds" is the wall time of training
only (for streamfm the whole ``python -m streamfm train`` process).
"""
from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHUNK = 65_536  # rows per partial_fit call


# --------------------------------------------------------------------------- metrics


def metrics(task: str, y, p) -> dict:
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if task == "regression":
        e = p - y
        return {"rmse": float(np.sqrt(np.mean(e * e))), "mae": float(np.mean(np.abs(e)))}
    from sklearn.metrics import roc_auc_score

    q = np.clip(p, 1e-15, 1 - 1e-15)
    return {"log_loss": float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))),
            "accuracy": float(np.mean((p > 0.5) == (y > 0.5))), "auc": float(roc_auc_score(y, p))}


# --------------------------------------------------------------------------- data


@dataclass
class Data:
    """One benchmark task: streamfm's files, VW's files and (loaded on first use) CSR matrices."""

    name: str
    task: str  # "regression" or "binary"
    train: str  # streamfm's input (libsvm or Parquet)
    test: str
    vw_train: str
    vw_test: str
    lrq: str  # VW --lrq argument (two namespaces and the rank)
    key: str  # identifies the data in the peer cache
    n_features: int
    description: str = ""

    @cached_property
    def matrices(self):
        """(X, y, X_test, y_test), CSR with 32-bit indices."""
        return (*load_csr(self.train, self.n_features), *load_csr(self.test, self.n_features))


def _csr32(X):
    X = X.tocsr()
    X.indices, X.indptr = X.indices.astype(np.int32), X.indptr.astype(np.int32)
    return X


def load_csr(path: str, n_features: int):
    if path.endswith(".parquet"):  # the sparse layout: label, indices (0-based), values
        import pyarrow.parquet as pq
        import scipy.sparse as sp

        t = pq.read_table(path)
        ind = t.column("indices").combine_chunks()
        # copies: pyarrow's zero-copy views are read-only, which myfm's binding refuses
        offsets = ind.offsets.to_numpy().astype(np.int64)
        vals = np.array(t.column("values").combine_chunks().values.to_numpy(), dtype=np.float64)
        X = sp.csr_matrix((vals, np.array(ind.values.to_numpy()), offsets), shape=(t.num_rows, n_features))
        return _csr32(X), t.column("label").to_numpy().astype(np.float64)
    from sklearn.datasets import load_svmlight_file

    X, y = load_svmlight_file(path, n_features=n_features)
    return _csr32(X), y


def _replace(path, write):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as fh:
        write(fh)
    os.replace(path + ".tmp", path)


def svm_to_vw(src: str, dst: str, namespaces, binary: bool) -> None:
    """libsvm (1-based) to VW text; ``namespaces``: (name, first index, last index) ranges."""
    import gzip

    if os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src):
        return

    def write(out):
        with (gzip.open(src, "rt") if src.endswith(".gz") else open(src)) as fh:
            for line in fh:
                label, *toks = line.split()
                parts = {name: [] for name, _, _ in namespaces}
                for tok in toks:
                    j, v = tok.split(":")
                    name = next(n for n, lo, hi in namespaces if lo <= int(j) <= hi)
                    parts[name].append(j if float(v) == 1.0 else tok)
                lab = ("1" if float(label) > 0 else "-1") if binary else label
                out.write(lab + "".join(f" |{n} " + " ".join(f) for n, f in parts.items() if f) + "\n")

    _replace(dst, write)


def make_ctr(directory: str, rows: int, test_rows: int, seed: int = 7) -> dict:
    """The CTR-shaped data of docs/performance.md (tools/datagen.py): rows of one seeded stream,
    the first ``rows`` for training and the next ``test_rows`` for testing, as Parquet (sparse
    layout, streamfm's input) and VW text (fields 0-9 in namespace a, 10-29 in b). Reused if present."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tools.datagen import ctr_blocks

    stem = os.path.join(directory, f"ctr-seed{seed}-{rows}-{test_rows}")
    paths = {f"{s}.{e}": f"{stem}-{s}.{e}" for s in ("train", "test") for e in ("parquet", "vw")}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    os.makedirs(directory, exist_ok=True)
    schema = pa.schema([("label", pa.int64()), ("indices", pa.list_(pa.int32())), ("values", pa.list_(pa.float64()))])
    pqw = {s: pq.ParquetWriter(paths[f"{s}.parquet"] + ".tmp", schema, compression="zstd") for s in ("train", "test")}
    vww = {s: open(paths[f"{s}.vw"] + ".tmp", "w") for s in ("train", "test")}
    done = 0
    for ids, y in ctr_blocks(rows + test_rows, seed=seed, sort=False):
        cut = min(max(rows - done, 0), len(y))
        for part, sl in (("train", slice(0, cut)), ("test", slice(cut, len(y)))):
            i, yy = ids[sl], y[sl]
            if not len(yy):
                continue
            s = np.sort(i, axis=1)  # a row's ids, sorted, each once (two fields may hash alike)
            keep = np.ones_like(s, dtype=bool)
            keep[:, 1:] = s[:, 1:] != s[:, :-1]
            offsets = np.concatenate([[0], np.cumsum(keep.sum(1))]).astype(np.int32)
            flat = pa.array(s[keep].astype(np.int32))
            cols = [pa.array(yy), pa.ListArray.from_arrays(pa.array(offsets), flat),
                    pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.ones(len(flat))))]
            pqw[part].write_table(pa.Table.from_arrays(cols, schema=schema))
            vww[part].write("\n".join(f"{1 if v else -1} |a " + " ".join(map(str, r[:10])) + " |b "
                                      + " ".join(map(str, r[10:])) for r, v in zip(i.tolist(), yy)) + "\n")
        done += len(y)
    for s in ("train", "test"):
        pqw[s].close()
        vww[s].close()
    for p in paths.values():
        os.replace(p + ".tmp", p)
    return paths


# --------------------------------------------------------------------------- peers
# each returns (test predictions: values or P(y = 1), training seconds)


def _timed(fit):
    t0 = time.perf_counter()
    model = fit()
    return model, time.perf_counter() - t0


def _proba(model, X):
    """Regression: the predictions; classification: P(y = 1) (myfm gives that alone, scikit-learn both columns)."""
    if not hasattr(model, "predict_proba"):
        return model.predict(X)
    p = np.asarray(model.predict_proba(X))
    return p[:, 1] if p.ndim == 2 else p


def run_sklearn_batch(data: Data, C_or_alpha: float):
    """Ridge (alpha) or LogisticRegression (C, lbfgs run to convergence)."""
    from sklearn.linear_model import LogisticRegression, Ridge

    X, y, Xt, _ = data.matrices
    est = Ridge(alpha=C_or_alpha) if data.task == "regression" else LogisticRegression(C=C_or_alpha, max_iter=1000)
    model, sec = _timed(lambda: est.fit(X, y))
    return _proba(model, Xt), sec


def _sgd(data: Data, **kw):
    from sklearn.linear_model import SGDClassifier, SGDRegressor

    if data.task == "regression":
        return SGDRegressor(random_state=0, **kw)
    return SGDClassifier(loss="log_loss", random_state=0, **kw)


def run_sgd_one_pass(data: Data):
    """partial_fit over chunks of CHUNK rows in file order: one pass, as a stream is read."""
    X, y, Xt, _ = data.matrices
    est = _sgd(data)

    def fit():
        for a in range(0, X.shape[0], CHUNK):
            kw = {} if data.task == "regression" else {"classes": np.array([0.0, 1.0])}
            est.partial_fit(X[a:a + CHUNK], y[a:a + CHUNK], **kw)
        return est

    model, sec = _timed(fit)
    return _proba(model, Xt), sec


def run_sgd_early_stop(data: Data):
    """fit() with scikit-learn's early stopping (10% held out, 5 epochs without improvement)."""
    X, y, Xt, _ = data.matrices
    model, sec = _timed(lambda: _sgd(data, early_stopping=True).fit(X, y))
    return _proba(model, Xt), sec


def run_myfm(data: Data, rank: int = 10, sweeps: int = 300, kept: int | None = None):
    """Gibbs sampling (MCMC) FM; predictions averaged over the kept samples (myfm's default: the last sweeps - 5)."""
    import myfm

    X, y, Xt, _ = data.matrices
    cls = myfm.MyFMRegressor if data.task == "regression" else myfm.MyFMClassifier
    model, sec = _timed(lambda: cls(rank=rank).fit(X, y, n_iter=sweeps, n_kept_samples=kept))
    return _proba(model, Xt), sec


def vw_args(data: Data, lrq: bool, passes: int) -> str:
    loss = "--loss_function squared" if data.task == "regression" else "--loss_function logistic --link logistic"
    many = f" --passes {passes} -c" if passes > 1 else ""  # VW then holds out every 10th row, stops early
    return f"{loss} -b 22" + (f" --lrq {data.lrq}" if lrq else "") + many


def run_vw(data: Data, args: str, workdir: str):
    import vowpalwabbit

    os.makedirs(workdir, exist_ok=True)
    model, cache = os.path.join(workdir, "model.vw"), os.path.join(workdir, "cache.vw")
    for f in (model, cache):
        if os.path.exists(f):
            os.remove(f)
    cache_opt = f" --cache_file {cache}" if " -c" in args else ""

    def fit():
        ws = vowpalwabbit.Workspace(f"-d {data.vw_train} {args}{cache_opt} -f {model} --quiet")
        ws.run_parser()
        ws.finish()

    _, sec = _timed(fit)
    # predictions through the API, at full precision (-p writes six decimals: a probability of
    # 0.9999996 would read as 1.0, and a wrong one would then cost 34.5 instead of 14.7)
    ws = vowpalwabbit.Workspace(f"-t -i {model} --quiet")
    with open(data.vw_test) as fh:
        p = np.array([ws.predict(line.rstrip("\n")) for line in fh], dtype=np.float64)
    ws.finish()
    return p, sec


# --------------------------------------------------------------------------- streamfm


def _env():
    return {"PYTHONPATH": REPO + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")}


def streamfm_argv(data: Data, model_dir: str, method: str, extra=()) -> list:
    return ["train", data.train, "--task", data.task, "--method", method, *extra, "--quiet", "--model", model_dir]


def run_cli(argv: list) -> float:
    """``python -m streamfm ARGV`` with this checkout's streamfm, in a fresh process; wall seconds."""
    from tools import harness

    res = harness.run(harness.streamfm_argv(*argv), env=_env(), cwd=REPO)
    if res.returncode != 0:
        raise RuntimeError(f"streamfm {shlex.join(argv)} failed ({res.returncode}): {res.stderr.strip()[-2000:]}")
    return res.wall


def streamfm_predictions(model_dir: str, test: str):
    """Targets and predictions (values or P(y = 1)) of a model directory on a file, read as
    ``streamfm evaluate`` reads it; test features the training data never had are dropped."""
    from streamfm import load
    from streamfm.io.sources import open_source

    trained = load(model_dir, ignore_extra=True)
    ys, ps = [], []
    for chunk in open_source(test).iter_chunks():
        f = trained.decision_chunk(chunk)
        ys.append(trained.targets(chunk.y))
        ps.append(f[:, 0] if trained.task == "regression" else trained.model.proba_from_scores(f)[:, 1])
    return np.concatenate(ys).astype(np.float64), np.concatenate(ps)


def read_records(model_dir: str) -> list:
    path = os.path.join(model_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def valid_curve(records: list, metric: str) -> list:
    """[(epoch, value)] of the validation metric, from the records that have one."""
    out = []
    for r in records:
        v = r.get("valid")
        if isinstance(v, dict) and isinstance(v.get(metric), (int, float)) and "epoch" in r:
            out.append((r["epoch"], float(v[metric])))
    return out


def best_epoch(model_dir: str):
    """The epoch the model directory keeps as its result, if its manifest says (early stopping)."""
    try:
        with open(os.path.join(model_dir, "manifest.json")) as fh:
            man = json.load(fh)
    except (OSError, ValueError):
        return None
    stack = [man]
    while stack:
        d = stack.pop()
        for k, v in d.items():
            if k == "best_epoch" and isinstance(v, int):
                return v
            if isinstance(v, dict):
                stack.append(v)
    return None
