"""The store a model gets from its predicted size and the memory budget, through the API and the CLI."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from streamfm.errors import InputError
from streamfm.models import memory
from streamfm.models.memory import (StoreSpec, choose_store, hashed_spec, model_bytes, parse_bytes)

ROOT = os.path.dirname(os.path.dirname(__file__))


def test_model_bytes_counts_what_is_allocated():
    # exact: 51 FMs x 1000 features x (1 + 10) values, float64, twice with AdaGrad; anchors 50 x 8
    assert model_bytes(StoreSpec(), 51, 1000, 1, 10, True, 50, 8) == 51 * 1000 * 11 * 16 + 51 * 16 + 50 * 8 * 8
    assert model_bytes(StoreSpec(), 51, 1000, 1, 10, False) == 51 * 1000 * 11 * 8 + 51 * 8
    # hashed: 2^12 slots of 11 float32 values (x2 with AdaGrad), a uint32 tag and a uint8 flag each
    assert model_bytes(hashed_spec(12), 51, 1000, 1, 10, True) == 51 * 16 + 4096 * (11 * 8 + 5)


def test_the_exact_store_when_it_fits_else_the_largest_table_that_does():
    exact = model_bytes(StoreSpec(), 51, 1 << 20, 1, 10, True)
    assert choose_store(51, 1 << 20, 1, 10, True, budget=exact) == StoreSpec()
    spec = choose_store(51, 1 << 20, 1, 10, True, budget=exact - 1)
    assert spec.hashed and spec.dtype == "float32"
    budget = 800 << 20
    spec = choose_store(51, 1 << 20, 1, 10, True, budget=budget)
    assert model_bytes(spec, 51, 1 << 20, 1, 10, True) <= budget
    assert model_bytes(hashed_spec(spec.bits + 1), 51, 1 << 20, 1, 10, True) > budget
    # never more slots than (FM, feature) pairs
    assert choose_store(3, 1000, 1, 10, True, budget=model_bytes(StoreSpec(), 3, 1000, 1, 10, True) - 1).bits == 12


def test_bits_force_the_hashed_store_and_nothing_fitting_is_one_clear_error():
    assert choose_store(1, 10, 1, 4, False, bits=14, budget=1 << 30) == hashed_spec(14)
    with pytest.raises(InputError, match="--bits must be from"):
        choose_store(1, 10, 1, 4, False, bits=4, budget=1 << 30)
    with pytest.raises(InputError) as err:
        choose_store(51, 1 << 20, 1, 10, True, budget=20_000)
    for flag in ("--memory-budget", "--bits", "--anchors", "--rank", "--method fm"):
        assert flag in str(err.value)
    with pytest.raises(InputError, match="--bits 20 needs"):
        choose_store(51, 1 << 20, 1, 10, True, bits=20, budget=1 << 20)


def test_sizes_parse_as_the_command_line_takes_them():
    assert parse_bytes("800M") == 800 << 20 and parse_bytes("1.5G") == 3 << 29 and parse_bytes("2GB") == 2 << 30
    assert parse_bytes("4096") == 4096 and parse_bytes("64kib") == 64 << 10
    for bad in ("lots", "-1G", "0", "nanM"):
        with pytest.raises(InputError, match="--memory-budget"):
            parse_bytes(bad)


def test_the_default_budget_is_a_share_of_what_a_cgroup_leaves(monkeypatch):
    monkeypatch.setattr(memory, "_meminfo_available", lambda: 16 << 30)
    monkeypatch.setattr(memory, "_cgroup_room", lambda: None)
    assert memory.default_budget() == int(memory.BUDGET_FRACTION * (16 << 30))
    monkeypatch.setattr(memory, "_cgroup_room", lambda: 2 << 30)
    assert memory.default_budget() == int(memory.BUDGET_FRACTION * (2 << 30))


def _cli(*argv, limit_bytes=None):
    def limit():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "streamfm", *map(str, argv)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600, preexec_fn=limit if limit_bytes else None)


@pytest.fixture(scope="module")
def strings_csv(tmp_path_factory):
    """A CSV with one string column: hashed into 2^20 features by default."""
    path = tmp_path_factory.mktemp("csv") / "clicks.csv"
    rng = np.random.default_rng(0)
    with open(path, "w") as fh:
        fh.write("site,x,label\n")
        for _ in range(600):
            site = int(rng.integers(0, 40))
            fh.write(f"s{site},{rng.normal():.4f},{int(site % 3 == 0)}\n")
    return path


def test_a_model_over_the_budget_stops_at_once_with_one_clear_message(strings_csv, tmp_path):
    r = _cli("train", strings_csv, "--model", tmp_path / "m", "--anchors", "20", "--memory-budget", "20K", "-q")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamfm: error:")
    for flag in ("--memory-budget", "--bits", "--anchors", "--rank", "--method fm"):
        assert flag in lines[0]
    assert not (tmp_path / "m" / "manifest.json").exists()


def test_a_memory_error_is_one_clear_message(strings_csv, tmp_path):
    """Past the budget check (a budget larger than the machine), the allocation fails: one line, exit 2."""
    r = _cli("train", strings_csv, "--model", tmp_path / "m", "--anchors", "20", "--memory-budget", "1T", "-q",
             limit_bytes=3 << 30)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "out of memory" in lines[0] and "--memory-budget" in lines[0]


def test_bits_train_a_hashed_model_that_info_describes(strings_csv, tmp_path):
    r = _cli("train", strings_csv, "--model", tmp_path / "m", "--anchors", "8", "--bits", "12", "--epochs", "2",
             "-q")
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["model"]["store"] == {"kind": "hashed", "bits": 12, "dtype": "float32"}
    assert 0 < manifest["model"]["table_fill"] <= 4096
    r = _cli("info", tmp_path / "m")
    assert r.returncode == 0, r.stderr
    line = next(s for s in r.stdout.splitlines() if s.strip().startswith("store"))
    assert "hashed" in line and "4,096 slots" in line and f"{manifest['model']['table_fill']:,} touched" in line
    assert "collisions" in line
    r = _cli("predict", strings_csv, "--model", tmp_path / "m", "-o", tmp_path / "p.csv")
    assert r.returncode == 0, r.stderr


def test_estimators_take_bits_and_a_budget():
    from streamfm.estimators import LLFMClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    clf = LLFMClassifier(anchors=8, n_epochs=2, bits=11).fit(X, y)
    assert clf.model_.store == hashed_spec(11) and clf.model_.table.fill() > 0
    assert clf.predict_proba(X).shape == (300, 2)
    with pytest.raises(ValueError, match="--bits"):
        LLFMClassifier(anchors=8, n_epochs=1, memory_budget=1000).fit(X, y)


def test_a_finished_model_keeps_its_store(tmp_path):
    from test_trainer import local_rules, write_parquet

    from streamfm.models.config import Config
    from streamfm.run import load, train
    from streamfm.training.options import TrainOptions

    X, y = local_rules(300, seed=1)
    data = write_parquet(tmp_path / "data", X, y)
    opts = dict(epochs=1, batch_rows=64, quiet=True)
    train(data, tmp_path / "m", config=Config(anchors=8), options=TrainOptions(bits=12, **opts))
    with pytest.raises(InputError, match="hashed store: 2\\^12.*cannot change"):
        train(data, tmp_path / "m", options=TrainOptions(bits=14, **opts))
    train(data, tmp_path / "m", options=TrainOptions(bits=12, **opts))  # the same store: continues
    assert load(tmp_path / "m").model.store == hashed_spec(12) and load(tmp_path / "m").model.t == 600
