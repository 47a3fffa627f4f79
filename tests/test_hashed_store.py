"""The hashed parameter store: its addressing and lazy initial factors, its kernels against a slow
reference, and the model it trains against the exact store's."""
import numpy as np
import pytest
import scipy.sparse as sp

import hashed_reference as href
from streamfm.io.chunk import Chunk
from streamfm.kernels.hashing import (feature_slots, fill_initial_factors, initial_rows, pair_key, seed_key,
                                      touch_features)
from streamfm.kernels.llfm import METHOD_CODES, N_STATS, SGD, ST_COLLISIONS, predict_rows, train_rows
from streamfm.kernels.losses import TASK_CODES
from streamfm.models.config import Config
from streamfm.models.core import LLFMModel
from streamfm.models.memory import StoreSpec, hashed_spec
from streamfm.models.state import ModelState
from streamfm.models.trained import TrainedModel
from streamfm.preprocess.standardize import Standardizer
from streamfm.store.modeldir import ModelDir


def test_addressing_and_initial_factors_match_the_python_reference():
    skey = seed_key(7)
    assert int(skey) == href.seed_key(7)
    for i, j in [(0, 0), (3, 17), (1023, 2 ** 24 - 1), (5, 123456789)]:
        assert int(pair_key(i, j)) == href.pair_key(i, j)
    V = np.empty((2, 3, 2, 3))
    fill_initial_factors(V, 0.5, skey, 4)
    for a in range(2):
        for j in range(3):
            _, tag = href.slot_and_tag(4 + a, j, 20)
            want = [0.5 * href.initial_factor(href.seed_key(7), tag, u) for u in range(6)]
            np.testing.assert_allclose(V[a, j].ravel(), want, rtol=1e-13)
            np.testing.assert_array_equal(initial_rows(np.array([tag], np.uint32), 2, 3, 0.5, skey)[0], V[a, j])
    many = np.empty((1, 4000, 1, 5))
    fill_initial_factors(many, 1.0, skey, 0)
    assert abs(many.mean()) < 0.05 and abs(many.std() - 1.0) < 0.05  # standard normal deviates


def test_touch_initialises_once_and_prediction_touches_nothing():
    bits, C, r = 6, 1, 2
    S = 1 << bits
    tags, dirty, V = np.zeros(S, np.uint32), np.zeros(S, np.uint8), np.zeros((1, S, C, r), np.float32)
    slots = np.empty(3, np.int64)
    shift, skey = np.uint64(64 - bits), seed_key(0)
    looked_up = np.empty(3, np.int64)
    feature_slots(0, np.array([5, 9, 5]), 10, shift, looked_up)
    touch_features(0, np.array([5, 9, 5]), 10, shift, tags, dirty, V, 0.1, skey, slots)
    np.testing.assert_array_equal(looked_up, slots)
    assert slots[0] == slots[2] and np.count_nonzero(tags) == len(set(slots))
    assert set(np.flatnonzero(dirty)) == set(slots)
    for s, j in zip(slots, (5, 9)):
        assert (s, tags[s]) == href.slot_and_tag(0, j, bits)
        np.testing.assert_allclose(V[0, s, 0], [0.1 * href.initial_factor(href.seed_key(0), tags[s], u)
                                                for u in range(r)], rtol=1e-6)


def _sparse_rows(rng, n, p, density):
    X = sp.random(n, p, density=density, random_state=np.random.RandomState(rng.integers(1 << 30)),
                  data_rvs=lambda k: rng.normal(size=k), format="csr")
    X.sort_indices()
    return X.indptr.astype(np.int64), X.indices.astype(np.int32), X.data.astype(np.float64)


@pytest.mark.parametrize("bits", [4, 20])  # 16 slots for 35 pairs (collisions), and none
@pytest.mark.parametrize("method,task,C,glob", [("llfm-do", "binary", 1, False), ("llfm-jo", "binary", 1, True),
                                                ("llfm-apl", "softmax", 3, False), ("llfm-jo", "regression", 1,
                                                                                     False)])
