"""The shell's habits: `-` reads standard input, `predict -o -` writes standard output, kept columns,
margins, and progress bars only where they belong.

The standard input / output cases run the real command line in a subprocess (tiny data, one epoch
of fm); the rest call ``cli.main`` in this process.
"""
import bz2
import gzip
import io
import json
import lzma
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from streamfm import cli
from streamfm.errors import InputError
from streamfm.io.stdin import spooled_stdin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FM = ["--method", "fm", "--rank", "4", "--epochs", "1", "--early-stop", "0"]


def _rows(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int)
    return X, y


def _svm_text(X, y) -> str:
    return "".join(f"{yi} " + " ".join(f"{j + 1}:{v:.5f}" for j, v in enumerate(xi)) + "\n" for xi, yi in zip(X, y))


def _csv_text(X, y) -> str:
    lines = ["id,a,b,c,label"] + [f"r{i:03d},{x[0]:.5f},{x[1]:.5f},{x[2]:.5f},{t}" for i, (x, t) in enumerate(zip(X, y))]
    return "\n".join(lines) + "\n"


def _streamfm(args, stdin: bytes, tmp):
    """Run ``python -m streamfm ARGS`` with ``stdin``, standard error to a pipe, $TMPDIR in ``tmp``."""
    env = dict(os.environ, PYTHONPATH=ROOT, TMPDIR=str(tmp))
    return subprocess.run([sys.executable, "-m", "streamfm", *map(str, args)], input=stdin, capture_output=True,
                          env=env, cwd=tmp, timeout=300)


def _spools(*dirs):
    return [n for d in dirs for n in os.listdir(d) if n.startswith("streamfm-stdin-")]


def test_a_gzip_pipe_trains_predicts_to_standard_output_and_evaluates(tmp_path):
    """`zcat | train -`, `predict - -o -`, `evaluate -`: through the real command line, standard error to
    a pipe (so no bars and no carriage returns), standard output holding the CSV alone, spools removed."""
    X, y = _rows()
    text = _svm_text(X, y).encode()
    (tmp_path / "d.svm").write_bytes(text)
    spool = tmp_path / "spool"
    spool.mkdir()
    r = _streamfm(["train", "-", "--model", tmp_path / "m", *FM], gzip.compress(text), spool)
    assert r.returncode == 0, r.stderr.decode()
    assert b"\r" not in r.stderr and b"epoch 1/1" not in r.stderr, r.stderr  # no bar: not a terminal
    assert b"epoch 1, train loss" in r.stdout  # the epoch line stays (no --quiet)
    assert not _spools(tmp_path, spool)

    r = _streamfm(["predict", "-", "--model", tmp_path / "m", "-o", "-"], text, spool)
    assert r.returncode == 0, r.stderr.decode()
    piped = pcsv.read_csv(io.BytesIO(r.stdout))
    assert cli.main(["predict", str(tmp_path / "d.svm"), "--model", str(tmp_path / "m"), "-o",
                     str(tmp_path / "p.csv"), "-q"]) == 0
    assert piped.equals(pcsv.read_csv(tmp_path / "p.csv"))
    assert b"200 predictions written to standard output" in r.stderr

    r = _streamfm(["evaluate", "-", "--model", tmp_path / "m", "--json"], bz2.compress(text), spool)
    assert r.returncode == 0, r.stderr.decode()
    assert '"rows": 200' in r.stdout.decode()
    assert not _spools(tmp_path, spool)


def test_a_bad_pipe_is_one_line_and_leaves_no_spool(tmp_path):
    r = _streamfm(["evaluate", "-", "--model", tmp_path / "missing"], b"1 1:0.5\n", tmp_path)
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1 and b"Traceback" not in r.stderr, r.stderr
    assert not _spools(tmp_path)


@pytest.mark.parametrize("compress, suffix", [(lambda b: b, ""), (gzip.compress, ".gz"), (bz2.compress, ".bz2"),
                                              (lzma.compress, ".xz")])
@pytest.mark.parametrize("kind", ["libsvm", "csv"])
def test_the_spool_sniffs_format_and_compression_and_is_removed(tmp_path, compress, suffix, kind):
    X, y = _rows(30)
    text = (_svm_text if kind == "libsvm" else _csv_text)(X, y).encode()
    with spooled_stdin(str(tmp_path), stream=io.BytesIO(compress(text))) as path:
        assert path.endswith((".svm" if kind == "libsvm" else ".csv") + suffix)
        assert os.path.dirname(os.path.dirname(path)) == str(tmp_path)
        opened = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(suffix, open)
        with opened(path, "rb") as f:
            assert f.read() == text
    assert os.listdir(tmp_path) == []


def test_the_spool_goes_on_error_and_refuses_what_it_cannot_tell(tmp_path):
    with pytest.raises(RuntimeError):
        with spooled_stdin(str(tmp_path), stream=io.BytesIO(b"1 1:2\n")):
            raise RuntimeError("the command failed")
    assert os.listdir(tmp_path) == []
    with pytest.raises(InputError, match="standard input is empty"):
        with spooled_stdin(str(tmp_path), stream=io.BytesIO(b"")):
            pass
    with pytest.raises(InputError, match="pass --format"):
        with spooled_stdin(str(tmp_path), stream=io.BytesIO(b"1\n0\n1\n")):
            pass
    with spooled_stdin(str(tmp_path), "csv", io.BytesIO(b"1\n0\n1\n")) as path:  # --format decides
        assert path.endswith(".csv")
    # a comma wins over a colon: CSV with times is not libsvm
    with spooled_stdin(str(tmp_path), stream=io.BytesIO(b"2024-01-01 10:00:00,1\n")) as path:
        assert path.endswith(".csv")
    assert os.listdir(tmp_path) == []


