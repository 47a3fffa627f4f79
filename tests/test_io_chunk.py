"""Chunk.take (a numba gather) against a NumPy/SciPy reference."""
import numpy as np
import pytest
import scipy.sparse as sp

from streamfm.io.chunk import Chunk


@pytest.mark.parametrize("density", [1.0, 0.2, 0.0])
def test_take_matches_scipy_row_indexing(density):
    rng = np.random.default_rng(0)
    X = sp.random(50, 9, density=density, format="csr", random_state=np.random.RandomState(1))
    y = rng.normal(size=50)
    c = Chunk.from_scipy(X, y)
    for rows in (rng.permutation(50), rng.integers(0, 50, size=80), np.array([], dtype=np.int64), [3, 3, 0]):
        t = c.take(rows)
        ref = X[np.asarray(rows, dtype=np.int64)]
        np.testing.assert_array_equal(t.indptr, ref.indptr)
        np.testing.assert_array_equal(t.indices, ref.indices)
        np.testing.assert_array_equal(t.data, ref.data)
        np.testing.assert_array_equal(t.y, y[np.asarray(rows, dtype=np.int64)])
        assert t.indptr.dtype == np.int64 and t.indices.dtype == np.int32 and t.n_features == c.n_features


def test_take_text_labels_and_bad_rows():
    c = Chunk.from_dense(np.arange(6.0).reshape(3, 2), np.array(["a", "b", "c"]))
    assert list(c.take([2, 0]).y) == ["c", "a"]
    np.testing.assert_array_equal(c.take([2, 0]).data, [4.0, 5.0, 0.0, 1.0])
    with pytest.raises(IndexError):
        c.take([3])


def _same(a: Chunk, b: Chunk):
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.n_features == b.n_features
    assert a.indptr.dtype == b.indptr.dtype and a.indices.dtype == b.indices.dtype and a.data.dtype == b.data.dtype


@pytest.mark.parametrize("kind", ["dense", "sparse", "mixed"])
def test_take_from_equals_take_of_the_concatenation(kind):
    """The shuffle buffer gathers from the chunks it holds without concatenating them."""
    rng = np.random.default_rng(3)
    parts = []
    for i, n in enumerate([7, 0, 12, 1, 9]):
        y = np.array([f"l{j}" for j in rng.integers(0, 3, size=n)])  # text labels move too
        if kind == "dense" or (kind == "mixed" and i % 2 == 0):
            parts.append(Chunk.from_dense(rng.normal(size=(n, 5)), y))
        else:
            X = sp.random(n, 5, density=0.4, format="csr", random_state=np.random.RandomState(i))
            parts.append(Chunk.from_scipy(X, y))
    whole = Chunk.concat(parts)
    for rows in (rng.permutation(29), rng.integers(0, 29, size=40), np.array([], dtype=np.int64), [28, 0, 0]):
        _same(Chunk.take_from(parts, rows), whole.take(rows))
    with pytest.raises(IndexError):
        Chunk.take_from(parts, [29])


def test_full_width_is_known_to_the_constructors_and_computed_otherwise():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(6, 4))
    c = Chunk.from_dense(X, np.zeros(6))
    assert c._full is True and c.full_width
    for t in (c.take([5, 0, 0]), Chunk.take_from([c, Chunk.from_dense(X[:2], np.ones(2))], [7, 0, 3])):
        assert t._full is True and t.full_width
        np.testing.assert_array_equal(t.indices, np.tile(np.arange(4), 3))
    # made without the flag: computed once from the row lengths
    plain = Chunk(c.indptr.copy(), c.indices.copy(), c.data.copy(), c.y, 4)
    assert plain._full is None and plain.full_width and plain._full is True
    sparse = Chunk.from_scipy(sp.random(6, 4, density=0.5, format="csr", random_state=np.random.RandomState(2)),
                              np.zeros(6))
    assert not sparse.full_width


def test_a_repeated_index_is_summed_not_taken_for_a_full_row():
    """from_scipy sums duplicate entries: a row [0, 0, 2] of 3 features holds 2 features, not all 3."""
    X = sp.csr_matrix((np.array([1.0, 2.0, 3.0]), np.array([0, 0, 2]), np.array([0, 3])), shape=(1, 3))
    c = Chunk.from_scipy(X, np.zeros(1))
    assert c.indices.tolist() == [0, 2] and c.data.tolist() == [3.0, 3.0]
    assert not c.full_width


def test_full_width_indices_are_shared_up_to_a_size():
    from streamfm.io import chunk as chunk_module

    a = chunk_module.full_width_indices(5, 3)
    b = chunk_module.full_width_indices(5, 4)
    np.testing.assert_array_equal(a, np.tile(np.arange(5), 3))
    assert a.dtype == np.int32 and np.shares_memory(a, b)  # one array for 3 and 4 rows (next power of two)
    big = chunk_module._SHARED_INDEX_ENTRIES // 5 + 1
    c = chunk_module.full_width_indices(5, big)
    assert len(c) == 5 * big and not np.shares_memory(c, chunk_module.full_width_indices(5, big))
    np.testing.assert_array_equal(c[-5:], np.arange(5))
