"""tools/bench_defaults.py: its report from recorded runs, and the movielens split (no training here)."""
import gzip
import os
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from tools import bench_defaults  # noqa: E402


def test_report_marks_the_best_setting_and_measures_the_default(tmp_path):
    labels = [label for _, label in bench_defaults.SETTINGS]
    rows = []
    for data, values in (("a", [0.50, 0.52, 0.49, 0.60, 0.70]), ("b", [0.30, 0.31, 0.33, 0.30, 0.40])):
        for label, v in zip(labels, values):
            rows.append({"data": data, "method": "fm", "setting": label, "metric": "log_loss", "best": v,
                         "best_epoch": 3, "last": v + 0.01, "epochs": 5, "seconds": 1.0})
    out = tmp_path / "defaults.md"
    bench_defaults.write_report(rows, ["python -m streamfm train ..."], str(out))
    text = out.read_text()
    assert "| a | fm | log loss | 0.5000 (ep. 3) / 0.5100 | 0.5200 (ep. 3) / 0.5300 | **0.4900 (ep. 3) / 0.5000** |" in text
    # b: the default ties the best, a: 2.0% above it
    assert "within 2.0% of the row's best setting on every row (median 1.0%)" in text
    assert "python -m streamfm train ..." in text


def test_movielens_split_is_seeded_and_complete(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    lines = [f"{i % 2} {i + 1}:1\n" for i in range(50)]
    with gzip.open(src / "train-liked.svm.gz", "wt") as fh:
        fh.writelines(lines)
    paths = bench_defaults._split_movielens("liked", str(src), str(tmp_path / "out"))
    fit, valid = (open(paths[p]).readlines() for p in ("fit", "valid"))
    assert len(valid) == 5 and sorted(fit + valid) == sorted(lines)
    again = bench_defaults._split_movielens("liked", str(src), str(tmp_path / "out2"))
    assert open(again["valid"]).readlines() == valid
