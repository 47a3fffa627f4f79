"""tools/benchdata.py: the paper's data sets from the files users have, on small samples in the same formats.

IJCNN1, MNIST and Covtype are not on this machine: these samples are written
in their published formats (LIBSVM text, bz2 as distributed; the UCI CSV
.gz) so that the paths a user gives are exercised.
"""
import bz2
import gzip
import json
import os
import sys

import numpy as np
import pyarrow.dataset as pds
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tools import benchdata  # noqa: E402
from tools.benchdata import DATASETS, prepare, stratified_split, tune_split  # noqa: E402


def _libsvm_lines(X, y, fmt_label="{:g}"):
    lines = []
    for xi, yi in zip(X, y):
        nz = np.flatnonzero(xi)
        lines.append(fmt_label.format(yi) + "".join(f" {j + 1}:{xi[j]:.6g}" for j in nz))
    return "\n".join(lines) + "\n"


def _read(d, part, p):
    t = pds.dataset(os.path.join(d, part)).to_table()
    X = np.column_stack([t.column(f"f{j}").to_numpy() for j in range(p)]).astype(np.float64)
    return X, np.asarray(t.column("label").to_pylist())


def _check_standardised(d, p, parts=("train",)):
    X, _ = _read(d, "train", p)
    sd = X.std(0)
    assert np.allclose(X.mean(0), 0, atol=1e-5)
    assert np.allclose(sd[sd > 0], 1, atol=1e-4)


def test_stratified_split_sizes_and_class_shares():
    y = np.array([0] * 700 + [1] * 300)
    tr, te = stratified_split(y, 600, seed=3)
    assert len(tr) == 600 and len(te) == 400
    assert len(np.intersect1d(tr, te)) == 0 and len(np.union1d(tr, te)) == 1000
    assert abs((y[tr] == 1).mean() - 0.3) < 0.01
    tr2, _ = stratified_split(y, 600, seed=3)
    assert np.array_equal(tr, tr2)
    fit, valid = tune_split(y[tr], seed=3)
    assert len(valid) == 120 and len(fit) == 480 and len(np.intersect1d(fit, valid)) == 0


def test_ijcnn1_pair_of_libsvm_files(tmp_path, monkeypatch):
    monkeypatch.setattr(benchdata, "ROWS_PER_SHARD", 50)
    rng = np.random.default_rng(0)
    p = 22
    Xtr = rng.normal(size=(120, p)) * (rng.random((120, p)) < 0.6)
    Xte = rng.normal(size=(80, p)) * (rng.random((80, p)) < 0.6)
    Xte[:, -1] = 0  # the test file never mentions feature 22: the width must still be 22
    ytr = np.where(rng.random(120) < 0.1, 1, -1)
    yte = np.where(rng.random(80) < 0.1, 1, -1)
    src = tmp_path / "src"
    src.mkdir()
    (src / "ijcnn1.bz2").write_bytes(bz2.compress(_libsvm_lines(Xtr, ytr).encode()))
    (src / "ijcnn1.t.bz2").write_bytes(bz2.compress(_libsvm_lines(Xte, yte).encode()))
    ds = DATASETS["ijcnn1"]
    # the paths a user gives (--ijcnn1 TRAIN TEST), compressed as LIBSVM distributes them
    metas = prepare(ds, [str(src / "ijcnn1.bz2"), str(src / "ijcnn1.t.bz2")], str(tmp_path / "out"), [0, 1], quiet=True)
    d = tmp_path / "out" / "ijcnn1" / "split-0"
    meta = json.loads((d / "meta.json").read_text())
    assert meta == json.loads(json.dumps(metas[0]))
    assert meta["sizes"] == {"train": 120, "test": 80, "tune-fit": 96, "tune-valid": 24}
    assert meta["n_features"] == 22
    X, y = _read(str(d), "train", p)
    Xt, yt = _read(str(d), "test", p)
    # the published split is kept; the test rows in file order, standardised with the training statistics
    mu, sd = Xtr.mean(0), Xtr.std(0)
    assert np.allclose(Xt, (Xte - mu) / np.where(sd > 0, sd, 1), atol=1e-5)
    assert np.array_equal(yt, yte)
    assert sorted(y.tolist()) == sorted(ytr.tolist())
    _check_standardised(str(d), p)
    # the two seeds share the split, but each spreads the training rows over its shards at random
    d1 = tmp_path / "out" / "ijcnn1" / "split-1"
    X1, _ = _read(str(d1), "train", p)
    assert np.allclose(np.sort(X, 0), np.sort(X1, 0))
    shards = sorted(os.listdir(d / "train"))
    assert shards == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    first0 = pds.dataset(str(d / "train" / shards[0])).to_table().num_rows
    assert first0 == 40
    a = pds.dataset(str(d / "train" / shards[0])).to_table().column("f0").to_numpy()
    b = pds.dataset(str(d1 / "train" / shards[0])).to_table().column("f0").to_numpy()
    assert not np.array_equal(np.sort(a), np.sort(b))


