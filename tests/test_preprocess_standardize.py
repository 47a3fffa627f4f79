"""Standardizer against NumPy, its width checks, and the centring policy."""
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
    out = Standardizer.from_moments(mean, var, center=True).transform(Chunk.from_dense(X, np.arange(20.0)))
    scale = np.where(var > 0, 1 / np.sqrt(np.where(var > 0, var, 1)), 1.0)
    np.testing.assert_allclose(out.to_dense(), (X - mean) * scale, rtol=1e-14)
    assert out.nnz == 20 * 5 and out.n_features == 5
    np.testing.assert_array_equal(out.y, np.arange(20.0))


def test_centring_a_sparse_chunk_fills_the_implicit_zeros():
    rng = np.random.default_rng(1)
    mean, var = stats(6, rng)
    X = sp.random(15, 4, density=0.3, format="csr", random_state=rng)  # narrower than p
    out = Standardizer.from_moments(mean, var, center=True).transform(Chunk.from_scipy(X, np.zeros(15)))
    D = np.zeros((15, 6))
    D[:, :4] = X.toarray()
    scale = np.where(var > 0, 1 / np.sqrt(np.where(var > 0, var, 1)), 1.0)
    np.testing.assert_allclose(out.to_dense(), (D - mean) * scale, rtol=1e-14)
    assert out.nnz == 15 * 6 and out.n_features == 6


def test_constant_feature_gets_scale_one_and_centres_to_zero():
    st = Standardizer.from_moments([5.0, 0.0], [0.0, 4.0], center=True)
    np.testing.assert_array_equal(st.scale, [1.0, 0.5])
    out = st.transform(Chunk.from_dense(np.array([[5.0, 2.0], [5.0, -2.0]]), np.zeros(2)))
    np.testing.assert_array_equal(out.to_dense(), [[0.0, 1.0], [0.0, -1.0]])


def test_scaling_only_keeps_sparsity():
    rng = np.random.default_rng(2)
    mean, var = stats(30, rng)
    X = sp.random(40, 30, density=0.1, format="csr", random_state=rng)
    chunk = Chunk.from_scipy(X, np.ones(40))
    out = Standardizer.from_moments(mean, var, center=False).transform(chunk)
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
    st = Standardizer.from_scan(res, "standard", dense_source=True)
    Z = np.vstack([st.transform(c).to_dense() for c in chunks])
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-8)
    np.testing.assert_allclose(Z.var(axis=0)[[0, 1, 3]], 1, rtol=1e-8)
    # The constant column: scale 1 (its rounding-level variance is not blown
    # up to unit size), centred to ~0.
    assert st.scale[2] == 1.0
    assert np.abs(Z[:, 2]).max() < 1e-6


def test_index_beyond_p_is_an_input_error():
    st = Standardizer.from_moments(np.zeros(54), np.ones(54), center=False)
    X = sp.csr_matrix((np.ones(3), ([0, 1, 1], [2, 61, 70])), shape=(2, 71))
    with pytest.raises(InputError, match="feature index 61 is beyond the model's 54 features"):
        st.transform(Chunk.from_scipy(X, np.zeros(2)))
    with pytest.raises(InputError, match="feature index 61 is beyond the model's 54 features"):
        Standardizer.from_moments(np.zeros(54), np.ones(54), center=True).transform(Chunk.from_scipy(X, np.zeros(2)))


@pytest.mark.parametrize("center", [False, True])
def test_ignore_extra_drops_and_counts(center):
    rng = np.random.default_rng(4)
    p = 10
    mean, var = stats(p, rng)
    X = sp.random(30, 14, density=0.4, format="csr", random_state=rng)
    st = Standardizer.from_moments(mean, var, center=center, ignore_extra=True)
    out = st.transform(Chunk.from_scipy(X, np.arange(30.0)))
    expected = Standardizer.from_moments(mean, var, center=center).transform(Chunk.from_scipy(X[:, :p], np.arange(30.0)))
    np.testing.assert_array_equal(out.to_dense(), expected.to_dense())
    extra = X[:, p:]
    assert st.dropped == extra.nnz > 0
    assert st.dropped_rows == int((extra.getnnz(axis=1) > 0).sum())
    st.transform(Chunk.from_scipy(X, np.arange(30.0)))
    assert st.dropped == 2 * extra.nnz  # counters accumulate over chunks


