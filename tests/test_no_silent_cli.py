"""No silent wrong answer: each fault of a hostile-input trial, through the command line.

Every test names the case it covers (the numbered list of what bad input
used to do: a wrong answer with exit 0, lost data, a traceback, a hang, a
message without its place).  Each asserts the fault is now one clear message
(exit code 2 for bad input, 3 for divergence) or the right answer.
"""
import errno
import json
import os
import re
import subprocess
import sys

import numpy as np
import pyarrow.csv as pcsv
import pytest

from streamfm import cli
from streamfm.store.modeldir import ModelDir

ENV = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST = ["--method", "fm", "--rank", "4", "--epochs", "2", "--early-stop", "0", "-q"]
LLFM = ["--method", "llfm-jo", "--anchors", "8", "--rank", "4", "--epochs", "2", "--early-stop", "0", "-q"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, out, err


def fails(capsys, pattern, *argv, code=2):
    c, out, err = run(capsys, *argv)
    assert c == code, (c, out, err)
    assert re.search(pattern, err), err
    return err


def ok(capsys, *argv):
    c, out, err = run(capsys, *argv)
    assert c == 0, (c, out, err)
    return out, err


def metrics(capsys, *argv) -> dict:
    out, _ = ok(capsys, "evaluate", *argv, "--json", "-q")
    return json.loads(out)


def table(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


def write_csv(path, X, y, order=("a", "b", "c", "label"), header=True):
    cols = {"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "label": y}
    lines = [",".join(order)] if header else []
    for i in range(len(y)):
        lines.append(",".join(str(int(cols[k][i])) if k == "label" else f"{cols[k][i]:.6f}" for k in order))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def write_svm(path, X, y, base=1, skip_zeros=False):
    with open(path, "w") as fh:
        for xi, yi in zip(X, y):
            items = [f"{j + base}:{v:.6f}" for j, v in enumerate(xi) if not (skip_zeros and v == 0)]
            fh.write(f"{yi} " + " ".join(items) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def csv_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("csvmodel")
    X, y = table(600, seed=1)
    train = write_csv(root / "train.csv", X, y)
    Xt, yt = table(200, seed=2)
    test = write_csv(root / "test.csv", Xt, yt)
    model = root / "model"
    assert cli.main(["train", train, "--model", str(model), *LLFM]) == 0
    return {"root": root, "train": train, "test": test, "model": str(model), "X": Xt, "y": yt}


# -- 1. the index base is kept with the model ------------------------------------------------------

def test_1_a_zero_based_model_reads_zero_based_data_without_feature_0_as_zero_based(capsys, tmp_path):
    X, y = table(600, seed=3)
    train = write_svm(tmp_path / "train.svm", X, y, base=0)
    ok(capsys, "train", train, "--model", tmp_path / "m", *FAST)
    Xt, yt = table(200, seed=4)
    Xt[:, 0] = 0.0  # feature 0 never appears in this file
    explicit = write_svm(tmp_path / "explicit.svm", Xt, yt, base=0)  # lists 0:0.000000
    sparse = write_svm(tmp_path / "sparse.svm", Xt, yt, base=0, skip_zeros=True)
    assert "0:" not in open(sparse).read().split(" ", 2)[1]
    assert metrics(capsys, sparse, "--model", tmp_path / "m") == metrics(capsys, explicit, "--model", tmp_path / "m")
    info, _ = ok(capsys, "info", tmp_path / "m")
    assert re.search(r"input:\s+libsvm, 0-based indices, 3 features", info)


# -- 2. CSV columns are matched by name ----------------------------------------------------------------

def test_2_csv_columns_in_another_order_are_matched_by_header(capsys, csv_model, tmp_path):
    shuffled = write_csv(tmp_path / "shuffled.csv", csv_model["X"], csv_model["y"], order=("c", "label", "a", "b"))
    m = csv_model["model"]
    assert metrics(capsys, shuffled, "--model", m) == metrics(capsys, csv_model["test"], "--model", m)
    assert metrics(capsys, shuffled, "--model", m)["accuracy"] > 0.85


# -- 3. a CSV without its label column -------------------------------------------------------------------

def test_3_predict_without_the_label_column_uses_every_feature_and_evaluate_refuses(capsys, csv_model, tmp_path):
    m = csv_model["model"]
    nolabel = write_csv(tmp_path / "nolabel.csv", csv_model["X"], csv_model["y"], order=("a", "b", "c"))
    ok(capsys, "predict", nolabel, "--model", m, "-o", tmp_path / "p1.csv", "-q")
    ok(capsys, "predict", csv_model["test"], "--model", m, "-o", tmp_path / "p2.csv", "-q")
    assert pcsv.read_csv(tmp_path / "p1.csv").equals(pcsv.read_csv(tmp_path / "p2.csv"))
    fails(capsys, r"label column 'label' \(the model's\) not found in .*nolabel\.csv", "evaluate", nolabel,
          "--model", m, "-q")


# -- 4. one bad cell does not turn a numeric column into categories ---------------------------------------

@pytest.mark.parametrize("bad, shown", [("hello", "hello"), ('"1,5"', "1,5")])
@pytest.mark.parametrize("chunk_rows", ["500", "65536"])
def test_4_a_bad_cell_in_a_numeric_csv_column_is_named_whatever_the_chunk_size(capsys, tmp_path, bad, shown,
                                                                                 chunk_rows):
    X, y = table(6000, seed=5)
    path = write_csv(tmp_path / "d.csv", X, y)
    lines = open(path).read().splitlines()
    cells = lines[4900].split(",")
    cells[1] = bad
    lines[4900] = ",".join(cells)  # data row 4900 (line 4901)
    open(path, "w").write("\n".join(lines) + "\n")
    fails(capsys, rf"d\.csv: row 4900, column 'b': cannot parse '{re.escape(shown)}' as a number.*--hash-columns b",
          "train", path, "--model", tmp_path / "m", "--chunk-rows", chunk_rows, *FAST)
    assert not (tmp_path / "m").exists()


def test_4_a_column_whose_kind_changes_after_training_is_named(capsys, csv_model, tmp_path):
    lines = open(csv_model["test"]).read().splitlines()
    cells = lines[17].split(",")
    cells[2] = "blue"
    lines[17] = ",".join(cells)
    path = tmp_path / "kind.csv"
    path.write_text("\n".join(lines) + "\n")
    fails(capsys, r"kind\.csv: row 17, column 'c': cannot parse 'blue' as a number", "evaluate", path,
          "--model", csv_model["model"], "-q")


# -- 5. huge finite values ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["1e308", "1e155", "-3e200"])
def test_5_values_whose_square_overflows_are_bad_input_with_file_and_line(capsys, tmp_path, value):
    X, y = table(300, seed=6)
    path = write_svm(tmp_path / "d.svm", X, y)
    lines = open(path).read().splitlines()
    lines[40] = f"1 1:{value} 2:0.5"
    open(path, "w").write("\n".join(lines) + "\n")
    fails(capsys, rf"d\.svm:41: value '{re.escape(value)}' is too large", "train", path, "--model", tmp_path / "m",
          *FAST)
    assert not (tmp_path / "m").exists()


def test_5_a_huge_value_in_a_csv_names_its_row(capsys, tmp_path):
    X, y = table(300, seed=6)
    X[99, 2] = 1e300
    path = write_csv(tmp_path / "d.csv", X, y)
    fails(capsys, r"d\.csv: row 100, column 'c': the value is 1e\+300; values must be finite numbers of magnitude",
          "train", path, "--model", tmp_path / "m", *FAST)


# -- 6. bit-rot in Parquet pages ------------------------------------------------------------------------------

def test_6_convert_writes_page_checksums_and_a_flipped_byte_is_an_error(capsys, tmp_path):
    X, y = table(2000, seed=7)
    path = write_svm(tmp_path / "d.svm", X, y)
    ok(capsys, "convert", path, "-o", tmp_path / "shards", "--compression", "none", "-q")
    shard = tmp_path / "shards" / "part-00000.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0x01
    shard.write_bytes(bytes(data))
    fails(capsys, r"part-00000\.parquet: .*CRC checksum verification failed", "train", tmp_path / "shards",
          "--model", tmp_path / "m", *FAST)


# -- 7. --resume checks its data and refuses flags it would ignore -------------------------------------------

@pytest.fixture
def stopped_run(capsys, tmp_path):
    X, y = table(3000, seed=8)
    path = write_svm(tmp_path / "d.svm", X, y)
    model = tmp_path / "m"
    ok(capsys, "train", path, "--model", model, "--max-rows", "1000", *FAST)
    assert ModelDir(model).read_manifest()["training"]["status"] == "interrupted"
    return path, model


def test_7_resume_refuses_data_cut_in_half_unless_allowed(capsys, stopped_run):
    path, model = stopped_run
    lines = open(path).read().splitlines()
    open(path, "w").write("\n".join(lines[:1500]) + "\n")
    fails(capsys, r"the data of the run in .* changed since it started: .*d\.svm changed size .*--allow-changed-data",
          "train", "--resume", model, "-q")
    ok(capsys, "train", "--resume", model, "--allow-changed-data", "-q")
    assert ModelDir(model).read_manifest()["training"]["status"] == "complete"


def test_7_resume_refuses_flags_that_would_change_the_run(capsys, stopped_run):
    _, model = stopped_run
    fails(capsys, r"--resume DIR continues a run as it was started, so --epochs would be ignored", "train",
          "--resume", model, "--epochs", "25")
    fails(capsys, r"so --eta0, --zero-based would be ignored", "train", "--resume", model, "--eta0", "0.5",
          "--zero-based")
    ok(capsys, "train", "--resume", model, "-q")


# -- 7b. data loss and misplaced output ------------------------------------------------------------------------

def test_7b_predict_onto_its_own_input_is_refused(capsys, csv_model, tmp_path):
    data = tmp_path / "in.csv"
    data.write_bytes(open(csv_model["test"], "rb").read())
    before = data.read_bytes()
    fails(capsys, r"the output .*in\.csv is one of the input files", "predict", data, "--model", csv_model["model"],
          "-o", data, "-q")
    assert data.read_bytes() == before


def test_7b_a_model_directory_among_data_shards_is_refused(capsys, tmp_path):
    X, y = table(500, seed=9)
    write_svm(tmp_path / "d.svm", X, y)
    ok(capsys, "convert", tmp_path / "d.svm", "-o", tmp_path / "shards", "-q")
    before = sorted(os.listdir(tmp_path / "shards"))
    fails(capsys, r"--model .*shards is a directory of other files \(part-00000\.parquet\) with no model in it",
          "train", tmp_path / "d.svm", "--model", tmp_path / "shards", *FAST)
    assert sorted(os.listdir(tmp_path / "shards")) == before


def test_7b_evaluate_on_zero_rows_is_an_error(capsys, csv_model, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("a,b,c,label\n")
    fails(capsys, r"no rows to evaluate in .*empty\.csv", "evaluate", empty, "--model", csv_model["model"], "-q")


def test_7b_a_value_far_outside_the_training_range_at_predict_is_named(capsys, csv_model, tmp_path):
    X = csv_model["X"].copy()
    X[30, 1] = 1e39
    path = write_csv(tmp_path / "big.csv", X, csv_model["y"])
    fails(capsys, r"big\.csv: row 31: feature 1 is .* far outside the training data's range", "predict", path,
          "--model", csv_model["model"], "-o", tmp_path / "p.csv", "-q")
    assert not (tmp_path / "p.csv").exists()


def test_7b_1e300_at_training_is_bad_input(capsys, tmp_path):
    X, y = table(300, seed=6)
    path = write_svm(tmp_path / "d.svm", X, y)
    with open(path, "a") as fh:
        fh.write("0 1:1e300\n")
    fails(capsys, r"d\.svm:301: value '1e300' is too large", "train", path, "--model", tmp_path / "m", *LLFM)


def test_7b_an_exploding_finite_loss_is_divergence(capsys, tmp_path):
    X, y = table(2000, seed=10)
    path = write_svm(tmp_path / "d.svm", X, y)
    fails(capsys, r"training diverged", "train", path, "--model", tmp_path / "m", "--optimizer", "normalized",
          "--eta0", "1e30", *FAST, code=3)


# -- 8. tracebacks and the hang ----------------------------------------------------------------------------------

def test_8_invalid_utf8_in_a_ragged_csv_row_is_named(capsys, tmp_path):
    X, y = table(300, seed=11)
    path = write_csv(tmp_path / "d.csv", X, y)
    raw = open(path, "rb").read().split(b"\n")
    raw[120] = b"0.5,\xff\xfe,1.0,0,7"
    open(path, "wb").write(b"\n".join(raw))
    fails(capsys, r"d\.csv: (line 121: not UTF-8 text|row 120: expected 4 fields)", "train", path, "--model",
          tmp_path / "m", *FAST)


@pytest.mark.parametrize("flag, value", [("--eta0", "inf"), ("--l2-w", "inf"), ("--seed", "-1"),
                                         ("--eta0", "nan"), ("--checkpoint-seconds", "0"),
                                         ("--checkpoint-seconds", "-1"), ("--checkpoint-seconds", "inf")])
def test_8_bad_option_values_are_one_message_and_leave_no_model_directory(tmp_path, flag, value):
    X, y = table(300, seed=12)
    path = write_svm(tmp_path / "d.svm", X, y)
    # a subprocess with a timeout: --checkpoint-seconds 0 used to checkpoint forever
    r = subprocess.run([sys.executable, "-m", "streamfm", "train", path, "--model", str(tmp_path / "m"), flag, value,
                        *FAST], env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert re.search(rf"{flag.lstrip('-').replace('-', '_')}|{flag}", r.stderr), r.stderr
    assert not (tmp_path / "m").exists()


@pytest.fixture
def fresh_model(capsys, tmp_path):
    X, y = table(400, seed=13)
    path = write_svm(tmp_path / "d.svm", X, y)
    ok(capsys, "train", path, "--model", tmp_path / "m", *LLFM)
    return path, tmp_path / "m"


def _checkpoint(model):
    return model / ModelDir(model).read_manifest()["checkpoint"]


@pytest.mark.parametrize("name", ["V", "W"])
def test_8_nan_in_a_checkpoint_array_is_a_damaged_model(capsys, fresh_model, tmp_path, name):
    data, model = fresh_model
    path = _checkpoint(model) / f"{name}.npy"
    arr = np.load(path)
    arr.reshape(-1)[0] = np.nan
    np.save(path, arr)
    fails(capsys, rf"model directory .* is damaged: .*{name}\.npy does not match its checksum", "predict", data,
          "--model", model, "-o", tmp_path / "p.csv", "-q")
    assert not (tmp_path / "p.csv").exists()
    fails(capsys, rf"{name}\.npy does not match its checksum", "info", model)


@pytest.mark.parametrize("edit, pattern", [
    (lambda m: m["model"].__setitem__("n_features", "three"), r"model entry"),
    (lambda m: m["model"].__setitem__("n_features", 7), r"n_features 7|shape"),
    (lambda m: m["model"].__setitem__("standardizer", 5), r"model entry"),
    (lambda m: m["model"].pop("config"), r"model entry"),
])
def test_8_a_hand_edited_manifest_is_a_damaged_model(capsys, fresh_model, tmp_path, edit, pattern):
    data, model = fresh_model
    manifest = json.loads((model / "manifest.json").read_text())
    edit(manifest)
    manifest.pop("manifest_crc32")  # as a streamfm before the checksum wrote it: the field checks answer
    (model / "manifest.json").write_text(json.dumps(manifest))
    fails(capsys, rf"model directory .* is damaged: .*({pattern})", "evaluate", data, "--model", model, "-q")


def test_8_checkpoint_seconds_zero_in_an_old_manifest_is_refused_on_resume(capsys, tmp_path):
    X, y = table(3000, seed=8)
    path = write_svm(tmp_path / "d.svm", X, y)
    model = tmp_path / "m"
    ok(capsys, "train", path, "--model", model, "--max-rows", "1000", *FAST)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["training"]["options"]["checkpoint_seconds"] = 0
    manifest.pop("manifest_crc32")  # an old manifest: written before the checksum
    (model / "manifest.json").write_text(json.dumps(manifest))
    r = subprocess.run([sys.executable, "-m", "streamfm", "train", "--resume", str(model)], env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--checkpoint-seconds must be a positive number" in r.stderr, r.stderr


# -- 9. messages with their place ---------------------------------------------------------------------------------

def test_9_an_unknown_label_names_its_file_and_line(capsys, fresh_model, tmp_path):
    data, model = fresh_model
    lines = open(data).read().splitlines()
    lines[148] = "7" + lines[148][1:]
    path = tmp_path / "labels.svm"
    path.write_text("\n".join(lines) + "\n")
    fails(capsys, r"labels\.svm:149: label 7 is not one of the model's classes", "evaluate", path, "--model", model,
          "-q")


def test_9_a_feature_beyond_the_model_names_its_line_and_the_flag(capsys, fresh_model, tmp_path):
    data, model = fresh_model
    lines = open(data).read().splitlines()
    lines[20] += " 9:1.0"
    path = tmp_path / "wide.svm"
    path.write_text("\n".join(lines) + "\n")
    err = fails(capsys, r"wide\.svm:21: feature index 8 is beyond the model's 3 features.*--ignore-extra-features",
                "predict", path, "--model", model, "-o", tmp_path / "p.csv", "-q")
    assert "ignore_extra=True" not in err.split("--ignore-extra-features")[0]


def test_9_a_full_disk_names_the_file_and_the_space_needed(capsys, monkeypatch, tmp_path):
    from streamfm.store import arrays

    X, y = table(300, seed=14)
    path = write_svm(tmp_path / "d.svm", X, y)
    real = arrays.write_npy
    calls = []

    def full(file, arr):
        calls.append(file)
        if len(calls) > 12:  # the first checkpoint is written; a later one finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(file, arr)

    monkeypatch.setattr("streamfm.store.checkpoints.write_npy", full)
    fails(capsys, r"no space left on device while writing .*m/ckpt-\d+/\w+\.npy: the checkpoint needs [\d.]+ MB",
          "train", path, "--model", tmp_path / "m", *FAST, code=1)
    monkeypatch.undo()
    ok(capsys, "info", tmp_path / "m")


def test_9_a_latin1_csv_names_the_right_line(capsys, tmp_path):
    rng = np.random.default_rng(15)
    lines = ["a,city,label"] + [f"{rng.normal():.4f},{rng.choice(['Bern', 'Basel'])},{i % 2}" for i in range(300)]
    raw = [line.encode() for line in lines]
    raw[201] = b"0.5,Z\xfcrich,1"  # data row 201, line 202, in Latin-1
    (tmp_path / "d.csv").write_bytes(b"\n".join(raw) + b"\n")
    fails(capsys, r"d\.csv: line 202: not UTF-8 text \('0\.5,Z.rich,1'\)", "train", tmp_path / "d.csv", "--model",
          tmp_path / "m", *FAST)


def test_8_no_exception_ignored_noise_for_an_undecodable_ragged_row(tmp_path):
    X, y = table(300, seed=11)
    path = write_csv(tmp_path / "d.csv", X, y)
    raw = open(path, "rb").read().split(b"\n")
    raw[120] = b"0.5,\xff\xfe,1.0,0,7"
    open(path, "wb").write(b"\n".join(raw))
    r = subprocess.run([sys.executable, "-m", "streamfm", "train", path, "--model", str(tmp_path / "m"), *FAST],
                       env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


# -- 10. debris ------------------------------------------------------------------------------------------------------

def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_10_temporary_files_of_dead_writers_are_removed_at_the_next_run(capsys, csv_model, tmp_path):
    pid = _dead_pid()
    leftovers = [tmp_path / f".p.tmp-{pid}-0123abcd.csv", tmp_path / f".shards.tmp-{pid}-89abcdef"]
    leftovers[0].write_text("half")
    leftovers[1].mkdir()
    (leftovers[1] / "part-00000.parquet").write_text("half")
    mine = tmp_path / f".p.tmp-{os.getpid()}-fedcba98.csv"  # a live writer's: kept
    mine.write_text("in progress")
    ok(capsys, "predict", csv_model["test"], "--model", csv_model["model"], "-o", tmp_path / "p.csv", "-q")
    assert not any(p.exists() for p in leftovers) and mine.exists()


def test_10_a_killed_predict_leaves_nothing_the_next_one_keeps(tmp_path, csv_model):
    env = ENV
    big = tmp_path / "big.csv"
    X, y = table(200_000, seed=16)
    write_csv(big, X, y)
    cmd = [sys.executable, "-m", "streamfm", "predict", str(big), "--model", csv_model["model"], "-o",
           str(tmp_path / "p.parquet"), "-q", "--chunk-rows", "2000"]
    proc = subprocess.Popen(cmd, env=env)
    import time

    deadline = time.monotonic() + 60
    while not any(n.startswith(".p.tmp-") for n in os.listdir(tmp_path)) and time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.skip("predict finished before it could be killed")
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    subprocess.run(cmd, env=env, check=True)
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


@pytest.mark.parametrize("bad", ["valid", "eta0"])
def test_10_a_failed_start_leaves_no_model_directory_and_the_retry_works(capsys, tmp_path, bad):
    X, y = table(400, seed=17)
    path = write_svm(tmp_path / "d.svm", X, y)
    valid = tmp_path / "v.svm"
    valid.write_text("5 1:0.5\n")  # a class the data does not have
    args = ["--valid", valid] if bad == "valid" else ["--eta0", "inf"]
    fails(capsys, r"v\.svm:1: label 5 is not one of the model's classes|eta0", "train", path, "--model",
          tmp_path / "m", *args, *FAST)
    assert not (tmp_path / "m").exists()
    ok(capsys, "train", path, "--model", tmp_path / "m", *FAST)


def test_10_skip_bad_rows_reports_how_many(capsys, tmp_path):
    X, y = table(400, seed=18)
    path = write_svm(tmp_path / "d.svm", X, y)
    lines = open(path).read().splitlines()
    for i in (3, 50, 51):
        lines[i] = "1 2:x"
    open(path, "w").write("\n".join(lines) + "\n")
    _, err = ok(capsys, "train", path, "--model", tmp_path / "m", "--skip-bad-rows", *FAST)
    assert "skipped 3 bad row(s) of the training data (--skip-bad-rows)" in err


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_10_info_reports_a_damaged_checkpoint(capsys, fresh_model, damage):
    _, model = fresh_model
    path = _checkpoint(model) / "W.npy"
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:-8])
    out = fails(capsys, r"model directory .* is damaged", "info", model)
    assert "complete" in capsys.readouterr().out or True
    assert out


def test_10_info_verify_checks_every_array(capsys, fresh_model):
    _, model = fresh_model
    out, _ = ok(capsys, "info", model, "--verify")
    assert re.search(r"checkpoint:\s+every array matches its checksum", out)


def test_10_metrics_never_record_an_epoch_the_checkpoint_does_not_hold(capsys, monkeypatch, tmp_path):
    X, y = table(400, seed=19)
    path = write_svm(tmp_path / "d.svm", X, y)
    real = ModelDir.save
    calls = []

    def save(self, manifest, arrays, **kw):
        calls.append(1)
        if len(calls) == 3:  # the initial checkpoint, epoch 1's, then epoch 2's fails
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, manifest, arrays, **kw)

    monkeypatch.setattr(ModelDir, "save", save)
    fails(capsys, r"No space left", "train", path, "--model", tmp_path / "m", *FAST, code=1)
    store = ModelDir(tmp_path / "m")
    assert store.read_manifest()["training"]["epoch"] == 1
    assert [r["epoch"] for r in store.read_metrics()] == [1]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_10_outputs_respect_the_umask(capsys, csv_model, tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        ok(capsys, "predict", csv_model["test"], "--model", csv_model["model"], "-o", tmp_path / "p.csv", "-q")
        ok(capsys, "convert", csv_model["test"], "-o", tmp_path / "shards", "-q")
    finally:
        os.umask(old)
    assert (tmp_path / "p.csv").stat().st_mode & 0o777 == mode
    assert (tmp_path / "shards" / "part-00000.parquet").stat().st_mode & 0o777 == mode


def test_4_convert_does_not_hash_a_numeric_column_with_one_bad_cell(capsys, tmp_path):
    X, y = table(3000, seed=20)
    path = write_csv(tmp_path / "d.csv", X, y)
    lines = open(path).read().splitlines()
    lines[1] = lines[1].replace(",", ",hello", 1).split(",hello")[0] + ",hello," + ",".join(lines[1].split(",")[2:])
    open(path, "w").write("\n".join(lines) + "\n")
    fails(capsys, r"d\.csv: row 1, column 'b': cannot parse 'hello' as a number", "convert", path, "-o",
          tmp_path / "shards", "-q")
    assert not (tmp_path / "shards").exists()


def test_2_a_column_the_model_has_no_feature_for_is_refused_unless_ignored(capsys, csv_model, tmp_path):
    lines = open(csv_model["test"]).read().splitlines()
    path = tmp_path / "extra.csv"
    path.write_text("\n".join(["id," + lines[0]] + [f"{i}," + line for i, line in enumerate(lines[1:])]) + "\n")
    m = csv_model["model"]
    fails(capsys, r"extra\.csv has column\(s\) the model has no feature for: id .*--ignore-extra-features",
          "evaluate", path, "--model", m, "-q")
    assert metrics(capsys, path, "--model", m, "--ignore-extra-features") == metrics(capsys, csv_model["test"],
                                                                                     "--model", m)


def test_9_a_full_disk_while_predicting_or_converting_names_the_output(capsys, monkeypatch, csv_model, tmp_path):
    import pyarrow.parquet as pq

    def full(self, *args, **kwargs):
        raise OSError("IOError: No space left on device. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    fails(capsys, r"no space left on device while writing .*p\.parquet: it needs more than [\d.]+ MB", "predict",
          csv_model["test"], "--model", csv_model["model"], "-o", tmp_path / "p.parquet", "-q", code=1)
    fails(capsys, r"no space left on device while writing .*shards: it needs more than", "convert",
          csv_model["test"], "-o", tmp_path / "shards", "-q", code=1)
    assert os.listdir(tmp_path) == []
