"""The CSV reader: benchmark-shaped files (no header, text labels), headers,
column choices, hashing, compression and every bad-input message."""
from __future__ import annotations

import bz2
import gzip
import lzma

import numpy as np
import pytest

from streamfm.errors import InputError
from streamfm.io import Chunk, ReadOptions, open_source
from streamfm.io.csv import detect_header
from streamfm.io.hashing import fnv1a_32

OPENERS = {"": open, ".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def write(path, text: str):
    suffix = next((s for s in (".gz", ".bz2", ".xz") if str(path).endswith(s)), "")
    with OPENERS[suffix](path, "wb") as f:
        f.write(text.encode())
    return str(path)


def read_all(path, **kw):
    src = open_source(path, ReadOptions(**kw))
    chunks = list(src.iter_chunks())
    return Chunk.concat(chunks), src, chunks


def letter_like(n=50, seed=0):
    """Like letter.csv: 16 integer features, a letter label last, no header."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 16, size=(n, 16)).astype(float)
    y = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))[rng.integers(0, 26, n)]
    text = "".join(",".join(str(int(v)) for v in row) + f",{lab}\n" for row, lab in zip(X, y))
    return text, X, y


@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2", ".xz"])
def test_letter_like_no_header_text_labels(tmp_path, suffix):
    text, X, y = letter_like()
    path = write(tmp_path / f"letter.csv{suffix}", text)
    chunk, src, chunks = read_all(path, chunk_rows=7)
    assert [c.n_rows for c in chunks] == [7] * 7 + [1]
    np.testing.assert_array_equal(chunk.to_dense(), X)
    assert chunk.y.dtype.kind == "U" and chunk.y.tolist() == y.tolist()
    assert src.format == "csv" and src.dense and src.n_features_hint == 16
    assert src.feature_names == [f"c{i}" for i in range(16)]
    # Dense: every column present, zeros kept.
    assert chunk.nnz == 50 * 16 and np.all(np.diff(chunk.indptr) == 16)


def test_banana_like_numeric_labels(tmp_path):
    text = "1.14,-0.114,-1.0\n-1.52,-1.15,1.0\n-1.05,0.72,-1.0\n"
    chunk, src, _ = read_all(write(tmp_path / "banana.csv", text))
    assert chunk.y.dtype == np.float64 and chunk.y.tolist() == [-1.0, 1.0, -1.0]
    np.testing.assert_array_equal(chunk.to_dense(), [[1.14, -0.114], [-1.52, -1.15], [-1.05, 0.72]])


def test_header_and_label_column_by_name_and_position(tmp_path):
    text = "x1,label,x2\n1,a,2\n3,b,4\n"
    path = write(tmp_path / "h.csv", text)
    chunk, src, _ = read_all(path, label_column="label")
    assert src.feature_names == ["x1", "x2"] and chunk.y.tolist() == ["a", "b"]
    np.testing.assert_array_equal(chunk.to_dense(), [[1, 2], [3, 4]])
    for spec in (1, -2, "1"):
        chunk, src, _ = read_all(path, label_column=spec)
        assert chunk.y.tolist() == ["a", "b"]
    chunk, src, _ = read_all(path, label_column="x2", feature_columns=["x1"])
    assert chunk.y.tolist() == [2.0, 4.0] and chunk.to_dense().tolist() == [[1.0], [3.0]]


def test_header_forced(tmp_path):
    # All-text columns: auto cannot tell, the flag decides.
    path = write(tmp_path / "t.csv", "a,b\nc,d\n")
    _, src, _ = read_all(path, header=True, hash_columns=["a"])
    assert src.label_column == "b"
    chunk, src, _ = read_all(path, header=False)
    assert chunk.n_rows == 2 and src.label_column == "c1"


def test_detect_header_rule():
    assert detect_header([["x", "y", "label"], ["1", "2", "g"]])
    assert not detect_header([["1", "2", "g"], ["3", "4", "h"]])
    assert not detect_header([["1", "2", "g"]])
    assert detect_header([["x", "y"]])
    assert not detect_header([])


def test_hashed_text_feature_columns(tmp_path):
    text = "color,size,y\nred,1.5,0\nblue,2,1\nred,0,1\n"
    path = write(tmp_path / "c.csv", text)
    chunk, src, _ = read_all(path, label_column="y", n_hash_features=1000)
    assert not src.dense and src.n_features_hint == 1 + 1000 and src.feature_names == ["size"]
    ids = [1 + fnv1a_32(f"color={v}".encode()) % 1000 for v in ("red", "blue", "red")]
    for i in range(3):
        row = chunk.indices[chunk.indptr[i] : chunk.indptr[i + 1]].tolist()
        assert row == [0, ids[i]]
    assert chunk.data.tolist() == [1.5, 1.0, 2.0, 1.0, 0.0, 1.0]


def test_hash_columns_given_hash_numbers_too(tmp_path):
    text = "zip,v,y\n10115,1,0\n20095,2,1\n"
    chunk, _, _ = read_all(write(tmp_path / "z.csv", text), label_column="y", hash_columns=["zip"], n_hash_features=97)
    assert chunk.indices[1] == 1 + fnv1a_32(b"zip=10115") % 97


def test_tsv(tmp_path):
    chunk, _, _ = read_all(write(tmp_path / "d.tsv", "1\t2\ta\n3\t4\tb\n"))
    assert chunk.to_dense().tolist() == [[1, 2], [3, 4]] and chunk.y.tolist() == ["a", "b"]


def test_several_files_and_headers(tmp_path):
    write(tmp_path / "a.csv", "x,y\n1,0\n")
    write(tmp_path / "b.csv", "x,y\n2,1\n3,0\n")
    chunk, src, _ = read_all(str(tmp_path))
    assert chunk.to_dense().ravel().tolist() == [1, 2, 3] and len(src.files) == 2
    write(tmp_path / "c.csv", "1,2,3\n")
    with pytest.raises(InputError, match=r"c\.csv: has 3 columns but .*a\.csv has 2"):
        read_all(str(tmp_path))


BAD = [
    ("1,2,a\n3,,b\n", r"bad\.csv: row 2, column 'c1': the value is empty"),
    ("1,2,a\n3,nan,b\n", r"bad\.csv: row 2, column 'c1': the value is nan"),
    ("1,2,a\n3,4,b\ninf,1,c\n", r"bad\.csv: row 3, column 'c0': the value is inf"),
    ("1,2,a\n3,4\n", r"bad\.csv: row 2: expected 3 fields, got 2 \('3,4'\)"),
    ("1,2,a\n3,4,\n", r"bad\.csv: row 2, column 'c2': the label is empty"),
    ("1,2,3\n3,4,\n", r"bad\.csv: row 2, column 'c2': the label is empty"),
]


@pytest.mark.parametrize("text,message", BAD)
def test_bad_values_name_file_row_column(tmp_path, text, message):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(InputError, match=message):
        read_all(path)
    chunk, src, _ = read_all(path, skip_bad_rows=True)
    assert chunk.n_rows == text.count("\n") - 1 and src.bad_rows == 1


def test_unparsable_value_in_a_later_block(tmp_path):
    """pyarrow reports no row for a conversion error: the reader finds it."""
    lines = [f"{i},{i * 0.5},{i % 2}" for i in range(60000)]
    lines[45000] = "1,oops,1"
    path = write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"big\.csv: row 45001, column 'c1': cannot parse 'oops' as a number"):
        read_all(path, chunk_rows=1000)
    chunk, src, _ = read_all(path, chunk_rows=1000, skip_bad_rows=True)
    assert chunk.n_rows == 59999 and src.bad_rows == 1
    assert chunk.y.dtype == np.float64


def test_unknown_label_column_lists_columns(tmp_path):
    path = write(tmp_path / "h.csv", "a,b,label\n1,2,x\n")
    with pytest.raises(InputError, match=r"label column 'target' not found in .*h\.csv; the columns are: a, b, label"):
        open_source(path, ReadOptions(label_column="target"))
    with pytest.raises(InputError, match=r"label column 7 is out of range.*3 columns \(a, b, label\)"):
        open_source(path, ReadOptions(label_column=7))
    with pytest.raises(InputError, match=r"feature column 'z' not found"):
        open_source(path, ReadOptions(feature_columns=["z"]))


def test_text_column_not_in_hash_columns(tmp_path):
    """Given hash columns, every other feature column is numbers: a cell that is not is named."""
    path = write(tmp_path / "h.csv", "a,b,c,label\nred,1,blue,0\n")
    with pytest.raises(InputError, match=r"h\.csv: row 1, column 'c': cannot parse 'blue' as a number.*--hash-columns c"):
        list(open_source(path, ReadOptions(hash_columns=["a"])).iter_chunks())


def test_truncated_gzip_csv(tmp_path):
    text, _, _ = letter_like(n=20000)
    full = write(tmp_path / "full.csv.gz", text)
    data = open(full, "rb").read()
    path = tmp_path / "data.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"data\.csv\.gz: the compressed file is truncated or corrupt"):
        read_all(str(path))


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz"])
@pytest.mark.parametrize("where", [0.01, 0.5, 0.9])
def test_corrupt_compressed_csv(tmp_path, suffix, where):
    """Damage early (read while sniffing the header), midway or late: one InputError, whatever
    decompresses the file (pyarrow for .gz and .bz2, Python's lzma for .xz)."""
    text, _, _ = letter_like(n=20000)
    data = bytearray(open(write(tmp_path / f"full.csv{suffix}", text), "rb").read())
    at = int(len(data) * where)
    data[at : at + 64] = bytes(b ^ 0x5A for b in data[at : at + 64])
    path = tmp_path / f"data.csv{suffix}"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=rf"data\.csv\{suffix}: the compressed file is truncated or corrupt"):
        read_all(str(path))


def test_empty_csv(tmp_path):
    with pytest.raises(InputError, match="the CSV file is empty"):
        open_source(write(tmp_path / "e.csv", ""))


def test_label_only_table_is_refused(tmp_path):
    with pytest.raises(InputError, match="no feature columns"):
        open_source(write(tmp_path / "y.csv", "1\n2\n"))


def test_lines_longer_than_the_sniff_buffer_and_bom(tmp_path):
    p = 9000  # ~100 KB a line
    rng = np.random.default_rng(0)
    X = np.round(rng.random((3, p)), 6)
    header = ",".join(f"x{j}" for j in range(p)) + ",label\n"
    body = "".join(",".join(repr(float(v)) for v in row) + f",{i % 2}\n" for i, row in enumerate(X))
    path = tmp_path / "wide.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (header + body).encode())
    chunk, src, _ = read_all(str(path))
    assert src.feature_names[0] == "x0" and src.n_features_hint == p
    np.testing.assert_array_equal(chunk.to_dense(), X)
