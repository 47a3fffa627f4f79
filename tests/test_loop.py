"""The training loop: what its callbacks see, manifests of the layout before engine entries, and the
training layer importing nothing above it."""
import ast
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import streamfm
from streamfm.models.config import Config
from streamfm.run import load, resume, train
from streamfm.store.modeldir import ModelDir
from streamfm.training.callbacks import Callback
from streamfm.training.options import RunState, TrainOptions
from test_trainer import local_rules, write_parquet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTS = dict(batch_rows=64, shuffle_buffer=300, quiet=True, early_stop=0)
CONF = dict(anchors=20, n_candidates=6, rebuild_every=150)
ROWS = 1200


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    X, y = local_rules(ROWS, seed=1)
    return write_parquet(tmp_path_factory.mktemp("loopdata") / "train", X, y, shards=3)


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    """Three epochs without callbacks."""
    path = tmp_path_factory.mktemp("plain") / "m"
    train(data, path, config=Config(**CONF), options=TrainOptions(epochs=3, **OPTS))
    return path


class Recorder(Callback):
    """Every event, with what the run said at that moment (the run state changes afterwards)."""

    def __init__(self):
        self.events = []

    def __call__(self, env):
        self.events.append(dict(event=env.event, epoch=env.epoch, rows=env.rows, losses=env.losses,
                                result=env.result, record=env.record, checkpoint=env.checkpoint,
                                summary=env.summary, position=env.run.position, status=env.run.status,
                                t=env.model.t))
        super().__call__(env)  # the on_<event> methods exist for every event

    def of(self, event, epoch=None):
        return [e for e in self.events if e["event"] == event and (epoch is None or e["epoch"] == epoch)]


def assert_same_params(a, b):
    ma, mb = load(a).model, load(b).model
    assert ma.t == mb.t
    for name in ("b", "W", "V", "Z"):
        np.testing.assert_array_equal(np.asarray(mb.params[name]), np.asarray(ma.params[name]))


def test_callbacks_see_every_epoch_round_rows_and_checkpoint(data, uninterrupted, tmp_path):
    rec = Recorder()
    summary = train(data, tmp_path / "m", config=Config(**CONF),
                    options=TrainOptions(epochs=3, checkpoint_rows=500, **OPTS), callbacks=[rec])
    names = [e["event"] for e in rec.events]
    # a new run's first checkpoint (the initialised model) comes before the loop starts
    assert names[:2] == ["checkpoint", "run_begin"] and names[-1] == "run_end"
    assert names.count("run_begin") == names.count("run_end") == 1
    assert [e["epoch"] for e in rec.of("epoch_begin")] == [1, 2, 3]
    assert [e["epoch"] for e in rec.of("epoch_end")] == [1, 2, 3]
    # the records the callbacks saw are the metrics lines, written before they saw them
    assert [e["record"] for e in rec.of("epoch_end")] == ModelDir(tmp_path / "m").read_metrics()
    for epoch in (1, 2, 3):
        rows = rec.of("rows", epoch)
        rounds = rec.of("round_end", epoch)
        assert sum(e["rows"] for e in rows) == ROWS and all(len(e["losses"]) == e["rows"] for e in rows)
        assert sum(e["result"].rows for e in rounds) == ROWS
        # a checkpoint is due every 500 rows: each round but the last ends at the first chunk past it
        assert [e["result"].exhausted for e in rounds] == [False, False, True]
        assert all(500 <= e["result"].rows < 500 + 64 for e in rounds[:-1])
        end = rec.of("epoch_end", epoch)[0]
        assert end["t"] == epoch * ROWS and end["record"]["rows"] == ROWS
    # the initialised model's, then two within each epoch and one at its end
    assert [e["epoch"] for e in rec.of("checkpoint")] == [1] + [1, 1, 1] + [2, 2, 2] + [3, 3, 3]
    assert rec.of("checkpoint")[-1]["checkpoint"] == ModelDir(tmp_path / "m").read_manifest()["checkpoint"]
    assert rec.of("checkpoint")[-1]["status"] == "complete"
    assert rec.of("run_end")[0]["summary"] is summary and summary["epochs_done"] == 3
    # callbacks observe: the model is the one trained without them
    assert_same_params(uninterrupted, tmp_path / "m")


def test_callbacks_see_a_stop_and_the_resumed_epoch(data, uninterrupted, tmp_path):
    rec = Recorder()
    r = train(data, tmp_path / "m", config=Config(**CONF), options=TrainOptions(epochs=3, max_rows=1000, **OPTS),
              callbacks=[rec])
    assert r["stopped"] == "max_rows"
    last = rec.events[-2:]
    assert [e["event"] for e in last] == ["checkpoint", "run_end"]
    # the round ends at the first chunk past --max-rows
    assert last[0]["status"] == "interrupted" and last[1]["summary"] is r and last[1]["position"] == r["position"]
    assert 1000 <= r["position"] < 1000 + 64
    assert not rec.of("epoch_end")
    store = ModelDir(tmp_path / "m")
    man = store.read_manifest()
    man["training"]["options"]["max_rows"] = 0
    store.save(man, store.load(mmap_mode=None)[1])
    rec = Recorder()
    resume(tmp_path / "m", callbacks=[rec])
    assert rec.of("run_begin")[0]["epoch"] == 0  # no epoch completed yet
    first = rec.of("epoch_begin")[0]
    assert (first["epoch"], first["position"]) == (1, r["position"])
    assert sum(e["rows"] for e in rec.of("rows", 1)) == ROWS - r["position"]
    assert [e["epoch"] for e in rec.of("epoch_end")] == [1, 2, 3]
    assert_same_params(uninterrupted, tmp_path / "m")