def test_non_finite_value_is_an_input_error():
    st = Standardizer.from_moments(np.zeros(2), np.ones(2), center=False)
    with pytest.raises(InputError, match="feature 1 has the value inf"):
        st.transform(Chunk.from_dense(np.array([[1.0, np.inf]]), np.zeros(1)))


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
    std = Standardizer.from_moments(X.mean(0), X.var(0), center=True)
    c = Chunk.from_dense(X, np.zeros(5))
    wide = Chunk(c.indptr, c.indices, c.data, c.y, 7)
    a, b = std.transform(c), std.transform(wide)
    assert b.n_features == 3 and b.full_width
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_allclose(b.to_dense(), (X - X.mean(0)) / X.std(0), rtol=1e-12)


# ---------------------------------------------------------------------------
# --scale: the map per feature, chosen from the scan pass
# ---------------------------------------------------------------------------


def kinds_data(n, rng):
    """Columns: 0-3 a one-hot field, 4 dense 0/1, 5 sparse counts, 6 sparse signed reals,
    7 dense reals, 8 a constant 2.5, 9 a constant 1, 10 a column never non-zero."""
    D = np.zeros((n, 11))
    D[np.arange(n), rng.integers(0, 4, n)] = 1.0
    D[:, 4] = rng.random(n) < 0.7
    D[:, 5] = rng.poisson(0.3, n)
    D[:, 6] = np.where(rng.random(n) < 0.1, rng.normal(size=n) * 5, 0)
    D[:, 7] = rng.normal(size=n) * 2 + 3
    D[:, 8] = 2.5
    D[:, 9] = 1.0
    return D


def sparse_chunks(D, rows=50):
    return [Chunk.from_scipy(sp.csr_matrix(D[a:a + rows]), np.zeros(len(D[a:a + rows]))) for a in range(0, len(D), rows)]


def test_auto_scales_each_kind_of_feature_by_its_rule():
    rng = np.random.default_rng(20)
    D = kinds_data(400, rng)
    chunks = sparse_chunks(D)
    res = scan(FakeSource({"f": chunks}), task="regression")
    st = Standardizer.from_scan(res, "auto")
    kept, std_, by_max = [0, 1, 2, 3, 4, 9, 10], [7, 8], [5, 6]
    np.testing.assert_array_equal(st.shift[kept + by_max], 0)
    np.testing.assert_array_equal(st.scale[kept], 1)
    np.testing.assert_array_equal(st.centred, np.isin(np.arange(11), std_))
    np.testing.assert_allclose(st.shift[7], D[:, 7].mean(), rtol=1e-12)
    np.testing.assert_allclose(st.scale[7], 1 / D[:, 7].std(), rtol=1e-9)
    assert st.shift[8] == 2.5 and st.scale[8] == 1.0  # a constant: centred to 0, not blown up
    np.testing.assert_array_equal(st.scale[by_max], 1 / np.abs(D[:, by_max]).max(axis=0))
    assert st.counts == {"kept": 7, "standardised": 2, "maxabs": 2, "centred": 2}
    assert st.mode == "auto" and not st.center and st.n_centred == 2
    Z = np.vstack([st.transform(c).to_dense() for c in chunks])
    np.testing.assert_array_equal(Z[:, kept], D[:, kept])  # one-hots and 0/1 features keep their values
    assert np.abs(Z[:, by_max]).max() == 1.0  # max-abs: nothing above 1, a rare value is not blown up
    np.testing.assert_allclose(Z[:, 7].mean(), 0, atol=1e-12)
    np.testing.assert_allclose(Z[:, 7].var(), 1, rtol=1e-9)
    np.testing.assert_array_equal(Z[:, 8], 0)


def test_a_rare_one_hot_is_kept_at_one_where_standard_blows_it_up():
    n = 20_000
    D = np.zeros((n, 1001))
    D[0, 3] = 1.0  # seen in one row
    D[:, 1000] = 1.0
    res = scan(FakeSource({"f": sparse_chunks(D, 5000)}), task="regression")
    assert Standardizer.from_scan(res, "auto").scale[3] == 1.0
    assert Standardizer.from_scan(res, "standard").scale[3] == pytest.approx(np.sqrt(n), rel=1e-3)


