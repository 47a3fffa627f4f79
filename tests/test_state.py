"""The typed model state: model -> state -> model directory -> state -> model, merging, restoring in place."""
import numpy as np
import pytest

from streamfm.coding.search import SearchState
from streamfm.io.chunk import Chunk
from streamfm.models.config import Config
from streamfm.models.core import LLFMModel
from streamfm.models.state import ModelState
from streamfm.models.trained import TrainedModel
from streamfm.preprocess.standardize import Standardizer
from streamfm.store.modeldir import ModelDir
from streamfm.training.rounds import merge_states

P = 3


def make_model(adagrad=True, seed=0, method="llfm-jo"):
    model = LLFMModel(Config(method=method, anchors=8, n_candidates=4, rebuild_every=50, seed=seed,
                             optimizer="adagrad" if adagrad else "normalized"), P, "binary")
    model.init_params()
    rng = np.random.default_rng(7)
    model.init_anchors(Chunk.from_dense(rng.normal(size=(200, P)), np.zeros(200)))
    model.set_epoch_rows(300)
    model.set_feature_rows(np.full(P, 300))
    return model


def rows(n, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, P))
    return Chunk.from_dense(X, np.zeros(n)), (X[:, 0] * X[:, 1] > 0).astype(float)


def train(model, n, seed=3):
    chunk, y = rows(n, seed)
    model.partial_fit_chunk(chunk, y)
    return model


def assert_same_state(a: ModelState, b: ModelState):
    assert a.config.to_dict() == b.config.to_dict()
    for name in ("n_features", "task", "n_outputs", "coding_scale", "t", "t0", "counters"):
        assert getattr(a, name) == getattr(b, name), name
    assert a.params.keys() == b.params.keys()
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name], err_msg=name)
    np.testing.assert_array_equal(a.feature_rows, b.feature_rows)
    for name in ("rows_since_rebuild", "nprobe", "ivf_uses"):
        assert getattr(a.search, name) == getattr(b.search, name), name
    for name in ("snapshot", "centroids"):
        x, y = getattr(a.search, name), getattr(b.search, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=name)


def test_the_manifest_form_keeps_the_on_disk_names():
    """A model directory written before ModelState existed holds these names; they must not change
    (``anchors_auto`` came later: a manifest without it reads as False)."""
    meta, arrays = train(make_model(), 120).state()
    assert list(meta) == ["config", "n_features", "task", "n_outputs", "coding_scale", "t", "t0", "init_sigma",
                          "rows_since_rebuild", "search_nprobe", "ivf_uses", "counters", "store", "anchors_auto"]
    old = {k: v for k, v in meta.items() if k != "anchors_auto"}
    assert ModelState.from_manifest(old, arrays).anchors_auto is False
    assert meta["store"] == {"kind": "exact", "bits": 0, "dtype": "float64"}
    assert set(arrays) == {"b", "W", "V", "Z", "Ab", "AW", "AV", "feature_rows", "index_Z"}
    meta, arrays = make_model(adagrad=False, method="fm").state()
    assert set(arrays) == {"b", "W", "V", "Z", "feature_rows"}


def test_round_trip_through_the_model_directory_continues_exactly(tmp_path):
    model = train(make_model(), 120)
    trained = TrainedModel(model, Standardizer(np.zeros(P), np.ones(P), np.zeros(P, bool)), np.array([0.0, 1.0]))
    meta, arrays = trained.state()
    ModelDir(tmp_path / "m").save({"model": meta}, arrays)
    manifest, stored = ModelDir(tmp_path / "m").load(mmap_mode="c")
    state = ModelState.from_manifest(manifest["model"], stored)
    assert_same_state(state, ModelState.capture(model))
    back = TrainedModel.from_state(manifest["model"], stored).model
    assert isinstance(back.params["V"], np.memmap)  # a loaded model maps its arrays, copies nothing
    assert_same_state(ModelState.capture(back), ModelState.capture(model))
    # the reloaded model searches from the saved snapshot: it continues as the original does
    train(model, 200, seed=4)
    train(back, 200, seed=4)
    assert_same_state(ModelState.capture(back), ModelState.capture(model))


def test_an_older_manifest_without_the_search_width_loads():
    meta, arrays = train(make_model(), 60).state()
    old = {k: v for k, v in meta.items() if k not in ("search_nprobe", "ivf_uses")}
    state = ModelState.from_manifest(old, arrays)
    assert state.search.nprobe == 0 and state.search.ivf_uses == 0
    np.testing.assert_array_equal(state.search.snapshot, arrays["index_Z"])


