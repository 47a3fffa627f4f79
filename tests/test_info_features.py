"""``streamfm info DIR --features N``: the top features by |w| and ||V||, against NumPy on the arrays."""
import json

import numpy as np
import pytest

from streamfm import FMClassifier, LLFMClassifier, cli
from streamfm.store.modeldir import ModelDir


def info(capsys, *argv):
    code = cli.main(["info", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 6))
    y = (2 * X[:, 4] - X[:, 1] + 0.1 * rng.normal(size=600) > 0).astype(int)
    fm = FMClassifier(n_epochs=2).fit(X, y).save(root / "fm")
    llfm = LLFMClassifier(anchors=5, n_epochs=2).fit(X, y).save(root / "llfm")
    return {"fm": fm, "llfm": llfm}


def test_fm_top_features_are_the_largest_weights(capsys, models):
    code, out, _ = info(capsys, models["fm"], "--features", 3, "--json")
    assert code == 0
    imp = json.loads(out)["feature_importance"]
    _, arrays = ModelDir(models["fm"]).load()
    w = np.abs(arrays["W"][0]).mean(1)
    v = np.linalg.norm(arrays["V"][0].reshape(6, -1), axis=1)
    assert [r["feature"] for r in imp["by_w"]] == np.argsort(-w)[:3].tolist()
    assert [r["feature"] for r in imp["by_v"]] == np.argsort(-v)[:3].tolist()
    assert np.allclose([r["w"] for r in imp["by_w"]], np.sort(w)[::-1][:3])
    # the label is 2 x4 - x1: those two carry the largest linear weights
    assert [r["feature"] for r in imp["by_w"][:2]] == [4, 1]
    code, out, _ = info(capsys, models["fm"], "--features", 2)
    assert code == 0 and "top 2 features by |w| (the FM's" in out and "top 2 features by ||V||" in out
    table = out.split("top 2 features by |w|")[1].splitlines()[2:4]
    assert [int(line.split()[0]) for line in table] == [4, 1]


def test_llfm_importance_is_the_global_fm_plus_the_anchors_mean(capsys, models):
    code, out, _ = info(capsys, models["llfm"], "--features", 6, "--json")
    imp = json.loads(out)["feature_importance"]
    _, arrays = ModelDir(models["llfm"]).load()
    W, V = arrays["W"], arrays["V"]
    assert W.shape[0] == 6  # 5 anchors' FMs and the global FM
    w = np.abs(W).mean(-1)  # (6, p)
    v = np.linalg.norm(V.reshape(6, 6, -1), axis=-1)
    for key, values in (("w", w), ("v", v)):
        total = values[:5].mean(0) + values[5]
        rows = imp[f"by_{key}"]
        assert [r["feature"] for r in rows] == np.argsort(-total, kind="stable").tolist()
        for r in rows:
            j = r["feature"]
            assert r[key] == pytest.approx(total[j]) and r["global"] == pytest.approx(values[5, j])
            assert np.allclose(r["per_anchor"], values[:5, j])
            assert r["at_anchor"] == int(np.argmax(values[:5, j])) and r["anchor_max"] == pytest.approx(values[:5, j].max())
    code, out, _ = info(capsys, models["llfm"], "--features", 2)
    assert "the global FM's plus the mean over the 5 anchors' FMs" in out and "at anchor" in out


def test_features_needs_a_model_directory(capsys, tmp_path):
    data = tmp_path / "d.svm"
    data.write_text("1 1:0.5\n0 2:1.0\n")
    code, _, err = info(capsys, data, "--features", 3)
    assert code == 2 and "give a model directory" in err and "Traceback" not in err
