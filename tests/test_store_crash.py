"""kill -9 at random instants never leaves a mixed or corrupt checkpoint.

A child process saves checkpoints in a loop, every array filled with the step
number and the manifest recording it; it is killed with SIGKILL at random
moments (a save takes tens of milliseconds, so most kills land mid-write) and
restarted from the last checkpoint.  After every kill the directory must load
and every array must equal the manifest's step.

SIGKILL loses no page cache, so this checks the ordering of writes, renames
and the commit, not fsync against a power loss (that needs a faulty block
device, out of reach of a unit test).
"""
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np

from streamfm.store import ModelDir

REPO = pathlib.Path(__file__).resolve().parents[1]

KILLS = 20

CHILD = """
import sys

import numpy as np

from streamfm.store import ModelDir

model = ModelDir(sys.argv[1])
with model.lock():
    if model.exists():
        # As the trainer does: copy-on-write maps of the last checkpoint.
        manifest, arrays = model.load(mmap_mode="c")
        step = manifest["step"]
    else:
        step = 0
        arrays = {
            "w": np.zeros(400_000),                        # 3.2 MB
            "V": np.zeros((100_000, 8), dtype=np.float32),  # 3.2 MB
            "t": np.zeros((), dtype=np.int64),
        }
    print("ready", step, flush=True)
    while True:
        step += 1
        for arr in arrays.values():
            arr[...] = step
        model.save({"step": step}, arrays)
        print("saved", step, flush=True)
        if step % 3 == 0:
            # Sometimes re-map the new checkpoint, sometimes keep saving
            # from maps of files that were deleted after the last commit.
            manifest, arrays = model.load(mmap_mode="c")
"""


def reported_steps(output):
    # Lines are single writes to a pipe (atomic): a kill cannot tear one,
    # but keep only newline-terminated lines anyway.
    return [int(line.split()[1]) for line in output.split("\n")[:-1] if line.startswith("saved ")]


def test_kill_9_at_random_moments_never_mixes_checkpoints(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    model = ModelDir(tmp_path / "model")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    rng = np.random.default_rng(20240611)

    committed = 0  # the step the directory held after the last kill
    leftovers_seen = 0
    for _ in range(KILLS):
        child = subprocess.Popen([sys.executable, str(script), str(model.path)],
                                 env=env, stdout=subprocess.PIPE, text=True)
        try:
            ready = child.stdout.readline().split()
            assert ready[0] == "ready", ready
            assert int(ready[1]) == committed  # it resumed from the last checkpoint
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        saved = reported_steps(child.stdout.read())
        child.stdout.close()

        if not model.exists():
            assert not saved  # killed before its first save committed
            continue
        manifest, arrays = model.load()
        step = manifest["step"]
        last_reported = saved[-1] if saved else committed
        # Every completed save() is durable; at most the save in flight when
        # the kill landed may also have committed (before it could report).
        assert last_reported <= step <= last_reported + 1
        assert set(arrays) == {"w", "V", "t"}
        for name, arr in arrays.items():
            assert np.all(arr == step), f"{name} mixes checkpoints: manifest step {step}, values {np.unique(arr)}"
        leftovers_seen += any(e.startswith(".tmp-") or e.startswith(".manifest.tmp-") for e in os.listdir(model.path))
        committed = step

    assert committed > 0
    # The kills did land mid-save (temporaries left behind) at least sometimes.
    assert leftovers_seen > 0
    # A lock and a save clean up whatever the kills left.
    with model.lock():
        name = model.save({"step": committed + 1}, arrays)
    assert sorted(os.listdir(model.path)) == [".lock", name, "manifest.json"]


KEEPER = """
import sys

import numpy as np

from streamfm.store import ModelDir

model = ModelDir(sys.argv[1])
with model.lock():
    if model.exists():
        manifest, arrays = model.load(mmap_mode="c")
        step, best = manifest["step"], manifest.get("best")
    else:
        step, best = 0, None
        arrays = {"w": np.zeros(400_000), "t": np.zeros((), dtype=np.int64)}
    kept = manifest["kept"]["best"]["checkpoint"] if best is not None else None
    print("ready", step, flush=True)
    while True:
        step += 1
        for arr in arrays.values():
            arr[...] = step
        if step % 11 == 0 and best is not None:
            # the run ends: the best checkpoint becomes the result
            model.promote({"step": best, "best": None}, "best")
            print("promoted", best, flush=True)
            manifest, arrays = model.load(mmap_mode="c")
            step, best, kept = best, None, None
            continue
        if step % 4 == 1:  # a new best
            kept = model.save({"step": step, "best": step}, arrays, keep={"best": None})
            best = step
        else:
            model.save({"step": step, "best": best}, arrays, keep={"best": kept} if kept else None)
        print("saved", step, flush=True)
"""


def test_kill_9_never_loses_a_kept_checkpoint(tmp_path):
    """A kept checkpoint (the best epoch's) stays loadable through commits, promotions and kills."""
    script = tmp_path / "keeper.py"
    script.write_text(KEEPER)
    model = ModelDir(tmp_path / "model")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    rng = np.random.default_rng(7)
    kept_seen = 0
    for _ in range(KILLS):
        child = subprocess.Popen([sys.executable, str(script), str(model.path)],
                                 env=env, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().startswith("ready")
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        child.stdout.close()
        if not model.exists():
            continue
        manifest, arrays = model.load()
        assert all(np.all(a == manifest["step"]) for a in arrays.values())
        if manifest.get("best") is not None:
            best_manifest, best_arrays = model.load(kept="best")
            assert all(np.all(a == manifest["best"]) for a in best_arrays.values()), "the kept checkpoint changed"
            kept_seen += 1
        # nothing but the checkpoints the manifest names (and temporaries of the kill) is left after a lock
        with model.lock():
            named = {manifest["checkpoint"]} | {e["checkpoint"] for e in manifest.get("kept", {}).values()}
            assert {e for e in os.listdir(model.path) if e.startswith("ckpt-")} == named
    assert kept_seen > 0