def test_hashed_kernel_matches_the_slot_by_slot_reference(bits, method, task, C, glob):
    rng = np.random.default_rng(5)
    p, r, m, n = 5, 3, 6, 8
    S, sigma, seed = 1 << bits, 0.3, 11
    indptr, indices, data = _sparse_rows(rng, n, p, 0.7)
    y = rng.normal(size=n) if task == "regression" else rng.integers(0, max(C, 2), size=n).astype(float)
    phi = rng.normal(size=(n, p))
    Z = rng.normal(size=(m, p))
    b = rng.normal(size=(m + glob, C)) * 0.3
    W, V = np.zeros((1, S, C), np.float64), np.zeros((1, S, C, r), np.float64)
    tags, dirty = np.zeros(S, np.uint32), np.zeros(S, np.uint8)
    T = {"W": np.zeros((S, C)), "V": np.zeros((S, C, r)), "tags": np.zeros(S, np.int64)}
    Zr, br = Z.copy(), b.copy()
    cand = np.tile(np.arange(m, dtype=np.int64), (n, 1))
    losses, ks, stats = np.zeros(n), np.zeros(n, np.int64), np.zeros(N_STATS, np.int64)
    eta, eta_z, zscale = 0.05, 0.1, 1.3
    table = (np.uint64(64 - bits), tags, dirty, sigma, seed_key(seed))
    train_rows(METHOD_CODES[method], TASK_CODES[task], (indptr, indices, data, y, np.zeros(0)), phi, cand, (b, W, V, Z),
               tuple(np.zeros((1,) * d) for d in (2, 3, 4)), (3, 0.7, 0.4, zscale, 1e9),
               (eta, 1e18, eta_z, 0.0, 0.0, np.zeros(len(data)), SGD, 1.0, glob, True,
                np.ones(m + glob), np.inf), 0, (losses, ks, stats), table)
    hits = 0
    for row in range(n):
        lo, hi = indptr[row], indptr[row + 1]
        loss, k, h = href.sgd_step(method, task, indices[lo:hi], data[lo:hi], y[row], phi[row], br, Zr, T, bits,
                                   sigma, href.seed_key(seed), 3, 0.7, 0.4, eta, eta_z, zscale, glob=glob)
        hits += h
        assert losses[row] == pytest.approx(loss, rel=1e-10) and ks[row] == k
    assert stats[ST_COLLISIONS] == hits and (hits > 0) == (bits == 4)
    np.testing.assert_array_equal(tags, T["tags"])
    np.testing.assert_array_equal(dirty != 0, tags != 0)
    for got, want, name in ((W[0], T["W"], "W"), (V[0], T["V"], "V"), (b, br, "b"), (Z, Zr, "Z")):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=name)
    # prediction reads the same slots and touches none: it runs on read-only arrays (a loaded model)
    f, kp = np.zeros((n, C)), np.zeros(n, np.int64)
    before = tags.copy()
    for a in (b, W, V, Z, tags, dirty):
        a.setflags(write=False)
    predict_rows(METHOD_CODES[method], (indptr, indices, data), phi, cand, (b, W, V, Z), (3, 0.7, 0.4), glob,
                 (f, kp), table)
    np.testing.assert_array_equal(tags, before)
    import reference as ref
    for row in range(n):
        lo, hi = indptr[row], indptr[row + 1]
        ids = ref.neighbours(method, phi[row], Z, 3, 0.7, 0.4)
        gamma, _ = ref.coding_fixed(method, phi[row], Z, ids, 0.7, 0.4)
        fms = list(zip(ids, gamma)) + ([(m, 1.0)] if glob else [])
        want = sum(w * href.fm_out(T, b[i], [href.slot_and_tag(i, j, bits)[0] for j in indices[lo:hi]],
                                   data[lo:hi])[0] for i, w in fms)
        np.testing.assert_allclose(f[row], want, rtol=1e-9, atol=1e-12)


P = 4


def make_model(store=None, method="llfm-jo", optimizer="adagrad", seed=0, glob=False):
    model = LLFMModel(Config(method=method, anchors=8, n_candidates=4, rebuild_every=50, seed=seed,
                             optimizer=optimizer, global_fm=glob), P, "binary", store=store)
    model.init_params()
    rng = np.random.default_rng(7)
    model.init_anchors(Chunk.from_dense(rng.normal(size=(200, P)), np.zeros(200)))
    model.set_epoch_rows(300)
    model.set_feature_rows(np.full(P, 300))
    return model


def rows(n, seed=3, sparse=False, keep=slice(None)):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, P))
    if sparse:
        X[rng.random(size=X.shape) < 0.4] = 0.0
        X = X[keep]
        return Chunk.from_scipy(sp.csr_matrix(X), np.zeros(len(X))), (X[:, 0] * X[:, 1] >= 0).astype(float)
    return Chunk.from_dense(X, np.zeros(n)), (X[:, 0] * X[:, 1] > 0).astype(float)


