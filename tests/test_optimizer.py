"""The optimiser: AdaGrad's bounded step, L2 as a prior, the starting bias, and configs of older models."""
import numpy as np
import pytest
import scipy.sparse as sp

from streamfm import FMClassifier, FMRegressor, LLFMRegressor
from streamfm.kernels.llfm import ADAGRAD, N_STATS, predict_rows, train_rows
from streamfm.models.config import Config
from streamfm.models.init import initial_bias


def _one_row_step(p, eta0, bound, seed=0):
    """f before and after one AdaGrad step of a one-output FM on one dense row of p features (squared
    loss, target f + 1, fresh accumulators)."""
    rng = np.random.default_rng(seed)
    P = {"b": np.zeros((1, 1)), "W": rng.normal(size=(1, p, 1)) * 0.1, "V": rng.normal(size=(1, p, 1, 3)) * 0.1,
         "Z": np.zeros((1, 0))}
    A = [np.zeros_like(P[n]) for n in "bWV"]
    x = rng.normal(size=p)
    indptr, indices = np.array([0, p], np.int64), np.arange(p, dtype=np.int32)
    phi, cand, ks = np.zeros((1, 0)), np.zeros((1, 0), np.int64), np.zeros(1, np.int64)

    def f():
        out = np.zeros((1, 1))
        predict_rows(0, (indptr, indices, x), phi, cand, (P["b"], P["W"], P["V"], P["Z"]), (1, 1.0, 1.0), False,
                     (out, ks), None)
        return out[0, 0]

    f0 = f()
    train_rows(0, 3, (indptr, indices, x, np.array([f0 + 1.0]), np.zeros(0)), phi, cand,
               (P["b"], P["W"], P["V"], P["Z"]), tuple(A), (1, 1.0, 1.0, 1.0, 1.0),
               (eta0, 1.0, 0.0, 0.0, 0.0, np.zeros(p), ADAGRAD, bound, False, True, np.ones(1), np.inf),
               0, (np.zeros(1), ks, np.zeros(N_STATS, np.int64)), None)
    return f0, f()


@pytest.mark.parametrize("p", [2, 50, 1000])
def test_adagrad_step_changes_f_by_at_most_the_bound(p):
    """Whatever the width, one AdaGrad step moves f by at most bound * |dloss/df| (first order);
    with a step that large the bound binds and the move is the bound."""
    bound = 1e-3  # small, so that the first-order change is the change
    f0, f1 = _one_row_step(p, eta0=1e6, bound=bound)
    assert f1 - f0 == pytest.approx(bound, rel=1e-2)  # squared loss, target f0 + 1: dloss/df = -1
    f0, f1 = _one_row_step(p, eta0=1e-9, bound=bound)  # a step below the bound is eta0's
    assert 0 < f1 - f0 < bound


def _pairwise_data(n=3000, p=6, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = 2 * X[:, 0] * X[:, 1] + X[:, 2] + 0.1 * rng.normal(size=n)
    return X, y


def test_adagrad_decreases_the_loss():
    X, y = _pairwise_data()
    fm = FMRegressor(optimizer="adagrad", n_epochs=8).fit(X, y)
    curve = np.array(fm.loss_curve_)
    assert curve[-1] < 0.25 * curve[0]  # the pairwise term is learned
    assert (np.diff(curve) < 1e-3).all()  # and the training loss does not go back up
    assert fm.score(X, y) > 0.9


@pytest.mark.parametrize("optimizer", ["adagrad", "normalized", "sgd"])
def test_l2_shrinks_the_parameters(optimizer):
    """L2 is a prior of precision l2 over the whole data: strong L2 gives measurably smaller weights."""
    X, y = _pairwise_data(n=1500)
    norms = {}
    for l2 in (0.0, 1e4):  # 1e4 against 1,500 rows: the MAP weights shrink to ~0.13
        fm = FMRegressor(optimizer=optimizer, l2_w=l2, l2_v=l2, n_epochs=4).fit(X, y)
        P = fm.model_.params
        norms[l2] = (np.linalg.norm(P["W"]), np.linalg.norm(P["V"]))
    assert norms[1e4][0] < 0.5 * norms[0.0][0]
    assert norms[1e4][1] < 0.5 * norms[0.0][1]


def test_l2_weights_each_touch_by_the_features_rows():
    """A feature stored in few rows gets a larger L2 weight per row than a frequent one, so that
    an epoch applies the same penalty to both (``LLFMModel.set_feature_rows``)."""
    rng = np.random.default_rng(0)
    X = sp.random(2000, 50, density=0.05, format="csr", random_state=1, data_rvs=lambda k: rng.normal(size=k))
    y = rng.integers(0, 2, size=2000)
    fm = FMClassifier(n_epochs=0).fit(X, y)
    rows = np.diff(sp.csc_matrix(X).indptr)
    np.testing.assert_array_equal(fm.model_.feature_rows, rows)
    np.testing.assert_allclose(fm.model_._reg_weights()[rows > 0], 1.0 / rows[rows > 0])


def test_the_outputs_start_at_the_best_constant():
    X, y = _pairwise_data(n=500)
    reg = FMRegressor(n_epochs=0).fit(X, y + 5.0)
    np.testing.assert_allclose(reg.model_.params["b"], np.mean(y + 5.0))
    yb = (np.arange(500) % 4 == 0).astype(int)  # 1 in 4 positive
    clf = FMClassifier(n_epochs=0).fit(X, yb)
    assert clf.model_.params["b"][0, 0] == pytest.approx(np.log(125.5 / 375.5))
    assert initial_bias("multiclass", "ovr", class_counts=[1, 3])[1] == pytest.approx(np.log(3.5 / 1.5))
    soft = initial_bias("multiclass", class_counts=[1, 3, 6])
    assert soft.sum() == pytest.approx(0) and np.argmax(soft) == 2
    # an LLFM's global FM starts there, its anchors' FMs at zero (tests/test_init.py)
    jo = LLFMRegressor(n_epochs=0, anchors=4).fit(X, y + 5.0)
    assert jo.model_.params["b"].shape == (5, 1)
    np.testing.assert_allclose(jo.model_.params["b"][:, 0], [0, 0, 0, 0, np.mean(y + 5.0)])


def test_configs_of_older_models_keep_their_meaning():
    """A manifest's config from before the optimiser and the global FM were settings."""
    old = Config.from_dict({"method": "llfm-jo", "normalize": True, "adagrad": False, "eta0": 0.5})
    assert old.optimizer == "normalized" and old.step == 0.5 and old.global_fm is False
    assert Config.from_dict({"adagrad": True}).optimizer == "adagrad"
    assert Config.from_dict({"normalize": False}).optimizer == "sgd"
    new = Config()
    assert Config.from_dict(new.to_dict()) == new and new.global_fm and new.optimizer == "adagrad"


@pytest.mark.parametrize("bad", [{"eta0": float("inf")}, {"l2_w": float("inf")}, {"l2_v": float("nan")},
                                 {"seed": -1}, {"optimizer": "adam"}, {"rho": float("inf")}, {"global_fm": 1}])
def test_bad_hyper_parameters_are_named(bad):
    from streamfm.errors import InputError

    with pytest.raises(InputError, match=next(iter(bad))):
        Config(**bad).validate()
