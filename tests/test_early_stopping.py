"""Early stopping with the best epoch kept: the file pipeline, the command line and the estimators."""
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from streamfm import cli
from streamfm.models.config import Config
from streamfm.preprocess.holdout import HoldOut
from streamfm.store.modeldir import ModelDir
from streamfm.training import loop as loop_module
from streamfm.training import validation as validation_module
from streamfm.run import load, resume, train
from streamfm.training.options import SPOOL, TrainOptions
from test_trainer import local_rules, write_parquet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTS = dict(batch_rows=64, shuffle_buffer=300, quiet=True)
CONF = dict(anchors=20, n_candidates=6, rebuild_every=150)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("esdata")
    X, y = local_rules(1200, seed=1)
    Xv, yv = local_rules(300, seed=2)
    return {"train": write_parquet(root / "train", X, y, shards=3), "valid": write_parquet(root / "valid", Xv, yv)}


EVALUATE = loop_module.evaluate_source


class Script:
    """The validation log loss follows ``values``, one per evaluation (an epoch's end), whatever the
    model: which epoch is best, and when the run stops, are then known in advance."""

    def __init__(self, monkeypatch, values):
        self.values, self.calls = list(values), 0

        def evaluate(trained, source, **kw):
            out = EVALUATE(trained, source, **kw)
            out["log_loss"] = self.values[self.calls]
            self.calls += 1
            return out

        monkeypatch.setattr(loop_module, "evaluate_source", evaluate)


#: best epoch 4; epochs 5 and 6 do not improve: with patience 2 the run stops after epoch 6 (of 9)
HISTORY = [0.5, 0.4, 0.42, 0.39, 0.41, 0.45, 0.3, 0.2, 0.1]


def arrays_of(path, kept=None):
    manifest, arrays = ModelDir(path).load(mmap_mode=None, kept=kept)
    return manifest, arrays


def assert_same_model(a, b):
    """Bit for bit: every array and the model meta."""
    (ma, xa), (mb, xb) = a, b
    assert set(xa) == set(xb)
    for name in xa:
        np.testing.assert_array_equal(xb[name], xa[name], err_msg=name)
    assert ma["model"] == mb["model"]


@pytest.fixture(scope="module")
def epoch4(data, tmp_path_factory):
    """The model after 4 epochs of the same run, trained without early stopping."""
    path = tmp_path_factory.mktemp("epoch4") / "m"
    train(data["train"], path, config=Config(**CONF), options=TrainOptions(epochs=4, early_stop=0, **OPTS))
    return arrays_of(path)


def test_the_best_epoch_is_kept_exactly(monkeypatch, capsys, data, epoch4, tmp_path):
    Script(monkeypatch, HISTORY)
    r = train(data["train"], tmp_path / "m", valid=data["valid"], config=Config(**CONF),
              options=TrainOptions(epochs=9, early_stop=2, **OPTS))
    assert (r["epochs_done"], r["kept_epoch"]) == (6, 4)
    assert r["stop_reason"] == "early stop after epoch 6, best epoch 4"
    store = ModelDir(tmp_path / "m")
    recs = store.read_metrics()
    assert [m["epoch"] for m in recs] == [1, 2, 3, 4, 5, 6]
    assert [m["best"] for m in recs] == [True, True, False, True, False, False]
    assert [m["best_epoch"] for m in recs] == [1, 2, 2, 4, 4, 4]
    assert recs[-1]["stop"] == r["stop_reason"] and recs[-1]["kept_epoch"] == 4
    # the committed result is epoch 4's checkpoint: its arrays and model meta, bit for bit
    assert_same_model(epoch4, arrays_of(tmp_path / "m"))
    man = store.read_manifest()
    run = man["training"]
    assert run["status"] == "complete" and run["kept_epoch"] == 4 and run["epoch"] == 6
    assert run["best"] == {"epoch": 4, "metric": "log_loss", "value": 0.39} and "kept" not in man
    assert sorted(e for e in os.listdir(store.path) if e.startswith("ckpt-")) == [man["checkpoint"]]
    assert load(tmp_path / "m").model.t == 4 * 1200  # what predict / evaluate / load use
    code = cli.main(["info", str(tmp_path / "m")])
    out = capsys.readouterr().out
    assert code == 0 and "kept:            epoch 4, valid log loss 0.3900 (early stop after epoch 6, best epoch 4)" in out


