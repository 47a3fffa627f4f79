"""tools/bench_sparse.py and tools/sparse_peers.py on tiny generated data: data files, metrics, peers,
the streamfm runner, the targets, the page and its figure."""
import argparse
import gzip
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tools import bench_sparse as bs  # noqa: E402
from tools import sparse_peers as sp  # noqa: E402


def _args(tmp_path, **kw):
    a = dict(movielens=str(tmp_path / "movielens-small"), data_dir=str(tmp_path / "data"),
             runs_dir=str(tmp_path / "runs"), ctr_rows=300, ctr_myfm=False, skip_peers=False)
    a.update(kw)
    return argparse.Namespace(**a)


@pytest.fixture()
def tiny_movielens(tmp_path):
    """The movielens-small layout (user 1..610, movie 611..10,334, genres 10,335..10,354), 400 + 100 rows."""
    rng = np.random.default_rng(0)
    d = tmp_path / "movielens-small"
    d.mkdir()
    users, movies = rng.normal(size=30), rng.normal(size=40)
    for part, n in (("train", 400), ("test", 100)):
        u, m = rng.integers(0, 30, n), rng.integers(0, 40, n)
        rating = np.clip(np.round(2 * (3.5 + users[u] + movies[m] + 0.3 * rng.normal(size=n))) / 2, 0.5, 5)
        for label, ys in (("rating", rating), ("liked", (rating >= 4).astype(int))):
            lines = [f"{y:g} {1 + a}:1 {611 + b}:1 {10335 + b % 3}:0.5 {10340 + b % 5}:0.5"
                     for y, a, b in zip(ys, u, m)]
            with gzip.open(d / f"{part}-{label}.svm.gz", "wt") as fh:
                fh.write("\n".join(lines) + "\n")
    return tmp_path


def test_metrics_share_one_definition():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = (rng.random(200) < 0.4).astype(float)
    p = np.clip(0.4 + 0.3 * (y - 0.4) + 0.2 * rng.normal(size=200), 0.01, 0.99)
    m = sp.metrics("binary", y, p)
    assert m["log_loss"] == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    assert m["accuracy"] == pytest.approx(np.mean((p > 0.5) == (y == 1)))
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    # certainty that is wrong costs -log(1e-15), not infinity, on either side
    assert sp.metrics("binary", [1.0, 0.0], [0.0, 1.0])["log_loss"] == pytest.approx(-np.log(1e-15), rel=1e-4)
    r = sp.metrics("regression", [1.0, 2.0, 4.0], [1.5, 2.0, 3.0])
    assert r["rmse"] == pytest.approx(np.sqrt(1.25 / 3)) and r["mae"] == pytest.approx(0.5)


def test_movielens_vw_files_use_the_namespaces(tiny_movielens):
    args = _args(tiny_movielens)
    rating, liked = bs.movielens(args)
    first = open(rating.vw_train).readline().split()
    svm = gzip.open(rating.train, "rt").readline().split()
    assert first[0] == svm[0]  # the rating itself
    assert first[1:] == ["|u", svm[1].split(":")[0], "|i", svm[2].split(":")[0], "|g", svm[3], svm[4]]
    labels = {line.split()[0] for line in open(liked.vw_test)}
    assert labels <= {"1", "-1"} and len(labels) == 2
    assert sum(1 for _ in open(liked.vw_test)) == 100
    X, y, Xt, yt = rating.matrices
    assert X.shape == (400, 10354) and Xt.shape == (100, 10354) and X.indices.dtype == np.int32


