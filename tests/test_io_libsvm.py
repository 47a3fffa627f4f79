"""The libsvm reader against scikit-learn's loader, and every bad-input message."""
from __future__ import annotations

import bz2
import gzip
import lzma

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import dump_svmlight_file, load_svmlight_file

from streamfm.errors import InputError
from streamfm.io import Chunk, ReadOptions, open_source
from streamfm.io import libsvm as libsvm_mod

OPENERS = {"": open, ".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def write(path, text: str | bytes):
    """Write text to path, compressed by its suffix."""
    data = text.encode() if isinstance(text, str) else text
    suffix = next((s for s in (".gz", ".bz2", ".xz") if str(path).endswith(s)), "")
    with OPENERS[suffix](path, "wb") as f:
        f.write(data)
    return str(path)


def read_all(path, **kw) -> tuple[Chunk, object]:
    src = open_source(path, ReadOptions(**kw))
    chunks = list(src.iter_chunks())
    assert chunks, "no chunks"
    return Chunk.concat(chunks), src


def random_data(n=103, p=40, seed=0, labels="binary"):
    rng = np.random.default_rng(seed)
    X = sp.random(n, p, density=0.2, random_state=seed, format="csr")
    X.data = np.round(rng.normal(size=X.nnz) * 10, 4)
    # Make sure the first and last feature appear (so p is known exactly).
    X = X.tolil()
    X[0, 0] = 1.5
    X[1, p - 1] = -2.25
    X = X.tocsr()
    y = (rng.integers(0, 2, n) * 2 - 1.0) if labels == "binary" else rng.normal(size=n)
    return X, y


def assert_same(chunk: Chunk, X, y):
    A = chunk.to_scipy(X.shape[1])
    assert A.shape == X.shape
    np.testing.assert_array_equal(A.toarray(), X.toarray())
    np.testing.assert_array_equal(chunk.y, y)
    assert chunk.indices.dtype == np.int32 and chunk.indptr.dtype == np.int64
    assert chunk.data.dtype == np.float64 and chunk.y.dtype == np.float64
    for i in range(chunk.n_rows):  # sorted within each row
        row = chunk.indices[chunk.indptr[i] : chunk.indptr[i + 1]]
        assert np.all(np.diff(row) > 0)


@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2", ".xz"])
@pytest.mark.parametrize("zero_based", [True, False])
def test_matches_sklearn(tmp_path, suffix, zero_based):
    X, y = random_data()
    plain = tmp_path / "d.svm"
    dump_svmlight_file(X, y, str(plain), zero_based=zero_based)
    path = write(tmp_path / f"data.svm{suffix}", plain.read_bytes())
    Xs, ys = load_svmlight_file(str(plain), zero_based=zero_based, n_features=X.shape[1])
    src = open_source(path, ReadOptions(chunk_rows=7))
    chunks = list(src.iter_chunks())
    assert all(c.n_rows <= 7 for c in chunks) and len(chunks) == -(-X.shape[0] // 7)
    chunk = Chunk.concat(chunks)
    assert src.zero_based is zero_based  # auto-detected
    assert chunk.n_features == X.shape[1]
    assert_same(chunk, Xs, ys)


@pytest.mark.parametrize("block", [7, 64, 1 << 22])
def test_block_boundaries_do_not_matter(tmp_path, monkeypatch, block):
    """Lines cut across read blocks (the partial line carried over) parse the same."""
    monkeypatch.setattr(libsvm_mod, "BLOCK_BYTES", block)
    X, y = random_data(n=57, seed=3, labels="real")
    path = tmp_path / "d.svm"
    dump_svmlight_file(X, y, str(path), zero_based=False)
    chunk, _ = read_all(str(path), chunk_rows=5, zero_based=False)
    Xs, ys = load_svmlight_file(str(path), zero_based=False, n_features=X.shape[1])
    assert_same(chunk, Xs, ys)


def test_qid_comments_blank_lines_unsorted(tmp_path):
    text = (
        "# a header comment\n"
        "\n"
        "1 qid:3 3:1.5 1:2 # trailing comment\n"
        "   \n"
        "-1 qid:4 2:-0.5e1\t5:.25\r\n"
        "0\n"  # a row without features
        "+2 5:1E+2 4:3. 1:-0 # unsorted\n"
        "3.5 1:1e-5"  # no newline at the end
    )
    path = write(tmp_path / "d.txt", text)
    chunk, src = read_all(path, chunk_rows=2)
    expect = np.array(
        [[2, 0, 1.5, 0, 0], [0, -5, 0, 0, 0.25], [0, 0, 0, 0, 0], [-0.0, 0, 0, 3, 100], [1e-5, 0, 0, 0, 0]]
    )
    np.testing.assert_array_equal(chunk.to_dense(5), expect)
    np.testing.assert_array_equal(chunk.y, [1, -1, 0, 2, 3.5])
    assert src.zero_based is False
    assert chunk.indices.tolist() == [0, 2, 1, 4, 0, 3, 4, 0]


def test_values_parse_exactly_like_float(tmp_path):
    """Values beyond the fast path (17 digits, big exponents) go through float()."""
    rng = np.random.default_rng(1)
    vals = np.concatenate([rng.normal(size=3000), rng.random(500) * 1e-300, rng.random(500) * 1e150])
    tokens = [repr(float(v)) for v in vals] + ["0.1", "1e22", "1e23", "9007199254740993", "123456789012345678901"]
    lines = [f"1 {j % 5 + 1}:{t}" for j, t in enumerate(tokens)]
    path = write(tmp_path / "d.svm", "\n".join(lines) + "\n")
    chunk, _ = read_all(path, chunk_rows=1000)
    assert chunk.data.tolist() == [float(t) for t in tokens]


def test_large_rows_and_many_fixups_grow_buffers(tmp_path):
    # 3000 entries in one row (beyond the initial capacity) written with 17 digits
    # (every one a fix-up, beyond the initial fix-up capacity).
    rng = np.random.default_rng(2)
    vals = rng.random(3000) * 0.1 + 0.9
    row = " ".join(f"{j + 1}:{float(v)!r}" for j, v in enumerate(vals))
    path = write(tmp_path / "d.svm", f"1 {row}\n-1 2:1\n")
    chunk, _ = read_all(path, chunk_rows=1)
    assert chunk.n_rows == 2 and chunk.nnz == 3001
    assert chunk.data[:3000].tolist() == vals.tolist()
    assert chunk.n_features == 3000


def test_auto_zero_based_decided_from_first_chunk(tmp_path):
    path = write(tmp_path / "d.svm", "1 0:1 2:3\n-1 1:2\n")
    chunk, src = read_all(path)
    assert src.zero_based is True
    np.testing.assert_array_equal(chunk.to_dense(3), [[1, 0, 3], [0, 2, 0]])


def test_zero_index_after_first_chunk_says_file_looks_zero_based(tmp_path):
    lines = ["1 1:1 3:2"] * 10 + ["1 0:1"]
    path = write(tmp_path / "data.svm", "\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"data\.svm:11: feature index 0 .*looks 0-based.*--zero-based"):
        read_all(path, chunk_rows=4)
    # Even with skip_bad_rows: this is a property of the file, not of a row.
    with pytest.raises(InputError, match="looks 0-based"):
        read_all(path, chunk_rows=4, skip_bad_rows=True)
    # Explicitly 1-based: the same advice.
    with pytest.raises(InputError, match=r"data\.svm:11: .*1-based.*--zero-based"):
        read_all(path, zero_based=False)
    chunk, _ = read_all(path, zero_based=True)
    assert chunk.n_features == 4


BAD_LINES = [
    ("1 3:1 x:1.5 4:2", r"data\.svm:17: cannot parse 'x:1\.5' \(expected index:value\)"),
    ("1 3", r"data\.svm:17: cannot parse '3' \(expected index:value\)"),
    ("1 3:", r"data\.svm:17: cannot parse '3:' \(expected index:value\)"),
    ("1 :3", r"data\.svm:17: cannot parse ':3' \(expected index:value\)"),
    ("1 -3:1", r"data\.svm:17: cannot parse '-3:1' \(expected index:value\)"),
    ("1 3:1.2.3", r"data\.svm:17: cannot parse '3:1\.2\.3' \(expected index:value\)"),
    ("abc 3:1", r"data\.svm:17: cannot parse label 'abc' \(expected a number\)"),
    ("1 3:nan", r"data\.svm:17: non-finite value in '3:nan'"),
    ("1 3:-Infinity", r"data\.svm:17: non-finite value in '3:-Infinity'"),
    ("1 3:inf", r"data\.svm:17: non-finite value in '3:inf'"),
    ("1 3:1e999", r"data\.svm:17: value '1e999' is not finite"),
    ("nan 3:1", r"data\.svm:17: label 'nan' is not a finite number"),
    ("1 3:1 3:2", r"data\.svm:17: feature index 3 appears twice"),
    ("1 4:1 3:1 4:2", r"data\.svm:17: feature index 4 appears twice"),
    ("1 99999999999:1", r"data\.svm:17: feature index too large in '99999999999:1'"),
]


@pytest.mark.parametrize("bad,message", BAD_LINES)
def test_bad_line_names_file_line_and_token(tmp_path, bad, message):
    lines = ["# comment"] + ["1 1:1 2:2"] * 15 + [bad] + ["-1 1:3"] * 5
    path = write(tmp_path / "data.svm", "\n".join(lines) + "\n")
    with pytest.raises(InputError, match=message):
        read_all(path, chunk_rows=4, zero_based=False)
    chunk, src = read_all(path, chunk_rows=4, zero_based=False, skip_bad_rows=True)
    assert chunk.n_rows == 20 and src.bad_rows == 1
    assert np.all(np.isfinite(chunk.data))
    # The count is per read, not cumulative over passes.
    list(src.iter_chunks())
    assert src.bad_rows == 1


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz"])
def test_truncated_compressed_file(tmp_path, suffix):
    X, y = random_data(n=2000, p=30)
    plain = tmp_path / "d.svm"
    dump_svmlight_file(X, y, str(plain))
    full = write(tmp_path / f"full{suffix}", plain.read_bytes())
    data = open(full, "rb").read()
    path = tmp_path / f"data.svm{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=rf"data\.svm\{suffix}: the compressed file is truncated or corrupt \("):
        read_all(str(path))


def test_not_gzip_at_all(tmp_path):
    path = tmp_path / "data.svm.gz"
    path.write_bytes(b"1 1:1\n")
    with pytest.raises(InputError, match=r"data\.svm\.gz: the compressed file is truncated or corrupt"):
        read_all(str(path))


def test_chunks_never_exceed_chunk_rows_and_p_grows(tmp_path):
    lines = [f"1 {i + 1}:1" for i in range(50)]
    path = write(tmp_path / "d.svm", "\n".join(lines) + "\n")
    src = open_source(path, ReadOptions(chunk_rows=8))
    chunks = list(src.iter_chunks())
    assert [c.n_rows for c in chunks] == [8] * 6 + [2]
    widths = [c.n_features for c in chunks]
    assert widths == sorted(widths) and widths[-1] == 50
    # iter_file with a different chunk size
    assert [c.n_rows for c in src.iter_file(src.files[0], chunk_rows=20)] == [20, 20, 10]


def test_empty_file_gives_no_rows(tmp_path):
    path = write(tmp_path / "d.svm", "# nothing here\n\n")
    src = open_source(path)
    assert list(src.iter_chunks()) == []


def test_utf8_bom_and_crlf(tmp_path):
    path = write(tmp_path / "d.svm", b"\xef\xbb\xbf1 1:2\r\n-1 2:3\r\n")
    chunk, _ = read_all(path)
    assert chunk.y.tolist() == [1, -1] and chunk.to_dense(2).tolist() == [[2, 0], [0, 3]]
