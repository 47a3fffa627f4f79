"""Model directory: round trips, memory maps, failed saves, damage, lock, metrics, atomic writes."""
import errno
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from streamfm.errors import InputError
from streamfm.store import FORMAT_VERSION, ModelDir, atomic_output, atomic_write_bytes, atomic_write_json
from streamfm.store.arrays import checksum
from streamfm.store.manifest import CHECKSUM

REPO = pathlib.Path(__file__).resolve().parents[1]


def make_arrays(step):
    """Arrays of several kinds, every element equal to ``step``."""
    return {
        "w": np.full(1000, step, dtype=np.float64),
        "V": np.full((300, 4), step, dtype=np.float32),
        "t": np.full((), step, dtype=np.int64),  # 0-d: a scalar counter
        "empty": np.zeros((0, 4)),
        "flags": np.full(7, step % 2 == 1),
        "names": np.array(["a", "bc", str(step)]),
    }


def assert_state(model, step):
    manifest, arrays = model.load()
    assert manifest["step"] == step
    expected = make_arrays(step)
    assert set(arrays) == set(expected)
    for name, value in expected.items():
        assert arrays[name].dtype == value.dtype, name
        np.testing.assert_array_equal(arrays[name], value, err_msg=name)


def entries(model):
    return sorted(os.listdir(model.path))


def dead_pid():
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


@pytest.fixture
def model(tmp_path):
    return ModelDir(tmp_path / "model")


# ---------------------------------------------------------------- round trips


def test_round_trip_opens_memory_maps(model):
    assert not model.exists()
    manifest = {"step": 3, "config": {"rank": 10}, "classes": [0, 1]}
    name = model.save(manifest, make_arrays(3))

    assert name == "ckpt-000001"
    assert model.exists()
    assert "checkpoint" not in manifest  # the caller's dict is not modified
    loaded, arrays = model.load()
    assert loaded["format_version"] == FORMAT_VERSION
    assert loaded["checkpoint"] == name
    assert loaded["config"] == {"rank": 10} and loaded["classes"] == [0, 1]
    assert loaded["arrays"]["V"] == {"shape": [300, 4], "dtype": "float32", "crc32": checksum(arrays["V"])}
    assert loaded["arrays"]["t"] == {"shape": [], "dtype": "int64", "crc32": checksum(arrays["t"])}
    assert "T" in loaded["saved_at"]
    assert all(isinstance(a, np.memmap) for a in arrays.values())
    assert_state(model, 3)
    assert model.read_manifest() == loaded
    assert entries(model) == ["ckpt-000001", "manifest.json"]


def test_load_modes(model):
    model.save({"step": 1}, make_arrays(1))

    _, in_memory = model.load(mmap_mode=None)
    assert not isinstance(in_memory["w"], np.memmap)
    np.testing.assert_array_equal(in_memory["w"], 1.0)

    _, cow = model.load(mmap_mode="c")
    cow["w"][:] = 99.0  # copy-on-write: never reaches the file
    assert_state(model, 1)

    with pytest.raises(ValueError, match="mmap_mode"):
        model.load(mmap_mode="w+")


def test_save_from_copy_on_write_maps_of_the_current_checkpoint(model):
    # The trainer's loop: load copy-on-write maps, update in place, save them
    # back while they still map the checkpoint that save() then deletes.
    model.save({"step": 1}, make_arrays(1))
    manifest, arrays = model.load(mmap_mode="c")
    for step in (2, 3, 4):
        for name, value in make_arrays(step).items():
            arrays[name][...] = value
        manifest["step"] = step
        name = model.save(manifest, arrays)
        assert entries(model) == [name, "manifest.json"]  # the previous one is gone
        assert_state(model, step)
        # Still readable after their files were unlinked (POSIX semantics).
        np.testing.assert_array_equal(arrays["w"], float(step))
    # Read-only maps saved unchanged, e.g. a model copied forward.
    manifest, arrays = model.load(mmap_mode="r")
    manifest["step"] = 4
    model.save(manifest, arrays)
    assert_state(model, 4)


def test_numpy_values_in_the_manifest_and_unusual_arrays(model):
    big_endian = np.arange(5, dtype=">f8")
    strided = np.arange(20.0).reshape(4, 5)[:, ::2]  # not contiguous
    model.save({"step": np.int64(2), "loss": np.float32(0.5), "ok": np.bool_(True), "mean": np.zeros(2)},
               {"be": big_endian, "strided": strided})
    manifest, arrays = model.load()
    assert (manifest["step"], manifest["loss"], manifest["ok"], manifest["mean"]) == (2, 0.5, True, [0.0, 0.0])
    assert arrays["be"].dtype == np.float64 and arrays["be"].dtype.isnative
    np.testing.assert_array_equal(arrays["be"], big_endian)
    np.testing.assert_array_equal(arrays["strided"], strided)


