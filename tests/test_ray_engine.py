"""Data-parallel training on Ray (a local instance with 2 CPUs, started here once).

Skipped where Ray is not installed (``pip install ".[test,ray]"`` installs it).
"""
import functools
import os
import socket
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamfm import cli
from streamfm.engines.ray.options import RayOptions
from streamfm.io.sources import open_source
from streamfm.models.config import Config
from streamfm.preprocess.shuffle import epoch_file_order
from streamfm.store.modeldir import ModelDir
from streamfm.run import load, resume, train
from streamfm.training.options import TrainOptions
from test_trainer import local_rules, write_parquet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAGIC = os.path.join(ROOT, "..", "shared", "data", "magic04", "magic04.csv")
CONF = dict(anchors=20, n_candidates=6, rebuild_every=150)  # m > K: the FAISS path is used


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    if not ray.is_initialized():
        # the actors import this checkout (streamfm need not be installed)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": ROOT}})
    yield ray
    ray.shutdown()


def _needs_split_per_run(ray):
    """Skip where this Ray reads a dataset per epoch (older than SPLIT_PER_RUN_FROM)."""
    from streamfm.engines.ray import data

    if not data.split_per_run(ray):
        pytest.skip(f"Ray {ray.__version__} has no per-execution file shuffle: a dataset per epoch")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("raydata")
    X, y = local_rules(1200, seed=1)
    Xv, yv = local_rules(400, seed=2)
    return {"train": write_parquet(root / "train", X, y, shards=3), "valid": write_parquet(root / "valid", Xv, yv)}


EXACT = dict(epochs=2, batch_rows=64, shuffle_buffer=300, quiet=True)


@pytest.fixture(scope="module")
def local_run(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("local") / "m"
    train(data["train"], path, config=Config(**CONF), options=TrainOptions(**EXACT))
    return path


def params(path):
    m = load(path).model
    return {k: np.asarray(m.params[k]) for k in ("b", "W", "V", "Z")}, m.t


@pytest.mark.parametrize("per_run", [True, False], ids=["split-per-run", "dataset-per-epoch"])
def test_one_worker_synced_every_chunk_equals_the_local_engine(ray_instance, data, local_run, tmp_path,
                                                              monkeypatch, per_run):
    """One Ray worker reads the local engine's stream (shard order, shuffle buffer): same parameters,
    whether the run reads one split every epoch or (a Ray older than SPLIT_PER_RUN_FROM) a dataset
    per epoch."""
    from streamfm.engines.ray import start

    if per_run:
        _needs_split_per_run(ray_instance)
    # datasets are made before any epoch is read (making one runs Ray tasks that need a free CPU,
    # which paused read tasks can hold: a deadlock on 5.8M rows, see make_datasets); with a split
    # per run, one dataset, split once: both epochs are read from it, in the local shard orders
    events = []
    read_parquet, attach = ray_instance.data.read_parquet, start.attach_streams

    @functools.wraps(read_parquet)  # keeps its signature (the engine looks at it)
    def made(*a, **k):
        events.append("make")
        return read_parquet(*a, **k)

    monkeypatch.setattr(ray_instance.data, "read_parquet", made)
    monkeypatch.setattr(start, "attach_streams", lambda *a: events.append("read") or attach(*a))
    monkeypatch.setattr(start, "split_per_run", lambda ray: per_run)
    train(data["train"], tmp_path / "ray", config=Config(**CONF),
          options=TrainOptions(**EXACT), engine=RayOptions(workers=1, sync_rows=64))
    assert events == (["make", "read"] if per_run else ["make", "make", "read", "read"])
    files = open_source(data["train"]).files  # the second epoch was read in a new order
    seed = Config(**CONF).seed
    assert epoch_file_order(files, 0, seed) != epoch_file_order(files, 1, seed)
    (a, ta), (b, tb) = params(local_run), params(tmp_path / "ray")
    assert ta == tb == 2 * 1200
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-10, atol=1e-12)
    rec = ModelDir(tmp_path / "ray").read_metrics()[-1]
    assert rec["engine"] == "ray" and rec["workers"] == 1 and rec["worker_peak_rss_mib"][0] > 0
    # where the epoch went: rounds within the epoch, the worker's time within its rounds, its wait within that
    assert 0 < rec["worker_input_wait_seconds"][0] <= rec["worker_round_seconds"][0] <= rec["round_seconds"] \
        <= rec["seconds"]


