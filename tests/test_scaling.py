"""--scale end to end: the map is chosen once, recorded in the model and applied as stored by predict,
evaluate, incremental training, --resume and load; model directories saved before --scale still load."""
import numpy as np
import pyarrow.csv as pcsv
import pytest
import scipy.sparse as sp

from streamfm import cli
from streamfm.io.chunk import Chunk
from streamfm.io.options import ReadOptions
from streamfm.io.sources import open_source
from streamfm.models.config import Config
from streamfm.preprocess.scan import scan
from streamfm.preprocess.standardize import Standardizer
from streamfm.store.modeldir import ModelDir
from streamfm.run import load, train
from streamfm.training.options import TrainOptions
from test_cli_model import fails, run
from test_trainer import local_rules, write_parquet

USERS, ITEMS = 30, 40
P = USERS + ITEMS + 3  # + a sparse count, a dense real feature, a dense 0/1 flag


def sparse_rows(n, seed, shift=0.0):
    """Rows as recommendation data has them: a user one-hot, an item one-hot, a sparse count,
    a dense real feature and a dense 0/1 flag; the label from user and item effects."""
    rng = np.random.default_rng(seed)
    effects = np.random.default_rng(50).normal(size=USERS + ITEMS)
    u, i = rng.integers(0, USERS, n), USERS + rng.integers(0, ITEMS, n)
    X = np.zeros((n, P))
    X[np.arange(n), u] = 1.0
    X[np.arange(n), i] = 1.0
    X[:, P - 3] = np.where(rng.random(n) < 0.2, rng.poisson(3, n), 0)
    X[:, P - 2] = rng.normal(size=n) * 3 + 10 + shift
    X[:, P - 1] = rng.random(n) < 0.6
    y = (effects[u] + effects[i] + 0.3 * rng.normal(size=n) > 0).astype(int)
    return sp.csr_matrix(X), y