def pair_values(model):
    """The exact layout (n_fms, p, C[, r]) of the hashed model's table: each pair's slot."""
    out = {}
    n_fms = model.n_fms
    bits = model.store.bits
    slots = np.array([[href.slot_and_tag(i, j, bits)[0] for j in range(P)] for i in range(n_fms)])
    for name in ("W", "V", "AW", "AV"):
        if name in model.params:
            out[name] = model.params[name][0][slots]
    return out


@pytest.mark.parametrize("method,optimizer,glob,sparse", [("llfm-jo", "adagrad", False, False),
                                                          ("llfm-do", "normalized", True, True),
                                                          ("fm", "adagrad", False, True),
                                                          ("llfm-apl", "sgd", False, False)])
def test_the_stores_hold_the_same_model_when_no_slots_collide(method, optimizer, glob, sparse):
    """A float64 table without collisions is the exact store, bit for bit; the float32 one within
    float32's rounding."""
    exact = make_model(method=method, optimizer=optimizer, glob=glob)
    same = make_model(StoreSpec("hashed", 16, "float64"), method=method, optimizer=optimizer, glob=glob)
    narrow = make_model(hashed_spec(16), method=method, optimizer=optimizer, glob=glob)
    for seed in (3, 4):
        chunk, y = rows(150, seed, sparse)
        for model in (exact, same, narrow):
            model.partial_fit_chunk(chunk, y)
    assert same.counters["collisions"] == 0 and narrow.counters["collisions"] == 0
    for name, values in pair_values(same).items():
        np.testing.assert_array_equal(values, exact.params[name], err_msg=name)
    for name in ("b", "Z") + (("Ab",) if optimizer == "adagrad" else ()):
        np.testing.assert_array_equal(same.params[name], exact.params[name], err_msg=name)
    for name, values in pair_values(narrow).items():
        np.testing.assert_allclose(values, exact.params[name], rtol=2e-3, atol=2e-5, err_msg=name)
    test, _ = rows(100, 9, sparse)
    f_exact = exact.decision_chunk(test)
    np.testing.assert_array_equal(same.decision_chunk(test), f_exact)
    np.testing.assert_allclose(narrow.decision_chunk(test), f_exact, rtol=1e-3, atol=1e-4)
    touched = np.count_nonzero(narrow.table.tags)
    assert narrow.table.fill() == touched <= exact.n_fms * P and touched > 0


@pytest.mark.parametrize("method", ["llfm-jo", "fm"])
def test_hashed_chunks_train_as_one_chunk(method):
    one, three = make_model(hashed_spec(5), method=method), make_model(hashed_spec(5), method=method)
    chunk, y = rows(240, 3, sparse=True)
    one.partial_fit_chunk(chunk, y)
    for a in range(0, 240, 80):
        part, _ = rows(240, 3, sparse=True, keep=slice(a, a + 80))
        three.partial_fit_chunk(part, y[a:a + 80])
    assert one.counters["collisions"] > 0  # 32 slots: pairs share them
    for name in one.params:
        np.testing.assert_array_equal(three.params[name], one.params[name], err_msg=name)


def test_hashed_model_round_trips_through_the_model_directory_and_continues_exactly(tmp_path):
    model = make_model(hashed_spec(8))
    chunk, y = rows(120, 3, sparse=True)
    model.partial_fit_chunk(chunk, y)
    trained = TrainedModel(model, Standardizer(np.zeros(P), np.ones(P), np.zeros(P, bool)), np.array([0.0, 1.0]))
    meta, arrays = trained.state()
    assert meta["store"] == {"kind": "hashed", "bits": 8, "dtype": "float32"}
    ModelDir(tmp_path / "m").save({"model": meta}, arrays)
    manifest, stored = ModelDir(tmp_path / "m").load(mmap_mode="c")
    back = TrainedModel.from_state(manifest["model"], stored).model
    assert back.store == model.store and back.table is not None
    assert back.params["V"].dtype == np.float32
    test, _ = rows(50, 9, sparse=True)
    manifest_ro, stored_ro = ModelDir(tmp_path / "m").load(mmap_mode="r")
    read_only = TrainedModel.from_state(manifest_ro["model"], stored_ro).model
    np.testing.assert_array_equal(read_only.decision_chunk(test), model.decision_chunk(test))
    for seed in (4, 5):
        chunk, y = rows(100, seed, sparse=True)
        model.partial_fit_chunk(chunk, y)
        back.partial_fit_chunk(chunk, y)
    a, b = ModelState.capture(model), ModelState.capture(back)
    assert a.params.keys() == b.params.keys() and a.counters == b.counters
    for name in a.params:
        np.testing.assert_array_equal(b.params[name], a.params[name], err_msg=name)