def test_one_split_reads_every_epoch_in_the_local_trainers_shard_order(ray_instance, tmp_path):
    """The run's one split, read again for epochs 2, 3 and 4 of a run (a resumed one): Ray Data
    goes through the shards in ``epoch_file_order`` of each epoch, whole and in order."""
    from types import SimpleNamespace

    from streamfm.engines.ray import data

    _needs_split_per_run(ray_instance)
    n = 6 * 50
    path = write_parquet(tmp_path / "shards", np.arange(n, dtype=float)[:, None], np.zeros(n), shards=6)
    source = open_source(path)
    opts = SimpleNamespace(shuffle=True, workers=1)
    with data.data_context(ray_instance, per_run=True):
        datasets = data.make_datasets(ray_instance, source, opts, 7, range(2, 5), per_run=True)
        split = datasets[2].streaming_split(1, equal=True)[0]
        for epoch in (2, 3, 4):
            rows = np.concatenate([t.column("f0").to_numpy() for t in split.iter_batches(
                batch_size=64, batch_format="pyarrow")]).astype(int)
            want = np.concatenate([np.arange(n)[int(os.path.basename(f)[5:10]) * 50:][:50]
                                   for f in epoch_file_order(source.files, epoch, 7)])
            np.testing.assert_array_equal(rows, want)
    orders = {tuple(epoch_file_order(source.files, e, 7)) for e in (2, 3, 4)}
    assert len(orders) == 3  # the check above saw three different orders


def test_read_ahead_is_bounded_only_when_epochs_have_datasets_of_their_own():
    """A dataset per epoch (two epochs read at once) gets READ_AHEAD_BYTES of object store; one
    split per run keeps Ray Data's own budget; either way the caller's settings come back."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    from streamfm.engines.ray import data

    limits = ray.data.DataContext.get_current().execution_options
    before = limits.resource_limits
    assert before.object_store_memory != data.READ_AHEAD_BYTES  # else the check below proves nothing
    with data.data_context(ray, per_run=False):
        assert limits.resource_limits.object_store_memory == data.READ_AHEAD_BYTES
        assert limits.preserve_order
    assert limits.resource_limits == before
    with data.data_context(ray, per_run=True):
        assert limits.resource_limits == before
        assert limits.preserve_order



def test_quiet_runs_hide_ray_datas_info_lines_and_give_its_logger_back():
    """With ``quiet`` Ray Data's logger is at WARNING for the run (its read-planning INFO lines are
    not shown); a run without it, and the caller after it, keep the level they had."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    import logging

    from streamfm.engines.ray import data

    logger = logging.getLogger("ray.data")
    before = logger.level
    logger.setLevel(logging.INFO)
    try:
        with data.data_context(ray, per_run=True, quiet=True):
            assert not logger.isEnabledFor(logging.INFO) and logger.isEnabledFor(logging.WARNING)
        assert logger.level == logging.INFO
        with data.data_context(ray, per_run=True):
            assert logger.isEnabledFor(logging.INFO)
    finally:
        logger.setLevel(before)

def test_the_shard_order_reaches_a_process_that_cannot_import_streamfm(ray_instance):
    """The split coordinator unpickles the run's dataset, shard order included, in a Ray worker
    that may not have streamfm (a Ray started by someone else): the order travels by value."""
    import subprocess

    _needs_split_per_run(ray_instance)
    from streamfm.engines.ray.shards import epoch_shard_order
    from streamfm.preprocess.shuffle import shard_order_seed

    blob = ray_instance.cloudpickle.dumps(epoch_shard_order(ray_instance, 7, range(2, 5)))
    code = ("import pickle, sys; sys.modules['streamfm'] = None; "  # import streamfm now fails
            "o = pickle.loads(sys.stdin.buffer.read()); print([o.get_seed(i) for i in range(3)])")
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, check=True,
                         cwd=os.path.dirname(ROOT)).stdout
    assert out.decode().strip() == str([shard_order_seed(7, e) for e in (2, 3, 4)])


