"""tools/tune.py and tools/reproduce.py on a tiny data set: the procedure, the report, the figure."""
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tools import benchdata, tune  # noqa: E402


def test_grid_points_and_choice():
    pts = tune.grid_points("llfm-jo")
    assert pts[0] == {"eta0": 0.03, "rho": 0.3} and len(pts) == 6
    assert [p["eta0"] for p in pts] == sorted(p["eta0"] for p in pts)  # eta0 varies slowest
    assert tune.grid_points("fm") == [{"eta0": 0.03}, {"eta0": 0.1}, {"eta0": 0.3}]
    # lowest validation log loss; a tie goes to the earlier point (the smaller step)
    assert tune.choose([({"eta0": 0.5}, 0.30), ({"eta0": 2.0}, 0.25), ({"eta0": 8.0}, 0.27)]) == {"eta0": 2.0}
    assert tune.choose([({"eta0": 0.5}, 0.25), ({"eta0": 2.0}, 0.25)]) == {"eta0": 0.5}
    argv = tune.train_argv("fit/", "m", method="llfm-jo", epochs=3, seed=2, valid="va/", params={"eta0": 2.0, "rho": 1.0})
    assert argv == ["train", "fit/", "--model", "m", "--valid", "va/", "--method", "llfm-jo", "--epochs", "3",
                    "--seed", "2", "--eta0", "2", "--rho", "1", "--early-stop", "0", "--quiet"]


@pytest.fixture()
def tiny_banana(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 2))
    y = np.where(np.sin(2 * X[:, 0]) > X[:, 1], 1.0, -1.0)
    (tmp_path / "data" / "banana").mkdir(parents=True)
    (tmp_path / "data" / "banana" / "banana.csv").write_text(
        "\n".join(f"{a:.4f},{b:.4f},{c:.1f}" for (a, b), c in zip(X, y)) + "\n")
    ds = benchdata.DATASETS["banana"]
    benchdata.prepare(ds, benchdata.find_files(ds, str(tmp_path / "data")), str(tmp_path / "bench"), [0], quiet=True)
    return tmp_path


def test_tune_runs_the_grid_on_training_data_only(tiny_banana):
    split = tiny_banana / "bench" / "banana" / "split-0"
    grid = {"eta0": (0.5, 8.0)}
    chosen, rows = tune.tune(str(split / "tune-fit"), str(split / "tune-valid"), str(tiny_banana / "work"),
                             method="fm", epochs=1, seed=0, grid=grid)
    assert [p for p, _, _ in rows] == [{"eta0": 0.5}, {"eta0": 8.0}]
    assert chosen == min(rows, key=lambda r: r[1])[0]
    for _, _, argv in rows:
        assert argv[argv.index("--valid") + 1].endswith("tune-valid")
        assert not any(a.rstrip("/").endswith(os.sep + "test") for a in argv)
    # a finished run with the same arguments is reused, not retrained
    stamp = os.path.getmtime(os.path.join(tiny_banana / "work", "fm-eta0=0.5", "manifest.json"))
    tune.tune(str(split / "tune-fit"), str(split / "tune-valid"), str(tiny_banana / "work"),
              method="fm", epochs=1, seed=0, grid=grid)
    assert os.path.getmtime(os.path.join(tiny_banana / "work", "fm-eta0=0.5", "manifest.json")) == stamp


def test_reproduce_writes_the_report_and_the_figure(tiny_banana, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tiny_banana)  # the script works from the project root; give the cwd back afterwards
    from tools import reproduce

    from tools.docblock import write_block

    out = tiny_banana / "docs" / "results.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_block(str(out), reproduce.DENSE_BLOCK, "bench_dense's table")  # another tool's part of the page
    reproduce.main(["--bench", str(tiny_banana / "bench"), "--work", str(tiny_banana / "runs"), "--runs", "1",
                    "--epochs", "2", "--workers", "1", "--no-tune", "--out", str(out),
                    "--figures", str(tiny_banana / "docs" / "figures")])
    text = out.read_text()
    assert "| banana |" in text and "LLFM-JO" in text and "90.49" in text  # beside the paper's number
    assert text.count("bench_dense's table") == 1 and text.index("bench_dense's table") > text.index("| banana |")
    assert "python -m streamfm train " in text and "--paper-anchor-gradient" in text
    assert (tiny_banana / "docs" / "figures" / "banana-test-logloss.png").stat().st_size > 1000
    res = json.loads((tiny_banana / "runs" / "results.json").read_text())["results"]["banana"][0]
    for name in ("fm", "llfm-do", "llfm-apl", "llfm-jo", "llfm-jo-paper"):
        r = res[name]
        assert len(r["curve"]) == 2 and 0 <= r["test_accuracy"] <= 1 and r["test_time_vs_fm"] > 0
    assert res["fm"]["mean_k_test"] == 1.0 and res["llfm-do"]["mean_k_test"] == 5.0
    assert 1.0 <= res["llfm-jo"]["mean_k_test"] <= 32