def test_mnist_multiclass_width_780(tmp_path):
    rng = np.random.default_rng(1)
    p = 780
    Xtr = np.where(rng.random((60, p)) < 0.2, rng.integers(1, 256, size=(60, p)), 0).astype(float)
    Xtr[:, 700:] = 0  # LIBSVM mnist: the last pixels are empty in most rows
    Xtr[0, 779] = 12.0  # ... but one training row reaches the last index
    Xte = np.where(rng.random((20, p)) < 0.2, rng.integers(1, 256, size=(20, p)), 0).astype(float)
    Xte[:, 600:] = 0
    ytr, yte = np.arange(60) % 10, rng.integers(0, 10, size=20)
    (tmp_path / "mnist").write_text(_libsvm_lines(Xtr, ytr, "{:d}"))
    (tmp_path / "mnist.t").write_text(_libsvm_lines(Xte, yte, "{:d}"))
    ds = DATASETS["mnist"]
    prepare(ds, [str(tmp_path / "mnist"), str(tmp_path / "mnist.t")], str(tmp_path / "out"), [0], tune=False, quiet=True)
    d = tmp_path / "out" / "mnist" / "split-0"
    meta = json.loads((d / "meta.json").read_text())
    assert meta["sizes"] == {"train": 60, "test": 20} and meta["n_features"] == 780
    assert set(meta["class_counts"]["train"]) == {str(c) for c in range(10)}
    X, y = _read(str(d), "train", p)
    assert X.shape == (60, 780) and sorted(y.tolist()) == sorted(ytr.tolist())
    _check_standardised(str(d), p)
    assert not (d / "tune-fit").exists()


def test_covtype_libsvm_binary_keeps_the_paper_fraction(tmp_path):
    rng = np.random.default_rng(2)
    n, p = 300, 54
    X = np.zeros((n, p))
    X[:, :10] = rng.normal(size=(n, 10)) * 100 + 1000
    X[np.arange(n), 10 + rng.integers(0, 4, n)] = 1
    X[np.arange(n), 14 + rng.integers(0, 40, n)] = 1
    y = np.where(rng.random(n) < 0.45, 2, 1)
    path = tmp_path / "covtype.libsvm.binary.bz2"
    path.write_bytes(bz2.compress(_libsvm_lines(X, y, "{:d}").encode()))
    ds = DATASETS["covtype"]
    assert benchdata.find_files(ds, str(tmp_path)) is None  # expects <data>/covtype/
    (tmp_path / "covtype").mkdir()
    os.replace(path, tmp_path / "covtype" / path.name)
    found = benchdata.find_files(ds, str(tmp_path))
    assert found == [str(tmp_path / "covtype" / path.name)]
    prepare(ds, found, str(tmp_path / "out"), [0], quiet=True)
    d = tmp_path / "out" / "covtype" / "split-0"
    meta = json.loads((d / "meta.json").read_text())
    n_train = round(n * 387342 / 581012)
    assert meta["sizes"]["train"] == n_train and meta["sizes"]["test"] == n - n_train
    counts = meta["class_counts"]
    assert abs(counts["train"]["2"] / n_train - (y == 2).mean()) < 0.01
    _check_standardised(str(d), p)
    Xr, yr = _read(str(d), "train", p)
    assert set(yr.tolist()) == {1, 2}


def test_covtype_uci_csv_gz_seven_classes(tmp_path):
    rng = np.random.default_rng(3)
    n = 210
    X = np.column_stack([rng.integers(1800, 3900, n), rng.integers(0, 360, n)] +
                        [rng.integers(0, 200, n) for _ in range(8)] +
                        [np.eye(4, dtype=int)[rng.integers(0, 4, n)]] + [np.eye(40, dtype=int)[rng.integers(0, 40, n)]])
    y = np.arange(n) % 7 + 1
    text = "\n".join(",".join(map(str, row)) + f",{lab}" for row, lab in zip(X, y)) + "\n"
    (tmp_path / "covtype").mkdir()
    with gzip.open(tmp_path / "covtype" / "covtype.data.gz", "wt") as fh:
        fh.write(text)
    ds = DATASETS["covtype-uci"]
    found = benchdata.find_files(ds, str(tmp_path))
    assert found == [str(tmp_path / "covtype" / "covtype.data.gz")]
    prepare(ds, found, str(tmp_path / "out"), [4], quiet=True)
    d = tmp_path / "out" / "covtype-uci" / "split-4"
    meta = json.loads((d / "meta.json").read_text())
    assert meta["n_features"] == 54 and set(meta["class_counts"]["train"]) == {str(c) for c in range(1, 8)}
    assert sum(meta["sizes"][k] for k in ("train", "test")) == n
    assert sum(meta["sizes"][k] for k in ("tune-fit", "tune-valid")) == meta["sizes"]["train"]
    _check_standardised(str(d), 54)


def test_prepare_is_seeded_and_refuses_to_overwrite(tmp_path):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(90, 2))
    y = np.where(X[:, 0] * X[:, 1] > 0, 1.0, -1.0)
    (tmp_path / "banana").mkdir()
    (tmp_path / "banana" / "banana.csv").write_text(
        "\n".join(f"{a:.4f},{b:.4f},{c:.1f}" for (a, b), c in zip(X, y)) + "\n")
    ds = DATASETS["banana"]
    found = benchdata.find_files(ds, str(tmp_path))
    prepare(ds, found, str(tmp_path / "a"), [0], quiet=True)
    prepare(ds, found, str(tmp_path / "b"), [0], quiet=True)
    Xa, ya = _read(str(tmp_path / "a" / "banana" / "split-0"), "train", 2)
    Xb, yb = _read(str(tmp_path / "b" / "banana" / "split-0"), "train", 2)
    assert np.array_equal(Xa, Xb) and np.array_equal(ya, yb)
    with pytest.raises(FileExistsError):
        prepare(ds, found, str(tmp_path / "a"), [0], quiet=True)
    prepare(ds, found, str(tmp_path / "a"), [0], quiet=True, overwrite=True)
    # the command line finds the data set under --data and skips the missing ones
    benchdata.main(["--data", str(tmp_path), "--out", str(tmp_path / "c"), "--seeds", "1", "--no-tune"])
    assert (tmp_path / "c" / "banana" / "split-1" / "train").is_dir()
    assert not (tmp_path / "c" / "letter").exists()
