"""`streamfm info` and `streamfm convert` through cli.main: output, and one clear
message with exit code 2 for every kind of bad input."""
from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamfm import cli
from streamfm.io import Chunk, open_source

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

REAL = [  # name, rows, features, task, distinct labels
    ("banana", 5300, 2, "binary", 2),
    ("magic04", 19020, 10, "binary", 2),
    ("letter", 20000, 16, "multiclass", 26),
]
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"benchmark data not found at {DATA}")


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def fails_with(capsys, message_re, *argv):
    """Exit code 2, one line `streamfm: error: ...` on stderr, no traceback."""
    import re

    code, out, err = run(capsys, *argv)
    assert code == 2, (code, out, err)
    assert "Traceback" not in err
    # A progress bar may leave `\r`-overwritten text before the message.
    lines = [ln.split("\r")[-1] for ln in err.split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("streamfm: error: "), err
    assert re.search(message_re, lines[0]), lines[0]
    return lines[0]


# ---------------------------------------------------------------------------
# The real benchmark data sets
# ---------------------------------------------------------------------------


@needs_data
@pytest.mark.parametrize("name,rows,features,task,n_labels", REAL)
def test_info_real_data(capsys, name, rows, features, task, n_labels):
    code, out, err = run(capsys, "info", DATA / name / f"{name}.csv", "--json", "--quiet")
    assert code == 0, err
    s = json.loads(out)
    assert s["rows"] == rows and s["features"] == features
    assert s["task"] == task and len(s["labels"]) == n_labels
    assert s["files"] == 1 and s["format"] == "csv" and s["density"] == 1.0
    assert sum(d["rows"] for d in s["labels"]) == rows
    code, out, err = run(capsys, "info", DATA / name / f"{name}.csv", "-q")
    assert code == 0 and f"rows:      {rows:,}" in out and f"features:  {features}" in out


@needs_data
@pytest.mark.parametrize("name,rows,features,task,n_labels", REAL)
def test_convert_real_data(capsys, tmp_path, name, rows, features, task, n_labels):
    src_path = DATA / name / f"{name}.csv"
    out_dir = tmp_path / name
    code, out, err = run(capsys, "convert", src_path, "-o", out_dir, "--rows-per-shard", 8000, "-q")
    assert code == 0, err
    assert f"wrote {rows:,} rows in {-(-rows // 8000)} wide Parquet shard(s)" in out
    code, out, err = run(capsys, "info", out_dir, "--json", "-q")
    s = json.loads(out)
    assert (s["rows"], s["features"], s["task"], len(s["labels"])) == (rows, features, task, n_labels)
    a = Chunk.concat(list(open_source(str(src_path)).iter_chunks()))
    b = Chunk.concat(list(open_source(str(out_dir)).iter_chunks()))
    np.testing.assert_array_equal(a.to_dense(), b.to_dense())
    assert a.y.tolist() == b.y.tolist()


# ---------------------------------------------------------------------------
# info / convert on small files
# ---------------------------------------------------------------------------


def test_info_libsvm(capsys, tmp_path):
    path = tmp_path / "d.svm"
    path.write_text("1 1:1 3:2\n-1 2:1\n1 3:1\n")
    code, out, err = run(capsys, "info", path, "-q")
    assert code == 0, err
    assert "rows:      3" in out and "features:  3" in out and "binary" in out
    assert "1-based" in out and "density 44.44%" in out and "-1 (1), 1 (2)" in out


def test_convert_libsvm_zero_based_flag(capsys, tmp_path):
    path = tmp_path / "d.svm"
    path.write_text("1 1:1 3:2\n-1 2:1\n")
    code, out, err = run(capsys, "convert", path, "-o", tmp_path / "z", "--zero-based", "-q")
    assert code == 0, err and "sparse Parquet" in out
    b = Chunk.concat(list(open_source(str(tmp_path / "z")).iter_chunks()))
    assert b.indices.tolist() == [1, 3, 2]
    code, out, err = run(capsys, "convert", path, "-o", tmp_path / "o", "--one-based", "-q")
    b = Chunk.concat(list(open_source(str(tmp_path / "o")).iter_chunks()))
    assert b.indices.tolist() == [0, 2, 1]


def test_skip_bad_rows_reports_the_count(capsys, tmp_path):
    path = tmp_path / "data.svm"
    path.write_text("1 1:1\n1 x:1.5\n-1 2:nan\n-1 2:1\n")
    code, out, err = run(capsys, "info", path, "--skip-bad-rows", "-q")
    assert code == 0, err
    assert "rows:      2" in out and "bad rows:  2 skipped" in out
    assert "skipped 2 bad row(s)" in err
    code, out, err = run(capsys, "convert", path, "-o", tmp_path / "out", "--skip-bad-rows", "-q")
    assert code == 0 and "wrote 2 rows" in out and "skipped 2 bad row(s)" in err


# ---------------------------------------------------------------------------
# Bad input: one message, exit code 2
# ---------------------------------------------------------------------------


def test_malformed_token(capsys, tmp_path):
    lines = ["1 1:1"] * 16 + ["1 3:1 x:1.5"]
    path = tmp_path / "data.svm"
    path.write_text("\n".join(lines) + "\n")
    fails_with(capsys, r"data\.svm:17: cannot parse 'x:1\.5' \(expected index:value\)$", "info", path)
    fails_with(capsys, r"data\.svm:17: cannot parse 'x:1\.5'", "convert", path, "-o", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_nan_and_inf(capsys, tmp_path):
    svm = tmp_path / "data.svm"
    svm.write_text("1 1:1\n1 2:NaN\n")
    fails_with(capsys, r"data\.svm:2: non-finite value in '2:NaN'", "info", svm)
    csv = tmp_path / "data.csv"
    csv.write_text("1,2,a\n3,inf,b\n")
    fails_with(capsys, r"data\.csv: row 2, column 'c1': the value is inf", "info", csv)


def test_unknown_label_column(capsys, tmp_path):
    csv = tmp_path / "data.csv"
    csv.write_text("x,y,target\n1,2,a\n")
    fails_with(capsys, r"label column 'label' not found in .*data\.csv; the columns are: x, y, target",
               "info", csv, "--label-column", "label")
    pq.write_table(pa.table({"a": [1.0], "b": [0.0]}), str(tmp_path / "t.parquet"))
    fails_with(capsys, r"label column 'label' not found .*the columns are: a, b", "info", tmp_path / "t.parquet")


def test_truncated_gzip(capsys, tmp_path):
    raw = gzip.compress(("".join(f"{i % 2} 1:{i} 2:{i * 0.5}\n" for i in range(50000))).encode())
    path = tmp_path / "data.svm.gz"
    path.write_bytes(raw[: len(raw) // 2])
    fails_with(capsys, r"data\.svm\.gz: the compressed file is truncated or corrupt \(", "info", path)


def test_corrupt_parquet(capsys, tmp_path):
    path = tmp_path / "shard-3.parquet"
    path.write_bytes(b"not parquet")
    fails_with(capsys, r"shard-3\.parquet: not a readable Parquet file \(", "info", path)


def test_missing_input(capsys, tmp_path):
    fails_with(capsys, r"nothing\.svm: no such file or directory", "info", tmp_path / "nothing.svm")
    fails_with(capsys, r"no file matches", "convert", tmp_path / "*.csv", "-o", tmp_path / "o")


def test_usage_errors_and_help(capsys):
    assert cli.main([]) == 2
    assert cli.main(["info"]) == 2  # argparse: DATA is required
    assert cli.main(["--help"]) == 0
    assert cli.main(["--version"]) == 0
    capsys.readouterr()


def test_keyboard_interrupt_exits_130(capsys, tmp_path, monkeypatch):
    import importlib

    scan_mod = importlib.import_module("streamfm.preprocess.scan")

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(scan_mod, "scan", interrupted)
    path = tmp_path / "d.svm"
    path.write_text("1 1:1\n")
    code, out, err = run(capsys, "info", path)
    assert code == 130 and "Traceback" not in err


def test_python_dash_m_and_console_script_exit_codes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    missing = str(tmp_path / "missing.svm")
    r = subprocess.run([sys.executable, "-m", "streamfm", "info", missing], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and r.stderr.startswith("streamfm: error: ") and "Traceback" not in r.stderr
    # What the setuptools console script does: sys.exit(main()).
    script = "import sys; from streamfm.cli import main; sys.exit(main())"
    r = subprocess.run([sys.executable, "-c", script, "info", missing], capture_output=True, text=True, env=env)
    assert r.returncode == 2


def _subparsers():
    import argparse

    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_help_shows_no_internal_names_and_lists_the_choices(capsys):
    """Every command's --help: value names are short words (no destination names such as CFG_METHOD or
    OPT_EPOCHS), and the options with a fixed set of values list it."""
    commands = _subparsers()
    assert {"train", "predict", "evaluate", "convert", "info", "export", "plot"} <= set(commands)
    for name, sub in commands.items():
        assert cli.main([name, "--help"]) == 0
        text = capsys.readouterr().out
        assert not re.search(r"\b(CFG|OPT)_[A-Z_]+", text), (name, text)
        # no value name left to argparse, which makes one of the destination (CHECKPOINT_ROWS)
        for action in sub._actions:
            if action.option_strings and action.nargs != 0 and action.choices is None:
                assert action.metavar is not None, (name, action.option_strings)
    train = {s: a for a in commands["train"]._actions for s in a.option_strings}
    for flag, values in (("--method", {"fm", "llfm-jo"}), ("--multiclass", {"softmax", "ovr"}),
                         ("--optimizer", {"adagrad", "sgd"}), ("--scale", {"auto", "none"}),
                         ("--task", {"regression"}), ("--engine", {"local", "ray"}), ("--format", {"csv"})):
        assert values <= set(train[flag].choices), flag
    assert "lz4" in next(a for a in commands["convert"]._actions if "--compression" in a.option_strings).choices
