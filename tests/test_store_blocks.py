"""Checkpoints that write only the changed blocks of tracked arrays (store/blocks.py): loading a chain,
new bases, kept checkpoints, kill -9 mid-save, and a hashed-store run resumed from deltas."""
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np

from streamfm.store import ModelDir, blocks
from streamfm.store.blocks import Blocks

REPO = pathlib.Path(__file__).resolve().parents[1]
ROWS, BLOCK = 20_000, 1000


def changed_at(step):
    """The blocks a step writes (about a fifth of them)."""
    return np.array([b for b in range(ROWS // BLOCK) if (7 * b + 3 * step) % 5 == 0], np.int64)


def expected(step):
    """The tracked array's block values after ``step`` steps: the last step that wrote each block."""
    out = np.zeros(ROWS // BLOCK)
    for s in range(1, step + 1):
        out[changed_at(s)] = s
    return np.repeat(out, BLOCK)


def fresh():
    return {"T": np.zeros((ROWS, 3), np.float32), "tags": np.zeros(ROWS, np.uint32), "x": np.zeros(10),
            "fixed": np.arange(50.0)}


def step_arrays(arrays, step):
    for b in changed_at(step):
        arrays["T"][b * BLOCK:(b + 1) * BLOCK] = step
        arrays["tags"][b * BLOCK:(b + 1) * BLOCK] = step
    arrays["x"][:] = step


def check(arrays, step):
    want = expected(step)
    np.testing.assert_array_equal(arrays["T"], np.repeat(want[:, None], 3, 1))
    np.testing.assert_array_equal(arrays["tags"], want)
    np.testing.assert_array_equal(arrays["x"], step)
    np.testing.assert_array_equal(arrays["fixed"], np.arange(50.0))


def test_deltas_hold_only_changed_blocks_and_load_as_the_whole(tmp_path):
    model = ModelDir(tmp_path / "m")
    arrays = fresh()
    since = steps_best = None
    steps = {}
    for step in range(1, 13):
        step_arrays(arrays, step)
        spec = Blocks(("T", "tags"), ROWS, BLOCK, changed_at(step), since, static=("fixed",))
        keep = {"best": None} if step == 3 else ({"best": steps_best} if step > 3 else None)
        since = model.save({"step": step}, arrays, blocks=spec, keep=keep)
        if step == 3:
            steps_best = since
        manifest = model.read_manifest()
        chain = manifest["chain"]
        files = set(os.listdir(model.path / since))
        if step == 1 or step == 2 + blocks.MAX_DELTAS:  # first save; then the chain is full: a new base
            assert chain["base"] == since and chain["deltas"] == [] and "T.npy" in files
        else:
            assert chain["deltas"][-1] == since and "T.npy" not in files
            assert files == {"x.npy", "T.delta.npy", "tags.delta.npy", "delta_blocks.npy"}
            delta = np.load(model.path / since / "T.delta.npy")
            assert delta.shape == (len(changed_at(step)) * BLOCK, 3)  # the changed blocks alone
        for mode in ("r", "c", None):
            loaded = model.load(mmap_mode=mode)[1]
            check(loaded, step)
        # the files stay as written: the base holds its own step's values
        steps[since] = step
        np.testing.assert_array_equal(np.load(model.path / chain["base"] / "x.npy"), steps[chain["base"]])
        # every checkpoint the chains name is there, nothing else
        with model.lock():
            pass
        on_disk = {e for e in os.listdir(model.path) if e.startswith("ckpt-")}
        kept = manifest.get("kept", {}).get("best", {"checkpoint": since, "chain": chain})
        assert on_disk == {manifest["checkpoint"], chain["base"], *chain["deltas"], kept["checkpoint"],
                           kept["chain"]["base"], *kept["chain"]["deltas"]}
    # the best (step 3) outlived its chain's replacement and loads as it was
    check(model.load(kept="best")[1], 3)
    model.promote({"step": 3}, "best")
    check(model.load()[1], 3)


def test_a_delta_save_holds_one_tracked_arrays_changed_rows_at_a_time(tmp_path, monkeypatch):
    """Each tracked array's changed rows (up to half a table) are gathered as its file is written,
    after the previous one's copy is gone."""
    import weakref

    gathered = []
    plain = blocks._gather_rows

    def gather(*args):
        assert all(ref() is None for ref in gathered), "an earlier array's rows are still held"
        out = plain(*args)
        gathered.append(weakref.ref(out))
        return out

    monkeypatch.setattr(blocks, "_gather_rows", gather)
    model = ModelDir(tmp_path / "m")
    arrays = fresh()
    step_arrays(arrays, 1)
    first = model.save({}, arrays, blocks=Blocks(("T", "tags"), ROWS, BLOCK, changed_at(1), None))
    step_arrays(arrays, 2)
    model.save({}, arrays, blocks=Blocks(("T", "tags"), ROWS, BLOCK, changed_at(2), first))
    assert len(gathered) == 2 and model.read_manifest()["chain"]["deltas"]
    check(model.load()[1], 2)


def test_a_save_from_elsewhere_or_with_many_blocks_changed_writes_a_base(tmp_path):
    model = ModelDir(tmp_path / "m")
    arrays = fresh()
    step_arrays(arrays, 1)
    first = model.save({}, arrays, blocks=Blocks(("T", "tags"), ROWS, BLOCK, changed_at(1), None))
    step_arrays(arrays, 2)
    model.save({}, arrays, blocks=Blocks(("T", "tags"), ROWS, BLOCK, changed_at(2), "ckpt-999999"))
    assert model.read_manifest()["chain"]["deltas"] == []  # not since the committed checkpoint
    last = model.read_manifest()["checkpoint"]
    model.save({}, arrays, blocks=Blocks(("T", "tags"), ROWS, BLOCK, np.arange(15), last))
    assert model.read_manifest()["chain"]["deltas"] == []  # 15 of 20 blocks: more than MAX_SHARE
    assert first not in os.listdir(model.path)


CHILD = """
import sys

import numpy as np

sys.path.insert(0, sys.argv[2])
from test_store_blocks import Blocks, BLOCK, ROWS, changed_at, fresh, step_arrays
from streamfm.store import ModelDir

model = ModelDir(sys.argv[1])
with model.lock():
    if model.exists():
        manifest, arrays = model.load(mmap_mode="c")
        step, since, best = manifest["step"], manifest["checkpoint"], manifest.get("best")
    else:
        step, since, best, arrays = 0, None, None, fresh()
    print("ready", step, flush=True)
    while True:
        step += 1
        step_arrays(arrays, step)
        spec = Blocks(("T", "tags"), ROWS, BLOCK, changed_at(step), since)
        if step % 5 == 0:
            best = step
            since = model.save({"step": step, "best": best}, arrays, blocks=spec, keep={"best": None})
        else:
            kept = model.read_manifest().get("kept", {}).get("best") if best else None
            since = model.save({"step": step, "best": best}, arrays, blocks=spec,
                               keep={"best": kept["checkpoint"]} if kept else None)
        print("saved", step, flush=True)
"""


def test_kill_9_during_incremental_checkpoints_leaves_the_last_one_loadable(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    model = ModelDir(tmp_path / "model")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    rng = np.random.default_rng(3)
    committed, deltas_seen = 0, 0
    for _ in range(12):
        child = subprocess.Popen([sys.executable, str(script), str(model.path), str(REPO / "tests")], env=env,
                                 stdout=subprocess.PIPE, text=True)
        try:
            ready = child.stdout.readline().split()
            assert ready[0] == "ready" and int(ready[1]) == committed
            time.sleep(rng.uniform(0.05, 0.4))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        child.stdout.close()
        if not model.exists():
            continue
        manifest, arrays = model.load()
        check(arrays, manifest["step"])
        deltas_seen += bool(manifest["chain"]["deltas"])
        if manifest.get("best"):
            check(model.load(kept="best")[1], manifest["best"])
        committed = manifest["step"]
    assert committed > 0 and deltas_seen > 0


def test_a_hashed_run_resumed_from_incremental_checkpoints_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    from test_trainer import local_rules, write_parquet

    from streamfm.models.config import Config
    from streamfm.run import load, resume, train
    from streamfm.training.options import TrainOptions

    monkeypatch.setattr(blocks, "MAX_SHARE", 1.0)  # a delta whatever share of the blocks changed
    X, y = local_rules(900, seed=1)
    data = write_parquet(tmp_path / "data", X, y, shards=2)
    conf = Config(method="llfm-jo", anchors=12, n_candidates=6, rebuild_every=150)
    opts = dict(batch_rows=64, shuffle_buffer=300, quiet=True, bits=12, checkpoint_rows=200)
    train(data, tmp_path / "a", config=conf, options=TrainOptions(epochs=2, **opts))
    r = train(data, tmp_path / "b", config=conf, options=TrainOptions(epochs=2, max_rows=1100, **opts))
    assert r["stopped"] == "max_rows"
    manifest = ModelDir(tmp_path / "b").read_manifest()
    assert manifest["chain"]["deltas"] and sorted(manifest["chain"]["names"]) == ["AV", "AW", "V", "W", "tags"]
    assert "V.npy" not in os.listdir(tmp_path / "b" / manifest["checkpoint"])
    assert resume(tmp_path / "b")["epochs_done"] == 2
    a, b = load(tmp_path / "a"), load(tmp_path / "b")
    for name in a.model.params:
        np.testing.assert_array_equal(b.model.params[name], a.model.params[name], err_msg=name)