@pytest.mark.parametrize(
    "manifest, arrays, error",
    [
        ({"bad": object()}, {"w": np.zeros(2)}, TypeError),
        ({}, {"../w": np.zeros(2)}, ValueError),
        ({}, {".hidden": np.zeros(2)}, ValueError),
        ({}, {"w": np.array([{}, []], dtype=object)}, TypeError),
        ({}, {"w": np.zeros(2, dtype=[("a", "f8"), ("b", "i4")])}, TypeError),
        ([("step", 1)], {"w": np.zeros(2)}, TypeError),
    ],
)
def test_bad_save_arguments_fail_before_anything_is_written(model, manifest, arrays, error):
    model.save({"step": 1}, make_arrays(1))
    with pytest.raises(error):
        model.save(manifest, arrays)
    assert entries(model) == ["ckpt-000001", "manifest.json"]
    assert_state(model, 1)


# ---------------------------------------------------------------- failed saves


def fail_on_second_np_save(monkeypatch, exc):
    """The second array's file fails after its header (a full disk, Ctrl-C)."""
    real = np.lib.format.write_array_header_1_0
    calls = []

    def header(file, d):
        calls.append(1)
        if len(calls) == 2:
            file.write(b"\x93NUMPY half a file")
            raise exc
        real(file, d)

    monkeypatch.setattr(np.lib.format, "write_array_header_1_0", header)


def fail_os(name):
    def patch(monkeypatch, exc):
        def boom(*args, **kwargs):
            raise exc

        monkeypatch.setattr(os, name, boom)

    return patch


@pytest.mark.parametrize(
    "patch",
    [fail_on_second_np_save, fail_os("rename"), fail_os("replace"), fail_os("fsync")],
    ids=["np.save", "rename", "replace", "fsync"],
)
@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()],
                         ids=["ENOSPC", "Ctrl-C"])
def test_a_failed_save_keeps_the_previous_checkpoint(model, monkeypatch, patch, exc):
    model.save({"step": 1}, make_arrays(1))
    model.save({"step": 2}, make_arrays(2))
    with monkeypatch.context() as m:
        patch(m, exc)
        with pytest.raises(type(exc)):
            model.save({"step": 3}, make_arrays(3))
    assert_state(model, 2)

    # No leftover gets in the way of the next save, which removes them all.
    name = model.save({"step": 4}, make_arrays(4))
    assert_state(model, 4)
    assert entries(model) == [name, "manifest.json"]


def test_leftovers_of_a_crash_are_removed_at_lock(model):
    model.save({"step": 1}, make_arrays(1))
    gone = dead_pid()
    # What kill -9 can leave: a temporary checkpoint, a renamed checkpoint
    # whose manifest was never written, a temporary manifest.
    (model.path / f".tmp-ckpt-{gone}-000002-0a1b2c3d").mkdir()
    (model.path / f".tmp-ckpt-{gone}-000002-0a1b2c3d" / "w.npy").write_bytes(b"\x93NUMPY")
    (model.path / "ckpt-000007").mkdir()
    (model.path / f".manifest.tmp-{gone}-0a1b2c3d.json").write_text("{")
    # A live writer's temporary directory is not touched.
    live = model.path / f".tmp-ckpt-{os.getppid()}-000002-0a1b2c3d"
    live.mkdir()

    with model.lock():
        assert entries(model) == [".lock", live.name, "ckpt-000001", "manifest.json"]
        assert_state(model, 1)
        # Numbers continue above any checkpoint ever seen.
        (model.path / "ckpt-000007").mkdir()
        assert model.save({"step": 2}, make_arrays(2)) == "ckpt-000008"
    assert entries(model) == [".lock", live.name, "ckpt-000008", "manifest.json"]


def test_checkpoint_directories_survive_a_missing_manifest(model):
    # Without a committed manifest nothing says which checkpoint is garbage:
    # keep them (they may be all that is left of a model).
    model.save({"step": 1}, make_arrays(1))
    (model.path / "manifest.json").unlink()
    with model.lock():
        pass
    assert entries(model) == [".lock", "ckpt-000001"]