def write_libsvm(path, X, y):
    with open(path, "w") as fh:
        for r, yi in enumerate(y):
            row = X[r]
            fh.write(f"{yi} " + " ".join(f"{j + 1}:{v:.17g}" for j, v in zip(row.indices, row.data)) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def sparse_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("scaling")
    X, y = sparse_rows(600, seed=1)
    data = write_libsvm(root / "train.svm", X, y)
    model = root / "model"
    assert cli.main(["train", data, "--model", str(model), "--epochs", "2", "--anchors", "8",
                     "--one-based", "-q"]) == 0
    return {"root": root, "data": data, "X": X, "y": y, "model": str(model)}


def stored_map_by_hand(path, X):
    """The stored map applied with NumPy: (x - shift) * scale, implicit zeros of centred features included."""
    arrays = ModelDir(path).load(mmap_mode=None)[1]
    D = X.toarray()
    return (D - arrays["std_shift"]) * arrays["std_scale"], arrays


def test_auto_is_recorded_in_the_manifest_and_the_arrays(sparse_model):
    meta = ModelDir(sparse_model["model"]).read_manifest()["model"]["standardizer"]
    # the one-hots and the 0/1 flag kept, the dense real feature standardised, the count max-abs scaled
    assert meta == {"scale": "auto", "kept": USERS + ITEMS + 1, "standardised": 1, "maxabs": 1, "centred": 1}
    _, arrays = stored_map_by_hand(sparse_model["model"], sparse_model["X"])
    assert arrays["std_centred"].dtype == bool and arrays["std_centred"].tolist() == [False] * (P - 2) + [True, False]
    assert arrays["std_scale"][P - 3] == 1 / sparse_model["X"][:, P - 3].max()
    np.testing.assert_array_equal(arrays["std_scale"][:USERS + ITEMS], 1.0)


def test_predict_applies_the_stored_map_and_equals_load(capsys, sparse_model, tmp_path):
    """`streamfm predict` on a part of the training file (whose own statistics differ) gives
    load(DIR).predict_proba on the same rows, which is the model on the stored map applied by hand."""
    X, y = sparse_model["X"][:45], sparse_model["y"][:45]
    head = write_libsvm(tmp_path / "head.svm", X, y)
    own = Standardizer.from_scan(scan(open_source(head, ReadOptions(zero_based=False))), "auto")
    stored = load(sparse_model["model"]).standardizer
    assert not np.allclose(own.shift, stored.shift)  # a map made from these rows would differ
    code, _, err = run(capsys, "predict", head, "--model", sparse_model["model"], "-o", tmp_path / "p.csv",
                       "--one-based", "-q")
    assert code == 0, err
    table = pcsv.read_csv(tmp_path / "p.csv")
    got = np.column_stack([np.asarray(table.column(c)) for c in ("proba_0", "proba_1")])
    trained = load(sparse_model["model"])
    np.testing.assert_allclose(got, trained.predict_proba(X), rtol=1e-12, atol=1e-15)
    Z, _ = stored_map_by_hand(sparse_model["model"], X)
    by_hand = trained.model.proba_from_scores(trained.model.decision_chunk(Chunk.from_dense(Z, np.zeros(45))))
    np.testing.assert_allclose(got, by_hand, rtol=1e-9, atol=1e-12)
    code, out, _ = run(capsys, "evaluate", head, "--model", sparse_model["model"], "--one-based", "--json", "-q")
    assert code == 0 and '"rows": 45' in out


def test_info_and_the_start_line_say_how_features_are_scaled(capsys, sparse_model, tmp_path):
    code, out, _ = run(capsys, "info", sparse_model["model"])
    assert code == 0
    assert "scaling:" in out and "auto: 71 kept, 1 standardised (1 centred), 1 max-abs scaled" in out
    code, out, _ = run(capsys, "train", sparse_model["data"], "--model", tmp_path / "m", "--epochs", "1",
                       "--method", "fm", "--scale", "maxabs", "--one-based")
    assert code == 0
    assert "scaling maxabs: 0 kept, 0 standardised (0 centred), 73 max-abs scaled" in out
    assert ModelDir(tmp_path / "m").read_manifest()["model"]["standardizer"]["scale"] == "maxabs"


def test_incremental_training_and_resume_keep_the_map(capsys, sparse_model, tmp_path):
    model = tmp_path / "m"
    assert cli.main(["train", sparse_model["data"], "--model", str(model), "--epochs", "1", "--method", "fm",
                     "--scale", "standard", "--one-based", "-q"]) == 0
    before = ModelDir(model).load(mmap_mode=None)[1]
    X2, y2 = sparse_rows(300, seed=2, shift=5.0)  # other statistics: another map, if one were made
    more = write_libsvm(tmp_path / "more.svm", X2, y2)
    fails(capsys, r"trained with --scale standard; its scaling cannot change to auto", "train", more,
          "--model", model, "--scale", "auto", "--one-based", "-q")
    for extra in ([], ["--scale", "standard"]):  # left out, or the model's own mode
        assert cli.main(["train", more, "--model", str(model), "--epochs", "1", "--one-based", "-q"] + extra) == 0
    after = ModelDir(model).load(mmap_mode=None)[1]
    for name in ("std_shift", "std_scale", "std_centred"):
        np.testing.assert_array_equal(after[name], before[name])
    assert ModelDir(model).read_manifest()["model"]["standardizer"]["scale"] == "standard"
    # an interrupted run
    stopped = tmp_path / "s"
    code, _, _ = run(capsys, "train", sparse_model["data"], "--model", stopped, "--epochs", "2", "--method", "fm",
                     "--max-rows", "700", "--batch-rows", "64", "--one-based", "-q")
    assert code == 0 and ModelDir(stopped).read_manifest()["training"]["status"] == "interrupted"
    fails(capsys, r"trained with --scale auto; its scaling cannot change to none", "train", "--resume", stopped,
          "--scale", "none")
    code, _, _ = run(capsys, "train", "--resume", stopped, "--scale", "auto", "-q")
    assert code == 0 and ModelDir(stopped).read_manifest()["training"]["status"] == "complete"


def today_standard(D, mean, var, center):
    """The map models saved before --scale hold: (x - mean*center) / std, a constant feature scale 1."""
    varies = (var > (1e-9 * np.abs(mean)) ** 2) & (var > 0)
    return (D - (mean if center else 0)) * np.where(varies, 1 / np.sqrt(np.where(varies, var, 1)), 1.0)


@pytest.mark.parametrize("center", [True, False])
def test_a_model_directory_saved_before_scale_loads_and_predicts_the_same(capsys, tmp_path, center):
    """A manifest as streamfm wrote it before --scale: std_mean, std_var and {"center": ...}."""
    X, y = local_rules(400, seed=1)
    X[:, 2] = 4.0  # a constant feature (scale 1)
    data = write_parquet(tmp_path / "d", X, y)
    model = tmp_path / "m"
    train(data, model, config=Config(method="llfm-jo", anchors=8), options=TrainOptions(epochs=1, quiet=True))
    store = ModelDir(model)
    manifest, arrays = store.read_manifest(), store.load(mmap_mode=None)[1]
    sc = scan(open_source(data))
    for name in ("std_shift", "std_scale", "std_centred"):
        del arrays[name]
    arrays.update(std_mean=sc.mean, std_var=sc.var)
    manifest["model"]["standardizer"] = {"center": center}
    store.save(manifest, arrays)
    assert "std_shift" not in store.load()[1]

    old = load(model)
    expected = old.model.proba_from_scores(old.model.decision_chunk(
        Chunk.from_dense(today_standard(X, sc.mean, sc.var, center), np.zeros(len(X)))))
    np.testing.assert_allclose(old.predict_proba(X), expected, rtol=1e-12, atol=1e-15)
    assert old.standardizer.mode == "standard" and old.standardizer.center is center
    code, out, _ = run(capsys, "info", model)
    assert code == 0 and f"standard: 3 standardised, {'all' if center else 'none'} centred" in out
    # training it on more data keeps that map and saves it the new way
    X2, y2 = local_rules(200, seed=2)
    train(write_parquet(tmp_path / "more", X2, y2), model, options=TrainOptions(epochs=1, quiet=True))
    arrays = store.load()[1]
    np.testing.assert_array_equal(arrays["std_shift"], sc.mean if center else 0.0)
    np.testing.assert_array_equal(arrays["std_centred"], center)
    assert store.read_manifest()["model"]["standardizer"]["scale"] == "standard"
