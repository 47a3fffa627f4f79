"""The streaming trainer and the model directory, through the Python API."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamfm.errors import InputError
from streamfm.models.config import Config
from streamfm.store.modeldir import ModelDir
from streamfm.run import load, resume, train
from streamfm.training.options import TrainOptions


def local_rules(n, p=3, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(0, 5, size=(4, p))
    normals = np.random.default_rng(98).normal(size=(4, p))
    c = rng.integers(0, 4, size=n)
    X = centres[c] + rng.normal(size=(n, p)) + shift
    y = (np.einsum("ij,ij->i", X - centres[c] - shift, normals[c]) > 0).astype(float)
    return X, y


def write_parquet(path, X, y, shards=1):
    path.mkdir(parents=True, exist_ok=True)
    for s, rows in enumerate(np.array_split(np.arange(len(y)), shards)):
        cols = {f"f{j}": X[rows, j] for j in range(X.shape[1])}
        cols["label"] = y[rows]
        pq.write_table(pa.table(cols), path / f"part-{s:05d}.parquet")
    return str(path)


OPTS = dict(batch_rows=64, shuffle_buffer=300, quiet=True)
CONF = dict(anchors=20, n_candidates=6, rebuild_every=150)  # m > K: the FAISS path is used


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    X, y = local_rules(1200, seed=1)
    Xv, yv = local_rules(400, seed=2)
    return {"train": write_parquet(root / "train", X, y, shards=3),
            "valid": write_parquet(root / "valid", Xv, yv)}


@pytest.mark.parametrize("method,bits", [("llfm-jo", None), ("fm", None), ("llfm-jo", 10)])
def test_stop_and_resume_equals_uninterrupted(tmp_path, data, method, bits):
    """``bits``: the hashed store (a table of 2^bits slots, lazily initialised, with collisions)."""
    conf = Config(method=method, **CONF)
    train(data["train"], tmp_path / "a", config=conf, options=TrainOptions(epochs=3, bits=bits, **OPTS))
    # stop mid-epoch (as a signal would), twice, at awkward row counts, then resume to the end
    r = train(data["train"], tmp_path / "b", config=conf,
              options=TrainOptions(epochs=3, max_rows=1000, bits=bits, **OPTS))
    assert r["stopped"] == "max_rows" and r["epoch"] == 0
    assert ModelDir(tmp_path / "b").read_manifest()["training"]["status"] == "interrupted"
    man = ModelDir(tmp_path / "b").read_manifest()
    man["training"]["options"]["max_rows"] = 1337
    # resume honours the stored options: patch max_rows in the stored run to stop once more
    ModelDir(tmp_path / "b").save(man, ModelDir(tmp_path / "b").load(mmap_mode=None)[1])
    r = resume(tmp_path / "b")
    assert r["stopped"] == "max_rows"
    man = ModelDir(tmp_path / "b").read_manifest()
    man["training"]["options"]["max_rows"] = 0
    ModelDir(tmp_path / "b").save(man, ModelDir(tmp_path / "b").load(mmap_mode=None)[1])
    r = resume(tmp_path / "b")
    assert r["stopped"] is None and r["epochs_done"] == 3
    a, b = load(tmp_path / "a"), load(tmp_path / "b")
    assert a.model.store == b.model.store and a.model.store.hashed == (bits is not None)
    for name in ("b", "W", "V", "Z") + (("tags",) if bits else ()):
        np.testing.assert_allclose(b.model.params[name], a.model.params[name], rtol=1e-12, atol=1e-14)
    if bits:
        assert a.model.counters["collisions"] > 0 and a.model.counters == b.model.counters
    assert a.model.t == b.model.t == 3 * 1200
    ma, mb = ModelDir(tmp_path / "a").read_metrics(), ModelDir(tmp_path / "b").read_metrics()
    assert [m["train_loss"] for m in ma] == pytest.approx([m["train_loss"] for m in mb])


@pytest.mark.parametrize("prefetch", [1, None])
def test_read_ahead_does_not_change_the_model(tmp_path, data, prefetch):
    """Reading, shuffling and standardising ahead in a thread (one chunk, or the default depth)
    trains exactly what the serial loop trains."""
    conf = Config(**CONF)
    train(data["train"], tmp_path / "ref", config=conf, options=TrainOptions(epochs=2, prefetch=0, **OPTS))
    train(data["train"], tmp_path / "m", config=conf, options=TrainOptions(epochs=2, prefetch=prefetch, **OPTS))
    a, b = load(tmp_path / "ref"), load(tmp_path / "m")
    for name in ("b", "W", "V", "Z"):
        np.testing.assert_array_equal(b.model.params[name], a.model.params[name])


def test_n_epochs_equals_k_epochs_then_continue_by_resume(tmp_path, data):
    conf = Config(**CONF)
    train(data["train"], tmp_path / "a", config=conf, options=TrainOptions(epochs=2, **OPTS))
    train(data["train"], tmp_path / "b", config=conf, options=TrainOptions(epochs=2, max_rows=1200, **OPTS))
    assert ModelDir(tmp_path / "b").read_manifest()["training"]["epoch"] == 1  # stopped at the epoch's end
    man = ModelDir(tmp_path / "b").read_manifest()
    man["training"]["options"]["max_rows"] = 0
    ModelDir(tmp_path / "b").save(man, ModelDir(tmp_path / "b").load(mmap_mode=None)[1])
    resume(tmp_path / "b")
    for name in ("V", "Z"):
        np.testing.assert_allclose(load(tmp_path / "b").model.params[name], load(tmp_path / "a").model.params[name])


def test_training_writes_metrics_and_learns(tmp_path, data):
    r = train(data["train"], tmp_path / "m", valid=data["valid"], options=TrainOptions(epochs=4, **OPTS),
              config=Config(**CONF))
    recs = ModelDir(tmp_path / "m").read_metrics()
    assert [m["epoch"] for m in recs] == [1, 2, 3, 4]
    assert recs[-1]["valid"]["accuracy"] > 0.85 and "auc" in recs[-1]["valid"]
    assert recs[-1]["train_loss"] < recs[0]["train_loss"]
    assert all(0 <= m["input_wait_seconds"] <= m["seconds"] for m in recs)
    assert 0 <= recs[-1]["candidate_miss_rate"] < 0.05 and recs[-1]["wanted_more_rate"] < 0.01
    man = ModelDir(tmp_path / "m").read_manifest()
    assert man["training"]["status"] == "complete" and man["model"]["classes"] == [0.0, 1.0]
    # the arrays load memory-mapped, not read into RAM
    assert isinstance(ModelDir(tmp_path / "m").load()[1]["V"], np.memmap)
    X, y = local_rules(300, seed=3)
    assert (load(tmp_path / "m").predict(X) == y).mean() > 0.85
    assert r["last"]["epoch"] == 4


def test_incremental_training_improves_on_data_like_it(tmp_path, data):
    X2, y2 = local_rules(1200, seed=4)
    Xt, yt = local_rules(600, seed=5)
    second = write_parquet(tmp_path / "second", X2, y2)
    train(data["train"], tmp_path / "m", options=TrainOptions(epochs=1, **OPTS), config=Config(**CONF))
    before = load(tmp_path / "m")
    ll = lambda m: -np.mean(np.log(np.clip(m.predict_proba(Xt)[np.arange(len(yt)), yt.astype(int)], 1e-15, 1)))
    ll0, t0, anchors0 = ll(before), before.model.t, np.array(before.model.params["Z"])
    train(second, tmp_path / "m", options=TrainOptions(epochs=2, **OPTS))
    after = load(tmp_path / "m")
    assert ll(after) < ll0
    assert after.model.t == t0 + 2 * 1200  # the optimiser step continues
    for name in ("shift", "scale", "centred"):  # scaling kept
        np.testing.assert_array_equal(getattr(after.standardizer, name), getattr(before.standardizer, name))
    assert not np.allclose(np.array(after.model.params["Z"]), anchors0)  # anchors kept and learned on
    assert len(ModelDir(tmp_path / "m").read_manifest()["training"]["history"]) == 1


def test_incremental_errors(tmp_path, data):
    train(data["train"], tmp_path / "m", options=TrainOptions(epochs=1, **OPTS), config=Config(**CONF))
    X, y = local_rules(50, p=4, seed=6)
    wide = write_parquet(tmp_path / "wide", X, y)
    with pytest.raises(InputError, match="beyond the model's 3"):
        train(wide, tmp_path / "m", options=TrainOptions(epochs=1, **OPTS))
    X, y = local_rules(50, seed=6)
    y[:3] = 7.0
    other = write_parquet(tmp_path / "other", X, y)
    with pytest.raises(InputError, match="7"):
        train(other, tmp_path / "m", options=TrainOptions(epochs=1, **OPTS))
    r = train(other, tmp_path / "m", options=TrainOptions(epochs=1, ignore_unknown_labels=True, **OPTS))
    assert r["last"]["unknown_labels_skipped"] == 3
    with pytest.raises(InputError, match="hyper-parameters cannot change"):
        train(other, tmp_path / "m", config=Config(rank=3), options=TrainOptions(epochs=1, **OPTS))


def test_interrupted_run_must_be_resumed_not_extended(tmp_path, data):
    train(data["train"], tmp_path / "m", options=TrainOptions(epochs=2, max_rows=100, **OPTS), config=Config(**CONF))
    with pytest.raises(InputError, match="--resume"):
        train(data["train"], tmp_path / "m", options=TrainOptions(epochs=1, **OPTS))


def test_failed_scan_leaves_no_model(tmp_path):
    bad = tmp_path / "bad.svm"
    bad.write_text("1 1:0.5\n0 2:x\n")
    with pytest.raises(InputError):
        train(str(bad), tmp_path / "m", options=TrainOptions(quiet=True))
    assert not ModelDir(tmp_path / "m").exists()


def test_many_anchors_search_an_ivf_that_widens_on_misses_and_resumes_exactly(tmp_path):
    """m >= IVF_FROM: an approximate (IVF) search; on data without cluster structure
    it misses, the model scans more lists, and a stopped run resumes to the same model."""
    from streamfm.coding.search import IVF_FROM, IVF_RETRAIN, NPROBE

    rng = np.random.default_rng(5)
    X = rng.normal(size=(5000, 20))  # isotropic in 20 dimensions: hard for an approximate search
    y = (X[:, 0] * X[:, 1] > 0).astype(float)
    path = write_parquet(tmp_path / "d", X, y)
    conf = Config(anchors=IVF_FROM, rank=2, rebuild_every=1000)
    opts = dict(batch_rows=500, shuffle_buffer=1000, sample_size=4000, quiet=True)
    train(path, tmp_path / "a", config=conf, options=TrainOptions(epochs=2, **opts))
    a = load(tmp_path / "a").model
    assert a.search.nprobe > NPROBE  # it missed, and widened
    assert a.metrics()["candidate_miss_rate"] < 0.01
    train(path, tmp_path / "b", config=conf, options=TrainOptions(epochs=2, max_rows=6100, **opts))
    resume(tmp_path / "b")
    b = load(tmp_path / "b").model
    assert b.search.nprobe == a.search.nprobe
    for name in ("b", "W", "V", "Z"):
        np.testing.assert_allclose(b.params[name], a.params[name], rtol=1e-12, atol=1e-14)
    # 10 rebuilds, the lists trained at the 1st and the (IVF_RETRAIN + 1)th; the
    # stop (after the 7th) fell between: the resumed run routed with the saved lists
    assert a.search.ivf_uses == b.search.ivf_uses == 10 - IVF_RETRAIN
    np.testing.assert_array_equal(b.search.centroids, a.search.centroids)
