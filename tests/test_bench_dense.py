"""tools/bench_dense.py: the generated data set, the peers on a small problem, the report (no streamfm training)."""
import os
import sys

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from tools import bench_dense  # noqa: E402


def test_two_variances_differ_only_in_variance_and_are_seeded(tmp_path):
    bench_dense.write_two_variances(str(tmp_path / "a"), 0)
    bench_dense.write_two_variances(str(tmp_path / "b"), 0)
    X, y = bench_dense.load_xy(bench_dense.split_dir(str(tmp_path / "a"), bench_dense.GENERATED, 0, "train"))
    X2, y2 = bench_dense.load_xy(bench_dense.split_dir(str(tmp_path / "b"), bench_dense.GENERATED, 0, "train"))
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert X.shape == (bench_dense.TWO_VARIANCES["train"], bench_dense.TWO_VARIANCES["features"])
    sd = [X[y == c].std() for c in (0, 1)]
    assert abs(sd[0] - 1.0) < 0.05 and abs(sd[1] - bench_dense.TWO_VARIANCES["sd"]) < 0.05
    # the class means agree: nothing linear tells the classes apart
    assert np.abs(X[y == 0].mean(0) - X[y == 1].mean(0)).max() < 0.1


def test_peers_separate_a_circle_and_the_linear_one_cannot(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    for part, n in (("train", 300), ("test", 200)):
        X = rng.uniform(-1, 1, (n, 2))
        y = (np.hypot(X[:, 0], X[:, 1]) < 0.7).astype(np.int64)
        d = tmp_path / part
        d.mkdir()
        pq.write_table(pa.table({"f0": X[:, 0], "f1": X[:, 1], "label": y}), str(d / "part-00000.parquet"))
    monkeypatch.setattr(bench_dense, "GRID", {"C": (10.0,), "gamma_factor": (1.0, 4.0)})
    out = bench_dense.fit_peers(str(tmp_path / "train"), str(tmp_path / "test"), 0)
    assert set(out) == set(bench_dense.PEERS)
    assert out["RBF-SVM"]["test_accuracy"] > 0.9
    assert out["logistic regression"]["test_accuracy"] < 0.8
    assert out["RBF-SVM"]["C"] == 10.0


def test_report_has_a_row_per_method_and_the_command(tmp_path):
    split = {"fm": {"test_accuracy": 0.8, "test_log_loss": 0.4, "train_seconds": 2.0, "epochs": 10, "curve": [None]},
             "logistic regression": {"test_accuracy": 0.75, "test_log_loss": 0.5, "train_seconds": 0.1},
             "RBF-SVM": {"test_accuracy": 0.9, "test_log_loss": 0.3, "train_seconds": 5.0, "C": 10.0, "gamma": 0.5}}
    other = {k: dict(v, test_accuracy=v["test_accuracy"] + 0.02) for k, v in split.items()}
    out = tmp_path / "dense.md"
    bench_dense.write_report({"toy": [split, other]}, ["fm", "logistic regression", "RBF-SVM"],
                             "python tools/bench_dense.py --runs 2", str(out), str(tmp_path))
    text = out.read_text()
    assert "| fm | 81.00 ± 1.41 | 0.4000 ± 0.0000 | 2.0 ± 0.0 |" in text
    assert "| RBF-SVM | 91.00 ± 1.41 |" in text
    assert "python tools/bench_dense.py --runs 2" in text
    assert "Epochs run (early stopping): fm 10-10." in text