def test_maxabs_and_none():
    rng = np.random.default_rng(21)
    D = kinds_data(200, rng)
    chunks = sparse_chunks(D)
    res = scan(FakeSource({"f": chunks}), task="regression")
    mx = Standardizer.from_scan(res, "maxabs")
    assert mx.n_centred == 0 and not mx.shift.any()
    peak = np.abs(D).max(axis=0)
    np.testing.assert_array_equal(mx.scale, np.where(peak > 0, 1 / np.where(peak > 0, peak, 1), 1))
    out = mx.transform(chunks[0])
    np.testing.assert_array_equal(out.indices, chunks[0].indices)  # nothing centred: the rows keep their entries
    none = Standardizer.from_scan(res, "none")
    np.testing.assert_array_equal(none.transform(chunks[0]).data, chunks[0].data)
    assert none.counts["kept"] == 11
    with pytest.raises(InputError, match="feature 1 has the value nan"):
        none.transform(Chunk.from_dense(np.array([[0.0, np.nan] + [0.0] * 9]), np.zeros(1)))
    with pytest.raises(InputError, match="--scale must be one of"):
        Standardizer.from_scan(res, "minmax")


def today_standard(D, mean, var, center):
    """The map streamfm applied before --scale existed: (x - mean*center) / std, a constant feature scale 1."""
    varies = (var > (1e-9 * np.abs(mean)) ** 2) & (var > 0)
    scale = np.where(varies, 1 / np.sqrt(np.where(varies, var, 1)), 1.0)
    return (D - (mean if center else 0)) * scale


@pytest.mark.parametrize("p, dense_source", [(40, False), (1500, False), (1500, True)])
def test_standard_is_the_map_of_today(p, dense_source):
    rng = np.random.default_rng(22)
    X = sp.random(60, p, density=0.05, format="csr", random_state=rng, data_rvs=lambda k: rng.poisson(2, k) + 1.0)
    chunk = Chunk.from_scipy(X, np.zeros(60))
    res = scan(FakeSource({"f": [chunk]}, dense=dense_source), task="regression")
    st = Standardizer.from_scan(res, "standard", dense_source=dense_source)
    center = dense_source or p <= 1000
    out = st.transform(chunk)
    np.testing.assert_allclose(out.to_dense(), today_standard(X.toarray(), res.mean, res.var, center), rtol=1e-13,
                               atol=1e-13)
    if center:  # every row holds every feature (the kernels' full-width paths)
        assert st.center and out.full_width and out.nnz == 60 * p
    else:
        np.testing.assert_array_equal(out.indices, chunk.indices)
        np.testing.assert_array_equal(out.data, X.data * st.scale[X.indices])
    assert st.counts == {"kept": 0, "standardised": p, "maxabs": 0, "centred": p if center else 0}


# ---------------------------------------------------------------------------
# Centring some features: the merge kernel against dense arithmetic
# ---------------------------------------------------------------------------


def reference_transform(chunk, shift, scale, centred):
    """Slow NumPy: the dense image, and the stored pattern (a row's entries plus every centred feature)."""
    p = len(shift)
    D = chunk.to_dense(max(p, chunk.n_features))[:, :p]
    stored = np.zeros(D.shape, dtype=bool)
    rows = np.repeat(np.arange(chunk.n_rows), np.diff(chunk.indptr))
    keep = chunk.indices < p
    stored[rows[keep], chunk.indices[keep]] = True
    stored[:, centred] = True
    Z = (D - shift) * scale
    indptr = np.concatenate([[0], np.cumsum(stored.sum(axis=1))])
    r, c = np.nonzero(stored)  # row-major: indices sorted within each row
    return indptr, c, Z[r, c]


def mixed_chunk(rng, n, width, p):
    X = sp.random(n, width, density=0.15, format="csr", random_state=rng, data_rvs=lambda k: rng.normal(size=k))
    X = sp.csr_matrix(sp.diags((np.arange(n) != 3).astype(float)) @ X)  # row 3 empty
    X.eliminate_zeros()
    X.data[::7] = 0.0  # explicit zeros: kept where they are
    return Chunk.from_scipy(X, np.arange(n, dtype=float))


