"""The scikit-learn estimators: API checks, equivalences, and that LLFM does what it is for."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import accuracy_score, log_loss
from sklearn.utils.estimator_checks import parametrize_with_checks

from streamfm.estimators import FMClassifier, FMRegressor, LLFMClassifier, LLFMRegressor


# SGD takes one step of a row of weight w scaled by w, not w steps: the same objective, not the same iterates
_WEIGHT_IS_NOT_REPETITION = {f"check_sample_weight_equivalence_on_{kind}_data": "per-row SGD: a weight scales one "
                             "step, it does not repeat the row" for kind in ("dense", "sparse")}


@parametrize_with_checks([FMClassifier(n_epochs=2), FMRegressor(n_epochs=2),
                          LLFMClassifier(n_epochs=2, anchors=5), LLFMRegressor(n_epochs=2, anchors=5)],
                         expected_failed_checks=lambda estimator: _WEIGHT_IS_NOT_REPETITION)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "only N distinct rows to place anchors" on tiny check data
        check(estimator)


def local_rules(n, p=2, n_clusters=4, seed=0):
    """Clusters whose labels follow a different linear rule in each: one FM cannot fit all."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, size=(n_clusters, p))
    normals = rng.normal(size=(n_clusters, p))
    c = rng.integers(0, n_clusters, size=n)
    X = centres[c] + rng.normal(size=(n, p))
    y = (np.einsum("ij,ij->i", X - centres[c], normals[c]) > 0).astype(int)
    return X, y


def test_llfm_jo_beats_fm_on_locally_different_rules():
    X, y = local_rules(4000, seed=1)
    Xt, yt = local_rules(2000, seed=2)
    Xt = Xt  # same clusters: the generator is seeded by centres below
    X, y = local_rules(6000, seed=1)
    Xt, yt = X[4000:], y[4000:]
    X, y = X[:4000], y[:4000]
    fm = FMClassifier(n_epochs=5).fit(X, y)
    jo = LLFMClassifier(n_epochs=5, anchors=16).fit(X, y)
    acc_fm, acc_jo = accuracy_score(yt, fm.predict(Xt)), accuracy_score(yt, jo.predict(Xt))
    assert acc_jo > 0.9
    assert acc_jo > acc_fm + 0.1
    assert log_loss(yt, jo.predict_proba(Xt)) < log_loss(yt, fm.predict_proba(Xt))
    m = jo.training_metrics_
    assert m["mean_k"] >= 1 and m["wanted_more_rate"] < 0.01 and m["candidate_miss_rate"] < 0.01


@pytest.mark.parametrize("method", ["fm", "llfm-do", "llfm-apl", "llfm-jo"])
def test_partial_fit_over_chunks_equals_fit(method):
    X, y = local_rules(900, p=3, seed=3)
    kw = dict(method=method, anchors=40, n_candidates=8, rebuild_every=100, shuffle=False, random_state=4)
    one = LLFMClassifier(n_epochs=1, **kw).fit(X, y)
    chunked = LLFMClassifier(n_epochs=0, **kw).fit(X, y)  # initialise only: same scaler, same anchors
    for a, b in [(0, 7), (7, 350), (350, 351), (351, 900)]:
        chunked.partial_fit(X[a:b], y[a:b])
    for name in ("b", "W", "V", "Z"):
        np.testing.assert_allclose(chunked.model_.params[name], one.model_.params[name], rtol=1e-12, atol=1e-14)
    assert chunked.model_.t == one.model_.t == 900


