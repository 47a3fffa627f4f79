"""Sample weights end to end: readers, Chunk, kernels, metrics, estimators, the command line."""
import copy
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from streamfm import cli
from streamfm.errors import InputError
from streamfm.estimators import FMClassifier, LLFMRegressor
from streamfm.inference.metrics import StreamingMetrics
from streamfm.io import Chunk, open_source
from streamfm.io.options import ReadOptions
from streamfm.models.config import Config
from streamfm.models.core import LLFMModel
from streamfm.store.modeldir import ModelDir


def rows_of(source):
    chunks = list(source.iter_chunks())
    return Chunk.concat(chunks) if chunks else None


# -- readers -------------------------------------------------------------------------------------


def test_libsvm_label_weight(tmp_path):
    path = tmp_path / "w.svm"
    path.write_text("1 1:2 3:4\n0:2.5 2:1\n1:0.1234567890123456789 1:1  # a weight past the fast path\n")
    c = rows_of(open_source(str(path)))
    np.testing.assert_array_equal(c.y, [1, 0, 1])
    np.testing.assert_array_equal(c.weights, [1.0, 2.5, float("0.1234567890123456789")])
    plain = tmp_path / "p.svm"
    plain.write_text("1 1:2\n0 2:1\n")
    assert rows_of(open_source(str(plain))).weights is None  # unweighted: nothing carried


@pytest.mark.parametrize("line, message", [
    ("1:-1 1:2", r"w\.svm:2: cannot read the weight in '1:-1'"),
    ("1:nan 1:2", r"w\.svm:2: cannot read the weight in '1:nan'"),
    ("1:x 1:2", r"w\.svm:2: cannot read the weight"),
    ("1:1e999 1:2", r"w\.svm:2: weight '1e999' is not a finite number >= 0"),
])
def test_libsvm_bad_weight_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "w.svm"
    path.write_text(f"1 1:1\n{line}\n")
    with pytest.raises(InputError, match=message):
        rows_of(open_source(str(path)))
    skipped = open_source(str(path), ReadOptions(skip_bad_rows=True))
    assert rows_of(skipped).n_rows == 1 and skipped.bad_rows == 1


