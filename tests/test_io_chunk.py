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