def test_ctr_files_hold_the_generator_rows(tmp_path):
    from tools.datagen import ctr_blocks

    f = sp.make_ctr(str(tmp_path), 250, 50)
    ids, y = next(ctr_blocks(300, seed=7, sort=False))
    data = sp.Data("ctr", "binary", f["train.parquet"], f["test.parquet"], f["train.vw"], f["test.vw"], "ab10",
                   "k", 1 << 20)
    X, yy, Xt, yt = data.matrices
    assert X.shape == (250, 1 << 20) and Xt.shape == (50, 1 << 20)
    assert np.array_equal(np.concatenate([yy, yt]), y)
    for i, (row, line) in enumerate(zip(ids[:250], open(f["train.vw"]))):
        toks = line.split()
        assert toks[0] == ("1" if y[i] else "-1") and toks[1] == "|a" and toks[12] == "|b"
        assert [int(t) for t in toks[2:12] + toks[13:]] == row.tolist()  # field order: a = fields 0-9
        assert X[i].indices.tolist() == sorted(set(row.tolist()))
    assert Xt[0].indices.tolist() == sorted(set(ids[250].tolist()))
    stamp = os.path.getmtime(f["train.parquet"])
    assert sp.make_ctr(str(tmp_path), 250, 50) == f and os.path.getmtime(f["train.parquet"]) == stamp


def test_peers_run_and_are_cached(tmp_path, monkeypatch):
    args = _args(tmp_path, ctr_rows=600)
    (data,) = bs.ctr(args)
    cache, calls = {}, []

    def fake():
        calls.append(1)
        return np.full(120, 0.3), 0.5

    first = bs.run_peer(data, "scikit-learn SGD, one pass", "s", fake, cache, args, lambda s: None)
    args.skip_peers = True
    again = bs.run_peer(data, "scikit-learn SGD, one pass", "s", fake, cache, args, lambda s: None)
    assert len(calls) == 1 and again["cached"] and again["metrics"] == first["metrics"]
    assert bs.run_peer(data, "scikit-learn SGD, one pass", "other settings", fake, cache, args, lambda s: None)
    assert len(calls) == 2  # another key: measured
    monkeypatch.setitem(sys.modules, "myfm", None)  # as if not installed
    assert "not installed" in bs.run_peer(data, "myfm MCMC FM", "x", fake, cache, args, lambda s: None)["missing"]
    for name, run in ((n, r) for n, _, r in bs.peers(data, args) if n.startswith("scikit-learn")):
        p, sec = run()
        m = sp.metrics("binary", data.matrices[3], p)
        assert len(p) == 120 and sec >= 0 and 0 <= m["auc"] <= 1, name


@pytest.mark.parametrize("peer", ["myfm", "vowpalwabbit"])
def test_optional_peers(tiny_movielens, peer):
    pytest.importorskip(peer)
    rating, liked = bs.movielens(_args(tiny_movielens))
    for data in (rating, liked):
        if peer == "myfm":
            p, _ = sp.run_myfm(data, sweeps=20, kept=10)
        else:
            p, _ = sp.run_vw(data, sp.vw_args(data, lrq=True, passes=3), str(tiny_movielens / "vw"))
        m = sp.metrics(data.task, data.matrices[3], p)
        assert len(p) == 100
        if data.task == "regression":
            assert m["rmse"] < 1.5  # the ratings' spread is about 1.4: something was learnt
        else:
            assert 0 <= p.min() and p.max() <= 1 and m["auc"] > 0.6


def test_streamfm_runner_scores_as_streamfm_evaluate(tiny_movielens):
    from streamfm import load
    from streamfm.io.sources import open_source
    from streamfm.inference.metrics import evaluate_source

    args = _args(tiny_movielens)
    rating, _ = bs.movielens(args)
    res = bs.run_streamfm(rating, "streamfm fm", "fm", ["--epochs", "2"], args, lambda s: None, curve=True)
    assert res["command"] == ("python -m streamfm train movielens-small/train-rating.svm.gz --task regression "
                              "--method fm --epochs 2 --quiet --model MODEL")
    model = os.path.join(args.runs_dir, "movielens-rating-fm")
    ref = evaluate_source(load(model), open_source(rating.test))
    assert res["metrics"]["rmse"] == pytest.approx(ref["rmse"], rel=1e-12)
    assert res["metrics"]["mae"] == pytest.approx(ref["mae"], rel=1e-12)
    assert res["epochs"] == 2 and res["seconds"] > 0
    # no --valid in the run: the curve comes from the same command given --valid TEST
    assert [e for e, _ in res["curve"]] == [1, 2]
    if res["curve_source"] == "second run":
        assert res["curve"][-1][1] == pytest.approx(res["metrics"]["rmse"], rel=1e-9)