# ---------------------------------------------------------------- kept checkpoints


def test_a_kept_checkpoint_survives_later_commits_until_promoted(model):
    with model.lock():
        model.save({"step": 1}, make_arrays(1))
        best = model.save({"step": 2}, make_arrays(2), keep={"best": None})  # keeps itself
        assert model.read_manifest()["kept"]["best"]["checkpoint"] == best
        for step in (3, 4):
            latest = model.save({"step": step}, make_arrays(step), keep={"best": best})
            assert entries(model) == [".lock", best, latest, "manifest.json"]
        assert_state(model, 4)  # the committed checkpoint is the latest
        manifest, arrays = model.load(kept="best")
        assert manifest["checkpoint"] == best
        for name, value in make_arrays(2).items():
            np.testing.assert_array_equal(arrays[name], value, err_msg=name)
        del arrays
        # a lock (as after a crash) keeps it too
    with model.lock():
        assert entries(model) == [".lock", best, latest, "manifest.json"]
        # promoted: the kept checkpoint becomes the result, its files untouched
        before = {f.name: f.read_bytes() for f in (model.path / best).iterdir()}
        assert model.promote({"step": 2}, "best") == best
        assert entries(model) == [".lock", best, "manifest.json"]
        assert "kept" not in model.read_manifest()
        assert {f.name: f.read_bytes() for f in (model.path / best).iterdir()} == before
        assert_state(model, 2)
        # numbers go on above every checkpoint written (4), not above the committed one (2)
        assert model.save({"step": 5}, make_arrays(5)) == "ckpt-000005"
        assert entries(model) == [".lock", "ckpt-000005", "manifest.json"]


def test_a_checkpoint_no_longer_kept_is_deleted(model):
    best = model.save({"step": 1}, make_arrays(1), keep={"best": None})
    model.save({"step": 2}, make_arrays(2), keep={"best": best})
    other = model.save({"step": 3}, make_arrays(3), keep={"best": None})  # a new best replaces it
    assert entries(model) == [other, "manifest.json"]
    last = model.save({"step": 4}, make_arrays(4))
    assert entries(model) == [last, "manifest.json"]


def test_keep_and_promote_refuse_what_the_directory_does_not_keep(model):
    model.save({"step": 1}, make_arrays(1))
    before = entries(model)
    with pytest.raises(ValueError, match="cannot keep 'ckpt-000009'"):
        model.save({"step": 2}, make_arrays(2), keep={"best": "ckpt-000009"})
    with pytest.raises(ValueError, match="keeps no checkpoint as 'best'"):
        model.promote({"step": 2}, "best")
    with pytest.raises(InputError, match="keeps no checkpoint as 'best'"):
        model.load(kept="best")
    assert entries(model) == before
    assert_state(model, 1)


def test_installed_files_and_their_temporaries(model):
    tmp = model.temp_path("rows.parquet")
    assert tmp.parent == model.path and tmp.name.startswith(".rows.tmp-") and tmp.suffix == ".parquet"
    tmp.write_bytes(b"held out")
    assert model.install(tmp, "rows.parquet").read_bytes() == b"held out"
    model.save({"step": 1}, make_arrays(1))
    gone = dead_pid()
    (model.path / f".rows.tmp-{gone}-0a1b2c3d.parquet").write_bytes(b"a dead writer's")
    live = model.path / f".rows.tmp-{os.getppid()}-0a1b2c3d.parquet"
    live.write_bytes(b"a live writer's")
    with model.lock():
        assert entries(model) == [".lock", live.name, "ckpt-000001", "manifest.json", "rows.parquet"]
        model.discard("rows.parquet")
        model.discard("rows.parquet")  # gone already: nothing to do
    assert "rows.parquet" not in entries(model)
    for bad in ("manifest.json", "ckpt-000001", "../x", ".hidden"):
        with pytest.raises(ValueError):
            model.temp_path(bad)


# ---------------------------------------------------------------- errors


def test_not_a_model_directory(tmp_path):
    for path in (tmp_path, tmp_path / "missing"):
        with pytest.raises(InputError, match=r"is not a streamfm model directory \(no manifest.json\)"):
            ModelDir(path).load()
        assert not ModelDir(path).exists()