def test_workers_read_while_the_driver_scans_and_stop_if_the_scan_fails(ray_instance, data, tmp_path,
                                                                          monkeypatch):
    """A new Ray run starts its workers' streams before the scan pass (their start-up overlaps it);
    input the scan rejects then stops the workers and leaves no model."""
    from streamfm.engines.ray import start
    from streamfm.errors import InputError
    from streamfm.training import validation

    events, attach = [], start.attach_streams

    def bad_scan(*a, **k):
        events.append("scan")
        raise InputError("the scan found bad input")

    monkeypatch.setattr(start, "attach_streams", lambda *a: events.append("read") or attach(*a))
    monkeypatch.setattr(validation, "scan", bad_scan)
    with pytest.raises(InputError, match="bad input"):
        train(data["train"], tmp_path / "m", config=Config(**CONF),
              options=TrainOptions(**EXACT), engine=RayOptions(workers=2))
    assert events == ["read", "scan"]
    assert not ModelDir(tmp_path / "m").exists()
    assert not _worker_actors(ray_instance)


def _stratified(y, n_train, seed):
    rng = np.random.default_rng(seed)
    train_idx = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        train_idx.append(idx[: int(round(n_train * len(idx) / len(y)))])
    tr = np.sort(np.concatenate(train_idx))
    return tr, np.setdiff1d(np.arange(len(y)), tr)


def _magic_split(root):
    if not os.path.exists(MAGIC):
        pytest.skip("Magic04 is not beside the checkout (../shared/data)")
    raw = np.genfromtxt(MAGIC, delimiter=",", dtype=str)
    X, y = raw[:, :10].astype(float), (raw[:, 10] == "g").astype(float)
    tr, te = _stratified(y, 12680, seed=0)
    return write_parquet(root / "magic-train", X[tr], y[tr], shards=4), write_parquet(root / "magic-test", X[te], y[te])


@pytest.mark.parametrize("dataset", ["banana", "magic04"])
def test_two_workers_reach_the_accuracy_of_one(ray_instance, tmp_path, dataset):
    if dataset == "banana":
        train_path, test_path = cli.train._embedded("banana-train"), cli.train._embedded("banana-test")
    else:
        train_path, test_path = _magic_split(tmp_path)
    acc = {}
    # the single-worker run is the local engine's: one Ray worker trains the same model
    # (test_one_worker_synced_every_chunk_equals_the_local_engine), minus Ray's start-up
    for n, engine in ((1, "local"), (2, "ray")):
        model = tmp_path / f"m{n}"
        train(train_path, model, valid=test_path, config=Config(method="llfm-jo"),
              options=TrainOptions(epochs=3, quiet=True),
              engine=RayOptions(workers=n, sync_rows=1024) if engine == "ray" else engine)
        acc[n] = ModelDir(model).read_metrics()[-1]["valid"]["accuracy"]
    assert acc[1] > (0.85 if dataset == "banana" else 0.8)
    assert abs(acc[2] - acc[1]) <= 0.01, acc


def _worker_actors(ray) -> list:
    """Names of the streamfm worker actors alive in this Ray instance."""
    from streamfm.engines.ray.worker import ACTOR_PREFIX

    names = [a["name"] if isinstance(a, dict) else a for a in ray.util.list_named_actors()]
    return [n for n in names if n.startswith(ACTOR_PREFIX)]


def _kill_a_worker_once_training(ray, store, done):
    """Wait for a checkpoint with rows trained, then kill one worker actor."""
    while not done.is_set():
        workers = _worker_actors(ray)
        if workers and store.exists() and store.read_manifest()["model"]["t"] > 0:
            ray.kill(ray.get_actor(sorted(workers)[-1]))
            return
        time.sleep(0.05)


