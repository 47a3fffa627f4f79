"""Data files through pyarrow.fs: URIs (an in-memory file system served under a test scheme, and
S3 against a local moto server where moto is installed), globs, directories, convert's output,
--resume's file identity, and the compression codecs."""
from __future__ import annotations

import bz2
import lzma
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from streamfm.errors import InputError
from streamfm.io import Chunk, ReadOptions, open_source
from streamfm.io import filesystems
from streamfm.io.convert import convert
from streamfm.io.identity import changes, identify_all
from streamfm.store.modeldir import ModelDir

LIBSVM = "".join(f"{i % 2} {i % 7 + 1}:{i * 0.5} {i % 5 + 8}:1\n" for i in range(300))
CSV = "x1,x2,colour,label\n" + "".join(f"{i * 0.1},{i % 3},{'rgb'[i % 3]},{i % 2}\n" for i in range(300))


@pytest.fixture
def memfs(monkeypatch):
    """An in-memory file system serving ``memtest://BUCKET/...`` (paths ``BUCKET/...`` in it)."""
    fs = pafs._MockFileSystem()
    monkeypatch.setitem(filesystems.SCHEMES, "memtest", lambda uri: (fs, uri.split("://", 1)[1]))
    return fs


def put(fs, path: str, data: bytes) -> None:
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path, compression=None) as f:  # as given: "detect" would compress .gz again
        f.write(data)


def compress(data: bytes, suffix: str) -> bytes:
    """``data`` as a file with this suffix holds it: the codecs' own tools' formats."""
    if suffix == ".xz":
        return lzma.compress(data)
    if suffix == ".bz2":
        return bz2.compress(data)
    sink = pa.BufferOutputStream()
    codec = {".gz": "gzip", ".zst": "zstd", ".lz4": "lz4"}[suffix]
    with pa.CompressedOutputStream(sink, codec) as out:
        out.write(data)
    return sink.getvalue().to_pybytes()


def read(paths, **kw) -> Chunk:
    return Chunk.concat(list(open_source(paths, ReadOptions(**kw)).iter_chunks()))


def same_rows(a: Chunk, b: Chunk) -> None:
    for name in ("indptr", "indices", "data", "y"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".zst", ".lz4", ".xz"])
def test_compressed_text_reads_as_the_plain_file(tmp_path, suffix):
    (tmp_path / "plain.svm").write_text(LIBSVM)
    (tmp_path / f"packed.svm{suffix}").write_bytes(compress(LIBSVM.encode(), suffix))
    (tmp_path / "plain.csv").write_text(CSV)
    (tmp_path / f"packed.csv{suffix}").write_bytes(compress(CSV.encode(), suffix))
    same_rows(read(str(tmp_path / f"packed.svm{suffix}")), read(str(tmp_path / "plain.svm")))
    same_rows(read(str(tmp_path / f"packed.csv{suffix}")), read(str(tmp_path / "plain.csv")))


