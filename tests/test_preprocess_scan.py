"""The scan pass: streaming statistics, reservoir sample, labels and task."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from streamfm.errors import InputError
from streamfm.io.chunk import Chunk
from streamfm.preprocess.labels import encode_labels
from streamfm.preprocess.scan import scan
from fakes import FakeSource


def random_cuts(n, rng, max_rows):
    """Random chunk boundaries 0 = c0 < c1 < ... = n."""
    cuts = [0]
    while cuts[-1] < n:
        cuts.append(min(n, cuts[-1] + int(rng.integers(1, max_rows + 1))))
    return cuts


def dense_source(X, y, rng, max_rows=37, n_files=3, **kw):
    cuts = random_cuts(len(X), rng, max_rows)
    chunks = [Chunk.from_dense(X[a:b], y[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    per = -(-len(chunks) // n_files)
    return FakeSource({f"f{i}": chunks[i * per : (i + 1) * per] for i in range(n_files)}, dense=True, **kw)


def sparse_source(X, y, rng, max_rows=37, **kw):
    """Each chunk is only as wide as its largest index + 1: p grows along the stream."""
    X = sp.csr_matrix(X)
    cuts = random_cuts(X.shape[0], rng, max_rows)
    chunks = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        part = X[a:b]
        width = int(part.indices.max()) + 1 if part.nnz else 0
        chunks.append(Chunk.from_scipy(part[:, :width], y[a:b]))
    return FakeSource({"one": chunks}, **kw)


def sparse_matrix(n, p, density, rng, loc=0.0):
    X = sp.random(n, p, density=density, format="csr", random_state=rng, data_rvs=lambda k: loc + rng.normal(size=k))
    # Widest features last, so the width really grows between chunks.
    X = X[:, np.argsort(-np.asarray((X != 0).sum(axis=0)).ravel(), kind="stable")]
    return sp.csr_matrix(X)


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("loc", [0.0, 1e6])
def test_dense_moments_match_numpy(loc):
    rng = np.random.default_rng(1)
    X = loc + rng.normal(size=(700, 6)) * np.array([1, 2, 0.5, 3, 1e-3, 1])
    X[:, 3] = loc  # a constant column
    y = rng.integers(0, 2, 700).astype(float)
    res = scan(dense_source(X, y, rng))
    assert res.n_rows == 700 and res.n_features == 6 and res.nnz == 700 * 6
    assert res.density == pytest.approx(1.0)
    np.testing.assert_allclose(res.mean, X.mean(axis=0), rtol=1e-13, atol=1e-13)
    # Unit-scale variances survive a 1e6 offset (the naive sum-of-squares would not).
    np.testing.assert_allclose(res.var, X.var(axis=0), rtol=1e-7, atol=1e-12)
    assert res.var[3] < 1e-18 * max(loc, 1) ** 2


@pytest.mark.parametrize("loc", [0.0, 1e6])
def test_sparse_moments_match_numpy_with_growing_width(loc):
    rng = np.random.default_rng(2)
    X = sparse_matrix(600, 80, 0.05, rng, loc=loc)
    y = rng.normal(size=600)
    src = sparse_source(X, y, rng)
    widths = [c.n_features for c in src.iter_chunks()]
    assert min(widths) < 80 and max(widths) == 80  # p does grow along the stream
    res = scan(src)
    D = X.toarray()
    assert res.n_features == 80 and res.nnz == X.nnz
    assert res.density == pytest.approx(X.nnz / (600 * 80))
    np.testing.assert_allclose(res.mean, D.mean(axis=0), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(res.var, D.var(axis=0), rtol=1e-9, atol=1e-9)


def test_wide_sparse_chunks_take_the_unique_path():
    # Few entries spread over a huge width: the per-chunk path must not be O(p).
    rng = np.random.default_rng(3)
    n, p = 300, 200_000
    X = sp.random(n, p, density=2e-4, format="csr", random_state=rng)
    y = rng.integers(0, 2, n).astype(float)
    res = scan(sparse_source(X, y, rng, max_rows=50))
    cols = np.unique(X.indices)
    D = X[:, cols].toarray()  # the columns that hold anything
    np.testing.assert_allclose(res.mean[cols], D.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(res.var[cols], D.var(axis=0), rtol=1e-10)
    assert not res.mean[np.setdiff1d(np.arange(res.n_features), cols)].any()


def test_width_hint_pads_features_never_seen():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(50, 3))
    res = scan(dense_source(X, rng.integers(0, 2, 50), rng, n_features_hint=10))
    assert res.n_features == 10 and len(res.mean) == len(res.var) == 10
    assert not res.mean[3:].any() and not res.var[3:].any()
    np.testing.assert_allclose(res.var[:3], X.var(axis=0), rtol=1e-12)


def test_result_does_not_depend_on_chunking():
    rng = np.random.default_rng(5)
    X = sparse_matrix(400, 30, 0.2, rng)
    y = np.arange(400.0)
    a = scan(sparse_source(X, y, np.random.default_rng(0), max_rows=7), sample_size=25, seed=3, task="regression")
    b = scan(sparse_source(X, y, np.random.default_rng(1), max_rows=90), sample_size=25, seed=3, task="regression")
    np.testing.assert_array_equal(a.sample.y, b.sample.y)
    np.testing.assert_allclose(a.var, b.var, rtol=1e-12)


def kinds_matrix(n, rng):
    """Columns of every kind, some with explicit zeros: one-hots, 0/1 dense, counts, signed reals, constants."""
    D = np.zeros((n, 12))
    D[np.arange(n), rng.integers(0, 4, n)] = 1.0  # columns 0-3: a one-hot field
    D[:, 4] = rng.random(n) < 0.7  # dense binary
    D[:, 5] = rng.poisson(0.2, n)  # sparse counts
    D[:, 6] = np.where(rng.random(n) < 0.1, rng.normal(size=n) * 5, 0)  # sparse signed reals
    D[:, 7] = rng.normal(size=n) + 3  # dense reals
    D[:, 8] = 2.5  # a constant
    D[:, 9] = 1.0  # a constant 0/1
    D[0, 10] = -1.0  # one row: -1 is not binary
    X = sp.csr_matrix(D)
    # explicit zeros stored in column 11 (and column 5): counted nowhere, binary stays as it was
    X = sp.csr_matrix(sp.hstack([X[:, :11], sp.csr_matrix(D[:, :1] * 0 + 1)])).tocsr()
    X.data[X.indices == 11] = 0.0
    return X


def test_feature_kinds_match_numpy_and_do_not_depend_on_chunking():
    rng = np.random.default_rng(11)
    X = kinds_matrix(500, rng)
    D = X.toarray()
    assert (X.data == 0).sum() == 500  # the explicit zeros are stored
    y = rng.integers(0, 2, 500).astype(float)
    one = scan(FakeSource({"f": [Chunk.from_scipy(X, y)]}))
    np.testing.assert_array_equal(one.nnz_per_feature, (D != 0).sum(axis=0))
    np.testing.assert_array_equal(one.max_abs, np.abs(D).max(axis=0))
    np.testing.assert_array_equal(one.binary, np.isin(D, [0.0, 1.0]).all(axis=0))
    assert one.binary.tolist() == [True] * 5 + [False] * 4 + [True, False, True]
    assert one.nnz_per_feature.dtype == np.int64 and one.binary.dtype == bool
    for seed, max_rows in ((0, 7), (1, 60)):
        many = scan(sparse_source(X, y, np.random.default_rng(seed), max_rows=max_rows))
        np.testing.assert_array_equal(many.nnz_per_feature, one.nnz_per_feature)
        np.testing.assert_array_equal(many.max_abs, one.max_abs)
        np.testing.assert_array_equal(many.binary, one.binary)


def test_feature_kinds_on_the_wide_path_and_of_features_never_seen():
    rng = np.random.default_rng(12)
    n, p = 300, 200_000
    X = sp.random(n, p, density=2e-4, format="csr", random_state=rng, data_rvs=lambda k: rng.integers(1, 4, k))
    res = scan(sparse_source(X, rng.integers(0, 2, n).astype(float), rng, max_rows=50), task="binary")
    q = res.n_features  # the largest index + 1
    D = X[:, :q].tocsc()
    assert q == X.indices.max() + 1
    np.testing.assert_array_equal(res.nnz_per_feature, np.diff(D.indptr))
    np.testing.assert_array_equal(res.max_abs, abs(D).max(axis=0).toarray().ravel())
    binary = np.ones(q, dtype=bool)
    binary[np.unique(X.indices[X.data > 1])] = False
    np.testing.assert_array_equal(res.binary, binary)
    res = scan(dense_source(rng.normal(size=(20, 2)), rng.integers(0, 2, 20), rng, n_features_hint=5))
    assert res.nnz_per_feature[2:].tolist() == [0, 0, 0] and not res.max_abs[2:].any() and res.binary[2:].all()


def test_wide_sparse_scan_keeps_statistics_of_the_features_seen_only():
    """2^22 features, a few hundred seen: the statistics are the seen features' (sorted), the same as
    the full-width arrays' there, and the scaling built from them equals the one built from full width."""
    from streamfm.preprocess.moments import FeatureStats
    from streamfm.preprocess.standardize import Standardizer

    rng = np.random.default_rng(21)
    n, p = 400, 1 << 22
    cols = rng.choice(p, 300, replace=False)
    X = sp.random(n, 300, density=0.05, format="csr", random_state=rng,
                  data_rvs=lambda k: rng.choice([1.0, 1.0, 2.5, -3.0], k))
    X = X.tolil()
    X[:, 7] = 1.0  # dense: standardised (centred) under auto ...
    X[:5, 7] = 4.0  # ... as it is not binary
    X = X.tocsr()
    X = sp.csr_matrix((X.data, cols[X.indices], X.indptr), shape=(n, p))
    X.sort_indices()
    res = scan(sparse_source(X, np.zeros(n), rng, max_rows=60))
    fs = res.stats
    seen = np.unique(X.indices)
    np.testing.assert_array_equal(fs.features, seen)
    assert len(fs.seen_mean) == len(seen) < res.n_features // 1000
    D = X[:, seen].toarray()
    np.testing.assert_allclose(fs.seen_mean, D.mean(0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fs.seen_var, D.var(0), rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(fs.seen_nnz, (D != 0).sum(0))
    full = FeatureStats(fs.n_rows, fs.n_features, np.arange(fs.n_features), res.mean, res.var,
                        res.nnz_per_feature, res.max_abs, res.binary)
    assert not res.mean[np.setdiff1d(np.arange(res.n_features), seen)].any()
    for mode in ("auto", "standard", "maxabs", "none"):
        a, b = Standardizer.from_scan(res, mode), Standardizer.from_scan(full, mode)
        for name in ("shift", "scale", "centred"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert a.counts == b.counts
        np.testing.assert_array_equal(a.stored_rows(res), b.stored_rows(full))
    assert Standardizer.from_scan(res, "auto").n_centred == 1


def test_feature_stats_of_rows_in_memory_equal_the_scan():
    from streamfm.preprocess.moments import feature_stats

    rng = np.random.default_rng(13)
    X = kinds_matrix(300, rng)
    y = np.zeros(300)
    res = scan(sparse_source(X, y, rng, max_rows=40))
    got = feature_stats(Chunk.from_scipy(X[a:a + 64], y[a:a + 64]) for a in range(0, 300, 64))
    assert (got.n_rows, got.n_features) == (res.n_rows, res.n_features)
    for name in ("nnz_per_feature", "max_abs", "binary"):
        np.testing.assert_array_equal(getattr(got, name), getattr(res, name))
    np.testing.assert_allclose(got.mean, res.mean, rtol=1e-13)
    np.testing.assert_allclose(got.var, res.var, rtol=1e-11, atol=1e-15)
    assert feature_stats([Chunk.from_scipy(X, y)], n_features=20).n_features == 20
    with pytest.raises(InputError, match="must be finite"):
        feature_stats([Chunk.from_dense(np.array([[np.nan]]), np.zeros(1))])


# ---------------------------------------------------------------------------
# Reservoir sample
# ---------------------------------------------------------------------------


def ids_source(n, rng, max_rows):
    """Row i has label i and one feature whose value is i (so rows can be checked)."""
    X = sp.csr_matrix((np.arange(n, dtype=float) + 1, (np.arange(n), np.arange(n) % 4)), shape=(n, 4))
    return sparse_source(X, np.arange(n, dtype=float), rng, max_rows=max_rows)


def test_sample_size_rows_and_reproducibility():
    src = ids_source(1000, np.random.default_rng(0), 64)
    a = scan(src, sample_size=100, seed=7, task="regression")
    b = scan(src, sample_size=100, seed=7, task="regression")
    c = scan(src, sample_size=100, seed=8, task="regression")
    assert a.sample.n_rows == 100 and a.sample.n_features == 4
    assert len(np.unique(a.sample.y)) == 100  # distinct rows
    np.testing.assert_array_equal(a.sample.y, b.sample.y)
    assert not np.array_equal(np.sort(a.sample.y), np.sort(c.sample.y))
    # Each sampled row carries its own features and label.
    np.testing.assert_array_equal(a.sample.data, a.sample.y + 1)
    np.testing.assert_array_equal(a.sample.indices, a.sample.y.astype(int) % 4)


def test_sample_smaller_than_stream_keeps_every_row():
    src = ids_source(30, np.random.default_rng(0), 8)
    res = scan(src, sample_size=100, task="regression")
    np.testing.assert_array_equal(np.sort(res.sample.y), np.arange(30.0))
    assert scan(src, sample_size=0, task="regression").sample is None


def test_sample_is_uniform_over_rows():
    # 2000 fixed seeds, 15 rows, 10 sampled: each row should be drawn 2000 *
    # 10/15 times.  Chunks of up to 6 rows make slot collisions within a
    # chunk frequent, and k close to n makes an off-by-one in Algorithm R
    # (slot drawn from [0, t) instead of [0, t]) fail the test.  Counts from
    # sampling without replacement vary less than a multinomial's, so the
    # chi-square statistic is conservative; the bound is its 99.99% quantile
    # and the seeds are fixed: the test cannot fail by chance.
    n, k, n_seeds = 15, 10, 2000
    src = ids_source(n, np.random.default_rng(0), 6)
    counts = np.zeros(n)
    for seed in range(n_seeds):
        res = scan(src, sample_size=k, seed=seed, task="regression")
        counts[res.sample.y.astype(int)] += 1
    expected = n_seeds * k / n
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < stats.chi2.ppf(0.9999, n - 1)


# ---------------------------------------------------------------------------
# Labels and task
# ---------------------------------------------------------------------------


def labels_source(y, chunk=16):
    y = np.asarray(y)
    X = np.ones((len(y), 2))
    return FakeSource({"f": [Chunk.from_dense(X[i : i + chunk], y[i : i + chunk]) for i in range(0, len(y), chunk)]})


@pytest.mark.parametrize(
    "y, task, classes, kind",
    [
        ([0, 1, 1, 0, 1], "binary", [0, 1], "0/1"),
        ([-1, 1, 1, -1], "binary", [-1, 1], "-1/+1"),
        ([2.0, 5.0, 5.0], "binary", [2, 5], "other"),
        (["spam", "ham", "spam"], "binary", ["ham", "spam"], "other"),
        (["a", "b", "c", "a"], "multiclass", ["a", "b", "c"], None),
        ([3, 1, 2, 1, 7], "multiclass", [1, 2, 3, 7], None),
        ([0.5, 1.25, 3.0], "regression", None, None),
    ],
)
def test_task_detection(y, task, classes, kind):
    res = scan(labels_source(y))
    assert res.task == task
    assert res.binary_labels_kind == kind
    if classes is None:
        assert res.classes is None
    else:
        assert list(res.classes) == classes
    vals, counts = np.unique(np.asarray(y), return_counts=True)
    assert list(res.labels) == list(vals) and list(res.label_counts) == list(counts)


def test_many_integer_labels_are_regression_and_drop_the_label_list():
    y = np.arange(2000) % 1500
    res = scan(labels_source(y, chunk=300))
    assert res.task == "regression" and res.labels is None and res.label_counts is None
    assert res.label_mean == pytest.approx(y.mean()) and res.label_var == pytest.approx(y.var())
    res = scan(labels_source(np.arange(40) % 20), max_classes=10)
    assert res.task == "regression"
    with pytest.raises(InputError, match="more than 10 distinct"):
        scan(labels_source(np.arange(40) % 20), task="multiclass", max_classes=10)


def test_two_non_integer_labels_are_binary_detected_or_asked():
    for task in (None, "binary"):
        res = scan(labels_source([0.5, 1.5, 0.5]), task=task)
        assert res.task == "binary" and list(res.classes) == [0.5, 1.5] and res.binary_labels_kind == "other"


def test_given_classes_keep_their_order_and_may_have_unseen_classes():
    res = scan(labels_source([1, 2, 1]), classes=[3, 2, 1])
    assert res.task == "multiclass" and list(res.classes) == [3, 2, 1]
    res = scan(labels_source([1, 1, 1]), classes=[0, 1])
    assert res.task == "binary" and res.binary_labels_kind == "0/1"


@pytest.mark.parametrize(
    "y, kwargs, message",
    [
        ([0, 1, 2], {"task": "binary"}, r"task 'binary' needs exactly 2 classes, but the data has 3 distinct integer labels \(0, 1, 2\)"),
        ([0.5, 1.5, 2.0], {"task": "multiclass"}, "needs integer or text labels, but the data has 3 distinct non-integer labels"),
        ([0.5, 1.5, 0.25], {"task": "binary"}, r"needs exactly 2 classes, but the data has 3 distinct non-integer labels \(0.25, 0.5, 1.5\)"),
        (["a", "b"], {"task": "regression"}, "needs numeric labels, but the data has 2 distinct text labels"),
        ([1, 1, 1], {"task": "binary"}, "needs exactly 2 classes, but the data has 1 distinct"),
        ([0, 1, 2], {"classes": [0, 1]}, r"label 2 is not in the given classes \(0, 1\)"),
        (["x", "y"], {"classes": ["x", "z"]}, "label 'y' is not in the given classes"),
        ([0, 1], {"classes": [0, 1, 1]}, "repeat"),
        ([0, 1], {"classes": ["a", "b"]}, "the labels are numbers but the given classes are not"),
        ([0, 1], {"task": "ranking"}, "task must be one of"),
        ([0] * 20 + [np.nan], {}, r"label nan in row 20 of the data \(counting from 0\)"),
        ([0, np.inf, 1], {}, "must be finite"),
    ],
)
def test_label_errors(y, kwargs, message):
    with pytest.raises(InputError, match=message):
        scan(labels_source(y), **kwargs)


def test_empty_source_and_bad_values():
    empty = FakeSource({"a.svm": [], "b.svm": [Chunk.from_dense(np.zeros((0, 3)), np.zeros(0))]})
    with pytest.raises(InputError, match=r"no rows \(a.svm, b.svm\)"):
        scan(empty)
    X = np.ones((5, 3))
    X[3, 2] = np.nan
    with pytest.raises(InputError, match="feature 2 of row 3 is nan"):
        scan(FakeSource({"f": [Chunk.from_dense(X, np.zeros(5))]}))


def test_progress_bar_runs(capsys):
    res = scan(labels_source([0, 1] * 20), progress=True)
    assert res.n_rows == 40


# ---------------------------------------------------------------------------
# encode_labels
# ---------------------------------------------------------------------------


def test_encode_binary():
    np.testing.assert_array_equal(encode_labels([0, 1, 1], [0, 1], "binary"), [0, 1, 1])
    np.testing.assert_array_equal(encode_labels([-1, 1, -1], [-1, 1], "binary"), [0, 1, 0])
    np.testing.assert_array_equal(encode_labels(["ham", "spam"], ["ham", "spam"], "binary"), [0, 1])
    res = scan(labels_source([-1, 1, 1]))
    out = encode_labels(np.array([1.0, -1.0]), res, "binary")
    assert out.dtype == np.float64 and list(out) == [1, 0]


def test_encode_multiclass_and_unknown_labels():
    np.testing.assert_array_equal(encode_labels([7, 1, 3], [1, 3, 7], "multiclass"), [2, 0, 1])
    np.testing.assert_array_equal(encode_labels([7, 1, 3], [7, 3, 1], "multiclass"), [0, 2, 1])
    np.testing.assert_array_equal(encode_labels(["b", "a"], np.array(["a", "b", "c"]), "multiclass"), [1, 0])
    with pytest.raises(InputError, match=r"row 1 of this batch: label 4 is not one of the model's classes: 1, 3, 7"):
        encode_labels([1, 4, 5], [1, 3, 7], "multiclass")
    targets, known = encode_labels([1, 4, 7], [1, 3, 7], "multiclass", unknown="ignore")
    np.testing.assert_array_equal(known, [True, False, True])
    np.testing.assert_array_equal(targets[known], [0, 2])
    assert np.isnan(targets[1])
    with pytest.raises(InputError, match="text labels such as 'a' but the classes are numbers"):
        encode_labels(["a"], [0, 1], "multiclass")


def test_encode_regression():
    out = encode_labels(np.array([1, 2, 3]), None, "regression")
    assert out.dtype == np.float64 and list(out) == [1, 2, 3]
    with pytest.raises(InputError, match="regression needs numeric labels"):
        encode_labels(["a", "b"], None, "regression")
    with pytest.raises(InputError, match="must be finite"):
        encode_labels([1.0, np.nan], None, "regression")
