""""compiling kernels (first run only)": numba's cache index says whether a kernel must compile."""
import importlib.util

import numpy as np
import pytest

from streamfm import cli
from streamfm.cli import compiling


def _fresh_module(tmp_path, name):
    path = tmp_path / f"{name}.py"
    path.write_text("import numba\n\n\n@numba.njit(cache=True)\ndef plus_one(x):\n    return x + 1\n")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_kernel_is_cold_until_compiled_and_cached(tmp_path):
    # the environment's NUMBA_CACHE_DIR is left as it is: numba reads it again when it compiles, so
    # removing it here would put the two loads' caches in different places
    module = _fresh_module(tmp_path, "fresh_kernel")
    assert compiling.cache_is_cold(module.plus_one)
    assert module.plus_one(1) == 2  # compiles, and writes the cache (beside the module, or in NUMBA_CACHE_DIR)
    assert not compiling.cache_is_cold(module.plus_one)
    # a new process (here: the module loaded again) finds it cached
    again = _fresh_module(tmp_path, "fresh_kernel")
    assert not compiling.cache_is_cold(again.plus_one)
    assert not compiling.cache_is_cold(lambda x: x)  # not a numba dispatcher: says nothing


def _write(path, n=200):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3))
    with open(path, "w") as fh:
        for xi in X:
            fh.write(f"{int(xi[0] > 0)} " + " ".join(f"{j + 1}:{v:.5f}" for j, v in enumerate(xi)) + "\n")
    return str(path)


@pytest.mark.parametrize("cold", [True, False])
def test_train_predict_evaluate_say_so_when_cold_and_not_quiet(tmp_path, capsys, monkeypatch, cold):
    monkeypatch.setattr(compiling, "cache_is_cold", lambda dispatcher: cold)
    data, model = _write(tmp_path / "d.svm"), str(tmp_path / "m")
    for argv in (["train", data, "--model", model, "--epochs", "1", "--anchors", "4"],
                 ["predict", data, "--model", model, "-o", str(tmp_path / "p.csv")],
                 ["evaluate", data, "--model", model]):
        assert cli.main(argv) == 0
        assert (compiling.COMPILING in capsys.readouterr().err) == cold, argv
        assert cli.main(argv[:2] + ["--model", str(tmp_path / "m2")] + argv[4:] + ["-q"]) == 0
        assert compiling.COMPILING not in capsys.readouterr().err
