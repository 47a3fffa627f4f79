"""Standardizer against NumPy, its width checks, and the centring policy."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

from streamfm.errors import InputError
from streamfm.io.chunk import Chunk
from streamfm.preprocess.scan import scan
from streamfm.preprocess.standardize import Standardizer, should_center
from fakes import FakeSource


def stats(p, rng):
    mean = rng.normal(size=p) * 10
    var = rng.uniform(0.1, 5, size=p)
    var[1] = 0.0  # a constant feature
    return mean, var


def test_centred_dense_matches_numpy():
    rng = np.random.default_rng(0)
    mean, var = stats(5, rng)
    X = rng.normal(size=(20, 5))
    out = Standardizer(mean, var, center=True).transform(Chunk.from_dense(X, np.arange(20.0)))
    scale = np.where(var > 0, 1 / np.sqrt(np.where(var > 0, var, 1)), 1.0)
    np.testing.assert_allclose(out.to_dense(), (X - mean) * scale, rtol=1e-14)
    assert out.nnz == 20 * 5 and out.n_features == 5
    np.testing.assert_array_equal(out.y, np.arange(20.0))


def test_centring_a_sparse_chunk_fills_the_implicit_zeros():
    rng = np.random.default_rng(1)
    mean, var = stats(6, rng)
    X = sp.random(15, 4, density=0.3, format="csr", random_state=rng)  # narrower than p
    out = Standardizer(mean, var, center=True).transform(Chunk.from_scipy(X, np.zeros(15)))
    D = np.zeros((15, 6))
    D[:, :4] = X.toarray()
    scale = np.where(var > 0, 1 / np.sqrt(np.where(var > 0, var, 1)), 1.0)
    np.testing.assert_allclose(out.to_dense(), (D - mean) * scale, rtol=1e-14)
    assert out.nnz == 15 * 6 and out.n_features == 6


def test_constant_feature_gets_scale_one_and_centres_to_zero():
    st = Standardizer([5.0, 0.0], [0.0, 4.0], center=True)
    np.testing.assert_array_equal(st.scale, [1.0, 0.5])
    out = st.transform(Chunk.from_dense(np.array([[5.0, 2.0], [5.0, -2.0]]), np.zeros(2)))
    np.testing.assert_array_equal(out.to_dense(), [[0.0, 1.0], [0.0, -1.0]])


def test_scaling_only_keeps_sparsity():
    rng = np.random.default_rng(2)
    mean, var = stats(30, rng)
    X = sp.random(40, 30, density=0.1, format="csr", random_state=rng)
    chunk = Chunk.from_scipy(X, np.ones(40))
    out = Standardizer(mean, var, center=False).transform(chunk)
    np.testing.assert_array_equal(out.indptr, chunk.indptr)
    np.testing.assert_array_equal(out.indices, chunk.indices)
    scale = np.where(var > 0, 1 / np.sqrt(np.where(var > 0, var, 1)), 1.0)
    np.testing.assert_allclose(out.to_dense(), X.toarray() * scale, rtol=1e-14)
    assert chunk.data is not out.data  # the input is left alone
    np.testing.assert_array_equal(chunk.data, X.data)


def test_scan_then_standardize_gives_zero_mean_unit_variance():
    rng = np.random.default_rng(3)
    X = 1e6 + rng.normal(size=(300, 4)) * [1, 3, 0, 0.01]
    chunks = [Chunk.from_dense(X[i : i + 64], np.zeros(len(X[i : i + 64]))) for i in range(0, 300, 64)]
    res = scan(FakeSource({"f": chunks}, dense=True))
    st = Standardizer.from_scan(res, center=True)
    Z = np.vstack([st.transform(c).to_dense() for c in chunks])
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-8)
    np.testing.assert_allclose(Z.var(axis=0)[[0, 1, 3]], 1, rtol=1e-8)
    # The constant column: scale 1 (its rounding-level variance is not blown
    # up to unit size), centred to ~0.
    assert st.scale[2] == 1.0
    assert np.abs(Z[:, 2]).max() < 1e-6


def test_index_beyond_p_is_an_input_error():
    st = Standardizer(np.zeros(54), np.ones(54), center=False)
    X = sp.csr_matrix((np.ones(3), ([0, 1, 1], [2, 61, 70])), shape=(2, 71))
    with pytest.raises(InputError, match="feature index 61 is beyond the model's 54 features"):
        st.transform(Chunk.from_scipy(X, np.zeros(2)))
    with pytest.raises(InputError, match="feature index 61 is beyond the model's 54 features"):
        Standardizer(np.zeros(54), np.ones(54), center=True).transform(Chunk.from_scipy(X, np.zeros(2)))


@pytest.mark.parametrize("center", [False, True])
def test_ignore_extra_drops_and_counts(center):
    rng = np.random.default_rng(4)
    p = 10
    mean, var = stats(p, rng)
    X = sp.random(30, 14, density=0.4, format="csr", random_state=rng)
    st = Standardizer(mean, var, center=center, ignore_extra=True)
    out = st.transform(Chunk.from_scipy(X, np.arange(30.0)))
    expected = Standardizer(mean, var, center=center).transform(Chunk.from_scipy(X[:, :p], np.arange(30.0)))
    np.testing.assert_array_equal(out.to_dense(), expected.to_dense())
    extra = X[:, p:]
    assert st.dropped == extra.nnz > 0
    assert st.dropped_rows == int((extra.getnnz(axis=1) > 0).sum())
    st.transform(Chunk.from_scipy(X, np.arange(30.0)))
    assert st.dropped == 2 * extra.nnz  # counters accumulate over chunks


def test_non_finite_value_is_an_input_error():
    st = Standardizer(np.zeros(2), np.ones(2), center=False)
    with pytest.raises(InputError, match="feature 1 has the value inf"):
        st.transform(Chunk.from_dense(np.array([[1.0, np.inf]]), np.zeros(1)))


def test_to_dict_round_trips_through_json():
    rng = np.random.default_rng(5)
    mean, var = stats(7, rng)
    st = Standardizer(mean, var, center=True, ignore_extra=True)
    back = Standardizer.from_dict(json.loads(json.dumps(st.to_dict())))
    chunk = Chunk.from_dense(rng.normal(size=(3, 7)), np.zeros(3))
    np.testing.assert_array_equal(back.transform(chunk).to_dense(), st.transform(chunk).to_dense())
    assert (back.center, back.ignore_extra) == (True, True)


@pytest.mark.parametrize(
    "p, dense, expected",
    [(54, False, True), (1000, False, True), (1001, False, False), (10**6, False, False), (5000, True, True)],
)
def test_should_center(p, dense, expected):
    assert should_center(SimpleNamespace(n_features=p), source_dense=dense) is expected


def test_should_center_threshold_is_a_parameter():
    assert not should_center(SimpleNamespace(n_features=200), False, max_dense_features=100)


def test_shift_scale_kernel_matches_numpy():
    from streamfm.preprocess.standardize import _shift_scale

    rng = np.random.default_rng(3)
    idx = rng.integers(0, 6, size=40).astype(np.int32)
    data, shift, scale = rng.normal(size=40), rng.normal(size=6), rng.random(6) + 0.5
    out = np.empty(40)
    assert _shift_scale(idx, data, shift, scale, out) == -1
    np.testing.assert_array_equal(out, (data - shift[idx]) * scale[idx])
    data[7], data[30] = np.inf, np.nan
    assert _shift_scale(idx, data, shift, scale, out) == 7


def test_rows_of_all_model_features_in_a_chunk_declared_wider():
    """A chunk declared wider than the model whose rows hold exactly features 0..p-1 (nothing to drop)
    is standardised as those rows declared at the model's width: the one-pass centring path."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(5, 3))
    std = Standardizer(X.mean(0), X.var(0), center=True)
    c = Chunk.from_dense(X, np.zeros(5))
    wide = Chunk(c.indptr, c.indices, c.data, c.y, 7)
    a, b = std.transform(c), std.transform(wide)
    assert b.n_features == 3 and b.full_width
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_allclose(b.to_dense(), (X - X.mean(0)) / X.std(0), rtol=1e-12)
