"""The CSV and Parquet readers resolve columns alike (io/table.py): the same table, as either
format, gives the same layout, the same rows and the same messages."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamfm.errors import InputError
from streamfm.io import Chunk, ReadOptions, open_source

COLUMNS = {"a": [1.0, 3.0, 5.0], "colour": ["red", "blue", "red"], "b": [2.0, 4.0, 6.0], "y": [0.0, 1.0, 1.0]}


@pytest.fixture(params=["csv", "parquet"])
def table(request, tmp_path):
    if request.param == "csv":
        path = tmp_path / "t.csv"
        names = list(COLUMNS)
        lines = [",".join(names)] + [",".join(str(COLUMNS[c][i]) for c in names) for i in range(3)]
        path.write_text("\n".join(lines) + "\n")
    else:
        path = tmp_path / "t.parquet"
        pq.write_table(pa.table(COLUMNS), path)
    return str(path)


def read(path, **kw):
    src = open_source(path, ReadOptions(**kw))
    chunks = list(src.iter_chunks())
    return src, Chunk.concat(chunks) if chunks else None


def test_layout_and_rows_agree(table):
    src, rows = read(table, label_column="y", n_hash_features=16)
    assert src.label_column == "y" and src.feature_names == ["a", "b"] and src.hashed_columns == ["colour"]
    assert src.n_features_hint == 2 + 16 and not src.dense
    assert rows.y.tolist() == [0.0, 1.0, 1.0]
    assert rows.to_dense()[:, :2].tolist() == [[1, 2], [3, 4], [5, 6]]


def test_label_by_position(table):
    for spec in (-1, "-1", 3, "3"):
        src, _ = read(table, label_column=spec, n_hash_features=16)
        assert src.label_column == "y"


def test_hash_columns_join_the_features(table):
    src, rows = read(table, label_column="y", feature_columns=["b"], hash_columns=["colour"], n_hash_features=16)
    assert src.feature_names == ["b"] and src.hashed_columns == ["colour"]
    assert rows.to_dense()[:, 0].tolist() == [2, 4, 6]
    assert (rows.to_dense()[:, 1:].sum(axis=1) == 1).all()  # one hashed id per row


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"label_column": "target"}, r"label column 'target' not found in .*t\.\w+; the columns are: a, colour, b, y"),
        ({"label_column": 9}, r"label column 9 is out of range: .*t\.\w+ has 4 columns \(a, colour, b, y\)"),
        ({"label_column": "y", "feature_columns": ["z"]}, r"feature column 'z' not found"),
        ({"label_column": "y", "hash_columns": ["q"]}, r"hash column 'q' not found"),
        ({"label_column": "y", "feature_columns": ["a", "y"]}, r"column 'y' is both the label and a feature"),
        ({"label_column": "y", "hash_columns": ["y"]}, r"column 'y' is both the label and a feature"),
        ({"label_column": "y", "hash_columns": ["a"]},
         r"t\.\w+: (feature column 'colour' is not numeric; add it to the hash columns \(--hash-columns\)"
         r"|row 1, column 'colour': cannot parse 'red' as a number.*--hash-columns colour)"),
        ({"label_column": "y", "feature_columns": []}, r"no feature columns"),
        ({"label_column": "y", "n_hash_features": 2**31 - 2}, r"n_hash_features must be between 1 and 2\*\*31 - 1"),
    ],
)
def test_the_same_message_from_both_readers(table, kwargs, message):
    with pytest.raises(InputError, match=message):
        read(table, **kwargs)


def test_parquet_default_label_suggests_the_option(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1.0], "y": [0.0]}), path)
    with pytest.raises(InputError, match=r"label column 'label' not found .*\(pass --label-column\)"):
        read(str(path))


def test_parquet_column_of_another_type(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": pa.array([[1], [2]]), "label": [0.0, 1.0]}), path)
    with pytest.raises(InputError, match=r"feature column 'a' has type list<\w+: int64>, not a number"):
        read(str(path))


def test_csv_column_empty_in_the_first_block_reads_as_numbers(tmp_path):
    """pyarrow infers an all-empty column as null: it is a numeric column with missing values."""
    path = tmp_path / "e.csv"
    path.write_text("a,b,y\n1,,0\n2,,1\n")
    with pytest.raises(InputError, match=r"row 1, column 'b': the value is empty"):
        read(str(path))
    src, rows = read(str(path), skip_bad_rows=True)
    assert rows is None and src.bad_rows == 2 and src.feature_names == ["a", "b"]


def test_csv_column_of_dates_reads_as_numbers(tmp_path):
    """pyarrow infers dates, but a CSV feature column is numbers or hashed text: a date is a bad number."""
    path = tmp_path / "d.csv"
    path.write_text("d,x,y\n2020-01-01,1,0\n2020-01-02,2,1\n")
    with pytest.raises(InputError, match=r"row 1, column 'd': cannot parse '2020-01-01' as a number"):
        read(str(path))
    src, _ = read(str(path), hash_columns=["d"], n_hash_features=8)
    assert src.hashed_columns == ["d"] and src.feature_names == ["x"]