def old_layout(training: dict, engine: str = "local", positions=()) -> dict:
    """A manifest's "training" as streamfm wrote it before engines kept an entry of their own: the
    engine's name and Ray's options in "options" (with the unused "classes"), "worker_positions"
    beside the run."""
    training = dict(training)
    ray = training.pop("engine")
    defaults = dict(workers=2, sync_rows=0, address=None, worker_retries=2, scale_steps=True)
    options = dict(training["options"], engine=engine, classes=None, **(ray["options"] or defaults))
    training.update(options=options, worker_positions=list(positions))
    return training


def test_a_run_stopped_before_engine_entries_resumes_exactly(data, uninterrupted, tmp_path):
    train(data, tmp_path / "m", config=Config(**CONF), options=TrainOptions(epochs=3, max_rows=1000, **OPTS))
    store = ModelDir(tmp_path / "m")
    man = store.read_manifest()
    man["training"] = old_layout(dict(man["training"], options=dict(man["training"]["options"], max_rows=0)))
    assert "engine" not in man["training"] and "workers" in man["training"]["options"]
    store.save(man, store.load(mmap_mode=None)[1])
    assert resume(tmp_path / "m")["stopped"] is None
    assert_same_params(uninterrupted, tmp_path / "m")
    run = store.read_manifest()["training"]
    assert run["engine"] == {"name": "local", "options": {}, "state": {}} and "worker_positions" not in run
    assert not {"engine", "workers", "classes"} & set(run["options"])


def test_run_state_reads_a_ray_run_of_the_layout_before_engine_entries():
    before = {"data": {"files": ["a.parquet"], "options": {}}, "valid": None, "epochs": 2, "epoch": 1,
              "position": 700, "worker_positions": [350, 350],
              "options": dict(TrainOptions().__dict__, engine="ray", workers=2, sync_rows=100, address=None,
                              worker_retries=1, scale_steps=False, classes=None)}
    run = RunState.from_dict(before)
    assert run.engine == {"name": "ray", "options": dict(workers=2, sync_rows=100, address=None, worker_retries=1,
                                                         scale_steps=False),
                          "state": {"worker_positions": [350, 350]}}
    assert run.train_options() == TrainOptions()
    from streamfm.engines.ray import RayRounds

    rounds = RayRounds.from_record(run.engine)
    assert rounds.positions == [350, 350] and rounds.options.sync_rows == 100 and not rounds.options.scale_steps
    assert RunState.from_dict(run.to_dict()) == run  # the new layout reads back as written


def _imports(path: pathlib.Path, package: str):
    """(module, names) of every import in the file, relative ones resolved against ``package``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            yield module, tuple(a.name for a in node.names)


def test_training_imports_neither_engines_nor_the_entry_points():
    above = ("streamfm.engines", "streamfm.run", "streamfm.cli", "streamfm.estimators")
    files = sorted((pathlib.Path(streamfm.__file__).parent / "training").glob("*.py"))
    assert len(files) > 5
    for path in files:
        for module, names in _imports(path, "streamfm.training"):
            targets = [module] + [f"{module}.{n}" for n in names]
            bad = [t for t in targets if any(t == m or t.startswith(m + ".") for m in above)]
            assert not bad, f"{path.name} imports {bad}"


def test_ray_is_imported_only_when_a_ray_run_asks_for_it():
    code = ("import sys; import streamfm.run, streamfm.training.loop, streamfm.engines.ray, streamfm.cli; "
            "from streamfm import train, RayOptions; RayOptions(workers=3).validate(); "
            "print(callable(train), 'ray' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.stdout.split() == ["True", "False"], (r.stdout, r.stderr)


class SlowFirstChunk(Callback):
    """Stands for a compilation: the first chunk's rows take ``seconds`` more, inside numba's compile
    event when ``compiling`` (as a kernel's first call does), else as plain slow training."""

    def __init__(self, seconds, compiling):
        self.seconds, self.compiling, self.done = seconds, compiling, False

    def on_rows(self, env):
        if self.done:
            return
        self.done = True
        import time
        from contextlib import nullcontext

        import numba.core.event

        from streamfm.runtime.compile_clock import COMPILE_EVENT

        with numba.core.event.trigger_event(COMPILE_EVENT) if self.compiling else nullcontext():
            time.sleep(self.seconds)


@pytest.mark.parametrize("compiling", [True, False])
def test_an_epochs_rows_per_second_leave_out_compilation(data, tmp_path, compiling):
    """Epoch 1 of a first run compiles the kernels: its rows/s counts the training time alone; time that
    is not compilation still counts."""
    train(data, tmp_path / "m", config=Config(method="fm", rank=4),
          options=TrainOptions(epochs=1, **OPTS), callbacks=[SlowFirstChunk(0.5, compiling)])
    record = ModelDir(tmp_path / "m").read_metrics()[0]
    assert record["seconds"] >= 0.5
    if compiling:
        assert record["compile_seconds"] >= 0.5
        training = record["seconds"] - record["compile_seconds"]  # each rounded to 1 ms in the record
        assert ROWS / (training + 0.0011) <= record["rows_per_second"] <= ROWS / max(training - 0.0011, 1e-9)
        assert record["rows_per_second"] > 2 * ROWS / record["seconds"]
    else:  # the sleep counts as training (loading the kernels from numba's cache may count as compiling)
        assert record.get("compile_seconds", 0) < record["seconds"] - 0.5
        assert record["rows_per_second"] <= ROWS / 0.5
