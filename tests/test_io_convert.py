"""convert: libsvm / CSV -> Parquet shards that read back as the same rows,
written atomically."""
from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from sklearn.datasets import dump_svmlight_file

from streamfm.errors import InputError
from streamfm.io import Chunk, ReadOptions, convert, open_source


def all_rows(src) -> Chunk:
    return Chunk.concat(list(src.iter_chunks()))


def write_svm(path, n=250, p=30, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, p, density=0.3, random_state=seed, format="csr")
    X.data = rng.normal(size=X.nnz)
    y = rng.integers(0, 3, n).astype(float)
    dump_svmlight_file(X, y, str(path), zero_based=False)
    return str(path)


def test_libsvm_round_trip_sparse_layout(tmp_path):
    path = write_svm(tmp_path / "d.svm")
    out = tmp_path / "out"
    shards = convert(path, str(out), rows_per_shard=100, progress=False, options=ReadOptions(chunk_rows=33))
    assert [os.path.basename(s) for s in shards] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [pq.ParquetFile(s).metadata.num_rows for s in shards] == [100, 100, 50]
    schema = pq.read_schema(shards[0])
    assert str(schema.field("indices").type) == "list<element: int32>"
    assert str(schema.field("values").type) == "list<element: double>"
    assert str(schema.field("label").type) == "double"
    a = all_rows(open_source(path))
    back = open_source(str(out))
    b = all_rows(back)
    assert back.format == "parquet" and not back.dense
    assert (a.to_scipy(30) != b.to_scipy(30)).nnz == 0
    np.testing.assert_array_equal(a.y, b.y)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".out")]  # no temp dirs left


def test_csv_round_trip_wide_layout(tmp_path):
    rng = np.random.default_rng(1)
    X = np.round(rng.normal(size=(40, 5)), 6)
    y = np.array(["g", "h"])[rng.integers(0, 2, 40)]
    path = tmp_path / "magic.csv"
    path.write_text("".join(",".join(repr(float(v)) for v in row) + f",{lab}\n" for row, lab in zip(X, y)))
    shards = convert(str(path), str(tmp_path / "out"), progress=False)
    schema = pq.read_schema(shards[0])
    assert schema.names == ["label", "f0", "f1", "f2", "f3", "f4"]
    assert str(schema.field("label").type) == "string"
    back = open_source(str(tmp_path / "out"))
    assert back.dense and back.n_features_hint == 5
    b = all_rows(back)
    np.testing.assert_array_equal(b.to_dense(), X)
    assert b.y.tolist() == y.tolist()


def test_failure_leaves_nothing_behind(tmp_path):
    lines = ["1 1:1"] * 500 + ["1 1:x"]
    path = tmp_path / "bad.svm"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"bad\.svm:501: cannot parse '1:x'"):
        convert(str(path), str(out), rows_per_shard=100, progress=False, options=ReadOptions(chunk_rows=50))
    assert os.listdir(tmp_path) == ["bad.svm"]  # neither out nor a temporary directory


def test_existing_output_needs_overwrite(tmp_path):
    path = write_svm(tmp_path / "d.svm", n=10)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty.*--overwrite"):
        convert(path, str(out), progress=False)
    assert os.listdir(out) == ["old.txt"]
    convert(path, str(out), progress=False, overwrite=True)
    assert os.listdir(out) == ["part-00000.parquet"]
    # An existing empty directory is fine.
    (tmp_path / "empty").mkdir()
    convert(path, str(tmp_path / "empty"), progress=False)


def test_no_rows_gives_one_empty_readable_shard(tmp_path):
    path = tmp_path / "empty.svm"
    path.write_text("# nothing\n")
    shards = convert(str(path), str(tmp_path / "out"), progress=False)
    assert len(shards) == 1 and pq.ParquetFile(shards[0]).metadata.num_rows == 0
    assert list(open_source(str(tmp_path / "out")).iter_chunks()) == []


def test_hashed_csv_becomes_sparse_with_its_declared_width(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("color,size,y\nred,1.5,0\nblue,2,1\n")
    src = open_source(str(path), ReadOptions(label_column="y", n_hash_features=64))
    convert(src, str(tmp_path / "out"), progress=False)
    back = open_source(str(tmp_path / "out"))
    assert not back.dense and back.n_features_hint == 65
    a, b = all_rows(src), all_rows(back)
    assert b.n_features == 65
    assert (a.to_scipy(65) != b.to_scipy(65)).nnz == 0 and a.y.tolist() == b.y.tolist()