@pytest.mark.parametrize("method", ["llfm-do", "llfm-jo"])
def test_search_of_the_next_rows_on_a_helper_thread_changes_nothing(method, monkeypatch):
    """One training thread searches a block's candidates a part at a time, the next part's
    search on a helper thread while the kernel trains (models/schedule.py): the model, and
    its predictions, must be those of a single search per block, bit for bit."""
    from streamfm.models.schedule import Schedule

    X, y = local_rules(900, p=3, seed=3)
    kw = dict(method=method, anchors=40, n_candidates=8, rebuild_every=100, shuffle=False,
              random_state=4, n_epochs=2)
    monkeypatch.setattr(Schedule, "search_first", 10**9)
    whole = LLFMClassifier(**kw).fit(X, y)
    # blocks of 100 rows in parts of 3, 6, 7, 7, ... rows, the last one short
    monkeypatch.setattr(Schedule, "search_first", 3)
    monkeypatch.setattr(Schedule, "search_rows", 7)
    parts = LLFMClassifier(**kw).fit(X, y)
    for name in ("b", "W", "V", "Z"):
        np.testing.assert_array_equal(parts.model_.params[name], whole.model_.params[name])
    assert parts.training_metrics_ == whole.training_metrics_
    # predictions search in parts too
    f_parts = parts.decision_function(X)
    parts.model_.schedule.search_first = 10**9
    np.testing.assert_array_equal(f_parts, parts.decision_function(X))


def test_n_epochs_equals_k_plus_rest_by_partial_fit():
    """10 epochs == 5 epochs, then 5 more over the same shuffled orders (warm-start equivalence)."""
    X, y = local_rules(600, p=3, seed=5)
    full = LLFMClassifier(n_epochs=4, anchors=10, random_state=1).fit(X, y)
    half = LLFMClassifier(n_epochs=2, anchors=10, random_state=1).fit(X, y)
    rng = np.random.default_rng(full.model_.config.seed)
    orders = [rng.permutation(len(y)) for _ in range(4)]
    for o in orders[2:]:
        half.partial_fit(X[o], y[o])
    for name in ("b", "W", "V", "Z"):
        np.testing.assert_allclose(half.model_.params[name], full.model_.params[name], rtol=1e-12, atol=1e-14)


def test_partial_fit_from_scratch_needs_classes_and_learns():
    X, y = local_rules(3000, seed=6)
    est = LLFMClassifier(anchors=16)
    with pytest.raises(ValueError, match="classes must be passed"):
        est.partial_fit(X[:100], y[:100])
    for a in range(0, 2000, 500):
        est.partial_fit(X[a:a + 500], y[a:a + 500], classes=[0, 1])
    assert accuracy_score(y[2000:], est.predict(X[2000:])) > 0.8
    with pytest.raises(ValueError, match="labels not in classes"):
        est.partial_fit(X[:5], np.full(5, 7))


@pytest.mark.parametrize("multiclass", ["softmax", "ovr"])
def test_multiclass(multiclass):
    rng = np.random.default_rng(7)
    centres = rng.normal(0, 4, size=(5, 4))
    c = rng.integers(0, 5, size=1500)
    X = centres[c] + rng.normal(size=(1500, 4))
    labels = np.array(list("abcde"))[c]
    est = LLFMClassifier(n_epochs=3, anchors=10, multiclass=multiclass).fit(X[:1000], labels[:1000])
    P = est.predict_proba(X[1000:])
    assert P.shape == (500, 5) and np.allclose(P.sum(1), 1)
    assert accuracy_score(labels[1000:], est.predict(X[1000:])) > 0.9


def test_regression():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(2000, 3))
    y = 3 * X[:, 0] * X[:, 1] - X[:, 2] + 0.1 * rng.normal(size=2000)
    fm = FMRegressor(n_epochs=10).fit(X[:1500], y[:1500])
    assert fm.score(X[1500:], y[1500:]) > 0.9  # an FM captures the pairwise term
    jo = LLFMRegressor(n_epochs=5, anchors=10).fit(X[:1500], y[:1500])
    assert jo.score(X[1500:], y[1500:]) > 0.8


