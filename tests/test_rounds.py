"""The engine-free rounds API: exact row budgets, rounds == one pass, and merging by rows."""
import numpy as np
import pytest

from streamfm.io.chunk import Chunk
from streamfm.models.config import Config
from streamfm.models.core import LLFMModel
from streamfm.models.trained import TrainedModel
from streamfm.preprocess.standardize import Standardizer
from streamfm.training.rounds import RowStream, merge_states, train_for_rows


def chunks_of(X, y, sizes):
    out, a = [], 0
    for s in sizes:
        out.append(Chunk.from_dense(X[a:a + s], y[a:a + s]))
        a += s
    return out


def make_trained(adagrad=False, p=3, seed=0):
    model = LLFMModel(Config(anchors=8, n_candidates=4, rebuild_every=50, seed=seed,
                             optimizer="adagrad" if adagrad else "normalized"), p, "binary")
    model.init_params()
    rng = np.random.default_rng(7)
    model.init_anchors(Chunk.from_dense(rng.normal(size=(200, p)), np.zeros(200)))
    model.set_epoch_rows(300)
    model.set_feature_rows(np.full(p, 300))
    std = Standardizer(np.zeros(p), np.ones(p), True)
    return TrainedModel(model, std, np.array([0.0, 1.0]))


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3))
    return X, (X[:, 0] * X[:, 1] > 0).astype(float)


def test_row_stream_cuts_at_exact_counts(rows):
    X, y = rows
    stream = RowStream(chunks_of(X, y, [70, 0, 100, 130]))
    got = [stream.next_chunk(64).n_rows for _ in range(5)]
    assert got == [64, 6, 64, 36, 64]
    c = stream.next_chunk()
    stream.unread(c)
    assert stream.next_chunk().n_rows == 66 and stream.next_chunk() is None and stream.exhausted


def test_rounds_of_any_size_equal_one_pass(rows):
    X, y = rows
    one, many = make_trained(), make_trained()
    r = train_for_rows(one, RowStream(chunks_of(X, y, [300])))
    assert r.rows == 300 and r.exhausted
    stream = RowStream(chunks_of(X, y, [50, 90, 160]))
    sizes = []
    while not stream.exhausted:
        sizes.append(train_for_rows(many, stream, 37).rows)
    assert sum(sizes) == 300 and set(sizes[:-2]) == {37}
    for name in ("b", "W", "V", "Z"):
        np.testing.assert_allclose(many.model.params[name], one.model.params[name], rtol=1e-12, atol=1e-14)
    assert many.model.t == one.model.t == 300


def test_until_stops_before_a_chunk_and_keeps_it(rows):
    X, y = rows
    trained = make_trained()
    stream = RowStream(chunks_of(X, y, [100, 100, 100]))
    r = train_for_rows(trained, stream, until=lambda done: done.rows >= 150)
    assert r.stopped and r.rows == 200 and not r.exhausted
    assert train_for_rows(trained, stream).rows == 100


def test_a_round_times_itself_and_its_wait_for_input(rows):
    """wait_seconds is the time next_chunk blocked: a stream that sleeps before every chunk shows it."""
    import time

    X, y = rows

    def slow(chunks, pause=0.05):
        for c in chunks:
            time.sleep(pause)
            yield c

    r = train_for_rows(make_trained(), RowStream(slow(chunks_of(X, y, [100, 100, 100]))))
    assert r.rows == 300 and 0.14 <= r.wait_seconds <= r.seconds  # three pauses of 0.05 s
    fast = train_for_rows(make_trained(), RowStream(chunks_of(X, y, [100, 100, 100])))
    assert 0 <= fast.wait_seconds < 0.05 <= r.wait_seconds


@pytest.mark.parametrize("adagrad", [False, True])
def test_merge_is_the_row_weighted_average(rows, adagrad):
    X, y = rows
    base = make_trained(adagrad)
    base_state = base.model.state()
    states, counts = [], [40, 100, 0, 60]
    a = 0
    for k, n in enumerate(counts):
        w = make_trained(adagrad)
        if n:
            train_for_rows(w, RowStream(chunks_of(X[a:], y[a:], [n])), n)
        a += n
        states.append(w.model.state())
    states[1][0]["search_nprobe"] = 16  # one worker's IVF had widened: all keep it widened
    meta, arrays = merge_states(states, counts, base=base_state)
    assert meta["search_nprobe"] == 16
    for name in ("b", "W", "V", "Z"):
        stack = np.stack([np.asarray(s[1][name]) for s in states])
        np.testing.assert_allclose(arrays[name], np.average(stack, axis=0, weights=counts), rtol=1e-12, atol=1e-15)
    assert meta["t"] == base_state[0]["t"] + sum(counts)
    assert meta["counters"]["rows"] == sum(counts)
    assert meta["counters"]["k_sum"] == sum(s[0]["counters"]["k_sum"] for s in states)
    assert meta["rows_since_rebuild"] == 0 and "index_Z" not in arrays
    np.testing.assert_array_equal(arrays["feature_rows"], 300)  # the data's, passed on unchanged
    if adagrad:  # accumulators: the start plus every worker's increment
        for name in ("Ab", "AW", "AV"):
            start = np.asarray(base_state[1][name])
            want = start + sum(np.asarray(s[1][name]) - start for s in states)
            np.testing.assert_allclose(arrays[name], want, rtol=1e-12)
    # the merged state loads and continues
    m = make_trained(adagrad)
    m.model.load_state(meta, arrays)
    train_for_rows(m, RowStream(chunks_of(X, y, [50])))
    assert m.model.t == meta["t"] + 50


def test_merge_of_one_state_is_that_state(rows):
    s = make_trained().model.state()
    assert merge_states([s], [10]) is s
    with pytest.raises(ValueError):
        merge_states([s, s], [1])


def test_load_state_copies_into_own_arrays_and_accepts_read_only(rows):
    X, y = rows
    a, b = make_trained(), make_trained(seed=5)
    train_for_rows(a, RowStream(chunks_of(X, y, [120])))
    meta, arrays = a.model.state()
    frozen = {k: np.array(v) for k, v in arrays.items()}
    for v in frozen.values():
        v.flags.writeable = False
    V_before = b.model.params["V"]
    b.model.load_state(meta, frozen)
    assert b.model.params["V"] is V_before and b.model.params["V"].flags.writeable
    train_for_rows(a, RowStream(chunks_of(X[120:], y[120:], [100])))
    train_for_rows(b, RowStream(chunks_of(X[120:], y[120:], [100])))
    np.testing.assert_allclose(b.model.params["V"], a.model.params["V"], rtol=1e-12)
