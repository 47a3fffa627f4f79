"""Held-out rows (membership, the epoch stream, the scan pass), their spool, and EarlyStopping itself."""
import numpy as np
import pyarrow.parquet as pq
import pytest

from fakes import FakeSource
from streamfm.io.chunk import Chunk
from streamfm.io.sources import open_source
from streamfm.io.spool import ParquetSpool
from streamfm.preprocess.holdout import HoldOut
from streamfm.preprocess.scan import scan
from streamfm.preprocess.shuffle import shuffled_epoch
from streamfm.training.early_stopping import EarlyStopping, metric_for
from test_preprocess_shuffle import id_rows, ids, shard_source


# ---------------------------------------------------------------- EarlyStopping


def test_early_stopping_counts_epochs_without_a_strictly_lower_metric():
    es = EarlyStopping(patience=2, metric="log_loss")
    history = [0.5, 0.4, 0.4, 0.39, float("nan"), 0.41, 0.3]
    stops = [es.update(e, {"log_loss": v}) for e, v in enumerate(history[:6], start=1)]
    # 0.4 again is no improvement; NaN never is; the second epoch in a row without one stops
    assert stops == [False, False, False, False, False, True]
    assert (es.best_epoch, es.best_value, es.bad_epochs, es.stopped_after) == (4, 0.39, 2, 6)
    assert es.reason(6) == "early stop after epoch 6, best epoch 4"
    # the state is plain JSON and continues exactly
    again = EarlyStopping.from_state(es.state())
    assert again == es
    es2 = EarlyStopping(patience=3, metric="rmse")
    assert not es2.update(1, {"rmse": 2.0, "log_loss": 9.0}) and es2.improved
    assert es2.reason(1) == "last epoch (1) reached, best epoch 1"
    assert metric_for("regression") == "rmse" and metric_for("binary") == metric_for("multiclass") == "log_loss"
    with pytest.raises(ValueError):
        EarlyStopping(patience=0, metric="rmse")


# ---------------------------------------------------------------- membership


def test_membership_is_a_seeded_function_of_the_place_of_a_row():
    h = HoldOut(0.1, seed=3)
    m = h.mask(2, 0, 100_000)
    assert 0.095 < m.mean() < 0.105
    np.testing.assert_array_equal(h.mask(2, 500, 1000), m[500:1500])  # the same row, however it is reached
    assert not np.array_equal(h.mask(3, 0, 1000), m[:1000])  # another file: other rows
    assert not np.array_equal(HoldOut(0.1, seed=4).mask(2, 0, 1000), m[:1000])  # another seed: other rows
    assert HoldOut.from_dict(h.to_dict()).mask(2, 0, 1000).tolist() == m[:1000].tolist()
    assert 0.29 < HoldOut(0.3, seed=3).mask(0, 0, 100_000).mean() < 0.31
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError):
            HoldOut(bad, seed=0)


def rechunked(src, chunk):
    """The same files and rows as ``src`` (shard_source), cut into chunks of ``chunk`` rows."""
    files = {}
    for path in src.files:
        rows = Chunk.concat(list(src.iter_file(path)))
        files[path] = [rows.take(np.arange(a, min(a + chunk, rows.n_rows))) for a in range(0, rows.n_rows, chunk)]
    return FakeSource(files)


def held_ids(src, h):
    return np.sort(np.concatenate([ids(list(h.file_chunks(src, p, i, held=True))) for i, p in enumerate(src.files)]))


def test_the_epoch_stream_never_holds_a_held_out_row_in_any_epoch_or_chunking():
    src = shard_source(n_files=6, rows=70, chunk=25)
    h = HoldOut(0.2, seed=1)
    held = held_ids(src, h)
    assert 50 < len(held) < 120
    kw = dict(seed=9, buffer_rows=60, out_rows=16, holdout=h)
    e0 = ids(list(shuffled_epoch(src, epoch=0, **kw)))
    np.testing.assert_array_equal(np.sort(e0), np.setdiff1d(np.arange(420), held))
    e1 = ids(list(shuffled_epoch(src, epoch=1, **kw)))
    np.testing.assert_array_equal(np.sort(e1), np.sort(e0))  # the same rows every epoch, in another order
    assert not np.array_equal(e0, e1)
    other = rechunked(src, 7)  # the readers cut the files differently: the same stream
    np.testing.assert_array_equal(held_ids(other, h), held)
    np.testing.assert_array_equal(ids(list(shuffled_epoch(other, epoch=0, **kw))), e0)
    # resume: the rest of the epoch is the tail of the stream, counted in training rows
    np.testing.assert_array_equal(ids(list(shuffled_epoch(src, epoch=0, skip_rows=100, **kw))), e0[100:])


