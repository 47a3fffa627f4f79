"""``streamfm export``: the exported file, read with NumPy alone (docs/model-directory.md's reader),
gives streamfm's predictions, for every method, coding and link."""
import json
import pathlib

import numpy as np
import pytest
import scipy.sparse as sp

import streamfm
from streamfm import FMClassifier, LLFMClassifier, LLFMRegressor, cli

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def page_blocks(*needles):
    """The python blocks of model-directory.md holding the needles, run in one namespace."""
    text = (DOCS / "model-directory.md").read_text()
    blocks = text.split("```python\n")[1:]
    namespace = {}
    for needle in needles:
        code = next(b.split("```")[0] for b in blocks if needle in b)
        # the page's own check runs on its example model (tests/test_docs.py): keep the definitions
        code = code.split("\nfor path in (")[0]
        exec(compile("import json, pathlib\nimport numpy as np\n" + code, "model-directory.md", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def reader():
    ns = page_blocks("def read_model", "def read_export")
    assert "streamfm" not in " ".join(ns)  # NumPy alone
    return ns


def _data(n, p, sparse, seed=0):
    rng = np.random.default_rng(seed)
    if sparse:
        return sp.random(n, p, density=0.01, format="csr", random_state=seed, data_rvs=rng.random).toarray()
    return rng.normal(size=(n, p))


CASES = [
    # (estimator, rows, features, sparse, classes, suffix)
    (lambda: LLFMClassifier(anchors=6, n_epochs=1), 300, 3, False, 2, ".json"),
    (lambda: LLFMClassifier(method="llfm-do", anchors=5, n_epochs=1), 300, 1200, True, 2, ".npz"),
    (lambda: FMClassifier(n_epochs=1), 300, 4, False, 3, ".json"),
    (lambda: LLFMClassifier(method="llfm-apl", multiclass="ovr", global_fm=False, anchors=4, n_epochs=1),
     300, 5, False, 3, ".npz"),
    (lambda: LLFMRegressor(anchors=4, n_epochs=1), 300, 4, False, None, ".npz"),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_exported_file_computes_streamfm_predictions(reader, tmp_path, case):
    make, n, p, sparse, classes, suffix = CASES[case]
    X = _data(n, p, sparse, seed=case)
    y = X[:, 0] + X[:, 1] ** 2 if classes is None else \
        np.array(["cat", "dog", "eel"])[np.digitize(X[:, 0] - X[:, 1], [-0.5, 0.5])] if classes == 3 else \
        (X[:, 0] * X[:, 1] > 0).astype(int) if not sparse else (X[:, :600].sum(1) > X[:, 600:].sum(1)).astype(int)
    est = make().fit(X[:200], y[:200])
    model = est.save(tmp_path / "model")
    out = tmp_path / f"model{suffix}"
    assert cli.main(["export", model, "-o", str(out)]) == 0
    meta, arrays = reader["read_export"](out)
    got = reader["export_predictions"](meta, reader["export_outputs"](meta, arrays, X[200:]))
    trained = streamfm.load(model)
    want = trained.predict(X[200:]) if classes is None else trained.predict_proba(X[200:])
    assert np.allclose(got, want, rtol=0, atol=1e-9)
    if classes is not None:
        assert meta["classes"] == est.classes_.tolist()
    assert ("coding_bucket" in arrays) == (p > 1000)
    assert "AV" not in arrays and "feature_rows" not in arrays  # training state is not exported


def test_export_names_its_format_by_the_suffix(capsys, tmp_path):
    X = _data(100, 3, False)
    model = FMClassifier(n_epochs=1).fit(X, (X[:, 0] > 0).astype(int)).save(tmp_path / "m")
    assert cli.main(["export", model, "-o", str(tmp_path / "model.txt")]) == 2
    err = capsys.readouterr().err
    assert "name it *.json or *.npz" in err and "Traceback" not in err
    assert not (tmp_path / "model.txt").exists()
    assert cli.main(["export", str(tmp_path), "-o", str(tmp_path / "model.json")]) == 2
    assert "not a streamfm model directory" in capsys.readouterr().err
    assert cli.main(["export", model, "-o", str(tmp_path / "model.json")]) == 0
    doc = json.loads((tmp_path / "model.json").read_text())
    assert doc["format"] == "streamfm-export" and doc["method"] == "fm" and doc["link"] == "logistic"