@pytest.mark.parametrize("stop_at", [4 * 1200 + 500, 5 * 1200], ids=["mid-epoch-5", "end-of-epoch-5"])
def test_resume_after_the_best_epoch_and_before_the_stop_is_exact(monkeypatch, data, epoch4, tmp_path, stop_at):
    Script(monkeypatch, HISTORY)
    train(data["train"], tmp_path / "a", valid=data["valid"], config=Config(**CONF),
          options=TrainOptions(epochs=9, early_stop=2, **OPTS))
    Script(monkeypatch, HISTORY)  # the interrupted run sees the same history, epoch by epoch
    r = train(data["train"], tmp_path / "b", valid=data["valid"], config=Config(**CONF),
              options=TrainOptions(epochs=9, early_stop=2, max_rows=stop_at, **OPTS))
    assert r["stopped"] == "max_rows"
    store = ModelDir(tmp_path / "b")
    man = store.read_manifest()
    run = man["training"]
    assert run["status"] == "interrupted" and run["epoch"] == stop_at // 1200
    # while interrupted: the manifest names the latest checkpoint and keeps the best one beside it
    assert run["best"]["epoch"] == 4 and run["early_stopping"]["bad_epochs"] == (stop_at // 1200) - 4
    assert sorted(e for e in os.listdir(store.path) if e.startswith("ckpt-")) == sorted(
        [man["checkpoint"], man["kept"]["best"]["checkpoint"]])
    best_manifest, best_arrays = arrays_of(tmp_path / "b", kept="best")
    assert_same_model(epoch4, ({"model": run["best"]["model"]}, best_arrays))
    assert load(tmp_path / "b").model.t == run["epoch"] * 1200 + run["position"] >= stop_at  # the latest
    man["training"]["options"]["max_rows"] = 0  # resume honours the stored options
    store.save(man, store.load(mmap_mode=None)[1], keep={"best": man["kept"]["best"]["checkpoint"]})
    r = resume(tmp_path / "b")
    assert (r["epochs_done"], r["kept_epoch"]) == (6, 4)
    assert_same_model(arrays_of(tmp_path / "a"), arrays_of(tmp_path / "b"))
    assert_same_model(epoch4, arrays_of(tmp_path / "b"))
    ra, rb = ModelDir(tmp_path / "a").read_metrics(), store.read_metrics()
    assert [(m["epoch"], m["best"]) for m in ra] == [(m["epoch"], m["best"]) for m in rb]
    # the epoch cut by the stop sums its rows' losses in two parts: equal to the last bits
    assert [m["train_loss"] for m in rb] == pytest.approx([m["train_loss"] for m in ra], rel=1e-12)


def test_early_stop_0_trains_every_epoch_and_keeps_the_last(monkeypatch, data, tmp_path):
    Script(monkeypatch, HISTORY)
    r = train(data["train"], tmp_path / "m", valid=data["valid"], config=Config(**CONF),
              options=TrainOptions(epochs=7, early_stop=0, **OPTS))
    assert r["epochs_done"] == 7 and "kept_epoch" not in r
    recs = ModelDir(tmp_path / "m").read_metrics()
    assert len(recs) == 7 and not any("best" in m for m in recs)
    run = ModelDir(tmp_path / "m").read_manifest()["training"]
    assert run["early_stopping"] is None and run["best"] is None and run["kept_epoch"] == 7
    assert load(tmp_path / "m").model.t == 7 * 1200


def test_incremental_training_starts_from_the_kept_model_and_stops_early_too(monkeypatch, data, tmp_path):
    Script(monkeypatch, HISTORY)
    train(data["train"], tmp_path / "m", valid=data["valid"], config=Config(**CONF),
          options=TrainOptions(epochs=9, early_stop=2, **OPTS))
    kept = arrays_of(tmp_path / "m")
    X2, y2 = local_rules(600, seed=4)
    second = write_parquet(tmp_path / "second", X2, y2)
    Script(monkeypatch, [0.3, 0.31, 0.32, 0.2])  # best: the first epoch of the new run
    r = train(second, tmp_path / "m", valid=data["valid"], options=TrainOptions(epochs=4, early_stop=2, **OPTS))
    assert (r["epochs_done"], r["kept_epoch"]) == (3, 1)
    assert load(tmp_path / "m").model.t == 4 * 1200 + 600  # the kept model of the first run, plus one epoch
    # the same as one epoch on the new data from the first run's kept model, without early stopping
    other = tmp_path / "other"
    ModelDir(other).save(kept[0], kept[1])
    train(second, other, options=TrainOptions(epochs=1, early_stop=0, **OPTS))
    a, b = arrays_of(tmp_path / "m"), arrays_of(other)
    for name in a[1]:
        np.testing.assert_array_equal(b[1][name], a[1][name], err_msg=name)


# ---------------------------------------------------------------- held-out rows


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """12,000 rows in 3 shards: above the 10,000 rows from which rows are held out without --valid."""
    root = tmp_path_factory.mktemp("big")
    X, y = local_rules(12_000, seed=7)
    return {"path": write_parquet(root / "d", X, y, shards=3), "X": X, "y": y}


BIG_OPTS = dict(batch_rows=256, shuffle_buffer=2000, quiet=True)


def expected_held(big, fraction=0.1, seed=0):
    """The held-out rows, as (file index, row in file) decide: labels and features in file order."""
    held = np.concatenate([HoldOut(fraction, seed).mask(i, 0, len(part))
                           for i, part in enumerate(np.array_split(np.arange(12_000), 3))])
    return big["X"][held], big["y"][held]


def spool_rows(path):
    t = pq.read_table(os.path.join(path, SPOOL))
    X = np.array([np.asarray(v) for v in t.column("values").to_pylist()])
    return X, t.column("label").to_numpy()


def test_rows_held_out_are_spooled_once_and_never_trained_on(capsys, big, tmp_path):
    train(big["path"], tmp_path / "m", config=Config(method="fm"),
          options=TrainOptions(epochs=2, **dict(BIG_OPTS, quiet=False)))
    out = capsys.readouterr().out
    Xh, yh = expected_held(big)
    assert 1000 < len(yh) < 1400
    assert f"early stopping: on a held-out 10% of the training rows ({len(yh):,} rows;" in out
    assert "data: 12,000 rows" in out
    X, y = spool_rows(tmp_path / "m")
    np.testing.assert_array_equal(y, yh)
    np.testing.assert_array_equal(X, Xh)
    run = ModelDir(tmp_path / "m").read_manifest()["training"]
    assert run["holdout"] == {"fraction": 0.1, "seed": 0, "rows": len(yh), "spool": SPOOL}
    assert run["rows_per_epoch"] == 12_000 - len(yh)
    m = load(tmp_path / "m").model
    # every row trained on is a training row (the model is the kept epoch's)
    assert m.t == m.counters["rows"] == run["kept_epoch"] * (12_000 - len(yh))
    assert m.t0 == 12_000 - len(yh)  # the step decay's epoch counts training rows
    recs = ModelDir(tmp_path / "m").read_metrics()
    assert [r["rows"] for r in recs] == [12_000 - len(yh)] * 2 and recs[0]["valid"]["rows"] == len(yh)
    # the standardiser's statistics are the training rows'
    held = np.concatenate([HoldOut(0.1, 0).mask(i, 0, len(p)) for i, p in enumerate(np.array_split(np.arange(12_000), 3))])
    np.testing.assert_allclose(load(tmp_path / "m").standardizer.shift, big["X"][~held].mean(0), rtol=1e-10)


def test_held_out_rows_do_not_depend_on_the_chunk_size_and_resume_exactly(big, tmp_path):
    train(big["path"], tmp_path / "a", config=Config(method="fm"), options=TrainOptions(epochs=2, **BIG_OPTS))
    r = train(big["path"], tmp_path / "b", config=Config(method="fm"), data_options={"chunk_rows": 1000},
              options=TrainOptions(epochs=2, max_rows=13_000, **BIG_OPTS))
    assert r["stopped"] == "max_rows"
    assert pq.read_table(tmp_path / "a" / SPOOL).equals(pq.read_table(tmp_path / "b" / SPOOL))
    store = ModelDir(tmp_path / "b")
    man = store.read_manifest()
    man["training"]["options"]["max_rows"] = 0
    kept = man.get("kept", {}).get("best")
    store.save(man, store.load(mmap_mode=None)[1], keep=kept and {"best": kept["checkpoint"]})
    resume(tmp_path / "b")
    ra, rb = ModelDir(tmp_path / "a").read_metrics(), store.read_metrics()
    assert [r["rows"] for r in ra] == [r["rows"] for r in rb]
    assert [r["valid"]["rows"] for r in ra] == [r["valid"]["rows"] for r in rb]
    # the scan's moments are summed chunk by chunk, so 1,000-row reads differ from 65,536-row
    # reads in the last bits; the rows and their order do not
    a, b = load(tmp_path / "a").model, load(tmp_path / "b").model
    for name in ("b", "W", "V"):
        np.testing.assert_allclose(np.asarray(b.params[name]), np.asarray(a.params[name]), rtol=1e-7, atol=1e-9)
    # an uninterrupted run with the same chunking is the same bit for bit
    train(big["path"], tmp_path / "c", config=Config(method="fm"), data_options={"chunk_rows": 1000},
          options=TrainOptions(epochs=2, **BIG_OPTS))
    c = load(tmp_path / "c").model
    for name in ("b", "W", "V"):
        np.testing.assert_array_equal(np.asarray(b.params[name]), np.asarray(c.params[name]))


@pytest.mark.parametrize("rows, held", [(10_000, False), (10_001, True)])
def test_rows_are_held_out_only_above_ten_thousand(capsys, tmp_path, rows, held):
    X, y = local_rules(rows, seed=3)
    path = write_parquet(tmp_path / "d", X, y)
    train(path, tmp_path / "m", config=Config(method="fm"), options=TrainOptions(epochs=1, **dict(BIG_OPTS, quiet=False)))
    out = capsys.readouterr().out
    run = ModelDir(tmp_path / "m").read_manifest()["training"]
    assert (SPOOL in os.listdir(tmp_path / "m")) == held
    assert (run["holdout"] is not None) == held and (run["early_stopping"] is not None) == held
    if held:
        assert run["rows_per_epoch"] == rows - run["holdout"]["rows"]
    else:
        assert run["rows_per_epoch"] == rows and "early stopping: off (10,000 rows or fewer and no --valid)" in out
    assert not [e for e in os.listdir(tmp_path / "m") if e.startswith(".") and e != ".lock"]


def test_early_stop_0_holds_nothing_out(big, tmp_path):
    train(big["path"], tmp_path / "m", config=Config(method="fm"), options=TrainOptions(epochs=1, early_stop=0, **BIG_OPTS))
    run = ModelDir(tmp_path / "m").read_manifest()["training"]
    assert run["holdout"] is None and run["rows_per_epoch"] == 12_000 and SPOOL not in os.listdir(tmp_path / "m")


def test_a_failed_scan_leaves_no_spool_and_no_directory(monkeypatch, tmp_path):
    import functools

    import pyarrow as pa

    from streamfm.io.spool import ParquetSpool

    opened = []

    class Spool(ParquetSpool):  # small row groups: the spool is on disk before the scan fails
        def _open(self):
            opened.append(super()._open())
            return opened[-1]

    monkeypatch.setattr(validation_module, "ParquetSpool", functools.partial(Spool, row_group_rows=500))
    bad = tmp_path / "bad"
    X, y = local_rules(20_000, seed=5)
    write_parquet(bad, X, y, shards=2)
    t = pq.read_table(bad / "part-00001.parquet").to_pydict()
    t["f0"][-1] = float("nan")  # the last row
    pq.write_table(pa.table(t), bad / "part-00001.parquet")
    with pytest.raises(Exception, match="must be finite"):
        train(str(bad), tmp_path / "m", config=Config(method="fm"), options=TrainOptions(epochs=1, **BIG_OPTS))
    assert opened and opened[0].startswith(str(tmp_path / "m" / ".holdout.tmp-"))
    assert not (tmp_path / "m").exists()
    # in an existing model's directory, only the temporary goes
    train(big_rows(tmp_path), tmp_path / "m", config=Config(method="fm"), options=TrainOptions(epochs=1, **BIG_OPTS))
    before = sorted(os.listdir(tmp_path / "m"))
    with pytest.raises(Exception, match="must be finite"):
        train(str(bad), tmp_path / "m", options=TrainOptions(epochs=1, **BIG_OPTS))
    assert sorted(os.listdir(tmp_path / "m")) == before and len(opened) > 1


def big_rows(tmp_path):
    X, y = local_rules(12_000, seed=6)
    return write_parquet(tmp_path / "good", X, y)


# ---------------------------------------------------------------- command line


def write_svm(path, n, seed):
    """A small noisy sparse regression: a large step overfits it after a couple of epochs."""
    rng = np.random.default_rng(seed)
    X = (rng.random((n, 30)) < 0.2) * rng.normal(size=(n, 30))
    y = X @ np.random.default_rng(99).normal(size=30) + rng.normal(size=n)
    with open(path, "w") as f:
        for xi, yi in zip(X, y):
            f.write(f"{yi:.5f} " + " ".join(f"{j + 1}:{xi[j]:.5f}" for j in np.flatnonzero(xi)) + "\n")
    return str(path)


def streamfm(*args):
    r = subprocess.run([sys.executable, "-m", "streamfm", *map(str, args)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_command_line_keeps_the_best_epoch_and_resumes_to_the_same_model(capsys, tmp_path):
    tr, va = write_svm(tmp_path / "tr.svm", 200, 1), write_svm(tmp_path / "va.svm", 300, 2)
    model = ["--method", "fm", "--eta0", "2", "--init-std", "0.5", "--batch-rows", "64", "--epochs", "30", "--valid", va]
    out = streamfm("train", tr, "--model", tmp_path / "a", *model)
    patience = TrainOptions().early_stop  # the default
    assert f"early stopping: on --valid (stop after {patience} epochs without improvement)" in out
    recs = ModelDir(tmp_path / "a").read_metrics()
    rmse = [r["valid"]["rmse"] for r in recs]
    best = int(np.argmin(rmse)) + 1
    assert len(recs) == best + patience < 30  # it overfit, and stopped `patience` epochs after its best
    assert f"early stop after epoch {best + patience}, best epoch {best}: the model is epoch {best}'s" in out
    assert f"model saved in {tmp_path / 'a'} (epoch {best}'s:" in out
    assert cli.main(["info", str(tmp_path / "a")]) == 0
    assert f"kept:            epoch {best}, valid rmse {rmse[best - 1]:.4f}" in capsys.readouterr().out
    assert cli.main(["evaluate", va, "--model", str(tmp_path / "a"), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["rmse"] == pytest.approx(rmse[best - 1], rel=1e-12)
    # a run stopped after every 330 rows or so (--max-rows, kept by --resume: mid-epoch, before and
    # after the best epoch) ends with the same model
    streamfm("train", tr, "--model", tmp_path / "b", *model, "--max-rows", "330", "-q")
    resumes = 0
    while ModelDir(tmp_path / "b").read_manifest()["training"]["status"] != "complete":
        streamfm("train", "--resume", tmp_path / "b", "-q")
        resumes += 1
    assert resumes >= (best + patience) * 200 // 384
    assert_same_model(arrays_of(tmp_path / "a"), arrays_of(tmp_path / "b"))
    # and it is the model of `best` epochs without early stopping
    streamfm("train", tr, "--model", tmp_path / "c", *model[:-4], "--epochs", best, "--early-stop", "0", "-q")
    assert_same_model(arrays_of(tmp_path / "a"), arrays_of(tmp_path / "c"))


def test_command_line_option_errors(capsys, tmp_path):
    assert cli.main(["train", "x.svm", "--model", str(tmp_path / "m"), "--early-stop", "-1"]) == 2
    assert "--early-stop must be >= 0" in capsys.readouterr().err
    assert cli.main(["train", "x.svm", "--model", str(tmp_path / "m"), "--validation-fraction", "1"]) == 2
    assert "--validation-fraction must be between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------- estimators


def noisy_regression(n, seed=1):
    rng = np.random.default_rng(seed)
    X = (rng.random((n, 30)) < 0.2) * rng.normal(size=(n, 30))
    return X, X @ np.random.default_rng(99).normal(size=30) + rng.normal(size=n)


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_estimators_restore_the_best_epoch(kind):
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

    from streamfm import FMClassifier, FMRegressor

    X, y = noisy_regression(500)
    cls, split = (FMRegressor, ShuffleSplit) if kind == "regressor" else (FMClassifier, StratifiedShuffleSplit)
    if kind == "classifier":
        y = (y > 0).astype(int)
    kw = dict(eta0=2.0, init_std=0.5, random_state=3)
    m = cls(n_epochs=30, early_stopping=True, validation_fraction=0.4, n_iter_no_change=3, **kw).fit(X, y)
    scores = m.validation_scores_
    assert len(scores) == m.n_iter_ == m.best_epoch_ + 3 < 30
    assert m.best_epoch_ == int(np.argmax(scores)) + 1 and max(scores) > scores[-1]
    # the restored parameters are those of best_epoch_ epochs on the same training rows
    train_rows, _ = next(split(test_size=0.4, random_state=3).split(np.zeros((500, 1)), y))
    ref = cls(n_epochs=m.best_epoch_, early_stopping=False, **kw).fit(X[np.sort(train_rows)], y[np.sort(train_rows)])
    for name in ("b", "W", "V"):
        np.testing.assert_array_equal(m.model_.params[name], ref.model_.params[name])
    assert m.model_.t == ref.model_.t
    off = cls(n_epochs=5, early_stopping=False, **kw).fit(X, y)
    assert off.n_iter_ == 5 and off.best_epoch_ is None and off.validation_scores_ is None


@pytest.mark.parametrize("rows, on", [(10_000, False), (10_001, True)])
def test_estimators_auto_early_stopping_above_ten_thousand_rows(rows, on):
    from streamfm import FMRegressor

    X, y = noisy_regression(rows, seed=2)
    m = FMRegressor(n_epochs=1).fit(X, y)
    assert (m.validation_scores_ is not None) == on and (m.best_epoch_ == 1 if on else m.best_epoch_ is None)
    assert m.model_.t == (rows - int(np.ceil(0.1 * rows)) if on else rows)


def test_estimator_parameter_errors():
    from streamfm import FMClassifier

    X, y = noisy_regression(50)
    y = (y > 0).astype(int)
    for bad in (dict(early_stopping="yes"), dict(validation_fraction=1.0), dict(n_iter_no_change=0)):
        with pytest.raises(ValueError):
            FMClassifier(n_epochs=1, **bad).fit(X, y)