@pytest.mark.parametrize("suffix", [".zst", ".lz4"])
def test_truncated_zstd_and_lz4_are_one_message(tmp_path, suffix):
    data = compress(LIBSVM.encode() * 50, suffix)
    path = tmp_path / f"data.svm{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=rf"data\.svm\{suffix}: the compressed file is truncated or corrupt \("):
        read(str(path))


def test_uris_read_as_the_same_files_do_locally(tmp_path, memfs):
    """A file, a directory, a glob and ``**`` by URI: the rows the same files give locally;
    hidden and ``_``-prefixed files of a directory skipped, as locally."""
    (tmp_path / "a.svm.gz").write_bytes(compress(LIBSVM.encode(), ".gz"))
    (tmp_path / "b.svm").write_text(LIBSVM[: len(LIBSVM) // 2])
    local = read([str(tmp_path / "a.svm.gz"), str(tmp_path / "b.svm")])
    put(memfs, "bkt/data/a.svm.gz", (tmp_path / "a.svm.gz").read_bytes())
    put(memfs, "bkt/data/b.svm", (tmp_path / "b.svm").read_bytes())
    put(memfs, "bkt/data/_SUCCESS", b"")
    put(memfs, "bkt/data/.hidden.svm", b"1 1:1\n")
    put(memfs, "bkt/data/sub/c.svm", b"1 1:1\n")
    assert open_source("memtest://bkt/data").files == ["memtest://bkt/data/a.svm.gz", "memtest://bkt/data/b.svm"]
    same_rows(read("memtest://bkt/data"), local)
    same_rows(read("memtest://bkt/data/*.svm*"), local)
    same_rows(read(["memtest://bkt/data/b.svm", "memtest://bkt/data/a.svm.gz"]), local)
    same_rows(read(f"file://{tmp_path}/*.svm*"), local)  # the local disk by URI
    assert open_source("memtest://bkt/**/*.svm").files == ["memtest://bkt/data/b.svm", "memtest://bkt/data/sub/c.svm"]
    assert open_source("memtest://bkt/d?ta/[ab].svm").files == ["memtest://bkt/data/b.svm"]


def test_csv_and_parquet_by_uri(tmp_path, memfs):
    (tmp_path / "t.csv").write_text(CSV)
    convert(str(tmp_path / "t.csv"), str(tmp_path / "pq"), progress=False)
    put(memfs, "bkt/t.csv", CSV.encode())
    put(memfs, "bkt/pq/part-00000.parquet", (tmp_path / "pq" / "part-00000.parquet").read_bytes())
    same_rows(read("memtest://bkt/t.csv"), read(str(tmp_path / "t.csv")))
    same_rows(read("memtest://bkt/pq"), read(str(tmp_path / "pq")))


def test_bad_uris_are_one_message(memfs):
    put(memfs, "bkt/empty/notes.md", b"")
    put(memfs, "bkt/model/manifest.json", b"{}")
    for uri, message in [("memtest://bkt/missing.svm", "no such file or directory"),
                         ("memtest://bkt/*.parquet", "no file matches"),
                         ("memtest://bkt/empty", "no data files in this directory"),
                         ("memtest://bkt/model", "is a model directory, not data")]:
        with pytest.raises(InputError, match=message):
            open_source(uri)
    with pytest.raises(InputError, match=r"model directory s3://b/m: must be a local path"):
        ModelDir("s3://b/m")


def test_convert_to_a_uri_writes_what_a_local_convert_does(tmp_path, memfs):
    (tmp_path / "d.svm").write_text(LIBSVM)
    local = convert(str(tmp_path / "d.svm"), str(tmp_path / "out"), rows_per_shard=100, progress=False)
    shards = convert(str(tmp_path / "d.svm"), "memtest://bkt/out", rows_per_shard=100, progress=False)
    assert shards == [f"memtest://bkt/out/{os.path.basename(p)}" for p in local]
    same_rows(read("memtest://bkt/out"), read(str(tmp_path / "out")))
    with pytest.raises(InputError, match="exists and is not empty"):
        convert(str(tmp_path / "d.svm"), "memtest://bkt/out", progress=False)
    # --overwrite replaces the old shards (three then, one now); no staging directory stays behind
    assert convert(str(tmp_path / "d.svm"), "memtest://bkt/out", progress=False, overwrite=True) == \
        ["memtest://bkt/out/part-00000.parquet"]
    left = memfs.get_file_info(pafs.FileSelector("bkt/out", recursive=True))
    assert [i.path for i in left] == ["bkt/out/part-00000.parquet"]
    same_rows(read("memtest://bkt/out"), read(str(tmp_path / "d.svm")))


def test_convert_failure_leaves_nothing_at_the_uri(tmp_path, memfs):
    (tmp_path / "d.svm").write_text(LIBSVM + "1 1:oops\n")
    put(memfs, "bkt/other.svm", b"1 1:1\n")
    with pytest.raises(InputError, match="oops"):
        convert(str(tmp_path / "d.svm"), "memtest://bkt/out", rows_per_shard=100, progress=False)
    assert [i.path for i in memfs.get_file_info(pafs.FileSelector("bkt", recursive=True))] == ["bkt/other.svm"]


def test_identity_of_remote_files(memfs):
    """--resume's check: a file rewritten with other bytes of the same size, or removed, is seen."""
    big = (LIBSVM * 800).encode()  # over 2 x 64 KiB: both edges are read
    put(memfs, "bkt/a.svm", big)
    put(memfs, "bkt/b.svm", b"1 1:1\n")
    records = identify_all(["memtest://bkt/a.svm", "memtest://bkt/b.svm"])
    assert records[0]["size"] == len(big) and changes(records) == []
    put(memfs, "bkt/a.svm", big[:-6] + b"0 1:1\n")
    memfs.delete_file("bkt/b.svm")
    assert changes(records) == ["memtest://bkt/a.svm changed content (same size)", "memtest://bkt/b.svm is gone"]


def test_local_identity_matches_os_stat(tmp_path):
    """Records written by os.stat before pyarrow.fs looked files up still compare equal."""
    path = tmp_path / "a.svm"
    path.write_text(LIBSVM)
    rec = identify_all([str(path)])[0]
    st = os.stat(path)
    assert (rec["size"], rec["mtime_ns"]) == (st.st_size, st.st_mtime_ns)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert changes([rec]) == [f"{path} was modified (same size, same first and last 64 KiB)"]


def test_glob_matching_follows_the_shell():
    m = filesystems._matches
    assert m(["a.svm"], ["*.svm"]) and not m(["d", "a.svm"], ["*.svm"])
    assert m(["d", "e", "a.svm"], ["**", "*.svm"]) and m(["a.svm"], ["**", "*.svm"])
    assert not m([".a.svm"], ["*.svm"]) and m([".a.svm"], [".*.svm"])
    assert not m([".git", "a.svm"], ["**", "*.svm"])


def test_command_line_convert_train_resume_and_predict_on_uris(capsys, tmp_path, memfs):
    """Through cli.main: convert to a URI, train on it (stopped by --max-rows), --resume refuses the
    remote data once changed, predict reads a URI; a URI --model is one clear error."""
    from streamfm import cli

    def run(*argv):
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return code, out, err

    rng = np.random.default_rng(0)
    text = "".join(f"{int(a * b > 0)} 1:{a:.4f} 2:{b:.4f}\n" for a, b in rng.normal(size=(1200, 2)))
    put(memfs, "bkt/raw/train.svm.gz", compress(text.encode(), ".gz"))
    code, out, _ = run("convert", "memtest://bkt/raw", "-o", "memtest://bkt/shards", "--rows-per-shard", "500", "-q")
    assert code == 0 and "wrote 1,200 rows in 3 sparse Parquet shard(s) to memtest://bkt/shards" in out
    model = tmp_path / "m"
    fast = ["--method", "fm", "--rank", "4", "--epochs", "2", "--early-stop", "0", "-q"]
    assert run("train", "memtest://bkt/shards/part-*.parquet", "--model", model, "--max-rows", "600", *fast)[0] == 0
    with memfs.open_input_file("bkt/shards/part-00002.parquet") as f:
        last = f.read()
    put(memfs, "bkt/shards/part-00002.parquet", last[:-8] + last[-8:][::-1])  # same size, other bytes
    code, _, err = run("train", "--resume", model, "-q")
    assert code == 2 and "memtest://bkt/shards/part-00002.parquet changed content (same size)" in err
    put(memfs, "bkt/shards/part-00002.parquet", last)
    assert run("train", "--resume", model, "-q")[0] == 0
    (tmp_path / "p.csv").write_text("old")  # an existing output, checked against the (remote) inputs
    assert run("predict", "memtest://bkt/raw/train.svm.gz", "--model", model, "-o", tmp_path / "p.csv")[0] == 0
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 1201
    code, _, err = run("predict", "memtest://bkt/raw", "--model", "memtest://bkt/m", "-o", tmp_path / "q.csv")
    assert code == 2 and "model directory memtest://bkt/m: must be a local path" in err


def test_predict_writes_to_a_uri_what_it_writes_locally_and_nothing_on_a_failure(capsys, tmp_path, memfs):
    """predict -o URI (CSV and Parquet): the local output's bytes, under the final name only; a failing
    prediction leaves no object, hidden or not."""
    from streamfm import cli

    rng = np.random.default_rng(1)
    (tmp_path / "d.svm").write_text("".join(f"{int(a > 0)} 1:{a:.4f} 2:{b:.4f}\n" for a, b in rng.normal(size=(300, 2))))
    model = str(tmp_path / "m")
    assert cli.main(["train", str(tmp_path / "d.svm"), "--model", model, "--method", "fm", "--rank", "2",
                     "--epochs", "1", "--early-stop", "0", "-q"]) == 0
    for name in ("p.csv", "p.parquet"):
        assert cli.main(["predict", str(tmp_path / "d.svm"), "--model", model, "-o", str(tmp_path / name), "-q"]) == 0
        assert cli.main(["predict", str(tmp_path / "d.svm"), "--model", model, "-o", f"memtest://bkt/out/{name}",
                         "-q"]) == 0
        assert f"300 predictions written to memtest://bkt/out/{name}" in capsys.readouterr().err
        with memfs.open_input_file(f"bkt/out/{name}") as f:
            got = f.read()
        if name.endswith(".csv"):
            assert got == (tmp_path / name).read_bytes()
        else:
            assert pq.read_table(pa.BufferReader(got)).equals(pq.read_table(tmp_path / name))
    (tmp_path / "wide.svm").write_text("1 1:0.5 2:0.1 9:1\n")  # a feature beyond the model's: an error
    assert cli.main(["predict", str(tmp_path / "wide.svm"), "--model", model, "-o", "memtest://bkt/out/q.csv",
                     "-q"]) == 2
    assert "beyond the model's" in capsys.readouterr().err
    names = sorted(e.base_name for e in memfs.get_file_info(pafs.FileSelector("bkt/out")))
    assert names == ["p.csv", "p.parquet"]


# -- S3 against a local moto server (no network); skipped where moto is not installed ---------------

@pytest.fixture(scope="module")
def s3_endpoint():
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_s3_read_convert_and_identity(tmp_path, monkeypatch, s3_endpoint):
    for name, value in [("AWS_ENDPOINT_URL", s3_endpoint), ("AWS_ACCESS_KEY_ID", "testing"),
                        ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", "us-east-1"),
                        ("AWS_EC2_METADATA_DISABLED", "true")]:
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(filesystems, "_made", {})
    admin = pafs.S3FileSystem(endpoint_override=s3_endpoint, allow_bucket_creation=True, region="us-east-1")
    admin.create_dir("streamfm-test")
    (tmp_path / "t.csv.zst").write_bytes(compress(CSV.encode(), ".zst"))
    with admin.open_output_stream("streamfm-test/in/t.csv.zst", compression=None) as f:
        f.write((tmp_path / "t.csv.zst").read_bytes())
    local = read(str(tmp_path / "t.csv.zst"))
    same_rows(read("s3://streamfm-test/in/*.csv.zst"), local)
    shards = convert("s3://streamfm-test/in", "s3://streamfm-test/out", progress=False)
    assert shards == ["s3://streamfm-test/out/part-00000.parquet"]
    same_rows(read("s3://streamfm-test/out"), local)
    records = identify_all(shards)
    assert records[0]["mtime_ns"] is not None and changes(records) == []
    from streamfm import cli  # predictions to S3: the object appears under its name alone

    assert cli.main(["train", str(tmp_path / "t.csv.zst"), "--model", str(tmp_path / "m"), "--method", "fm",
                     "--epochs", "1", "--early-stop", "0", "-q"]) == 0
    assert cli.main(["predict", "s3://streamfm-test/out", "--model", str(tmp_path / "m"), "-o",
                     "s3://streamfm-test/pred/p.csv", "-q"]) == 0
    assert [e.base_name for e in admin.get_file_info(pafs.FileSelector("streamfm-test/pred"))] == ["p.csv"]
    with admin.open_input_stream("streamfm-test/pred/p.csv") as f:
        assert len(f.read().decode().splitlines()) == 301
    shutil.rmtree(tmp_path)
