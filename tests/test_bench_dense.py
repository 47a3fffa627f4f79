"""tools/bench_dense.py: the generated data set, the peers on a small problem, the report (no streamfm training)."""
import os
import sys

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from tools import bench_dense  # noqa: E402


def test_two_variances_differ_only_in_variance_and_are_seeded(tmp_path):
    bench_dense.write_two_variances(str(tmp_path / "a"), 0)
    bench_dense.write_two_variances(str(tmp_path / "b"), 0)
    X, y = bench_dense.load_xy(bench_dense.split_dir(str(tmp_path / "a"), bench_dense.GENERATED, 0, "train"))
    X2, y2 = bench_dense.load_xy(bench_dense.split_dir(str(tmp_path / "b"), bench_dense.GENERATED, 0, "train"))
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert X.shape == (bench_dense.TWO_VARIANCES["train"], bench_dense.TWO_VARIANCES["features"])
    sd = [X[y == c].std() for c in (0, 1)]
    assert abs(sd[0] - 1.0) < 0.05 and abs(sd[1] - bench_dense.TWO_VARIANCES["sd"]) < 0.05
    # the class means agree: nothing linear tells the classes apart
    assert np.abs(X[y == 0].mean(0) - X[y == 1].mean(0)).max() < 0.1


def test_peers_separate_a_circle_and_the_linear_one_cannot(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    for part, n in (("train", 300), ("test", 200)):
        X = rng.uniform(-1, 1, (n, 2))
        y = (np.hypot(X[:, 0], X[:, 1]) < 0.7).astype(np.int64)
        d = tmp_path / part
        d.mkdir()
        pq.write_table(pa.table({"f0": X[:, 0], "f1": X[:, 1], "label": y}), str(d / "part-00000.parquet"))
    monkeypatch.setattr(bench_dense, "GRID", {"C": (10.0,), "gamma_factor": (1.0, 4.0)})
    out = bench_dense.fit_peers(str(tmp_path / "train"), str(tmp_path / "test"), 0)
    assert set(out) == set(bench_dense.PEERS)
    assert out["RBF-SVM"]["test_accuracy"] > 0.9
    assert out["logistic regression"]["test_accuracy"] < 0.8
    assert out["RBF-SVM"]["C"] == 10.0


def _rec(acc, ll, sec, **kw):
    return {"test_accuracy": acc, "test_log_loss": ll, "train_seconds": sec, **kw}


def _jo(acc, ll, sec, m=59):
    return _rec(acc, ll, sec, epochs=12, best_epoch=7, anchors=m, rows=3533, features=2,
                argv=["--method", "llfm-jo", "--seed", "0"], curve=[None])


def test_report_has_a_row_per_method_the_targets_and_the_results_block(tmp_path):
    split = {"fm": _rec(0.8, 0.4, 2.0, epochs=10, anchors=50, argv=["--method", "fm"], curve=[None]),
             "llfm-jo": _jo(0.90, 0.21, 12.0), "llfm-jo, old defaults": _jo(0.89, 0.23, 4.0, m=50),
             bench_dense.M50: _jo(0.87, 0.22, 5.0, m=50),
             "logistic regression": _rec(0.75, 0.5, 0.1), "RBF-SVM": _rec(0.915, 0.3, 5.0, C=10.0, gamma=0.5)}
    other = {k: dict(v, test_accuracy=v["test_accuracy"] + 0.02) for k, v in split.items()}
    out, results_md = tmp_path / "dense.md", tmp_path / "results.md"
    results_md.write_text("# Table 2\n\nthe reproduction's page\n")
    names = ["fm", "llfm-jo", "llfm-jo, old defaults", "logistic regression", "RBF-SVM"]
    bench_dense.write_report({"banana": [split, other]}, names, "python tools/bench_dense.py --runs 2", str(out),
                             str(tmp_path), paper_logloss={"banana": 0.2154}, results_md=str(results_md))
    text = out.read_text()
    assert "| fm | 81.00 ± 1.41 | 0.4000 ± 0.0000 | 2.0 ± 0.0 |  |  | 10, 10 |" in text
    assert "| llfm-jo | 91.00 ± 1.41 | 0.2100 ± 0.0000 | 12.0 ± 0.0 |  | 59 | 12 (7), 12 (7) |" in text
    assert "| RBF-SVM | 92.50 ± 1.41 |" in text
    assert "python tools/bench_dense.py --runs 2" in text
    assert "- banana: LLFM-JO 91.00% against the RBF-SVM's 92.50%, 1.50 points below (target: within 1): " \
           "**not met**." in text
    assert "test log loss 0.2100 (target: at most the paper's Figure 1 final value, 0.2154): **met**." in text
    assert "llfm-jo's training time with the defaults 12.0 wall s, 3.0x the old defaults' 4.0 s" in text
    assert "| banana | 3,533 | 2 | 59 | 91.00 / 88.00 | 0.2100 / 0.2200 |" in text  # the anchors chosen, and m = 50
    page = results_md.read_text()
    assert page.startswith("# Table 2\n\nthe reproduction's page\n")
    assert "| banana | 2 | 81.00 ± 1.41 | 91.00 ± 1.41 |" in page
    # written again: the block is replaced, not added
    bench_dense.write_report({"banana": [split]}, names, "x", str(out), str(tmp_path), results_md=str(results_md))
    page = results_md.read_text()
    assert page.count("bench_dense: begin") == 1 and "| banana | 1 | 80.00 ± 0.00 |" in page


def test_the_time_target_compares_cpu_seconds_when_every_run_has_them():
    new = _jo(0.9, 0.2, 30.0)
    old = _jo(0.9, 0.2, 3.0, m=50)
    both = [{"llfm-jo": dict(new, cpu_seconds=12.0), "llfm-jo, old defaults": dict(old, cpu_seconds=4.0)}]
    assert any("12.0 CPU s, 3.0x the old defaults' 4.0 s (target: at most 5x): **met**" in line
               for line in bench_dense.targets({"toy": both}, {}))
    wall = [{"llfm-jo": new, "llfm-jo, old defaults": old}]
    assert any("30.0 wall s, 10.0x the old defaults' 3.0 s (target: at most 5x): **not met**" in line
               for line in bench_dense.targets({"toy": wall}, {}))


def test_the_reproduction_keeps_the_block(tmp_path):
    from tools.docblock import read_block, write_block

    page = tmp_path / "results.md"
    write_block(str(page), "bench_dense", "the defaults' table")
    assert read_block(str(page), "bench_dense").endswith("the defaults' table\n<!-- bench_dense: end -->")
    write_block(str(page), "bench_dense", "new table")
    assert page.read_text().count("begin") == 1 and "new table" in page.read_text()
    assert read_block(str(tmp_path / "missing.md"), "bench_dense") is None


def test_paper_final_reads_llfm_jo_last_epoch():
    fig = {"banana": {"FM": [0.7, 0.6], "LLFM-JO": [0.3, 0.2154]}, "note": "text"}
    assert bench_dense.paper_final(fig) == {"banana": 0.2154}


def test_a_variant_gets_its_comparison_with_the_defaults(tmp_path):
    """--variant NAME: a section of the defaults against NAME, means over the splits where both ran."""
    split = {"llfm-jo": _jo(0.90, 0.21, 12.0), "jo, slow anchors": _jo(0.88, 0.25, 10.0)}
    other = {"llfm-jo": _jo(0.92, 0.23, 14.0)}  # the variant did not run on this split
    out = tmp_path / "dense.md"
    bench_dense.write_report({"banana": [split, other]}, ["llfm-jo", "jo, slow anchors"], "x", str(out),
                             str(tmp_path), results_md="")
    text = out.read_text()
    assert "## The defaults against `jo, slow anchors`" in text
    assert "| banana | 90.00 / 88.00 | 0.2100 / 0.2500 |" in text


def test_write_page_replaces_the_page_whole_and_echoes_it(tmp_path, capsys):
    from tools.docblock import write_page

    page = tmp_path / "page.md"
    page.write_text("an older, longer page\n" * 3)
    assert write_page(str(page), ["# Title", "", "| a |"]) == "# Title\n\n| a |\n"
    assert page.read_text() == "# Title\n\n| a |\n" and not (tmp_path / "page.md.tmp").exists()
    assert "| a |" in capsys.readouterr().out
    write_page(str(page), ["quiet"], echo=False)
    assert page.read_text() == "quiet\n" and capsys.readouterr().out == ""