@pytest.mark.parametrize("width", [9, 12, 15])  # narrower than p, p, wider (ignore_extra drops)
def test_mixed_centring_matches_dense_arithmetic(width):
    rng = np.random.default_rng(23 + width)
    p = 12
    centred = np.zeros(p, dtype=bool)
    centred[[0, 4, 5, 11]] = True  # the first, a run and the last feature
    shift = np.where(centred, rng.normal(size=p), 0.0)
    scale = rng.random(p) + 0.5
    st = Standardizer(shift, scale, centred, ignore_extra=True)
    for n in (1, 6, 40):
        chunk = mixed_chunk(rng, max(n, 4), width, p)
        if n == 1:
            chunk = chunk.take(np.array([3]))  # a chunk of one empty row
        out = st.transform(chunk)
        indptr, indices, data = reference_transform(chunk, shift, scale, centred)
        np.testing.assert_array_equal(out.indptr, indptr)
        np.testing.assert_array_equal(out.indices, indices)
        np.testing.assert_array_equal(out.data, data)
        assert out.n_features == p and out.indices.dtype == np.int32 and out.indptr.dtype == np.int64
        np.testing.assert_array_equal(out.y, chunk.y)
        # rows holding centred features store them once (the rows of the merge are distinct, sorted)
        for i in range(out.n_rows):
            assert np.all(np.diff(out.indices[out.indptr[i]:out.indptr[i + 1]]) > 0)


def test_mixed_centring_of_a_chunk_declared_wider_and_of_bad_values():
    rng = np.random.default_rng(30)
    p = 8
    centred = np.arange(p) % 3 == 0
    st = Standardizer(np.where(centred, 2.0, 0.0), np.full(p, 0.5), centred)
    c = mixed_chunk(rng, 10, p, p)
    wide = Chunk(c.indptr, c.indices, c.data, c.y, 20)  # declared wider, no index beyond p
    np.testing.assert_array_equal(st.transform(wide).data, st.transform(c).data)
    with pytest.raises(InputError, match="feature index 9 is beyond the model's 8 features"):
        st.transform(Chunk(np.array([0, 1]), np.array([9], dtype=np.int32), np.ones(1), np.zeros(1), 10))
    bad = Chunk(np.array([0, 2, 3]), np.array([1, 2, 4], dtype=np.int32), np.array([1.0, 2.0, np.inf]),
                np.zeros(2), p)
    with pytest.raises(InputError, match="feature 4 has the value inf"):
        st.transform(bad)


def test_fast_paths_are_kept():
    rng = np.random.default_rng(31)
    X = rng.normal(size=(30, 6))
    some = Standardizer(np.array([1.0, 0, 0, 2.0, 0, 0]), np.full(6, 2.0), np.array([1, 0, 0, 1, 0, 0], dtype=bool))
    dense = Chunk.from_dense(X, np.zeros(30))
    out = some.transform(dense)  # full-width rows already hold every centred feature: one pass, indices shared
    assert out.indices is dense.indices and out.full_width
    np.testing.assert_array_equal(out.data.reshape(30, 6), (X - some.shift) * 2.0)
    every = Standardizer(rng.normal(size=6), np.ones(6), True)
    sparse = Chunk.from_scipy(sp.random(30, 6, density=0.3, format="csr", random_state=rng), np.zeros(30))
    assert every.center and every.transform(sparse).full_width  # every feature centred: full-width rows
    with pytest.raises(ValueError, match="not centred must have shift 0"):
        Standardizer(np.ones(3), np.ones(3), False)


def test_stored_rows_counts_the_rows_that_store_each_feature_after_scaling():
    rng = np.random.default_rng(32)
    D = kinds_data(300, rng)
    D[::5, 7] = 0.0  # a dense real feature with zeros: centred, so stored in every row all the same
    chunks = sparse_chunks(D, 64)
    res = scan(FakeSource({"f": chunks}), task="regression")
    for mode in ("auto", "standard", "maxabs", "none"):
        st = Standardizer.from_scan(res, mode)
        got = st.stored_rows(res)
        assert got.dtype == np.int64 and got.shape == (11,)
        counts = np.zeros(11, dtype=np.int64)
        for c in chunks:
            out = st.transform(c)
            np.add.at(counts, out.indices, (out.data != 0) | st.centred[out.indices])
        np.testing.assert_array_equal(got, counts)
        if mode == "auto":
            assert got[7] == 300 and got[5] == np.count_nonzero(D[:, 5])
    # statistics of data narrower or wider than the model
    st = Standardizer.from_scan(res, "auto")
    narrow = scan(FakeSource({"f": sparse_chunks(D[:, :5])}), task="regression")
    assert st.stored_rows(narrow).tolist() == np.count_nonzero(D[:, :5], axis=0).tolist() + [0, 0, 300, 300, 0, 0]
    wide = scan(FakeSource({"f": sparse_chunks(np.hstack([D, D]))}), task="regression")
    np.testing.assert_array_equal(st.stored_rows(wide), st.stored_rows(res))
