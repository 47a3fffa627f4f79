"""open_source: files, globs, directories, lists; formats; file order; errors."""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamfm.errors import InputError
from streamfm.io import Chunk, DataSource, ReadOptions, open_source
from streamfm.io.sources import format_of


def shards(tmp_path, n=3, rows=5):
    """n libsvm shards whose labels say which shard and row they come from."""
    d = tmp_path / "data"
    d.mkdir()
    for s in range(n):
        lines = [f"{s * 100 + i} {i + 1}:1" for i in range(rows)]
        (d / f"part-{s}.svm").write_text("\n".join(lines) + "\n")
    return d


def labels(src, **kw):
    return Chunk.concat(list(src.iter_chunks(**kw))).y.tolist()


def test_directory_glob_and_list_are_the_same_data_set(tmp_path):
    d = shards(tmp_path)
    (d / ".hidden.svm").write_text("9 1:1\n")
    (d / "_SUCCESS").write_text("")
    (d / "notes.md").write_text("not data")
    by_dir = open_source(str(d))
    by_glob = open_source(str(d / "part-*.svm"))
    by_list = open_source([str(d / "part-2.svm"), str(d / "part-0.svm"), str(d / "part-1.svm"), str(d / "part-0.svm")])
    expect = [str(d / f"part-{s}.svm") for s in range(3)]
    for src in (by_dir, by_glob, by_list):
        assert isinstance(src, DataSource)
        assert src.files == expect  # absolute, sorted, de-duplicated
        assert src.format == "libsvm" and not src.dense and src.n_features_hint is None
        assert labels(src) == [s * 100 + i for s in range(3) for i in range(5)]
    # A directory and a glob naming the same files, together: still three files.
    assert open_source([str(d), str(d / "*.svm")]).files == expect


def test_iter_chunks_follows_the_given_file_order(tmp_path):
    d = shards(tmp_path)
    src = open_source(str(d), ReadOptions(chunk_rows=2))
    order = [src.files[2], src.files[0]]
    got = list(src.iter_chunks(files=order))
    assert [c.n_rows for c in got] == [2, 2, 1, 2, 2, 1]  # a chunk never spans two files
    assert Chunk.concat(got).y.tolist() == [200, 201, 202, 203, 204, 0, 1, 2, 3, 4]
    assert labels(src, chunk_rows=10) == labels(src)


def test_missing_paths(tmp_path):
    with pytest.raises(InputError, match=r"nothere\.svm: no such file or directory"):
        open_source(str(tmp_path / "nothere.svm"))
    with pytest.raises(InputError, match=r"no file matches '.*\*\.parquet'"):
        open_source(str(tmp_path / "*.parquet"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: no data files in this directory"):
        open_source(str(tmp_path / "empty"))
    with pytest.raises(InputError, match="no input files"):
        open_source([])


def test_model_directory_is_not_data(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "manifest.json").write_text("{}")
    with pytest.raises(InputError, match="is a model directory, not data"):
        open_source(str(tmp_path / "model"))


def test_formats_by_suffix_and_override(tmp_path):
    assert format_of("a.parquet") == "parquet" and format_of("a.PQ") == "parquet"
    assert format_of("a.csv") == "csv" and format_of("a.csv.gz") == "csv" and format_of("a.tsv.xz") == "csv"
    assert format_of("ijcnn1.t") == "libsvm" and format_of("covtype.libsvm.binary") == "libsvm"
    assert format_of("a.svm.bz2") == "libsvm"
    path = tmp_path / "data.dat"
    path.write_text("1,2,a\n3,4,b\n")
    src = open_source(str(path), ReadOptions(format="csv"))
    assert src.format == "csv" and src.dense and src.n_features_hint == 2
    with pytest.raises(InputError, match="unknown format 'xls'"):
        open_source(str(path), ReadOptions(format="xls"))


def test_mixed_formats_are_refused(tmp_path):
    (tmp_path / "a.csv").write_text("1,2\n")
    (tmp_path / "b.svm").write_text("1 1:2\n")
    with pytest.raises(InputError, match=r"the inputs mix formats \(csv, libsvm\)"):
        open_source(str(tmp_path))


def test_table_options_rejected_for_libsvm(tmp_path):
    d = shards(tmp_path, n=1)
    with pytest.raises(InputError, match="label-column applies to CSV and Parquet"):
        open_source(str(d), ReadOptions(label_column="y"))


def test_chunk_rows_must_be_positive(tmp_path):
    d = shards(tmp_path, n=1)
    with pytest.raises(InputError, match="chunk_rows must be at least 1"):
        open_source(str(d), ReadOptions(chunk_rows=0))


def test_parquet_directory_and_attributes(tmp_path):
    for s in range(2):
        t = pa.table({"label": [float(s)] * 3, "a": np.arange(3.0), "b": np.ones(3)})
        pq.write_table(t, str(tmp_path / f"part-{s:05d}.parquet"))
    src = open_source(str(tmp_path))
    assert src.format == "parquet" and src.dense and src.n_features_hint == 2
    assert src.feature_names == ["a", "b"] and src.label_column == "label"
    assert src.n_bytes == sum(os.path.getsize(f) for f in src.files)
    assert labels(src) == [0.0] * 3 + [1.0] * 3