@pytest.mark.parametrize("retries", [0, 1])
def test_a_killed_worker_leaves_a_loadable_model_and_a_resumable_run(ray_instance, tmp_path, retries):
    X, y = local_rules(8000, seed=11)
    path = write_parquet(tmp_path / "big", X, y, shards=4)
    store = ModelDir(tmp_path / "m")
    done = threading.Event()
    killer = threading.Thread(target=_kill_a_worker_once_training, args=(ray_instance, store, done))
    killer.start()
    opts = TrainOptions(epochs=2, checkpoint_rows=1000, quiet=True)
    ray_opts = RayOptions(workers=2, sync_rows=500, worker_retries=retries)
    try:
        if retries == 0:
            from streamfm.engines.ray import WorkerLostError

            with pytest.raises(WorkerLostError, match="--resume"):
                train(path, store.path, config=Config(**CONF), options=opts, engine=ray_opts)
            man = store.read_manifest()
            assert man["training"]["status"] == "interrupted"
            load(store.path)  # loadable
            r = resume(store.path)
            assert r["stopped"] is None
        else:
            r = train(path, store.path, config=Config(**CONF), options=opts, engine=ray_opts)  # restarted on new actors
            assert r["stopped"] is None
    finally:
        done.set()
        killer.join()
    man = store.read_manifest()
    assert man["training"]["status"] == "complete" and man["training"]["epoch"] == 2
    model = load(store.path)
    assert model.model.config.eta0 == Config().eta0  # the workers' scaled steps are not saved
    assert model.model.t == 2 * 8000  # every row of both epochs counted once: rounds lost to the kill were redone
    assert all(np.isfinite(np.asarray(model.model.params[k])).all() for k in ("b", "W", "V", "Z"))
    Xt, yt = local_rules(500, seed=12)
    assert (model.predict(Xt) == yt).mean() > 0.8


@pytest.mark.parametrize("layout", ["engine-entry", "before-engine-entries"])
def test_stop_and_resume_a_ray_run(ray_instance, data, local_run, tmp_path, layout):
    """A stopped one-worker run resumes to the uninterrupted one, also from a manifest of the layout
    before engine entries (Ray's options in "options", "worker_positions" beside the run)."""
    from test_loop import old_layout

    r = train(data["train"], tmp_path / "b", config=Config(**CONF), options=TrainOptions(max_rows=700, **EXACT),
              engine=RayOptions(workers=1, sync_rows=100))
    assert r["stopped"] == "max_rows"
    man = ModelDir(tmp_path / "b").read_manifest()
    assert man["training"]["status"] == "interrupted" \
        and man["training"]["engine"]["state"]["worker_positions"] == [700]
    man["training"]["options"]["max_rows"] = 0
    if layout == "before-engine-entries":
        man["training"] = old_layout(man["training"], "ray", [700])
        assert man["training"]["options"]["sync_rows"] == 100
    ModelDir(tmp_path / "b").save(man, ModelDir(tmp_path / "b").load(mmap_mode=None)[1])
    assert resume(tmp_path / "b")["stopped"] is None
    (a, _), (b, _) = params(local_run), params(tmp_path / "b")
    for name in a:  # one worker, order preserved: the resumed run is the uninterrupted one
        np.testing.assert_allclose(b[name], a[name], rtol=1e-10, atol=1e-12)


