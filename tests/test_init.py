"""initialise_model: the trainer and the estimators set a model up the same way from the same data."""
import math
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.utils import check_random_state

from streamfm import FMRegressor, LLFMClassifier, LLFMRegressor
from streamfm.errors import InputError
from streamfm.io.chunk import Chunk
from streamfm.io.sources import open_source
from streamfm.models.config import Config
from streamfm.models.init import initial_bias, initialise_model, model_from_scan
from streamfm.models.state import ModelState
from streamfm.preprocess.scan import scan
from streamfm.preprocess.standardize import Standardizer
from streamfm.run import load, train
from streamfm.training.options import TrainOptions

N = 1200


def data(seed=1, regression=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 4)) * [1.0, 3.0, 0.5, 2.0] + [0.0, 1.0, -2.0, 0.5]
    X[:, 3] = (X[:, 3] > 0.5).astype(float)  # a 0/1 feature: kept as it is by --scale auto
    score = X[:, 0] * X[:, 1] - X[:, 2]
    return X, (score if regression else (score > 0.3).astype(float))


def write(tmp_path, X, y):
    cols = {f"f{j}": X[:, j] for j in range(X.shape[1])}
    cols["label"] = y
    pq.write_table(pa.table(cols), tmp_path / "d.parquet")
    return str(tmp_path / "d.parquet")


def estimator_seed(random_state=0) -> int:
    """The Config seed an estimator with ``random_state`` draws (estimators.py ``_initialise``)."""
    return int(check_random_state(random_state).randint(2**31 - 1))


KW = dict(anchors=20, n_candidates=6, rebuild_every=150)


def assert_same_model(a, b, rtol=0.0):
    sa, sb = ModelState.capture(a), ModelState.capture(b)
    assert sa.config.to_dict() == sb.config.to_dict()
    assert (sa.n_features, sa.task, sa.n_outputs, sa.t, sa.t0) == (sb.n_features, sb.task, sb.n_outputs, sb.t, sb.t0)
    assert sa.coding_scale == pytest.approx(sb.coding_scale, rel=rtol)
    np.testing.assert_array_equal(sa.feature_rows, sb.feature_rows)
    for name in sa.params:
        np.testing.assert_allclose(sa.params[name], sb.params[name], rtol=rtol, atol=0, err_msg=name)


@pytest.mark.parametrize("method", ["llfm-jo", "fm"])
def test_the_trainers_set_up_is_the_estimators(tmp_path, method):
    """The scan pass and its scaling over a file, then model_from_scan (what the trainer runs), give the
    model an estimator's fit(n_epochs=0) makes from the same rows in memory."""
    X, y = data()
    path = write(tmp_path, X, y)
    est = LLFMClassifier(method=method, n_epochs=0, **KW).fit(X, y)
    config = Config(method=method, seed=estimator_seed(), **KW)
    source = open_source(path)
    sc = scan(source, sample_size=10_000, seed=config.seed, progress=False)
    std = Standardizer.from_scan(sc, "auto", dense_source=source.dense)
    model = model_from_scan(config, sc, std, source.dense)
    np.testing.assert_array_equal(std.shift, est.scaler_.shift)
    np.testing.assert_array_equal(std.scale, est.scaler_.scale)
    est.model_.set_epoch_rows(N)  # fit(n_epochs=0) sets the epoch, as the trainer does
    assert_same_model(model, est.model_)
    bias = model.params["b"][-1, 0]  # the global FM's (llfm-jo), the only FM's (fm)
    assert bias == pytest.approx(np.log((y.sum() + 0.5) / (N - y.sum() + 0.5)))  # the log odds


def test_a_trained_epoch_is_the_estimators_epoch(tmp_path):
    """One epoch in order through `streamfm train` equals one epoch of the estimator: the same start."""
    X, y = data(seed=2)
    path = write(tmp_path, X, y)
    config = Config(seed=estimator_seed(3), **KW)
    train(path, tmp_path / "m", config=config,
          options=TrainOptions(epochs=1, shuffle=False, batch_rows=100, early_stop=0, quiet=True))
    est = LLFMClassifier(n_epochs=1, shuffle=False, batch_size=100, random_state=3, **KW).fit(X, y)
    assert_same_model(load(tmp_path / "m").model, est.model_, rtol=1e-9)


def test_regression_starts_at_the_label_mean():
    X, y = data(regression=True)
    est = FMRegressor(n_epochs=0).fit(X, y)
    assert est.model_.params["b"][0, 0] == pytest.approx(y.mean())
    np.testing.assert_array_equal(est.model_.feature_rows, N)  # a dense array's rows hold every feature


@pytest.mark.parametrize("global_fm", [True, False])
def test_an_llfm_starts_at_the_label_mean(global_fm):
    """Beside a global FM the anchors' FMs start at zero (their mixture would otherwise add the mean
    a second time); without it every FM starts at the mean. Either way f starts at the mean."""
    X, y = data(regression=True)
    est = LLFMRegressor(anchors=4, global_fm=global_fm, n_epochs=0).fit(X, y)
    b = est.model_.params["b"][:, 0]
    np.testing.assert_array_equal(b[:4], 0.0 if global_fm else y.mean())
    assert len(b) == 4 + global_fm and b[-1] == pytest.approx(y.mean())
    f = est.model_.decision_chunk(Chunk.from_dense(np.zeros((3, X.shape[1])), np.zeros(3)))
    np.testing.assert_allclose(f[:, 0], y.mean())