def write_manifest(model, checksum=False, **changes):
    """Edit the manifest by hand; ``checksum`` False: as a streamfm before its checksum wrote it,
    so that the field checks answer (they guard such manifests)."""
    manifest = json.loads((model.path / "manifest.json").read_text())
    manifest.update(changes)
    if not checksum:
        manifest.pop(CHECKSUM)
    (model.path / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("changes", [{"step": 2}, {"checkpoint": "ckpt-000099"}, {"saved_at": "2020-01-01"}])
def test_a_manifest_changed_after_it_was_written_is_damaged(model, changes):
    """Any field changed by hand (or by a flipped bit) with the checksum left as written: one error,
    even where the change is still a valid manifest."""
    model.save({"step": 1}, make_arrays(1))
    write_manifest(model, checksum=True)  # the same content, only serialised another way: still valid
    model.load()
    write_manifest(model, checksum=True, **changes)
    with pytest.raises(InputError, match="is damaged: manifest.json does not match its checksum"):
        model.load()


def test_newer_format_asks_for_an_upgrade(model):
    model.save({"step": 1}, make_arrays(1))
    write_manifest(model, format_version=FORMAT_VERSION + 1)
    message = (f"model directory {model.path} was written by a newer streamfm "
               f"(format {FORMAT_VERSION + 1}); upgrade streamfm")
    for action in (model.load, model.read_manifest, lambda: model.save({"step": 2}, make_arrays(2))):
        with pytest.raises(InputError) as info:
            action()
        assert str(info.value) == message
    with model.lock():  # nothing of the newer model is cleaned up
        pass
    assert entries(model) == [".lock", "ckpt-000001", "manifest.json"]


@pytest.mark.parametrize(
    "damage, what",
    [
        (lambda p: (p / "manifest.json").write_text('{"step": 1,'), "manifest.json is not valid JSON"),
        (lambda p: (p / "manifest.json").write_bytes(b"\xff\xfe"), "manifest.json is not valid JSON"),
        (lambda p: (p / "manifest.json").write_text("[1, 2]"), "manifest.json is not a JSON object"),
        (lambda p: write_manifest(ModelDir(p), format_version="1"), "no valid format_version"),
        (lambda p: write_manifest(ModelDir(p), checkpoint="../../etc"), "no valid checkpoint name"),
        (lambda p: write_manifest(ModelDir(p), arrays={"w": {"shape": [-1], "dtype": "f8"}}),
         "invalid entry for array 'w'"),
        (lambda p: write_manifest(ModelDir(p), arrays={"w": {"shape": [2], "dtype": "nonsense"}}),
         "invalid entry for array 'w'"),
        (lambda p: (p / "ckpt-000001" / "V.npy").unlink(), "ckpt-000001/V.npy is missing"),
        (lambda p: os.rename(p / "ckpt-000001", p / "elsewhere"),
         "checkpoint directory ckpt-000001 named by manifest.json is missing"),
        (lambda p: os.truncate(p / "ckpt-000001" / "w.npy", 500), r"ckpt-000001/w.npy cannot be read"),
        (lambda p: (p / "ckpt-000001" / "w.npy").write_bytes(b"garbage" * 100), "w.npy is not a .npy file"),
        (lambda p: (p / "ckpt-000001" / "w.npy").write_bytes(b"\x93NUMPY\x01\x00xx"), "w.npy cannot be read"),
        (lambda p: write_manifest(ModelDir(p), arrays={"w": {"shape": [999], "dtype": "float64"}}),
         r"w.npy holds a float64 array of shape \(1000,\) but manifest.json says float64 \(999,\)"),
        (lambda p: write_manifest(ModelDir(p), arrays={"w": {"shape": [1000], "dtype": "int32"}}),
         r"w.npy holds a float64 array of shape \(1000,\) but manifest.json says int32 \(1000,\)"),
    ],
    ids=["truncated-json", "not-utf8", "not-object", "version", "traversal", "shape-meta", "dtype-meta",
         "missing-file", "missing-ckpt", "truncated-npy", "not-npy", "bad-header", "shape", "dtype"],
)
@pytest.mark.parametrize("mmap_mode", ["r", None])
def test_damage_is_named(model, damage, what, mmap_mode):
    model.save({"step": 1}, make_arrays(1))
    damage(model.path)
    with pytest.raises(InputError, match=f"^model directory {model.path} is damaged: .*{what}"):
        model.load(mmap_mode=mmap_mode)


# ---------------------------------------------------------------- lock

HOLD_LOCK = """
import sys
from streamfm.store import ModelDir
with ModelDir(sys.argv[1]).lock():
    print("locked", flush=True)
    sys.stdin.read()  # until the test closes stdin or kills us
"""


def test_lock_contention_between_processes(model):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(model.path)], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        message = (f"model directory {model.path} is in use by another trainer (pid {holder.pid}); "
                   "wait for it to finish or stop it")
        with pytest.raises(InputError) as info:
            with model.lock():
                pass
        assert str(info.value) == message
    finally:
        holder.kill()  # kill -9: the kernel releases the flock
        holder.wait()
    with model.lock():
        model.save({"step": 1}, make_arrays(1))


