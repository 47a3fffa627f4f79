"""train / predict / evaluate / info on a model, through the command line."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from streamfm import cli
from streamfm.errors import InputError
from streamfm.store.modeldir import ModelDir

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(HERE)


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def fails(capsys, pattern, *argv, code=2):
    c, out, err = run(capsys, *argv)
    assert c == code, (c, out, err)
    assert "Traceback" not in err
    assert re.search(pattern, err), err
    return err


def write_svm(path, n, p=3, seed=0, label_fn=None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = (X[:, 0] * X[:, 1] > 0).astype(int) if label_fn is None else label_fn(X)
    with open(path, "w") as fh:
        for xi, yi in zip(X, y):
            fh.write(f"{yi} " + " ".join(f"{j + 1}:{v:.6f}" for j, v in enumerate(xi)) + "\n")
    return str(path), X, y


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    train_svm, _, _ = write_svm(root / "train.svm", 800, seed=1)
    test_svm, X, y = write_svm(root / "test.svm", 300, seed=2)
    model = root / "model"
    code = cli.main(["train", train_svm, "--model", str(model), "--valid", test_svm, "--epochs", "3",
                     "--anchors", "16", "-q"])
    assert code == 0
    return {"root": root, "model": str(model), "test": test_svm, "y": y, "train": train_svm}


def test_train_writes_a_model_with_metrics(trained):
    store = ModelDir(trained["model"])
    assert store.read_manifest()["training"]["status"] == "complete"
    recs = store.read_metrics()
    assert len(recs) == 3 and recs[-1]["valid"]["accuracy"] > 0.8


@pytest.mark.parametrize("ext", ["parquet", "csv"])
def test_predict_keeps_row_count_and_order(capsys, trained, ext):
    out = trained["root"] / f"preds.{ext}"
    code, _, err = run(capsys, "predict", trained["test"], "--model", trained["model"], "-o", out, "-q")
    assert code == 0 and "300 predictions" in err
    table = pq.read_table(out) if ext == "parquet" else pcsv.read_csv(out)
    assert table.num_rows == 300
    assert table.column_names == ["prediction", "proba_0", "proba_1"]
    pred = np.asarray(table.column("prediction").to_pylist(), dtype=float)
    # in order: the predictions line up with the labels row by row
    assert (pred == trained["y"]).mean() > 0.8
    p1 = np.asarray(table.column("proba_1"))
    assert ((p1 > 0.5) == (pred == 1)).all()


def test_a_prediction_failing_midway_leaves_the_old_file_and_no_temporary(trained, tmp_path):
    from streamfm.inference.predict import predict_to_file
    from streamfm.io.sources import open_source
    from streamfm.run import load

    real = open_source(trained["test"])

    class BreaksAfterOneChunk:
        files = real.files
        placed = real.placed

        def iter_placed(self, chunk_rows=None):
            yield next(iter(real.iter_placed(chunk_rows=50)))
            raise InputError("line 51: not a number")

    out = tmp_path / "preds.parquet"
    out.write_bytes(b"the previous predictions")
    with pytest.raises(InputError, match="line 51"):
        predict_to_file(load(trained["model"]), BreaksAfterOneChunk(), out)
    assert out.read_bytes() == b"the previous predictions"
    assert os.listdir(tmp_path) == ["preds.parquet"]
    assert predict_to_file(load(trained["model"]), open_source(trained["test"]), out) == 300
    assert pq.read_table(out).num_rows == 300 and os.listdir(tmp_path) == ["preds.parquet"]


def test_evaluate_prints_metrics(capsys, trained):
    code, out, _ = run(capsys, "evaluate", trained["test"], "--model", trained["model"], "--json", "-q")
    assert code == 0
    m = json.loads(out)
    assert m["rows"] == 300 and 0 < m["log_loss"] < 0.5 and m["accuracy"] > 0.8 and m["auc"] > 0.9


def test_info_on_a_model_directory_in_words(capsys, trained):
    code, out, _ = run(capsys, "info", trained["model"])
    assert code == 0
    assert "method:" in out and "llfm-jo" in out and "complete: epoch 3 of 3" in out
    code, out, _ = run(capsys, "info", trained["model"], "--json")
    assert json.loads(out)["model"]["config"]["anchors"] == 16


def test_train_without_data_uses_the_embedded_banana(capsys, tmp_path):
    code, out, _ = run(capsys, "train", "--model", tmp_path / "b", "--epochs", "2")
    assert code == 0 and "Banana" in out and "valid accuracy" in out
    acc = ModelDir(tmp_path / "b").read_metrics()[-1]["valid"]["accuracy"]
    assert acc > 0.85


def test_model_errors(capsys, trained, tmp_path):
    fails(capsys, "not a streamfm model directory", "predict", trained["test"], "--model", tmp_path, "-o",
          tmp_path / "x.csv")
    fails(capsys, r"\*\.parquet or \*\.csv", "predict", trained["test"], "--model", trained["model"], "-o",
          tmp_path / "x.txt")
    assert not (tmp_path / "x.txt").exists()
    wide, _, _ = write_svm(tmp_path / "wide.svm", 20, p=5)
    fails(capsys, r"feature index \d+ is beyond the model's 3 features", "evaluate", wide, "--model", trained["model"], "-q")
    code, _, err = run(capsys, "evaluate", wide, "--model", trained["model"], "-q", "--ignore-extra-features")
    assert code == 0 and "dropped 40 value(s)" in err
    fails(capsys, "name the model directory", "train", trained["test"])
    fails(capsys, "--resume DIR continues", "train", trained["test"], "--resume", trained["model"])
    fails(capsys, "anchors=0 must be a positive integer", "train", trained["test"], "--model",
          tmp_path / "m", "--anchors", "0")
    assert not ModelDir(tmp_path / "m").exists()
    bad, _, _ = write_svm(tmp_path / "three.svm", 30, label_fn=lambda X: np.arange(len(X)) % 3)
    fails(capsys, "label", "train", bad, "--model", trained["model"], "-q")  # a class the model never saw
    nan = tmp_path / "nan.svm"
    nan.write_text("1 1:0.5 2:nan\n")
    fails(capsys, r"nan.svm:1", "predict", nan, "--model", trained["model"], "-o", tmp_path / "y.csv")
    assert not (tmp_path / "y.csv").exists()


def test_two_trainers_on_one_directory(trained, tmp_path):
    """The second trainer refuses with a clear message while the first holds the lock."""
    store = ModelDir(trained["model"])
    with store.lock():
        r = subprocess.run([sys.executable, "-m", "streamfm", "train", trained["train"], "--model",
                            trained["model"], "-q", "--epochs", "1"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "in use by another trainer" in r.stderr and "Traceback" not in r.stderr


def _train_cmd(data, model, *extra):
    return [sys.executable, "-m", "streamfm", "train", data, "--model", model, "--epochs", "40", "-q",
            "--batch-rows", "64", "--checkpoint-rows", "200", "--anchors", "16", *extra]


def test_sigint_writes_a_checkpoint_and_resume_finishes(trained, tmp_path):
    big, _, _ = write_svm(tmp_path / "big.svm", 5000, seed=3)
    model = str(tmp_path / "m")
    proc = subprocess.Popen(_train_cmd(big, model, "--epochs", "8"), cwd=ROOT, stderr=subprocess.PIPE, text=True)
    store = ModelDir(model)
    deadline = time.time() + 120
    while not (store.exists() and store.read_manifest()["model"]["t"] > 0) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Continue with: streamfm train --resume" in err and "Traceback" not in err
    man = store.read_manifest()
    assert man["training"]["status"] == "interrupted"
    r = subprocess.run([sys.executable, "-m", "streamfm", "train", "--resume", model, "-q"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert store.read_manifest()["training"]["status"] == "complete"


def _progress(manifest):
    """Rows trained so far over all epochs, as a committed checkpoint records them."""
    run = manifest["training"]
    return run["epoch"] * run["rows_per_epoch"] + run["position"]


def _committed(store):
    """The committed manifest, or None before the first checkpoint."""
    try:
        return store.read_manifest()
    except InputError:
        return None


def test_kill_9_at_random_moments_never_corrupts_and_resume_is_exact(tmp_path):
    """SIGKILL a real training process at random moments, resume each time: the model always
    loads, and the run that was killed over and over ends with the parameters of an
    uninterrupted run (checkpoints hold the whole stream state).

    The kills follow the run's progress, not the clock, so that each one lands mid-run
    however fast or loaded the machine is: each process runs until it has committed a
    checkpoint at or past a random point of the run, then dies after a random fraction of
    one checkpoint interval (while it trains, writes arrays, renames or replaces the manifest).
    """
    from streamfm.run import load

    rows, epochs = 3000, 12
    data, _, _ = write_svm(tmp_path / "d.svm", rows, seed=4)
    ref, model = str(tmp_path / "ref"), str(tmp_path / "m")
    extra = ["--epochs", str(epochs), "--checkpoint-rows", "256"]
    subprocess.run(_train_cmd(data, ref, *extra), cwd=ROOT, check=True, timeout=300)
    rng = np.random.default_rng(0)
    # where the kills fall: random points within the first 80% of the run, in order
    targets = np.sort(rng.uniform(0.0, 0.8, size=5)) * (epochs * rows)
    store = ModelDir(model)
    resume_cmd = [sys.executable, "-m", "streamfm", "train", "--resume", model, "-q"]
    kills, gap = 0, 0.01  # gap: how long one checkpoint interval takes here, now
    for target in targets:
        start = _committed(store)
        proc = subprocess.Popen(resume_cmd if start else _train_cmd(data, model, *extra), cwd=ROOT,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 180  # never hang, however slow the machine
            last_name, last_t = start and start["checkpoint"], None
            seen = None  # the first checkpoint this process committed at or past the target
            while seen is None and proc.poll() is None:
                assert time.monotonic() < deadline, f"no checkpoint past row {target:.0f} in 3 minutes"
                manifest = _committed(store)
                if manifest is not None and manifest["checkpoint"] != last_name:
                    now = time.monotonic()
                    if last_t is not None:
                        gap = now - last_t
                    last_name, last_t = manifest["checkpoint"], now
                    if _progress(manifest) >= target:
                        seen = manifest
                time.sleep(0.003)
            if seen is not None:
                time.sleep(rng.uniform(0.0, 1.5) * min(gap, 1.0))
            if proc.poll() is not None:  # finished on its own (only if starved of CPU for long)
                assert proc.returncode == 0
                break
        finally:
            proc.kill()
            proc.wait()
        kills += 1
        manifest, arrays = store.load()  # loadable after every kill
        assert all(np.isfinite(np.asarray(a)).all() for a in arrays.values())
        # a committed checkpoint is never lost: the directory holds it or a later one
        assert _progress(manifest) >= _progress(seen)
        del arrays
    subprocess.run(resume_cmd, cwd=ROOT, check=True, timeout=300)
    assert kills >= 3
    assert store.read_manifest()["training"]["status"] == "complete"
    a, b = load(ref), load(model)
    for name in ("b", "W", "V", "Z"):
        np.testing.assert_allclose(np.asarray(b.model.params[name]), np.asarray(a.model.params[name]),
                                   rtol=1e-10, atol=1e-12)


def write_csv(path, X, labels):
    """Rows of X (6 decimals) with the label last, no header."""
    with open(path, "w") as fh:
        for xi, li in zip(X, labels):
            fh.write(",".join(f"{v:.6f}" for v in xi) + f",{li}\n")


def test_regression_and_multiclass_from_files(capsys, tmp_path):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(600, 3))
    yr = 2 * X[:, 0] * X[:, 1] + X[:, 2] + 0.05 * rng.normal(size=600)
    write_csv(tmp_path / "reg.csv", X, [f"{v:.6f}" for v in yr])
    code, out, _ = run(capsys, "train", tmp_path / "reg.csv", "--model", tmp_path / "r", "--epochs", "8",
                       "--anchors", "8", "-q")
    assert code == 0
    code, out, _ = run(capsys, "evaluate", tmp_path / "reg.csv", "--model", tmp_path / "r", "--json", "-q")
    m = json.loads(out)
    assert set(m) == {"rows", "rmse", "mae"} and m["rmse"] < 0.5 * np.std(yr)
    code, _, _ = run(capsys, "predict", tmp_path / "reg.csv", "--model", tmp_path / "r", "-o", tmp_path / "r.parquet", "-q")
    assert pq.read_table(tmp_path / "r.parquet").column_names == ["prediction"]
    # text labels, three classes: softmax over three outputs
    lab = np.array(["cat", "dog", "eel"])[np.argmax(X, axis=1)]
    write_csv(tmp_path / "mc.csv", X, lab)
    code, _, _ = run(capsys, "train", tmp_path / "mc.csv", "--model", tmp_path / "c", "--epochs", "5",
                     "--anchors", "8", "-q")
    assert code == 0
    assert ModelDir(tmp_path / "c").read_manifest()["model"]["classes"] == ["cat", "dog", "eel"]
    code, out, _ = run(capsys, "evaluate", tmp_path / "mc.csv", "--model", tmp_path / "c", "--json", "-q")
    assert json.loads(out)["accuracy"] > 0.9
    code, _, _ = run(capsys, "predict", tmp_path / "mc.csv", "--model", tmp_path / "c", "-o", tmp_path / "c.csv", "-q")
    t = pcsv.read_csv(tmp_path / "c.csv")
    assert t.column_names == ["prediction", "proba_cat", "proba_dog", "proba_eel"]
    assert (np.asarray(t.column("prediction").to_pylist()) == lab).mean() > 0.9


def test_quiet_train_leaves_slow_optional_imports_alone(tmp_path):
    """Start-up: a quiet run from Parquet imports neither tqdm (no bar is drawn) nor pyarrow.compute
    (only unusual column types are cast), about 0.1 s of the 2 s start-up budget, nor pandas (not a
    dependency: pyarrow 14-25 import it, or fail without it, when asked for a pandas dtype)."""
    _, X, y = write_svm(tmp_path / "d.svm", 200, seed=3)
    table = {"label": y.astype(float), **{f"f{j}": X[:, j] for j in range(X.shape[1])}}
    import pyarrow as pa

    pq.write_table(pa.table(table), tmp_path / "d.parquet")
    code = ("import sys; from streamfm.cli import main; "
            f"rc = main(['train', {str(tmp_path / 'd.parquet')!r}, '--model', {str(tmp_path / 'm')!r}, "
            "'--epochs', '1', '--anchors', '4', '-q']); "
            "print(rc, 'tqdm' in sys.modules, 'pyarrow.compute' in sys.modules, 'pandas' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.stdout.split()[-4:] == ["0", "False", "False", "False"], (r.stdout, r.stderr)


def test_train_with_progress_draws_progress_bars(tmp_path, capsys):
    """Bars when asked for (standard error is no terminal here, so none by default), with --quiet too."""
    data, _, _ = write_svm(tmp_path / "d.svm", 300, seed=4)
    code, _, err = run(capsys, "train", data, "--model", tmp_path / "m", "--epochs", "2", "--anchors", "4")
    assert code == 0 and "epoch 1/2" not in err and "\r" not in err, err
    code, out, err = run(capsys, "train", data, "--model", tmp_path / "m2", "--epochs", "2", "--anchors", "4",
                         "--progress", "-q")
    assert code == 0 and "epoch 1/2" in err and "epoch 2/2" in err and "rows" in err and "\r" in err, err
    assert "train loss" not in out  # --quiet: no epoch lines


def test_train_names_the_model_it_continues(tmp_path, capsys):
    data, _, _ = write_svm(tmp_path / "d.svm", 300, seed=5)
    model = tmp_path / "m"
    code, out, _ = run(capsys, "train", data, "--model", model, "--epochs", "2", "--anchors", "4")
    assert code == 0 and "continuing model" not in out
    code, out, _ = run(capsys, "train", data, "--model", model, "--epochs", "1")
    assert code == 0 and f"continuing model {model} (600 rows trained)" in out, out
    code, out, _ = run(capsys, "train", data, "--model", model, "--epochs", "1", "-q")
    assert code == 0 and "continuing model" not in out
