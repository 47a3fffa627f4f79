"""ReadOptions: checked once with one clear message; JSON round trip; old manifests' options still open the data."""
import dataclasses
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamfm.errors import InputError
from streamfm.io import Chunk, ReadOptions, open_source
from streamfm.store.modeldir import ModelDir
from streamfm.run import resume, train
from streamfm.training.options import TrainOptions


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"format": "xls"}, r"unknown format 'xls'; expected one of libsvm, csv, parquet"),
        ({"chunk_rows": 0}, r"chunk_rows must be at least 1, got 0"),
        ({"chunk_rows": -5}, r"chunk_rows must be at least 1, got -5"),
        ({"chunk_rows": 1.5}, r"chunk_rows must be an integer, got 1\.5"),
        ({"chunk_rows": "100"}, r"chunk_rows must be an integer, got '100'"),
        ({"chunk_rows": True}, r"chunk_rows must be an integer, got True"),
        ({"n_hash_features": 0}, r"n_hash_features must be between 1 and 2\*\*31 - 1 .*got 0"),
        ({"n_hash_features": 2**31}, r"n_hash_features must be between 1 and 2\*\*31 - 1 .*got 2147483648"),
        ({"zero_based": "yes"}, r"zero_based must be True, False or 'auto', got 'yes'"),
        ({"header": None}, r"header must be True, False or 'auto', got None"),
        ({"skip_bad_rows": "auto"}, r"skip_bad_rows must be True or False, got 'auto'"),
        ({"feature_columns": "a,b"}, r"feature_columns must be a list of column names, got 'a,b'"),
        ({"hash_columns": ["a", 2.5]}, r"hash_columns: a column is a name or a position, got 2\.5"),
        ({"label_column": 1.5}, r"label_column: a column is a name or a position, got 1\.5"),
        ({"indices_column": 3}, r"indices_column must be a column name, got 3"),
    ],
)
def test_bad_options_fail_with_one_message(kwargs, message):
    with pytest.raises(InputError, match=message):
        ReadOptions(**kwargs)


def test_a_changed_copy_is_checked_again():
    with pytest.raises(InputError, match="chunk_rows must be at least 1"):
        dataclasses.replace(ReadOptions(chunk_rows=10), chunk_rows=0)
    assert dataclasses.replace(ReadOptions(chunk_rows=10), chunk_rows=20) == ReadOptions(chunk_rows=20)


def test_values_are_normalised():
    opts = ReadOptions(chunk_rows=np.int64(500), header=1, zero_based=np.bool_(False),
                       feature_columns=("a", np.int32(2)), label_column=np.int64(-1))
    assert opts.chunk_rows == 500 and type(opts.chunk_rows) is int
    assert opts.header is True and opts.zero_based is False
    assert opts.feature_columns == ("a", 2) and type(opts.feature_columns[1]) is int
    assert opts.to_dict()["feature_columns"] == ["a", 2] and hash(opts) == hash(dataclasses.replace(opts))
    assert opts.label_column == -1 and type(opts.label_column) is int


@pytest.mark.parametrize("opts", [
    ReadOptions(),
    ReadOptions(format="csv", label_column="y", feature_columns=["a", "b"], hash_columns=["c"],
                n_hash_features=97, header=True, skip_bad_rows=True, chunk_rows=1000),
    ReadOptions(format="parquet", label_column=-1, indices_column="idx", values_column="val"),
    ReadOptions(format="libsvm", zero_based=False, chunk_rows=7),
])
def test_json_round_trip(opts):
    d = json.loads(json.dumps(opts.to_dict()))
    assert d == opts.to_dict()
    assert ReadOptions.from_dict(d) == opts


def test_from_dict_takes_any_subset_and_refuses_unknown_keys():
    assert ReadOptions.from_dict({}) == ReadOptions()
    assert ReadOptions.from_dict({"chunk_rows": 1000}) == ReadOptions(chunk_rows=1000)
    with pytest.raises(InputError, match=r"unknown read option 'chunkrows'"):
        ReadOptions.from_dict({"chunkrows": 1000})
    assert ReadOptions.coerce(None) == ReadOptions()
    opts = ReadOptions(chunk_rows=3)
    assert ReadOptions.coerce(opts) is opts and ReadOptions.coerce({"chunk_rows": 3}) == opts


def test_table_options_are_refused_for_libsvm(tmp_path):
    (tmp_path / "d.svm").write_text("1 1:0.5\n")
    for name, value in [("label_column", "y"), ("feature_columns", ["a"]), ("hash_columns", ["a"]),
                        ("indices_column", "i"), ("values_column", "v")]:
        flag = name.replace("_", "-")
        with pytest.raises(InputError, match=f"{flag} applies to CSV and Parquet tables, not to libsvm files"):
            open_source(str(tmp_path / "d.svm"), ReadOptions(**{name: value}))


# What the command line stored as a run's read options before ReadOptions existed: every field,
# the label column as the command line's text.
OLD_CLI_OPTIONS = {
    "format": None, "label_column": "3", "feature_columns": None, "indices_column": None,
    "values_column": None, "hash_columns": ["colour"], "n_hash_features": 64, "zero_based": "auto",
    "header": "auto", "skip_bad_rows": False, "chunk_rows": 2,
}


def test_an_old_manifests_options_open_the_data_as_they_did(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,z,colour,y\n1,2,red,0\n3,4,blue,1\n5,6,red,1\n")
    src = open_source(str(path), ReadOptions.from_dict(OLD_CLI_OPTIONS))
    chunks = list(src.iter_chunks())
    assert [c.n_rows for c in chunks] == [2, 1]  # chunk_rows=2
    assert src.label_column == "y" and src.hashed_columns == ["colour"] and src.n_features_hint == 2 + 64
    rows = Chunk.concat(chunks)
    assert rows.y.tolist() == [0.0, 1.0, 1.0]
    assert rows.to_dense()[:, :2].tolist() == [[1, 2], [3, 4], [5, 6]]


def _wide_parquet(path, n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(float)
    path.mkdir()
    pq.write_table(pa.table({"f0": X[:, 0], "f1": X[:, 1], "f2": X[:, 2], "label": y}), path / "part-0.parquet")
    return str(path)


@pytest.mark.parametrize("stored", [{}, {"chunk_rows": 100},
                                    {**OLD_CLI_OPTIONS, "label_column": None, "hash_columns": None,
                                     "n_hash_features": 2**20, "chunk_rows": 100}])
def test_a_run_stored_with_old_options_resumes(tmp_path, stored):
    """A manifest whose run stored its read options as a dict of some (or all) fields resumes."""
    data = _wide_parquet(tmp_path / "data")
    opts = dict(epochs=2, batch_rows=64, shuffle_buffer=200, quiet=True)
    r = train(data, tmp_path / "m", options=TrainOptions(max_rows=700, **opts),
              data_options={"chunk_rows": 100})
    assert r["stopped"] == "max_rows"
    store = ModelDir(tmp_path / "m")
    man = store.read_manifest()
    assert ReadOptions.from_dict(man["training"]["data"]["options"]) == ReadOptions(chunk_rows=100)
    man["training"]["data"]["options"] = stored
    man["training"]["options"]["max_rows"] = 0
    store.save(man, store.load(mmap_mode=None)[1])
    r = resume(tmp_path / "m")
    assert r["stopped"] is None and r["epochs_done"] == 2