def test_lock_within_one_process(model):
    other = ModelDir(model.path)
    with model.lock():
        with model.lock():  # re-entrant on the same object
            pass
        with pytest.raises(InputError, match=rf"in use by another trainer \(pid {os.getpid()}\)"):
            with other.lock():
                pass
    with other.lock():  # released on exit
        pass
    assert (model.path / ".lock").read_text() == f"{os.getpid()}\n"


def test_lock_on_a_file_is_an_input_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is not a directory"):
        with ModelDir(tmp_path / "file").lock():
            pass


# ---------------------------------------------------------------- metrics


def test_metrics_round_trip(model):
    assert model.read_metrics() == []
    model.append_metrics({"epoch": 1, "loss": np.float64(0.5)})
    model.append_metrics({"epoch": 2, "loss": float("nan"), "note": "line\nbreak"})
    records = model.read_metrics()
    assert records[0] == {"epoch": 1, "loss": 0.5}
    assert np.isnan(records[1]["loss"]) and records[1]["note"] == "line\nbreak"
    assert (model.path / "metrics.jsonl").read_text().count("\n") == 2


def test_metrics_torn_last_line(model):
    model.append_metrics({"epoch": 1})
    with open(model.path / "metrics.jsonl", "ab") as f:
        f.write(b'{"epoch": 2, "lo')  # the process died mid-write
    assert model.read_metrics() == [{"epoch": 1}]
    model.append_metrics({"epoch": 3})  # the torn fragment is cut off
    assert model.read_metrics() == [{"epoch": 1}, {"epoch": 3}]


def test_metrics_corrupt_line_is_named(model):
    model.append_metrics({"epoch": 1})
    with open(model.path / "metrics.jsonl", "ab") as f:
        f.write(b"nonsense\n[1]\n")
    with pytest.raises(InputError, match="damaged: metrics.jsonl line 2 is not a JSON object"):
        model.read_metrics()


# ---------------------------------------------------------------- atomic writes


def test_atomic_write_json_and_bytes(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": np.int32(1)})
    assert json.loads(target.read_text()) == {"a": 1}
    atomic_write_bytes(target, b"{}")
    assert target.read_bytes() == b"{}"
    with pytest.raises(TypeError):
        atomic_write_json(target, {"a": object()})
    assert target.read_bytes() == b"{}"
    assert os.listdir(tmp_path) == ["out.json"]


def test_atomic_output_commits_only_on_success(tmp_path):
    target = tmp_path / "preds.csv.gz"
    with atomic_output(target) as tmp:
        # Hidden (directory readers skip it), same directory, same suffix.
        assert tmp.parent == tmp_path and tmp.name.startswith(".preds.csv.tmp-") and tmp.suffix == ".gz"
        tmp.write_bytes(b"new")
        assert not target.exists()
    assert target.read_bytes() == b"new"

    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["preds.csv.gz"]


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_committing_the_manifest_is_named_and_keeps_the_previous(model, monkeypatch):
    from streamfm.errors import DiskFullError
    from streamfm.io import atomic

    model.save({"run": 1}, {"w": np.arange(3.0)})
    monkeypatch.setattr(atomic, "write_and_fsync", _no_space)
    with pytest.raises(DiskFullError, match=r"no space left on device while writing .*manifest\.json"):
        model.save({"run": 2}, {"w": np.arange(4.0)})
    monkeypatch.undo()
    manifest, arrays = model.load()
    assert manifest["run"] == 1 and arrays["w"].tolist() == [0.0, 1.0, 2.0]


def test_a_full_disk_while_appending_metrics_is_named_and_leaves_no_torn_line(model, monkeypatch):
    from streamfm.errors import DiskFullError
    from streamfm.store import metrics_log

    model.append_metrics({"epoch": 1})
    monkeypatch.setattr(metrics_log, "write_and_fsync", _no_space)
    with pytest.raises(DiskFullError, match=r"while writing .*metrics\.jsonl"):
        model.append_metrics({"epoch": 2})
    monkeypatch.undo()
    assert model.read_metrics() == [{"epoch": 1}]