def test_standard_input_alone_and_for_training_data_only(tmp_path, capsys):
    X, y = _rows(30)
    (tmp_path / "d.svm").write_text(_svm_text(X, y))
    assert cli.main(["train", "-", str(tmp_path / "d.svm"), "--model", str(tmp_path / "m")]) == 2
    assert "must be the only data argument" in capsys.readouterr().err
    assert cli.main(["train", str(tmp_path / "d.svm"), "--valid", "-", "--model", str(tmp_path / "m")]) == 2
    assert "not --valid" in capsys.readouterr().err


@pytest.fixture(scope="module")
def csv_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("keep")
    X, y = _rows()
    (root / "d.csv").write_text(_csv_text(X, y))
    assert cli.main(["train", str(root / "d.csv"), "--model", str(root / "m"), "--feature-columns", "a,b,c",
                     "-q", *FM]) == 0
    table = pcsv.read_csv(root / "d.csv", convert_options=pcsv.ConvertOptions(column_types={"id": pa.string()}))
    pq.write_table(table, root / "d.parquet", row_group_size=64)
    return root


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_kept_columns_come_through_in_order_and_raw_writes_margins(csv_model, tmp_path, ext):
    data, model = str(csv_model / f"d.{ext}"), str(csv_model / "m")
    assert cli.main(["predict", data, "--model", model, "-o", str(tmp_path / "p.parquet"), "-q",
                     "--ignore-extra-features"]) == 0  # id is no feature
    assert cli.main(["predict", data, "--model", model, "-o", str(tmp_path / "k.parquet"), "-q",
                     "--keep-columns", "id,label", "--raw", "--chunk-rows", "50"]) == 0
    plain, kept = pq.read_table(tmp_path / "p.parquet"), pq.read_table(tmp_path / "k.parquet")
    assert kept.column_names == ["id", "label", "prediction", "margin"]
    assert kept.column("id").to_pylist() == [f"r{i:03d}" for i in range(200)]
    assert kept.column("prediction").equals(plain.column("prediction"))
    margin = kept.column("margin").to_numpy()
    p1 = plain.column("proba_1").to_numpy()
    np.testing.assert_allclose(1 / (1 + np.exp(-margin)), p1, rtol=1e-12)


def test_kept_columns_refuse_what_they_cannot_keep(csv_model, tmp_path, capsys):
    model, out = str(csv_model / "m"), str(tmp_path / "p.csv")
    assert cli.main(["predict", str(csv_model / "d.csv"), "--model", model, "-o", out, "--keep-columns", "key"]) == 2
    assert "has no column 'key' to keep; its columns are: id, a, b, c, label" in capsys.readouterr().err
    assert cli.main(["predict", str(csv_model / "d.csv"), "--model", model, "-o", out, "--keep-columns", "id",
                     "--skip-bad-rows"]) == 2
    assert "cannot go with --skip-bad-rows" in capsys.readouterr().err
    X, y = _rows(30)
    (tmp_path / "d.svm").write_text(_svm_text(X, y))
    assert cli.main(["train", str(tmp_path / "d.svm"), "--model", str(tmp_path / "m"), "-q", *FM]) == 0
    assert cli.main(["predict", str(tmp_path / "d.svm"), "--model", str(tmp_path / "m"), "-o", out,
                     "--keep-columns", "id"]) == 2
    assert "needs CSV or Parquet data" in capsys.readouterr().err
    assert not os.path.exists(out)


class _Stdin:
    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)


def test_a_stopped_run_from_standard_input_says_it_cannot_be_resumed(tmp_path, capsys, monkeypatch):
    X, y = _rows(100)
    monkeypatch.setattr(sys, "stdin", _Stdin(_svm_text(X, y).encode()))
    model = tmp_path / "m"
    assert cli.main(["train", "-", "--model", str(model), "--max-rows", "40", "--batch-rows", "16", "-q", *FM]) == 0
    assert "read standard input, which is not kept: it cannot be resumed" in capsys.readouterr().err
    assert not _spools(tmp_path)
    assert cli.main(["train", "--resume", str(model)]) == 2
    assert "read standard input, which is not kept: it cannot be resumed" in capsys.readouterr().err


def test_info_describes_standard_input_and_leaves_no_spool(tmp_path):
    """`zcat | streamfm info -`: the data's summary, as for the file itself (but its size on disk, the spool's)."""
    X, y = _rows(50)
    text = _svm_text(X, y).encode()
    (tmp_path / "d.svm").write_bytes(text)
    r = _streamfm(["info", "-", "--json"], gzip.compress(text), tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    piped = json.loads(r.stdout)
    r = _streamfm(["info", tmp_path / "d.svm", "--json"], b"", tmp_path)
    direct = json.loads(r.stdout)
    assert {k: v for k, v in piped.items() if k != "bytes"} == {k: v for k, v in direct.items() if k != "bytes"}
    assert piped["rows"] == 50 and not _spools(tmp_path)
