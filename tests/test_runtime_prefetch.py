"""The background prefetch: same items in the same order, errors where they happened, clean early exit."""
import threading

import numpy as np
import pytest

from streamfm.models.config import Config
from streamfm.runtime.prefetch import Prefetch
from streamfm.run import train
from streamfm.training.options import TrainOptions


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_items_in_order(depth):
    with Prefetch(iter(range(100)), depth) as it:
        assert list(it) == list(range(100))


def test_error_raised_at_its_item():
    def gen():
        yield 1
        yield 2
        raise ValueError("bad row")

    seen = []
    with pytest.raises(ValueError, match="bad row"):
        with Prefetch(gen(), 2) as it:
            for x in it:
                seen.append(x)
    assert seen == [1, 2]


def test_early_exit_stops_the_thread():
    made = []

    def gen():
        for i in range(10_000):
            made.append(i)
            yield i

    before = threading.active_count()
    with Prefetch(gen(), 2) as it:
        for x in it:
            if x == 5:
                break
    assert threading.active_count() == before
    assert len(made) <= 5 + 1 + 2 + 1  # consumed, the one in hand, the queue, one blocked


def test_training_is_the_same_with_and_without_prefetch(tmp_path):
    rng = np.random.default_rng(0)
    import pyarrow as pa
    import pyarrow.parquet as pq
    X = rng.normal(size=(3000, 6))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({**{f"f{j}": X[:, j] for j in range(6)}, "label": y}), path)
    params = {}
    for depth in (0, 2):
        out = tmp_path / f"m{depth}"
        train(str(path), str(out), config=Config(method="llfm-jo", anchors=8, rebuild_every=500),
              options=TrainOptions(epochs=2, batch_rows=256, shuffle_buffer=1000, quiet=True, prefetch=depth))
        from streamfm.run import load
        params[depth] = load(str(out)).model.params
    for name in ("b", "W", "V", "Z"):
        np.testing.assert_array_equal(np.asarray(params[0][name]), np.asarray(params[2][name]))


def test_hogwild_threads_train_every_row(tmp_path):
    """--threads 2 is opt-in Hogwild: not bit-for-bit reproducible, but it trains every row once and learns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from streamfm.run import load

    rng = np.random.default_rng(1)
    X = rng.normal(size=(4000, 5))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.int64)
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({**{f"f{j}": X[:, j] for j in range(5)}, "label": y}), path)
    for method in ("fm", "llfm-jo"):
        out = tmp_path / f"m-{method}"
        s = train(str(path), str(out), config=Config(method=method, anchors=8),
                  options=TrainOptions(epochs=2, batch_rows=512, quiet=True, threads=2))
        model = load(str(out)).model
        assert model.t == 8000 and model.counters["rows"] == 8000
        assert s["last"]["train_loss"] < 0.6
