"""The Ray engine's sparse rounds for the hashed store (engines/ray/sparse.py), without Ray: workers'
changed slots merge into the same model as their whole states do."""
import numpy as np
import scipy.sparse as sp

from streamfm.engines.ray import sparse
from streamfm.io.chunk import Chunk
from streamfm.models.config import Config
from streamfm.models.core import LLFMModel
from streamfm.models.memory import hashed_spec
from streamfm.models.state import ModelState

P = 40


def model():
    m = LLFMModel(Config(method="llfm-jo", anchors=6, n_candidates=4, rebuild_every=1000, seed=1), P, "binary",
                  store=hashed_spec(12))
    m.init_params()
    rng = np.random.default_rng(0)
    m.init_anchors(Chunk.from_dense(rng.normal(size=(100, P)), np.zeros(100)))
    m.set_feature_rows(np.full(P, 100))
    return m


def rows(seed, n=60):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, P)) * (rng.random((n, P)) < 0.1)  # sparse: a round touches few slots
    return Chunk.from_scipy(sp.csr_matrix(X), np.zeros(n)), (X[:, 0] > 0).astype(float)


def test_sparse_rounds_merge_as_whole_states():
    driver = model()
    driver.partial_fit_chunk(*rows(1))
    base = driver.state()
    workers = [LLFMModel.from_state(base[0], {k: np.array(v) for k, v in base[1].items()}) for _ in range(3)]
    counts = [60, 30, 0]
    for w, seed, n in zip(workers, (2, 3, 4), counts):
        w.table.take_round()
        if n:
            w.partial_fit_chunk(*rows(seed, n))
    whole = ModelState.merge([ModelState.capture(w) for w in workers], counts, ModelState.from_manifest(*base))
    packed = [sparse.pack(w) for w in workers]
    assert len(packed[2][1][sparse.SLOTS]) == 0 and 0 < len(packed[0][1][sparse.SLOTS]) < driver.table.slots // 4
    merged, send = sparse.merge(packed, counts, base, driver)
    assert merged.table is driver.table  # merged into the driver's own table, its changes marked
    for name in whole.params:
        np.testing.assert_array_equal(merged.params[name], whole.params[name], err_msg=name)
    assert merged.counters == whole.counters and merged.t == whole.t
    assert set(send[0]) >= {"config", "t"} and sparse.payload_bytes(send) < sparse.payload_bytes(base) / 4
    # a worker given the broadcast holds the merged model
    for w in workers:
        sparse.unpack(w, send)
        for name in whole.params:
            np.testing.assert_array_equal(w.params[name], whole.params[name], err_msg=name)