def test_csv_and_parquet_weight_column(tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text("x1,w,x2,y\n1,0.5,2,1\n3,2,4,0\n")
    c = rows_of(open_source(str(csv), ReadOptions(weight_column="w", label_column="y")))
    np.testing.assert_array_equal(c.to_dense(), [[1, 2], [3, 4]])  # the weight is no feature
    np.testing.assert_array_equal(c.weights, [0.5, 2.0])
    wide = tmp_path / "a.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0], "label": [0.0, 1.0], "wt": [1.0, 3.0]}), wide)
    c = rows_of(open_source(str(wide), ReadOptions(weight_column="wt")))
    assert c.n_features == 1 and c.weights.tolist() == [1.0, 3.0]
    sparse = tmp_path / "s.parquet"
    pq.write_table(pa.table({"label": [0.0, 1.0], "indices": [[0], [1]], "values": [[1.0], [2.0]],
                             "wt": [0.0, 4.0]}), sparse)
    assert rows_of(open_source(str(sparse), ReadOptions(weight_column="wt"))).weights.tolist() == [0.0, 4.0]
    bad = tmp_path / "b.csv"
    bad.write_text("x,w,y\n1,1,0\n2,-3,1\n")
    with pytest.raises(InputError, match=r"b\.csv: row 2, column 'w': the weight is -3\.0; weights must be"):
        rows_of(open_source(str(bad), ReadOptions(weight_column="w")))
    (tmp_path / "x.svm").write_text("1 1:1\n")
    with pytest.raises(InputError, match="weight-column applies to CSV and Parquet"):
        open_source(str(tmp_path / "x.svm"), ReadOptions(weight_column="w"))


def test_chunk_operations_carry_weights():
    a = Chunk.from_dense(np.arange(6.0).reshape(3, 2), np.zeros(3)).with_weights(np.array([1.0, 2.0, 3.0]))
    b = Chunk.from_dense(np.ones((2, 2)), np.ones(2))  # unweighted: weighs 1 a row
    assert a.take(np.array([2, 0])).weights.tolist() == [3.0, 1.0]
    assert a.slice(1, 3).weights.tolist() == [2.0, 3.0]
    assert Chunk.concat([a, b]).weights.tolist() == [1, 2, 3, 1, 1]
    assert Chunk.take_from([b, a], np.array([4, 0, 2])).weights.tolist() == [3, 1, 1]
    assert Chunk.concat([b, b]).weights is None


# -- training ------------------------------------------------------------------------------------


def chunk_and_targets(n=40, p=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.float64)
    return Chunk.from_dense(X, y), y


def new_model(method="fm", optimizer="sgd", task="binary", l2=0.0, p=5, store=None, **kw):
    from streamfm.models.memory import StoreSpec

    kw = dict(dict(method=method, optimizer=optimizer, rank=3, eta0=0.05, l2_w=l2, l2_v=l2, anchors=4,
                   n_candidates=4, t0=1e9, seed=3), **kw)
    model = LLFMModel(Config(**kw), p, task, store=None if store is None else StoreSpec("hashed", store, "float32"))
    model.init_params()
    model.set_feature_rows(np.full(p, 40))
    if method != "fm":
        model.init_anchors(chunk_and_targets(seed=9)[0])
    return model


def params(model):
    return {k: np.array(v) for k, v in model.params.items()}


@pytest.mark.parametrize("method, store", [("fm", None), ("fm", 12), ("llfm-do", None), ("llfm-jo", 12)])
def test_weight_two_is_a_doubled_step_for_plain_sgd(method, store):
    """Plain SGD, no L2, a decay-free step: weight 2 on every row is eta doubled (2 * g is exact, bit for bit);
    fm takes its fast path, llfm the general loop, 12 the hashed store."""
    chunk, y = chunk_and_targets()
    a = new_model(method, store=store)
    b = new_model(method, store=store, eta0=0.1, eta_anchor=2 * a.config.eta_anchor)
    a.partial_fit_chunk(chunk.with_weights(np.full(chunk.n_rows, 2.0)), y)
    b.partial_fit_chunk(chunk, y)
    for k, v in params(b).items():
        np.testing.assert_array_equal(params(a)[k], v, err_msg=k)


@pytest.mark.parametrize("method, optimizer", [("fm", "sgd"), ("fm", "adagrad"), ("llfm-jo", "sgd"),
                                               ("llfm-apl", "adagrad")])
def test_one_weighted_row_step_is_the_weighted_gradient(method, optimizer):
    """A NumPy reference of the weighted loss's step on one row: with plain SGD the change of every
    parameter is w times the unweighted one; with AdaGrad the accumulators grow by the weighted gradient
    squared (w^2 times), from zero."""
    chunk, y = chunk_and_targets(n=1, seed=4)
    w = 0.3
    base = new_model(method, optimizer)
    before = params(base)
    one, weighted = copy.deepcopy(base), copy.deepcopy(base)
    one.partial_fit_chunk(chunk, y)
    weighted.partial_fit_chunk(chunk.with_weights(np.array([w])), y)
    p1, pw = params(one), params(weighted)
    if optimizer == "sgd":
        for k in before:
            np.testing.assert_allclose(pw[k] - before[k], w * (p1[k] - before[k]), rtol=1e-9, atol=1e-15, err_msg=k)
    else:
        for k in ("Ab", "AW", "AV"):
            np.testing.assert_allclose(pw[k], w * w * p1[k], rtol=1e-9, atol=1e-15, err_msg=k)


@pytest.mark.parametrize("method, optimizer", [("fm", "adagrad"), ("fm", "normalized"), ("llfm-jo", "adagrad")])
def test_weight_zero_rows_change_nothing(method, optimizer):
    """Rows of weight 0 are as if absent, L2 included; weights of 1 are bit for bit no weights."""
    chunk, y = chunk_and_targets()
    w = np.where(np.arange(chunk.n_rows) % 3 == 0, 0.0, 1.0)
    keep = np.flatnonzero(w)
    a, b, c = (new_model(method, optimizer, l2=0.1) for _ in range(3))
    a.partial_fit_chunk(chunk.with_weights(w), y)
    b.partial_fit_chunk(chunk.take(keep), y[keep])
    c.partial_fit_chunk(chunk.take(keep).with_weights(np.ones(len(keep))), y[keep])
    for k, v in params(b).items():
        np.testing.assert_array_equal(params(a)[k], v, err_msg=k)
        np.testing.assert_array_equal(params(c)[k], v, err_msg=k)


# -- metrics -------------------------------------------------------------------------------------


def test_weighted_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 2, size=200)
    p1 = np.clip(0.5 + 0.4 * (t - 0.5) + rng.normal(0, 0.25, 200), 0.01, 0.99)
    P = np.column_stack([1 - p1, p1])
    w = rng.uniform(0, 3, size=200)
    acc = StreamingMetrics("binary")
    acc.add(t[:120], P[:120], w[:120])
    acc.add(t[120:], P[120:], w[120:])
    r = acc.result()
    assert r["weight_sum"] == pytest.approx(w.sum())
    assert r["log_loss"] == pytest.approx(log_loss(t, P, sample_weight=w))
    assert r["accuracy"] == pytest.approx(accuracy_score(t, P.argmax(1), sample_weight=w))
    assert r["auc"] == pytest.approx(roc_auc_score(t, p1.astype(np.float32), sample_weight=w))
    reg = StreamingMetrics("regression")
    reg.add(p1, p1 + t, w)
    assert reg.result()["rmse"] == pytest.approx(np.sqrt(np.average(t ** 2, weights=w)))
    plain = StreamingMetrics("binary")
    plain.add(t, P)
    assert "weight_sum" not in plain.result()


