"""Models between Python and the command line: an estimator's ``save`` is a model directory the CLI
uses, and ``from_model_dir`` opens a CLI-trained model as an estimator, with the same predictions."""
import json

import numpy as np
import pyarrow.csv as pcsv
import pytest

import streamfm
from streamfm import FMClassifier, LLFMClassifier, LLFMRegressor, cli
from streamfm.errors import InputError
from streamfm.store.modeldir import ModelDir


def write_svm(path, X, y):
    with open(path, "w") as fh:
        for xi, yi in zip(X, y):  # repr: the file holds the arrays' values exactly
            fh.write(f"{yi} " + " ".join(f"{j + 1}:{float(v)!r}" for j, v in enumerate(xi)) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("roundtrip")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(700, 3))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    return {"root": root, "X": X, "y": y, "train": write_svm(root / "train.svm", X[:500], y[:500]),
            "test": write_svm(root / "test.svm", X[500:], y[500:])}


def cli_ok(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def cli_probabilities(capsys, model, data, name="p.csv"):
    out = data["root"] / name
    cli_ok(capsys, "predict", data["test"], "--model", model, "-o", out, "-q")
    table = pcsv.read_csv(out)
    return table, np.column_stack([table.column(c).to_numpy() for c in table.column_names[1:]])


def test_config_is_exported():
    assert streamfm.Config is streamfm.models.config.Config and "Config" in streamfm.__all__


def test_an_estimator_saved_is_used_by_the_command_line(capsys, data):
    X, y = data["X"], data["y"]
    clf = LLFMClassifier(anchors=8, n_epochs=2, random_state=0).fit(X[:500], y[:500])
    model = clf.save(data["root"] / "est")
    table, P = cli_probabilities(capsys, model, data)
    assert table.column_names == ["prediction", "proba_0", "proba_1"]
    assert np.allclose(P, clf.predict_proba(X[500:]), rtol=0, atol=1e-12)
    assert (np.asarray(table.column("prediction")) == clf.predict(X[500:])).all()
    out, _ = cli_ok(capsys, "evaluate", data["test"], "--model", model, "--json", "-q")
    assert json.loads(out)["accuracy"] == pytest.approx(clf.score(X[500:], y[500:]))
    out, _ = cli_ok(capsys, "info", model)
    assert "llfm-jo" in out and "8 anchors" in out and "scikit-learn estimator" in out
    manifest = ModelDir(model).read_manifest()
    assert manifest["training"]["status"] == "complete" and manifest["model"]["classes"] == [0, 1]
    # the command line trains it further on files, as it does its own models
    cli_ok(capsys, "train", data["train"], "--model", model, "--epochs", "1", "-q")
    after = ModelDir(model).read_manifest()
    assert after["model"]["t"] == manifest["model"]["t"] + 500
    assert len(after["training"]["history"]) == 1


def test_a_cli_model_is_used_by_the_estimator(capsys, data):
    X, y = data["X"], data["y"]
    model = data["root"] / "cli-model"
    cli_ok(capsys, "train", data["train"], "--model", model, "--epochs", "2", "--anchors", "6", "--rank", "4", "-q")
    before = (model / "manifest.json").read_bytes()
    clf = LLFMClassifier.from_model_dir(model)
    assert clf.get_params()["anchors"] == 6 and clf.get_params()["rank"] == 4
    assert clf.n_features_in_ == 3 and clf.classes_.tolist() == [0, 1]
    _, P = cli_probabilities(capsys, model, data, "cli.csv")
    assert np.allclose(P, clf.predict_proba(X[500:]), rtol=0, atol=1e-12)
    # trained further in memory: the directory is left as it was
    clf.partial_fit(X[:100], y[:100])
    assert not np.allclose(clf.predict_proba(X[500:]), P)
    assert (model / "manifest.json").read_bytes() == before
    # ... and saved back over it only when asked to
    with pytest.raises(InputError, match="already holds a model"):
        clf.save(model)
    clf.save(model, overwrite=True)
    _, P2 = cli_probabilities(capsys, model, data, "cli2.csv")
    assert np.allclose(P2, clf.predict_proba(X[500:]), rtol=0, atol=1e-12)
    run = ModelDir(model).read_manifest()["training"]
    assert run["history"][0]["data"]["files"] == [data["train"]]  # the model's earlier run, by the CLI
    assert run["rows_per_epoch"] == 100 and run["status"] == "complete"  # what partial_fit trained
    # fit starts a new model: the directory's runs are not its history
    clf.fit(X[:500], y[:500])
    run = ModelDir(clf.save(data["root"] / "refit"))
    assert run.read_manifest()["training"]["history"] == []


def test_regressor_round_trip(capsys, tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 4))
    y = X[:, 0] * X[:, 1] + 0.5 * X[:, 2]
    test = write_svm(tmp_path / "test.svm", X[300:], np.round(y[300:], 3))
    reg = LLFMRegressor(anchors=5, n_epochs=2).fit(X[:300], y[:300])
    model = reg.save(tmp_path / "reg")
    cli_ok(capsys, "predict", test, "--model", model, "-o", tmp_path / "r.csv", "-q")
    pred = pcsv.read_csv(tmp_path / "r.csv").column("prediction").to_numpy()
    assert np.allclose(pred, reg.predict(X[300:]), rtol=0, atol=1e-12)
    back = LLFMRegressor.from_model_dir(model)
    assert np.array_equal(back.predict(X[300:]), reg.predict(X[300:]))


def test_the_wrong_estimator_for_a_model_is_one_clear_error(data, tmp_path):
    X, y = data["X"], data["y"]
    model = LLFMClassifier(anchors=4, n_epochs=1).fit(X[:200], y[:200]).save(tmp_path / "m")
    with pytest.raises(InputError, match="binary model: open it with a classifier"):
        LLFMRegressor.from_model_dir(model)
    with pytest.raises(InputError, match="not an FM: open it with LLFMClassifier"):
        FMClassifier.from_model_dir(model)
    fm = FMClassifier(n_epochs=1).fit(X[:200], y[:200]).save(tmp_path / "fm")
    assert np.array_equal(FMClassifier.from_model_dir(fm).predict_proba(X[:5]),
                          LLFMClassifier.from_model_dir(fm).predict_proba(X[:5]))
    with pytest.raises(InputError, match="not a streamfm model directory"):
        LLFMClassifier.from_model_dir(tmp_path)