def _reference_merge(states, rows, base=None):
    """rounds.merge_states as the (meta, arrays) dictionaries were merged before ModelState owned it."""
    if len(states) == 1:
        return states[0]
    n = np.asarray(rows, dtype=np.float64)
    weights = n / n.sum() if n.sum() > 0 else np.full(len(n), 1.0 / len(n))
    metas, arrays = [m for m, _ in states], [a for _, a in states]

    def add(values, start):
        if start is None:
            out = np.array(values[0], dtype=np.result_type(values[0]), copy=True)
            for v in values[1:]:
                out = out + v
            return out
        start = np.asarray(start)
        out = np.array(start, copy=True)
        for v in values:
            out = out + (np.asarray(v) - start)
        return out

    merged = {}
    for name in ("b", "W", "V", "Z"):
        out = np.multiply(arrays[0][name], weights[0])
        for w, a in zip(weights[1:], arrays[1:]):
            out += w * np.asarray(a[name])
        merged[name] = out
    for name in ("Ab", "AW", "AV"):
        if name in arrays[0]:
            merged[name] = add([a[name] for a in arrays], None if base is None else base[1][name])
    if "feature_rows" in arrays[0]:
        merged["feature_rows"] = arrays[0]["feature_rows"]
    meta = dict(metas[0])
    meta["t"] = int(add([m["t"] for m in metas], None if base is None else base[0]["t"]))
    meta["counters"] = {k: int(add([m["counters"][k] for m in metas],
                                   None if base is None else base[0]["counters"][k])) for k in metas[0]["counters"]}
    meta["rows_since_rebuild"] = 0
    meta["ivf_uses"] = 0
    meta["search_nprobe"] = max(int(m.get("search_nprobe", 0)) for m in metas)
    return meta, merged


@pytest.mark.parametrize("adagrad", [False, True])
@pytest.mark.parametrize("with_base", [False, True])
@pytest.mark.parametrize("counts", [[40, 100, 0, 60], [0, 0]])
def test_merge_equals_the_dictionary_merge(adagrad, with_base, counts):
    base = make_model(adagrad).state()
    states = []
    for k, n in enumerate(counts):
        model = make_model(adagrad)
        if n:
            train(model, n, seed=10 + k)
        states.append(model.state())
    states[0][0]["search_nprobe"] = 16
    want_meta, want_arrays = _reference_merge(states, counts, base if with_base else None)
    got = ModelState.merge([ModelState.from_manifest(*s) for s in states], counts,
                           ModelState.from_manifest(*base) if with_base else None)
    meta, arrays = got.manifest()
    assert meta == want_meta
    assert arrays.keys() == want_arrays.keys()
    for name in arrays:
        assert arrays[name].dtype == want_arrays[name].dtype
        np.testing.assert_array_equal(arrays[name], want_arrays[name], err_msg=name)
    # the manifest-form API gives the same, and keeps what else the first meta holds
    states[0][0]["classes"] = [0.0, 1.0]
    meta2, arrays2 = merge_states(states, counts, base if with_base else None)
    assert meta2 == dict(want_meta, classes=[0.0, 1.0])
    for name in arrays:
        np.testing.assert_array_equal(arrays2[name], arrays[name])
    assert got.search == SearchState(nprobe=16)


def test_merge_refuses_mismatched_counts():
    s = ModelState.capture(make_model())
    assert ModelState.merge([s], [5]) is s
    with pytest.raises(ValueError):
        ModelState.merge([s, s], [1])
    with pytest.raises(ValueError):
        ModelState.merge([s, s], [1, -1])


def test_restore_copies_into_the_models_own_arrays_and_keeps_its_index():
    a, b = train(make_model(), 120), train(make_model(), 80, seed=9)  # b: other rows, another snapshot
    state = ModelState.capture(a).copy()
    own = {name: b.params[name] for name in b.params}
    b.search.current(b.params["Z"])  # b has an index of its own, from another snapshot
    state.restore(b)
    for name, arr in own.items():
        assert b.params[name] is arr  # the same memory, round after round
        np.testing.assert_array_equal(arr, a.params[name])
    assert b.search.index is None  # another snapshot: rebuilt before the next search
    index = b.search.current(b.params["Z"])
    ModelState.capture(b).copy().restore(b)  # its own state: the index stays
    assert b.search.index is index
    train(a, 100, seed=11)
    train(b, 100, seed=11)
    assert_same_state(ModelState.capture(b), ModelState.capture(a))


def test_a_copy_does_not_move_with_the_model():
    model = train(make_model(), 60)
    snap = ModelState.capture(model).copy()
    live = ModelState.capture(model)
    before = {k: v.copy() for k, v in snap.params.items()}
    train(model, 60, seed=8)
    assert live.params["V"] is model.params["V"]  # captured, not copied
    for name, arr in snap.params.items():
        np.testing.assert_array_equal(arr, before[name])
    assert snap.t == 60 and model.t == 120


def test_a_pickled_model_rebuilds_its_index_and_continues_exactly():
    import pickle

    a = train(make_model(), 120)
    b = pickle.loads(pickle.dumps(a))
    assert a.search.index is not None and b.search.index is None
    train(a, 100, seed=12)
    train(b, 100, seed=12)
    assert_same_state(ModelState.capture(b), ModelState.capture(a))