# -- estimators ----------------------------------------------------------------------------------


def test_estimator_sample_weight():
    chunk, y = chunk_and_targets(n=300)
    X = chunk.to_dense()
    w = np.where(np.arange(300) % 4 == 0, 0.0, 1.5)
    keep = np.flatnonzero(w)
    start = FMClassifier(n_epochs=0, optimizer="sgd").fit(X, y)  # initialise only
    a, b = copy.deepcopy(start), copy.deepcopy(start)
    a.partial_fit(X, y, sample_weight=w / 1.5)
    b.partial_fit(X[keep], y[keep])
    np.testing.assert_array_equal(a.decision_function(X), b.decision_function(X))
    m = LLFMRegressor(n_epochs=2, anchors=4, early_stopping=True).fit(X, X[:, 0], sample_weight=w)
    assert len(m.loss_curve_) == m.n_iter_ and m.score(X, X[:, 0], sample_weight=w) > 0
    with pytest.raises(ValueError, match="sample_weight must be 300 finite numbers >= 0"):
        FMClassifier(n_epochs=1).fit(X, y, sample_weight=-w)


# -- command line --------------------------------------------------------------------------------


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_weight_column_train_evaluate_resume(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("streamfm.training.validation.AUTO_MIN_ROWS", 100)  # hold rows out of 600
    rng = np.random.default_rng(5)
    X = rng.normal(size=(600, 3))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    w = rng.uniform(0.5, 2.0, size=600)
    data = tmp_path / "d.csv"
    data.write_text("a,b,c,wt,y\n" + "".join(f"{a:.5f},{b:.5f},{c:.5f},{v:.4f},{t}\n"
                                               for (a, b, c), v, t in zip(X, w, y)))
    model = tmp_path / "m"
    code, out, err = run(capsys, "train", data, "--model", model, "--label-column", "y", "--weight-column", "wt",
                         "--method", "fm", "--epochs", "2", "--validation-fraction", "0.2", "-q")
    assert code == 0, err
    manifest = ModelDir(model).read_manifest()
    assert manifest["model"]["input"]["weight"] == "wt"
    assert manifest["training"]["data"]["options"]["weight_column"] == "wt"
    record = json.loads((model / "metrics.jsonl").read_text().splitlines()[-1])
    assert "weight_sum" in record["valid"]  # the held-out rows kept their weights
    code, out, err = run(capsys, "evaluate", data, "--model", model)  # the weight column, found by name
    assert code == 0, err
    assert re.search(r"weight sum\s+[0-9.]+", out), out
    code, out, err = run(capsys, "train", "--resume", model, "--weight-column", "a")
    assert code == 2 and "weight" in err and "Traceback" not in err


def test_run_state_written_before_weights_counts_its_rows():
    from streamfm.training.options import RunState

    old = {"data": {"files": []}, "valid": None, "options": {}, "epochs": 2, "position": 7, "epoch_loss_sum": 3.5}
    assert RunState.from_dict(old).epoch_weight_sum == 7.0
    assert RunState.from_dict(dict(old, epoch_weight_sum=2.5)).epoch_weight_sum == 2.5
