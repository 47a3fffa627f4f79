"""``streamfm plot DIR``: the learning curve of metrics.jsonl as an image."""
import sys

import numpy as np
import pytest

from streamfm import LLFMClassifier, cli
from streamfm.cli.plot import epochs_of


def write_svm(path, X, y):
    with open(path, "w") as fh:
        for xi, yi in zip(X, y):
            fh.write(f"{yi} " + " ".join(f"{j + 1}:{v:.6f}" for j, v in enumerate(xi)) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("plot")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    train, valid = write_svm(root / "a.svm", X[:300], y[:300]), write_svm(root / "b.svm", X[300:], y[300:])
    directory = str(root / "m")
    assert cli.main(["train", train, "--model", directory, "--valid", valid, "--epochs", "3", "--anchors", "4",
                     "-q"]) == 0
    assert cli.main(["train", train, "--model", directory, "--valid", valid, "--epochs", "2", "-q"]) == 0
    return directory


def test_plot_writes_a_png(model, tmp_path, capsys):
    image = pytest.importorskip("matplotlib.image")
    out = tmp_path / "curve.png"
    assert cli.main(["plot", model, "-o", str(out)]) == 0
    assert "learning curve of 5 epoch(s)" in capsys.readouterr().err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(out)
    assert pixels.shape[:2] == (400, 1000) and pixels[..., :3].std() > 0  # drawn, not blank
    assert cli.main(["plot", model]) == 0  # default: DIR/learning-curve.png
    assert image.imread(f"{model}/learning-curve.png").shape[:2] == (400, 1000)


def test_runs_and_repeated_epochs():
    recs = [{"epoch": 1, "t": 10}, {"epoch": 2, "t": 20}, {"epoch": 2, "t": 20, "train_loss": "again"},
            {"epoch": 1, "t": 30}, {"epoch": 1, "t": 40}, {"epoch": 2, "t": 50}]
    runs = epochs_of(recs)
    assert [[r["t"] for r in run] for run in runs] == [[10, 20], [30], [40, 50]]
    assert runs[0][1]["train_loss"] == "again"  # the later line of a repeated epoch wins


def test_without_matplotlib_one_line_names_the_extra(model, tmp_path, capsys, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if it were not installed
    assert cli.main(["plot", model, "-o", str(tmp_path / "c.png")]) == 1
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "pip install streamfm[plot]" in err and "Traceback" not in err
    assert not (tmp_path / "c.png").exists()


def test_plot_errors(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert cli.main(["plot", str(tmp_path)]) == 2
    assert "not a streamfm model directory" in capsys.readouterr().err
    X = np.random.default_rng(0).normal(size=(50, 2))
    saved = LLFMClassifier(anchors=2, n_epochs=1).fit(X, (X[:, 0] > 0).astype(int)).save(tmp_path / "est")
    assert cli.main(["plot", saved]) == 2  # an estimator's directory has no epochs logged
    assert "no epochs in metrics.jsonl" in capsys.readouterr().err
