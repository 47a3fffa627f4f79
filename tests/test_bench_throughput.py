"""tools/bench_throughput.py and tools/throughput/: data files, a child measurement, the start-up probe's
callback, and every section and the page on fake processes (no benchmark is run here)."""
import hashlib
import json
import os
import re
import sys
import time
from argparse import Namespace

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tools import bench_throughput, harness  # noqa: E402
from tools.datagen import covtype_blocks  # noqa: E402
from tools.throughput import data, measure, report, sections  # noqa: E402

HISTORY = re.compile(r"session [0-9]|tried and not kept|sessions? ago|before/after|\bnow\b", re.I)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("throughput"))
    return root, data.make_dense(1_500, 500, "-t", root=root), data.make_sparse(1_500, 500, "-t", root=root)


def test_data_files_split_one_stream(files):
    import pyarrow.parquet as pq

    root, dense, sparse = files
    for stems in (dense, sparse):
        for split, n in (("train", 1_500), ("test", 500)):
            assert data.count_rows(stems[split]) == n
            for ext in (".svm", ".vw"):
                with open(stems[split] + ext) as fh:
                    assert sum(1 for _ in fh) == n
    X, y = next(covtype_blocks(2_000, seed=data.SEED, block=data.BLOCK))
    train, test = (pq.read_table(dense[s] + ".parquet") for s in ("train", "test"))
    assert np.array_equal(train.column("label").to_numpy(), y[:1_500])
    assert np.array_equal(test.column("f0").to_numpy(), X[1_500:, 0])
    with open(dense["train"] + ".vw") as fh:
        assert fh.readline().startswith(("1 |f ", "-1 |f "))
    assert data.subset_vw(sparse["train"], 10).endswith("-first10.vw")
    assert data.make_dense(1_500, 500, "-t", root=root) == dense  # kept, not written again


