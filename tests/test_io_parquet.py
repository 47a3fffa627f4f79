"""The Parquet reader against pyarrow.parquet.read_table: wide, sparse and hashed
layouts; the stable hash; corrupt files and bad values."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamfm.errors import InputError
from streamfm.io import Chunk, ReadOptions, open_source
from streamfm.io.hashing import fnv1a_32, hash_strings


def read_all(path, **kw):
    src = open_source(path, ReadOptions(**kw))
    chunks = list(src.iter_chunks())
    return Chunk.concat(chunks), src, chunks


def wide_table(n=100, p=6, seed=0, text_labels=False):
    rng = np.random.default_rng(seed)
    cols = {f"x{j}": rng.normal(size=n) for j in range(p)}
    cols["x1"] = rng.integers(0, 5, n)  # an integer column reads as float64
    cols["flag"] = rng.random(n) < 0.5  # so does a boolean one
    label = np.array(["yes", "no"])[rng.integers(0, 2, n)] if text_labels else rng.integers(0, 2, n).astype(float)
    return pa.table({"label": label, **cols})


@pytest.mark.parametrize("text_labels", [False, True])
def test_wide_matches_read_table(tmp_path, text_labels):
    path = str(tmp_path / "w.parquet")
    pq.write_table(wide_table(text_labels=text_labels), path, row_group_size=30)
    chunk, src, chunks = read_all(path, chunk_rows=16)
    assert all(c.n_rows <= 16 for c in chunks)
    ref = pq.read_table(path)
    names = [c for c in ref.column_names if c != "label"]
    X = np.column_stack([ref.column(c).to_numpy().astype(float) for c in names])
    np.testing.assert_array_equal(chunk.to_dense(), X)
    assert chunk.y.tolist() == ref.column("label").to_pylist()
    assert src.dense and src.n_features_hint == len(names) and src.feature_names == names
    assert chunk.y.dtype == (np.dtype("<U3") if text_labels else np.float64)


def test_wide_feature_and_label_columns(tmp_path):
    path = str(tmp_path / "w.parquet")
    pq.write_table(wide_table(), path)
    chunk, src, _ = read_all(path, label_column="x0", feature_columns=["x2", "x3"])
    ref = pq.read_table(path)
    np.testing.assert_array_equal(chunk.y, ref.column("x0").to_numpy())
    np.testing.assert_array_equal(chunk.to_dense()[:, 1], ref.column("x3").to_numpy())


def sparse_table(n=80, p=200, seed=1):
    rng = np.random.default_rng(seed)
    idx, val = [], []
    for i in range(n):
        k = rng.integers(0, 12)
        row = rng.choice(p, size=k, replace=False)  # unsorted on purpose
        idx.append(row.astype(np.int32).tolist())
        val.append(rng.normal(size=k).tolist())
    return pa.table({
        "label": rng.normal(size=n),
        "indices": pa.array(idx, type=pa.list_(pa.int32())),
        "values": pa.array(val, type=pa.list_(pa.float64())),
    })


def test_sparse_matches_read_table(tmp_path):
    path = str(tmp_path / "s.parquet")
    pq.write_table(sparse_table(), path, row_group_size=25)
    chunk, src, chunks = read_all(path, chunk_rows=9)
    assert all(c.n_rows <= 9 for c in chunks)
    assert not src.dense and src.n_features_hint is None
    ref = pq.read_table(path).to_pylist()
    expect = np.zeros((len(ref), 200))
    for i, r in enumerate(ref):
        expect[i, r["indices"]] = r["values"]
    np.testing.assert_array_equal(chunk.to_dense(200), expect)
    np.testing.assert_array_equal(chunk.y, [r["label"] for r in ref])
    for i in range(chunk.n_rows):  # sorted within rows
        assert np.all(np.diff(chunk.indices[chunk.indptr[i] : chunk.indptr[i + 1]]) > 0)


def test_sparse_custom_column_names_and_int64_indices(tmp_path):
    t = pa.table({
        "y": [1.0, 0.0],
        "ix": pa.array([[3, 1], []], type=pa.list_(pa.int64())),
        "vx": pa.array([[0.5, 2.0], []], type=pa.large_list(pa.float32())),
    })
    path = str(tmp_path / "s.parquet")
    pq.write_table(t, path)
    chunk, _, _ = read_all(path, label_column="y", indices_column="ix", values_column="vx")
    assert chunk.to_dense(4).tolist() == [[0, 2, 0, 0.5], [0, 0, 0, 0]]


def test_hashed_string_and_dictionary_columns(tmp_path):
    t = pa.table({
        "label": [1.0, 0.0, 1.0],
        "age": [30.0, 40.0, 50.0],
        "city": ["Paris", "Zürich", "Paris"],
        "site": pa.array(["a", "b", "a"]).dictionary_encode(),
    })
    path = str(tmp_path / "h.parquet")
    pq.write_table(t, path)
    chunk, src, _ = read_all(path, n_hash_features=50)
    assert src.hashed_columns == ["city", "site"] and not src.dense and src.n_features_hint == 51
    for i, (city, site) in enumerate([("Paris", "a"), ("Zürich", "b"), ("Paris", "a")]):
        ids = sorted({1 + fnv1a_32(f"city={city}".encode()) % 50, 1 + fnv1a_32(f"site={site}".encode()) % 50})
        row = chunk.indices[chunk.indptr[i] : chunk.indptr[i + 1]].tolist()
        assert row == [0] + ids


def test_hash_collisions_within_a_row_are_summed(tmp_path):
    t = pa.table({"label": [1.0], "a": ["x"], "b": ["y"]})
    path = str(tmp_path / "h.parquet")
    pq.write_table(t, path)
    chunk, _, _ = read_all(path, n_hash_features=1)  # everything lands on feature 0
    assert chunk.indices.tolist() == [0] and chunk.data.tolist() == [2.0]


def test_fnv1a_kernel_matches_reference():
    rng = np.random.default_rng(0)
    words = ["", "a", "foobar", "Zürich", "日本語"] + ["".join(rng.choice(list("abcxyz="), 12)) for _ in range(50)]
    got = hash_strings(pa.array(words).slice(2), "col")  # a sliced array: offsets start past 0
    want = [fnv1a_32(f"col={w}".encode()) for w in words[2:]]
    assert got.tolist() == want
    # Published FNV-1a 32-bit test vectors: the hash is stable across platforms.
    assert fnv1a_32(b"a") == 0xE40C292C and fnv1a_32(b"foobar") == 0xBF9CF968
    assert hash_strings(pa.array(["x"], type=pa.large_string()), "c").tolist() == [fnv1a_32(b"c=x")]


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "shard-3.parquet"
    path.write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(InputError, match=r"shard-3\.parquet: not a readable Parquet file \("):
        read_all(str(path))


def test_truncated_parquet_in_a_data_set(tmp_path):
    pq.write_table(wide_table(), str(tmp_path / "shard-0.parquet"))
    data = (tmp_path / "shard-0.parquet").read_bytes()
    (tmp_path / "shard-1.parquet").write_bytes(data[: len(data) // 2])
    src = open_source(str(tmp_path))
    with pytest.raises(InputError, match=r"shard-1\.parquet: not a readable Parquet file"):
        list(src.iter_chunks())


def test_missing_label_column_lists_columns(tmp_path):
    path = str(tmp_path / "w.parquet")
    pq.write_table(pa.table({"a": [1.0], "b": [2.0]}), path)
    with pytest.raises(InputError, match=r"label column 'label' not found .*--label-column.*columns are: a, b"):
        open_source(path)
    with pytest.raises(InputError, match=r"label column 'y' not found .*columns are: a, b"):
        open_source(path, ReadOptions(label_column="y"))


@pytest.mark.parametrize(
    "column,values,message",
    [
        ("x", [1.0, None, 3.0], r"w\.parquet: row 2, column 'x': the value is empty"),
        ("x", [1.0, 2.0, float("nan")], r"w\.parquet: row 3, column 'x': the value is nan"),
        ("x", [float("-inf"), 2.0, 3.0], r"w\.parquet: row 1, column 'x': the value is -inf"),
        ("label", [1.0, None, 0.0], r"w\.parquet: row 2, column 'label': the label is empty"),
    ],
)
def test_bad_wide_values(tmp_path, column, values, message):
    cols = {"label": [1.0, 0.0, 1.0], "x": [1.0, 2.0, 3.0]}
    cols[column] = values
    path = str(tmp_path / "w.parquet")
    pq.write_table(pa.table(cols), path)
    with pytest.raises(InputError, match=message):
        read_all(path)
    chunk, src, _ = read_all(path, skip_bad_rows=True)
    assert chunk.n_rows == 2 and src.bad_rows == 1


@pytest.mark.parametrize(
    "indices,values,message",
    [
        ([[1], [2, 2]], [[1.0], [1.0, 2.0]], r"row 2, column 'indices': a feature index appears twice"),
        ([[1], [-1]], [[1.0], [1.0]], r"row 2, column 'indices': feature index -1 is out of range"),
        ([[1], [2]], [[1.0], [float("nan")]], r"row 2, column 'values': the value nan is not finite"),
        ([[1], [2, 3]], [[1.0], [1.0]], r"row 2, column 'values': 'indices' and 'values' have different lengths"),
        ([[1], None], [[1.0], [1.0]], r"row 2, column 'indices': the list is missing"),
    ],
)
def test_bad_sparse_rows(tmp_path, indices, values, message):
    t = pa.table({
        "label": [1.0, 0.0],
        "indices": pa.array(indices, type=pa.list_(pa.int64())),
        "values": pa.array(values, type=pa.list_(pa.float64())),
    })
    path = str(tmp_path / "s.parquet")
    pq.write_table(t, path)
    with pytest.raises(InputError, match=message):
        read_all(path)
    chunk, src, _ = read_all(path, skip_bad_rows=True)
    assert chunk.n_rows == 1 and src.bad_rows == 1
    assert chunk.to_dense(2).tolist() == [[0.0, 1.0]]


def test_shard_without_the_columns(tmp_path):
    pq.write_table(wide_table(), str(tmp_path / "a.parquet"))
    pq.write_table(pa.table({"other": [1.0]}), str(tmp_path / "b.parquet"))
    src = open_source(str(tmp_path))
    with pytest.raises(InputError, match=r"b\.parquet: column 'label' not found.*columns are: other"):
        list(src.iter_chunks())


def test_label_column_position_as_text(tmp_path):
    path = str(tmp_path / "w.parquet")
    pq.write_table(pa.table({"a": [1.0, 2.0], "target": [0.0, 1.0]}), path)
    chunk, src, _ = read_all(path, label_column="-1")
    assert src.label_column == "target" and chunk.y.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("arrow_type", [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(),
                                        pa.uint32(), pa.uint64(), pa.float32(), pa.float64()])
def test_fixed_width_columns_are_read_from_their_buffers(arrow_type):
    """to_numpy spells the dtype from the Arrow type (pyarrow 14-25's to_pandas_dtype imports pandas):
    the values, dtype and slice offset must be what Arrow's own conversion gives."""
    from streamfm.io.arrow import to_numpy

    arr = pa.array([3, 1, 4, 1, 5], type=arrow_type).slice(1, 3)
    got = to_numpy(arr)
    want = arr.to_numpy(zero_copy_only=False)
    assert got.dtype == want.dtype and got.tolist() == want.tolist() == [1, 4, 1]


def test_plain_numeric_columns_take_the_one_pass_transpose():
    """_plain_rows (stack, then rows and finiteness in one numba pass) gives what the column-by-column
    path gives, for every fixed-width type and a table of several chunks; anything else goes by column."""
    from streamfm.io.arrow import _plain_rows

    rng = np.random.default_rng(0)
    n = 150  # more than one block of 64 rows, and a partial one
    cols = {
        "i8": pa.array(rng.integers(-100, 100, n), type=pa.int8()),
        "u32": pa.array(rng.integers(0, 2**32 - 1, n), type=pa.uint32()),
        "i64": pa.array(rng.integers(-2**40, 2**40, n), type=pa.int64()),
        "f32": pa.array(rng.normal(size=n).astype(np.float32)),
        "f64": pa.array(rng.normal(size=n)),
    }
    table = pa.concat_tables([pa.table(cols).slice(0, 70), pa.table(cols).slice(70)])  # chunked columns
    X = _plain_rows(table, list(cols))
    want = np.column_stack([np.asarray(c.to_numpy(), dtype=np.float64) for c in cols.values()])
    assert X.dtype == np.float64 and X.shape == (n, 5)
    np.testing.assert_array_equal(X, want)
    assert _plain_rows(pa.table({"x": [1.0, None]}), ["x"]) is None
    assert _plain_rows(pa.table({"x": [1.0, float("inf")]}), ["x"]) is None
    assert _plain_rows(pa.table({"x": [True, False]}), ["x"]) is None
    assert _plain_rows(pa.table({"x": [1.0]}), []).shape == (1, 0)