@pytest.mark.parametrize("p", [2, 30, 200, 1000])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("cls", [FMClassifier, LLFMClassifier])
def test_defaults_are_stable_on_standardised_data_of_any_width(p, sparse, cls):
    """Default steps never diverge, from 2 to 1,000 features, dense or sparse: the learned
    model beats the constant predictor on a learnable rule (a rule with pairwise terms)."""
    rng = np.random.default_rng(p)
    n = max(1500, 6 * p)
    if sparse:
        X = sp.random(n, p, density=min(1.0, 10 / p), format="csr", random_state=p,
                      data_rvs=lambda k: rng.normal(size=k))
        Xd = X.toarray()
    else:
        X = Xd = rng.normal(size=(n, p))
    w = rng.normal(size=p) / np.sqrt(min(p, 10))
    score = Xd @ w + (Xd[:, 0] * Xd[:, 1] if p > 1 else 0)
    y = (score > np.median(score)).astype(int)
    kw = {"anchors": 10} if cls is LLFMClassifier else {}
    est = cls(n_epochs=3, **kw).fit(X[: n * 2 // 3], y[: n * 2 // 3])
    P = est.predict_proba(X[n * 2 // 3:])
    assert np.isfinite(P).all()
    assert np.isfinite(est.loss_curve_).all()
    assert log_loss(y[n * 2 // 3:], P) < np.log(2)  # better than predicting 1/2


def test_a_forked_child_predicts_with_its_own_search_thread(monkeypatch):
    """The helper thread that searches the next rows does not survive a fork: a child
    process (multiprocessing's fork start method) must make its own, not wait forever."""
    import multiprocessing as mp

    from streamfm.models.schedule import Schedule

    monkeypatch.setattr(Schedule, "search_first", 5)  # every prediction below searches in parts
    X, y = local_rules(300, p=3, seed=3)
    est = LLFMClassifier(method="llfm-jo", anchors=40, n_candidates=8, n_epochs=1, random_state=4).fit(X, y)
    expected = est.decision_function(X)  # the parent's pool now has its thread
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=lambda: queue.put(est.decision_function(X)))
    child.start()
    child.join(60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "the forked child waited on a search thread it did not have"
    np.testing.assert_array_equal(queue.get(timeout=10), expected)


@pytest.mark.parametrize("mode", ["auto", "standard", "maxabs", "none"])
@pytest.mark.parametrize("sparse", [False, True])
def test_scale_is_the_command_lines_map_of_the_data_given(mode, sparse):
    """``scale=`` computes the scan pass's statistics from X and applies the command line's rule
    (a dense array is a dense table to ``standard``): the map streamfm train would record."""
    from fakes import FakeSource
    from streamfm.io.chunk import Chunk
    from streamfm.preprocess.scan import scan
    from streamfm.preprocess.standardize import Standardizer

    rng = np.random.default_rng(5)
    n = 300
    X = np.zeros((n, 1205))  # wide enough that standard does not centre sparse input
    X[np.arange(n), rng.integers(0, 1200, n)] = 1.0  # one-hots
    X[:, 1200] = rng.poisson(0.3, n)  # sparse counts
    X[:, 1201] = rng.normal(size=n) + 2  # dense reals
    X[:, 1202:] = rng.random((n, 3)) < 0.5  # dense 0/1
    y = (X[:, 1201] > 2).astype(int)
    Xin = sp.csr_matrix(X) if sparse else X
    est = FMClassifier(n_epochs=0, scale=mode, batch_size=64).fit(Xin, y)
    chunk = Chunk.from_scipy(sp.csr_matrix(X), y) if sparse else Chunk.from_dense(X, y)
    want = Standardizer.from_scan(scan(FakeSource({"f": [chunk]}, dense=not sparse)), mode, dense_source=not sparse)
    np.testing.assert_array_equal(est.scaler_.centred, want.centred)
    np.testing.assert_allclose(est.scaler_.shift, want.shift, rtol=1e-12)
    np.testing.assert_allclose(est.scaler_.scale, want.scale, rtol=1e-9)
    assert est.scaler_.counts == want.counts and est.scaler_.mode == mode
    if mode == "auto":
        assert want.counts == {"kept": 1203, "standardised": 1, "maxabs": 1, "centred": 1}
    first = FMClassifier(scale=mode, batch_size=64).partial_fit(Xin[:150], y[:150], classes=[0, 1])
    second = FMClassifier(n_epochs=0, scale=mode, batch_size=64).fit(Xin[:150], y[:150])
    np.testing.assert_array_equal(first.scaler_.scale, second.scaler_.scale)  # the first call's data


def test_an_unknown_scale_is_a_value_error():
    with pytest.raises(ValueError, match="scale must be one of auto, standard, maxabs, none"):
        FMClassifier(scale="minmax").fit(np.ones((4, 2)), [0, 1, 0, 1])