def test_a_child_measurement(files, capsys):
    _, dense, _ = files
    spec = {"kind": "floor", "train": dense["train"] + ".parquet", "test": dense["test"] + ".parquet"}
    assert bench_throughput.main(["--run", json.dumps(spec)]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["rows"] == 1_500 and res["seconds"] > 0 and res["train_peak_rss_mb"] > 0
    assert 0 < res["log_loss"] < 1 and 0 <= res["accuracy"] <= 1


def test_the_start_up_probe_stamps_training(files, tmp_path, capsys):
    """The probe's callback prints when the first epoch begins and when its first rows are trained."""
    from streamfm.models.config import Config
    from streamfm.run import train
    from streamfm.training.options import TrainOptions
    from tools.throughput.first_chunk import Stamps

    _, dense, _ = files
    t0 = time.time()
    train(dense["train"] + ".parquet", str(tmp_path / "m"), config=Config(method="fm"),
          options=TrainOptions(epochs=1, max_rows=1, quiet=True), callbacks=[Stamps()])
    lines = [ln.split() for ln in capsys.readouterr().err.splitlines() if ln.startswith(("EPOCH_BEGIN", "FIRST_ROWS"))]
    assert [k for k, _ in lines] == ["EPOCH_BEGIN", "FIRST_ROWS"]
    assert t0 <= float(lines[0][1]) <= float(lines[1][1]) <= time.time()


# --------------------------------------------------------------------------- every section, fake processes

def _fake_result(spec, calls):
    h = int(hashlib.md5(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:6], 16)
    sec = 1.0 + (h % 97) / 50 + (calls % 5) / 10
    if spec["kind"] == "breakdown":
        parts = {"reading, decoding, shuffling, standardising": 1.0, "FM kernel (forward and update, one loop)": 0.5}
        return {"rows": 500_000, "seconds": 4.0, "parts": parts, "mean_k": 1.0}
    out = {"rows": spec.get("rows", 100_000), "seconds": sec, "cpu_seconds": sec * 1.3,
           "train_peak_rss_mb": 400 + h % 50, "log_loss": 0.3 + (h % 13) / 100, "accuracy": 0.8}
    if spec["kind"] == "streamfm":
        out.update(rows=100_000, epoch_seconds=sec / 2, candidate_miss_rate=0.0, mean_k=1 + h % 11,
                   wanted_more_rate=0.0, search_nprobe=8)
    return out


def test_every_section_and_the_page(monkeypatch, tmp_path):
    calls = []

    def fake_run(argv, env=None, cwd=None, check=False, what=None, **kw):
        calls.append(list(argv))
        now = time.time()
        if "--run" in argv:
            out = json.dumps(_fake_result(json.loads(argv[argv.index("--run") + 1]), len(calls))) + "\n"
            err = ""
        else:  # the start-up probe
            assert argv[1:3] == ["-m", "tools.throughput.first_chunk"] and "NUMBA_CACHE_DIR" in env
            out, err = "", f"EPOCH_BEGIN {now + 1.2:.6f}\nFIRST_ROWS {now + 1.3:.6f}\n"
        return harness.Record(argv=list(argv), returncode=0, stdout=out, stderr=err, started=now, wall=2.0,
                              cpu=1.5, peak_rss_mb=300.0, machine_busy=0.0, load_before=(1.0, 1.0, 1.0),
                              load_after=(1.0, 1.0, 1.0))

    def stems(tag, kind):
        return {s: str(tmp_path / f"bench-data/throughput/{kind}{tag}-{s}") for s in ("train", "test")}

    monkeypatch.setattr(harness, "run", fake_run)
    monkeypatch.setattr(measure, "code_at", lambda ref: str(tmp_path / f"code-{ref}"))
    monkeypatch.setattr(data, "make_dense", lambda n, t, tag, parquet_only=False: stems(tag, "dense"))
    monkeypatch.setattr(data, "count_rows", lambda stem: 500_000)
    monkeypatch.setattr(data, "subset_vw", lambda stem, rows: f"{stem}-first{rows}.vw")
    monkeypatch.setattr(sections, "WORK", str(tmp_path / "work"))
    R, names = {}, bench_throughput.SECTIONS.split(",") + ["breakdown-fm"]
    sections.run_all(R, Namespace(rounds=2), names, stems("", "dense"), stems("", "sparse"), lambda s: None)
    assert {"dense", "sparse", "sparse_llfm", "before_after", "breakdown", "breakdown_fm", "anchors",
            "scaling", "threads", "startup", "targets"} <= set(R)
    # rounds alternate the systems: every system of a table once per round, in the same order
    dense_runs = [c for c in calls if "--run" in c][:16]
    kinds = [json.loads(c[c.index("--run") + 1])["kind"] for c in dense_runs]
    assert kinds[:8] == kinds[8:] and kinds[0] == "floor"
    assert len(R["dense"]["best"]["VW logistic"]["all_rows_per_s"]) == 2
    # the A/B runs each commit's copy of the tool
    ab = [c for c in calls if "--run" in c and "code-" in c[1]]
    assert {os.path.basename(os.path.dirname(os.path.dirname(c[1]))) for c in ab} == \
        {f"code-{c}" for c in sections.BEFORE_COMMITS}
    assert R["startup"]["warm run 1"]["first_chunk"] == pytest.approx(1.3, abs=0.01)
    assert [t[2] for t in R["targets"]] and all(len(t) == 3 for t in R["targets"])
    R["commits"], R["loads"] = {n.replace("-", "_"): "abc1234" for n in names}, [1.0]
    page = report.write_doc(R, Namespace(rounds=2), "python tools/bench_throughput.py --rounds 2")
    for heading in ("## Dense, Covtype-shaped data", "## Sparse, CTR-shaped data", "## What streamfm does for speed",
                    "## Targets", "## Against earlier commits", "## llfm-jo on the sparse data",
                    "## Where llfm-jo's time goes", "## Where fm's time goes", "## Anchor scaling",
                    "## Data scaling", "## Hogwild threads", "## Start-up", "## Reading the results", "## Command"):
        assert heading in page
    assert "python -m streamfm train bench-data/throughput/dense-train.parquet" in page
    assert not HISTORY.search(page), HISTORY.search(page)



def test_the_committed_pages_narrate_no_history():
    for page in ("performance.md", "scaling.md", "dependencies.md"):
        with open(os.path.join(ROOT, "docs", page)) as fh:
            text = fh.read()
        assert not re.search(r"session [0-9]|tried and not kept|sessions? ago", text, re.I), page
