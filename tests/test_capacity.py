"""anchors="auto": the rule, its limits, and where the chosen m is recorded (manifest, info, estimators)."""
import json
import math

import numpy as np
import pytest

from streamfm import cli
from streamfm.estimators import LLFMClassifier
from streamfm.io.chunk import Chunk
from streamfm.models.capacity import MAX_ANCHORS, MIN_ANCHORS, ROWS_PER_FEATURE, auto_anchors
from streamfm.models.config import Config
from streamfm.models.init import initialise_model, resolve_anchors
from streamfm.store.modeldir import ModelDir


@pytest.mark.parametrize("n, p, m", [
    (3533, 2, 59),          # Banana: sqrt(n) binds
    (13500, 16, 105),       # LETTER's training rows after the held-out tenth: n / (8 p) binds
    (90_000, 10_000, 50),   # wide sparse data: the floor
    (10_000_000, 20, 512),  # the ceiling
    (20, 3, 50),            # few rows: the floor (then the sample, below)
])
def test_the_rule(n, p, m):
    expect = min(max(round(min(math.sqrt(n), n / (ROWS_PER_FEATURE * p))), MIN_ANCHORS), MAX_ANCHORS)
    assert auto_anchors(n, p) == expect == m


def test_the_sample_and_the_budget_bound_it():
    assert auto_anchors(10_000_000, 20, sample_rows=300) == 300
    assert auto_anchors(20, 3, sample_rows=20) == 20
    seen = []
    assert auto_anchors(10_000_000, 20, fits=lambda m: seen.append(m) or m <= 200) <= 200
    assert seen[0] == MAX_ANCHORS and all(a > b for a, b in zip(seen, seen[1:]))
    assert auto_anchors(10_000_000, 20, fits=lambda m: False) == MIN_ANCHORS  # the hashed store's turn


def test_resolve_anchors_keeps_a_given_m_and_fits_the_budget():
    given = Config(anchors=7)
    assert resolve_anchors(given, 20, "binary", n_rows=10**7) is given
    auto = resolve_anchors(Config(), 20, "binary", n_rows=10**7, memory_budget=1 << 40)
    assert auto.anchors == MAX_ANCHORS
    # exact store: (m + 1) FMs x 20 features x (1 + 10) values x 8 bytes x 2 (AdaGrad), about 3.5 KB per FM
    small = resolve_anchors(Config(), 20, "binary", n_rows=10**7, memory_budget=400_000)
    assert MIN_ANCHORS <= small.anchors < MAX_ANCHORS
    assert resolve_anchors(Config(), 20, "binary", n_rows=10**7, bits=12, memory_budget=1).anchors == MAX_ANCHORS


def test_a_small_sample_gets_as_many_anchors_as_rows():
    sample = Chunk.from_dense(np.random.default_rng(0).normal(size=(12, 3)), np.zeros(12))
    model = initialise_model(Config(), 3, "binary", sample=sample, class_counts=[6, 6])
    assert model.m == 12 and model.config.n_candidates == 12 and model.anchors_auto
    assert not initialise_model(Config(anchors=5), 3, "binary", sample=sample, class_counts=[6, 6]).anchors_auto


def _write(path, n, p=2, seed=0):
    X = np.random.default_rng(seed).normal(size=(n, p))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    with open(path, "w") as fh:
        for xi, yi in zip(X, y):
            fh.write(f"{yi} " + " ".join(f"{j + 1}:{v:.5f}" for j, v in enumerate(xi)) + "\n")
    return str(path), X, y


def test_the_command_line_records_and_shows_the_chosen_m(tmp_path, capsys):
    data, _, _ = _write(tmp_path / "d.svm", 4000)
    model = tmp_path / "m"
    assert cli.main(["train", data, "--model", str(model), "--epochs", "1", "-q"]) == 0
    meta = ModelDir(model).read_manifest()["model"]
    assert meta["config"]["anchors"] == auto_anchors(4000, 2) == 63 and meta["anchors_auto"] is True
    capsys.readouterr()
    assert cli.main(["info", str(model)]) == 0
    assert "63 anchors (auto" in capsys.readouterr().out
    # continuing it with a model flag that leaves m alone: the stored m stands for "auto"
    assert cli.main(["train", data, "--model", str(model), "--epochs", "1", "--rank", "10", "-q"]) == 0
    assert cli.main(["train", data, "--model", str(model), "--anchors", "auto", "--epochs", "1", "-q"]) == 0
    capsys.readouterr()
    assert cli.main(["train", data, "--model", str(model), "--anchors", "30", "--epochs", "1", "-q"]) == 2
    assert "hyper-parameters cannot change" in capsys.readouterr().err
    assert cli.main(["train", data, "--model", str(tmp_path / "x"), "--anchors", "many"]) == 2
    assert "number of anchors or auto, got 'many'" in capsys.readouterr().err
    given = tmp_path / "given"
    assert cli.main(["train", data, "--model", str(given), "--anchors", "9", "--epochs", "1", "-q"]) == 0
    meta = ModelDir(given).read_manifest()["model"]
    assert meta["config"]["anchors"] == 9 and meta["anchors_auto"] is False
    capsys.readouterr()
    assert cli.main(["info", str(given), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["anchors_auto"] is False


def test_the_estimators_choose_from_the_rows_they_train_on():
    X, y = _xy(3000)
    clf = LLFMClassifier(n_epochs=1, random_state=0)
    assert clf.get_params()["anchors"] == "auto"
    clf.fit(X, y)
    assert clf.model_.m == auto_anchors(3000, 2) == 55 and clf.model_.anchors_auto
    assert clf.get_params()["anchors"] == "auto"  # the parameter as given; the model holds m
    assert LLFMClassifier(anchors=8, n_epochs=1, random_state=0).fit(X, y).model_.m == 8


def _xy(n, p=2, seed=1):
    X = np.random.default_rng(seed).normal(size=(n, p))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)