def test_initialise_model_needs_a_sample_for_the_anchors():
    sample = Chunk.from_dense(np.random.default_rng(0).normal(size=(10, 3)), np.zeros(10))
    with pytest.raises(InputError, match="20 anchors need at least 20 rows"):
        initialise_model(Config(anchors=20), 3, "binary", sample=sample, class_counts=[5, 5])
    model = initialise_model(Config(method="fm"), 3, "binary", sample=sample)  # no counts: bias 0
    assert model.params["b"][0, 0] == 0.0 and model.feature_rows is None
    assert model.t0 == 10_000  # no epoch given: t0's default
    model = initialise_model(Config(method="fm"), 3, "multiclass", 3, sample=sample, class_counts=[1, 3, 6],
                             epoch_rows=10)
    np.testing.assert_allclose(model.params["b"][0], initial_bias("multiclass", class_counts=[1, 3, 6]))
    assert model.t0 == 10


@pytest.mark.parametrize("p, expected", [(4, 0.3), (1000, 0.3), (1001, 0.05)])
def test_the_default_anchor_step_follows_the_coding_space(p, expected):
    """eta_anchor None: 0.3 where the anchors live in the features' own space (up to 1,000 features),
    0.05 in the count sketch of wider data; the model's config (its manifest) holds the number."""
    from streamfm.models.core import LLFMModel

    assert Config().eta_anchor is None
    model = LLFMModel(Config(anchors=4), p, "binary")
    assert model.config.eta_anchor == expected
    assert LLFMModel(Config(anchors=4, eta_anchor=0.2), p, "binary").config.eta_anchor == 0.2
    assert ModelState.capture(model).manifest()[0]["config"]["eta_anchor"] == expected


@pytest.mark.parametrize("p, expected", [(4, 0), (1000, 0), (1001, 1)])
def test_the_default_anchor_epochs_follow_the_coding_space(p, expected):
    """anchor_epochs None: the anchors move in every epoch (0) in the features' own space, in the
    first only in the count sketch of wider data; the manifest holds the number, and a manifest
    written before the field (none in it) reads as every epoch, as its anchors moved."""
    from streamfm.models.core import LLFMModel

    assert Config().anchor_epochs is None
    model = LLFMModel(Config(anchors=4), p, "binary")
    assert model.config.anchor_epochs == expected
    assert model.anchor_end() == (math.inf if expected == 0 else model.t0)
    assert LLFMModel(Config(anchors=4, anchor_epochs=3), p, "binary").config.anchor_epochs == 3
    record = ModelState.capture(model).manifest()[0]["config"]
    assert record["anchor_epochs"] == expected
    del record["anchor_epochs"]
    assert Config.from_dict(record).anchor_epochs == 0
    for bad in (-1, 1.5, True):  # kept as given by the resolution, so refused, not read as a number
        with pytest.raises(InputError, match="anchor_epochs"):
            LLFMModel(Config(anchors=4, anchor_epochs=bad), p, "binary")
    with pytest.raises(InputError, match="eta_anchor"):
        LLFMModel(Config(anchors=4, eta_anchor=True), p, "binary")


def test_anchors_stay_after_their_epochs_and_a_resumed_run_is_the_uninterrupted_one(tmp_path):
    """anchor_epochs 1: the second epoch leaves the anchors where the first put them, and the FMs go
    on learning; a run stopped within the second epoch and resumed ends where one run does."""
    from streamfm.run import resume

    X, y = data()
    path = write(tmp_path, X, y)
    conf = Config(method="llfm-jo", anchors=4, rank=3, anchor_epochs=1)
    opts = dict(quiet=True, early_stop=0, batch_rows=64, shuffle_buffer=64)
    train([path], str(tmp_path / "one"), config=conf, options=TrainOptions(epochs=1, **opts))
    train([path], str(tmp_path / "two"), config=conf, options=TrainOptions(epochs=2, **opts))
    one, two = load(str(tmp_path / "one")).model, load(str(tmp_path / "two")).model
    np.testing.assert_array_equal(two.params["Z"], one.params["Z"])
    assert not np.array_equal(two.params["W"], one.params["W"])
    train([path], str(tmp_path / "moving"), config=replace(conf, anchor_epochs=0),
          options=TrainOptions(epochs=2, **opts))
    assert not np.array_equal(load(str(tmp_path / "moving")).model.params["Z"], one.params["Z"])
    stopped = train([path], str(tmp_path / "stop"), config=conf,
                    options=TrainOptions(epochs=2, max_rows=len(y) + 100, **opts))
    assert stopped["stopped"] == "max_rows"
    resume(str(tmp_path / "stop"))
    np.testing.assert_array_equal(load(str(tmp_path / "stop")).model.params["Z"], two.params["Z"])
    np.testing.assert_array_equal(load(str(tmp_path / "stop")).model.params["W"], two.params["W"])


def test_a_model_continued_with_model_options_keeps_its_resolved_anchor_step(tmp_path):
    """Continuing a model with the same options (eta_anchor left None) is no change of hyper-parameters."""
    X, y = data()
    path = write(tmp_path, X, y)
    opts = TrainOptions(epochs=1, quiet=True, early_stop=0)
    train([path], str(tmp_path / "m"), config=Config(anchors=4, rank=3), options=opts)
    train([path], str(tmp_path / "m"), config=Config(anchors=4, rank=3), options=opts)
    assert load(str(tmp_path / "m")).model.config.eta_anchor == 0.3