def test_curve_and_best_epoch_are_read_defensively(tmp_path):
    recs = [{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "valid": {"rmse": 0.9, "new_key": [1]}},
            {"epoch": 3, "valid": {"log_loss": 0.5}}, {"valid": {"rmse": 0.8}}, {"epoch": 4, "valid": {"rmse": 0.85}}]
    assert sp.valid_curve(recs, "rmse") == [(2, 0.9), (4, 0.85)]
    (tmp_path / "manifest.json").write_text('{"run": {"early_stop": {"best_epoch": 3}}, "epoch": 5}')
    assert sp.best_epoch(str(tmp_path)) == 3
    assert sp.best_epoch(str(tmp_path / "missing")) is None


def _r(system, **m):
    return {"system": system, "settings": "s", "metrics": m, "seconds": 1.0}


def test_targets_page_and_figure(tmp_path):
    R = {"movielens-rating": [dict(_r("streamfm fm", rmse=0.85, mae=0.6), command="python -m streamfm train X",
                                   epochs=3, best_epoch=2, curve=[(1, 0.9), (2, 0.84), (3, 0.86)],
                                   curve_source="records"),
                              _r("streamfm llfm-jo", rmse=0.83, mae=0.6), _r("scikit-learn Ridge", rmse=0.858, mae=0.7),
                              _r("scikit-learn SGD, one pass", rmse=40.0, mae=30.0),
                              {"system": "myfm MCMC FM", "settings": "s", "missing": "myfm is not installed"}],
         "ctr": [_r("streamfm fm, one pass", log_loss=0.57, accuracy=0.7, auc=0.7),
                 _r("streamfm fm", log_loss=0.56, accuracy=0.7, auc=0.7),
                 _r("VW linear, one pass", log_loss=0.58, accuracy=0.7, auc=0.7),
                 _r("scikit-learn SGD, one pass", log_loss=0.59, accuracy=0.7, auc=0.7),
                 _r("scikit-learn SGD, early stopping", log_loss=0.55, accuracy=0.7, auc=0.7)]}
    t = {text: (shown, met) for text, shown, met in bs.targets(R)}
    assert t["movielens rating: `fm` test RMSE <= 0.840"] == ("0.8500", False)
    assert t["movielens rating: `llfm-jo` RMSE <= `fm`"] == ("0.8300 vs 0.8500", True)
    (one, stop), = [[v for k, v in t.items() if k.startswith("CTR")]]
    assert one == ("0.5700 vs 0.5800 / 0.5900", True)
    assert stop == ("not measured", None)  # VW --passes 10 is missing
    datasets = {"movielens-rating": sp.Data("movielens-rating", "regression", "a", "b", "c", "d", "ui10", "k", 1, "ML."),
                "ctr": sp.Data("ctr", "binary", "a", "b", "c", "d", "ab10", "k", 1, "CTR.")}
    doc = bs.write_doc(R, datasets, "python tools/bench_sparse.py", "abc1234", 90.0, str(tmp_path))
    assert "| streamfm fm | `s`, 3 epochs run, epoch 2 kept | 0.8500 | 0.6000 | 1.0 |" in doc
    assert "| myfm MCMC FM | s |  |  | myfm is not installed |" in doc
    assert "| CTR: `fm` after one pass below VW linear, one pass and scikit-learn SGD, one pass in test log loss " \
           "| 0.5700 vs 0.5800 / 0.5900 | yes |" in doc
    assert "python -m streamfm train X" in doc and "figures/sparse-ctr.png" in doc and "at commit abc1234" in doc
    pytest.importorskip("matplotlib")
    path = tmp_path / "f.png"
    bs.figure("movielens-rating", "regression", R["movielens-rating"], str(path))
    assert path.stat().st_size > 1000