def test_callbacks_see_every_round_of_a_ray_run(ray_instance, data, tmp_path):
    """The loop's callbacks see a Ray run's epochs and rounds: each round, every worker's sync_rows
    rows merged (the last round of an epoch what is left of each worker's share)."""
    from test_loop import Recorder

    rec = Recorder()
    train(data["train"], tmp_path / "m", config=Config(**CONF), options=TrainOptions(**EXACT),
          engine=RayOptions(workers=2, sync_rows=128), callbacks=[rec])
    share = 1200 // 2
    for epoch in (1, 2):
        rounds = [e["result"] for e in rec.of("round_end", epoch)]
        assert [r.rows for r in rounds] == [2 * 128] * (share // 128) + [2 * (share % 128)]
        assert [r.exhausted for r in rounds] == [False] * (share // 128) + [True]
        rows = rec.of("rows", epoch)
        assert [e["rows"] for e in rows] == [r.rows for r in rounds] and all(e["losses"] is None for e in rows)
        assert rec.of("epoch_end", epoch)[0]["record"]["engine"] == "ray"
    assert [e["epoch"] for e in rec.of("epoch_begin")] == [1, 2]
    assert rec.of("run_end")[0]["summary"]["epochs_done"] == 2


def test_one_worker_applies_the_stored_map_to_sparse_rows_as_the_local_engine(ray_instance, tmp_path):
    """Sparse rows whose auto map centres one feature and not the others (the merge path): the
    workers get the map in the model's state and train exactly the local engine's model."""
    from test_scaling import sparse_rows, write_libsvm

    X, y = sparse_rows(600, seed=3)
    svm = write_libsvm(tmp_path / "d.svm", X, y)
    assert cli.main(["convert", svm, "-o", str(tmp_path / "shards"), "--rows-per-shard", "200", "--one-based",
                     "-q"]) == 0
    conf = Config(method="llfm-jo", **CONF)
    train(str(tmp_path / "shards"), tmp_path / "local", config=conf, options=TrainOptions(**EXACT))
    train(str(tmp_path / "shards"), tmp_path / "ray", config=conf,
          options=TrainOptions(**EXACT), engine=RayOptions(workers=1, sync_rows=64))
    std = load(tmp_path / "ray").standardizer
    assert std.mode == "auto" and 0 < std.n_centred < std.n_features
    (a, _), (b, _) = params(tmp_path / "local"), params(tmp_path / "ray")
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-10, atol=1e-12)



def test_standard_input_on_ray_trains_the_model_of_its_file(ray_instance, tmp_path, monkeypatch):
    """`streamfm train - --format parquet --engine ray`: the spooled stream is what the workers read
    (the spool sits beside the model, where every local worker sees it), and the model is the one the
    same shard given by name trains; the spool is gone afterwards."""
    X, y = local_rules(300, seed=4)
    shard = os.path.join(write_parquet(tmp_path / "d", X, y), "part-00000.parquet")
    common = ["--format", "parquet", "--engine", "ray", "--workers", "1", "--sync-rows", "64", "--method", "fm",
              "--rank", "4", "--epochs", "1", "--early-stop", "0", "--batch-rows", "64", "-q"]
    assert cli.main(["train", shard, "--model", str(tmp_path / "named"), *common]) == 0
    with open(shard, "rb") as fh:
        monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": fh})())
        assert cli.main(["train", "-", "--model", str(tmp_path / "piped"), *common]) == 0
    (a, _), (b, _) = params(tmp_path / "named"), params(tmp_path / "piped")
    for name in a:
        np.testing.assert_array_equal(b[name], a[name])
    assert not [n for n in os.listdir(tmp_path) if n.startswith("streamfm-stdin-")]

# ------------------------------------------------------------------ command line errors
def _fails(capsys, pattern, *argv):
    code = cli.main([str(a) for a in argv])
    _, err = capsys.readouterr()
    assert code == 2, err
    assert "Traceback" not in err and pattern in err, err
    return err


def test_missing_extra_says_how_to_install(capsys, monkeypatch, data, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    _fails(capsys, 'pip install "streamfm[ray]"', "train", data["train"], "--model", tmp_path / "m",
           "--engine", "ray", "--workers", "2", "-q")
    assert not ModelDir(tmp_path / "m").exists()


def test_bad_address_and_non_parquet_input(capsys, data, tmp_path):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a loopback port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = ["train", data["train"], "--model", tmp_path / "m", "--engine", "ray", "-q"]
    _fails(capsys, f"no Ray cluster answers at 127.0.0.1:{port}", *base, "--address", f"127.0.0.1:{port}")
    _fails(capsys, "is not a Ray cluster address", *base, "--address", "nowhere")
    svm = tmp_path / "d.svm"
    svm.write_text("1 1:0.5\n0 2:1.5\n")
    _fails(capsys, "streamfm convert", "train", svm, "--model", tmp_path / "m", "--engine", "ray", "-q")
    assert not ModelDir(tmp_path / "m").exists()


def test_actors_leave_the_cpus_to_reading():
    """The stall on two cores: actors holding every CPU leave Ray Data's read tasks none; holding
    all but one left one read task at a time (3x slower streams, measured). Actors reserve a token."""
    from streamfm.engines.ray.cluster import worker_cpus
    from streamfm.engines.ray.data import read_blocks

    for cpus, workers in [(2, 1), (2, 2), (1, 1), (64, 8), (4, 8), (0.5, 3)]:
        share = worker_cpus(cpus, workers)
        assert 0 < share and workers * share <= 0.05 * cpus
    # read tasks: at least two per worker, one per 256 MiB of Parquet
    assert read_blocks([], 3) == 6
    assert read_blocks(["/nonexistent/a.parquet"] * 10, 1) == 10


def test_early_stopping_on_ray_keeps_the_best_epoch_with_valid_and_is_off_without(ray_instance, data, tmp_path,
                                                                                 monkeypatch, capsys):
    """With --valid, a Ray run stops early and keeps its best epoch as the local engine does (one worker:
    the same model); without --valid, Ray holds no rows out: early stopping is off, and says so."""
    from test_early_stopping import HISTORY, Script

    opts = dict(epochs=9, early_stop=2, batch_rows=64, shuffle_buffer=300)
    ray_opts = RayOptions(workers=1, sync_rows=64)
    Script(monkeypatch, HISTORY)  # best epoch 4, stop after 6
    r = train(data["train"], tmp_path / "ray", valid=data["valid"], config=Config(**CONF),
              options=TrainOptions(quiet=True, **opts), engine=ray_opts)
    assert (r["epochs_done"], r["kept_epoch"]) == (6, 4)
    Script(monkeypatch, HISTORY)
    train(data["train"], tmp_path / "local", valid=data["valid"], config=Config(**CONF),
          options=TrainOptions(quiet=True, **opts), engine="local")
    (a, ta), (b, tb) = params(tmp_path / "local"), params(tmp_path / "ray")
    assert ta == tb == 4 * 1200
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-10, atol=1e-12)
    run = ModelDir(tmp_path / "ray").read_manifest()["training"]
    assert run["kept_epoch"] == 4 and run["stop_reason"] == "early stop after epoch 6, best epoch 4"
    monkeypatch.undo()
    train(data["train"], tmp_path / "off", config=Config(**CONF), options=TrainOptions(quiet=False, **dict(opts, epochs=1)),
          engine=ray_opts)
    assert "early stopping: off (--engine ray validates only on --valid)" in capsys.readouterr().out
    run = ModelDir(tmp_path / "off").read_manifest()["training"]
    assert run["early_stopping"] is None and run["holdout"] is None


def test_hashed_store_one_worker_equals_the_local_engine_and_two_send_changed_slots(ray_instance, data, tmp_path):
    """The hashed store on Ray: a worker returns the slots its round changed, not the table. One
    worker synced every chunk trains the local engine's model; two move far fewer bytes a round
    than the table holds, and their run resumes to the same model."""
    hashed = dict(EXACT, bits=16)
    train(data["train"], tmp_path / "local", config=Config(**CONF), options=TrainOptions(**hashed))
    train(data["train"], tmp_path / "one", config=Config(**CONF), options=TrainOptions(**hashed),
          engine=RayOptions(workers=1, sync_rows=64))
    a, b = load(tmp_path / "local").model, load(tmp_path / "one").model
    assert a.store == b.store and a.store.hashed
    for name in a.params:
        np.testing.assert_allclose(b.params[name], a.params[name], rtol=1e-10, atol=1e-12, err_msg=name)
    train(data["train"], tmp_path / "two", config=Config(**CONF), options=TrainOptions(**hashed),
          engine=RayOptions(workers=2, sync_rows=64))
    rec = ModelDir(tmp_path / "two").read_metrics()[-1]
    table_mb = sum(np.asarray(v).nbytes for k, v in load(tmp_path / "two").model.table.arrays.items()) / 2**20
    assert 0 < rec["merge_mb_up_per_round"] < table_mb / 10 and 0 < rec["merge_mb_down_per_round"] < table_mb / 10


def test_one_worker_trains_with_sample_weights_as_the_local_engine(ray_instance, tmp_path):
    """A weight column reaches the Ray workers: one worker synced every chunk equals the local engine on a
    weighted table, and the weights change the model."""
    X, y = local_rules(600, seed=3)
    root = tmp_path / "weighted"
    write_parquet(root, X, y, shards=2)
    for i, f in enumerate(sorted(root.iterdir())):
        t = pq.read_table(f)
        pq.write_table(t.append_column("w", pa.array(np.random.default_rng(i).uniform(0, 2, t.num_rows))), f)
    run = dict(config=Config(**CONF), options=TrainOptions(epochs=1, batch_rows=64, shuffle_buffer=300, quiet=True))
    train(str(root), tmp_path / "local", data_options={"weight_column": "w"}, **run)
    train(str(root), tmp_path / "ray", data_options={"weight_column": "w"}, engine=RayOptions(workers=1, sync_rows=64),
          **run)
    train(str(root), tmp_path / "unweighted", data_options={"feature_columns": [f"f{j}" for j in range(X.shape[1])]},
          **run)
    (a, _), (b, _), (c, _) = params(tmp_path / "local"), params(tmp_path / "ray"), params(tmp_path / "unweighted")
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-10, atol=1e-12)
    assert not np.allclose(a["W"], c["W"])