def test_the_scan_leaves_held_out_rows_out_of_the_statistics_and_hands_them_over():
    src = shard_source(n_files=3, rows=400, chunk=64)
    h = HoldOut(0.25, seed=2)
    held = []
    sc = scan(src, sample_size=50, holdout=h, on_held=held.append)
    full = scan(src, sample_size=50)
    held_rows = Chunk.concat(held)
    np.testing.assert_array_equal(np.sort(held_rows.y.astype(int)), held_ids(src, h))
    assert sc.n_rows + sc.n_held == full.n_rows == 1200 and sc.n_held == held_rows.n_rows
    train = np.setdiff1d(np.arange(1200), held_ids(src, h))
    X = id_rows(0, 1200).take(train).to_dense(7)
    np.testing.assert_allclose(sc.mean, X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sc.var, X.var(0), rtol=1e-10)
    assert sc.nnz == id_rows(0, 1200).take(train).nnz
    assert np.isin(sc.sample.y.astype(int), train).all()  # the anchors' sample: training rows only
    # the labels (so the classes) and the width cover every row
    assert sc.n_features == full.n_features and sc.label_mean == full.label_mean == np.arange(1200).mean()


# ---------------------------------------------------------------- spool


def test_the_spool_reads_back_as_the_same_rows_whatever_the_chunks_written(tmp_path):
    rows = id_rows(0, 500)
    files = []
    for k, sizes in enumerate(([500], [1, 99, 250, 150], [7] * 72)):
        spool = ParquetSpool(tmp_path / f"s{k}.parquet", n_features_hint=7, row_group_rows=128)
        a = 0
        for n in sizes:
            n = min(n, 500 - a)
            spool.write(rows.take(np.arange(a, a + n)))
            a += n
        assert spool.close() == 500
        files.append(tmp_path / f"s{k}.parquet")
    tables = [pq.read_table(f) for f in files]
    assert all(t.equals(tables[0]) for t in tables)
    assert [pq.ParquetFile(f).metadata.row_group(i).num_rows for f in files[1:2] for i in range(4)] == [128] * 3 + [116]
    # wide rows: a row group ends at the row whose values reach row_group_entries, whatever the chunks
    groups = []
    for k, sizes in enumerate(([500], [3, 250, 247], [11] * 46)):
        spool = ParquetSpool(tmp_path / f"e{k}.parquet", row_group_rows=128, row_group_entries=150)
        a = 0
        for n in sizes:
            n = min(n, 500 - a)
            spool.write(rows.take(np.arange(a, a + n)))
            a += n
        spool.close()
        meta = pq.ParquetFile(tmp_path / f"e{k}.parquet").metadata
        groups.append([meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
    assert groups[0] == groups[1] == groups[2] and sum(groups[0]) == 500
    ends = np.cumsum(groups[0])
    nnz = rows.indptr  # values before each row
    for start, end in zip(np.concatenate([[0], ends[:-1]]), ends[:-1]):
        assert nnz[end] - nnz[start] >= 150 > nnz[end - 1] - nnz[start]
    back = Chunk.concat(list(open_source(str(files[2])).iter_chunks()))
    np.testing.assert_array_equal(back.to_dense(7), rows.to_dense(7))
    np.testing.assert_array_equal(back.y, rows.y)
    assert back.n_features == 7


def test_a_spool_of_fewer_rows_than_a_row_group_writes_nothing_until_closed(tmp_path):
    opened = []
    spool = ParquetSpool(lambda: opened.append(1) or tmp_path / "s.parquet", row_group_rows=100)
    spool.write(id_rows(0, 99))
    spool.abort()
    assert not opened and not (tmp_path / "s.parquet").exists()
    text = ParquetSpool(tmp_path / "t.parquet")
    text.write(Chunk(np.array([0, 1]), np.array([0], np.int32), np.array([1.0]), np.array(["cat"]), 1))
    text.close()
    assert open_source(str(tmp_path / "t.parquet")).iter_chunks().__next__().y.tolist() == ["cat"]
