"""Epoch shuffling: permutation, reproducibility, bounded memory, resume."""
import numpy as np
import pytest
import scipy.sparse as sp

from streamfm.io.chunk import Chunk
from streamfm.preprocess.shuffle import epoch_file_order, shuffled_chunks, shuffled_epoch
from fakes import FakeSource


def id_rows(first, n):
    """Rows first..first+n-1: label = row id, and the row's entries encode the id
    (1 + id % 3 entries at columns id % 5 + 0, 1, 2 with values id + column)."""
    ids = np.arange(first, first + n)
    lengths = 1 + ids % 3
    rows = np.repeat(np.arange(n), lengths)
    cols = np.repeat(ids % 5, lengths) + (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    X = sp.csr_matrix((ids[rows] + cols.astype(float), (rows, cols)), shape=(n, 7))
    return Chunk.from_scipy(X, ids.astype(float))


def stream(n, sizes):
    """Chunks covering rows 0..n-1 with sizes cycling through ``sizes``."""
    out, i, k = [], 0, 0
    while i < n:
        m = min(sizes[k % len(sizes)], n - i)
        out.append(id_rows(i, m))
        i, k = i + m, k + 1
    return out


def check_rows_intact(chunk):
    """Every output row still carries the entries of the input row with its id."""
    ref = id_rows(0, int(chunk.y.max()) + 1)
    np.testing.assert_array_equal(chunk.to_dense(7), ref.take(chunk.y.astype(int)).to_dense(7))


def ids(chunks):
    return np.concatenate([c.y for c in chunks]).astype(int) if chunks else np.zeros(0, int)


# ---------------------------------------------------------------------------
# Shard order
# ---------------------------------------------------------------------------


def test_epoch_file_order():
    files = [f"part-{i:03d}.parquet" for i in range(20)]
    a = epoch_file_order(files, epoch=0, seed=1)
    assert sorted(a) == files
    assert a == epoch_file_order(files, epoch=0, seed=1)
    orders = {tuple(epoch_file_order(files, epoch=e, seed=1)) for e in range(5)}
    assert len(orders) == 5
    assert epoch_file_order(files, 0, 2) != a
    assert epoch_file_order([], 0, 0) == []


# ---------------------------------------------------------------------------
# Shuffle buffer
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("buffer_rows, out_rows, sizes", [(100, 32, [17, 40, 3]), (64, 64, [500]), (10, 50, [7]), (1000, 16, [33])])
def test_output_is_a_permutation_of_the_input(buffer_rows, out_rows, sizes):
    out = list(shuffled_chunks(stream(777, sizes), buffer_rows=buffer_rows, out_rows=out_rows, seed=3))
    np.testing.assert_array_equal(np.sort(ids(out)), np.arange(777))
    assert all(c.n_rows == out_rows for c in out[:-1]) and 0 < out[-1].n_rows <= out_rows
    assert not np.array_equal(ids(out), np.arange(777))
    check_rows_intact(Chunk.concat(out))


def test_shuffle_moves_rows_across_the_buffer():
    out = list(shuffled_chunks(stream(2000, [50]), buffer_rows=400, out_rows=100, seed=0))
    first = ids(out[:1])
    assert first.max() > 200  # drawn from the whole first buffer, not its head
    # Retained rows mix with later rounds: some rows come out far after their round.
    pos = np.empty(2000, int)
    pos[ids(out)] = np.arange(2000)
    assert (pos - np.arange(2000)).max() > 400


def test_reproducible_and_seed_dependent():
    run = lambda seed: ids(list(shuffled_chunks(stream(500, [37]), buffer_rows=128, out_rows=20, seed=seed)))
    np.testing.assert_array_equal(run((1, 0)), run((1, 0)))
    assert not np.array_equal(run((1, 0)), run((1, 1)))


def test_output_does_not_depend_on_input_chunking():
    a = list(shuffled_chunks(stream(600, [7, 91]), buffer_rows=150, out_rows=40, seed=5))
    b = list(shuffled_chunks(stream(600, [600]), buffer_rows=150, out_rows=40, seed=5))
    assert [c.n_rows for c in a] == [c.n_rows for c in b]
    np.testing.assert_array_equal(ids(a), ids(b))


def test_zero_buffer_passes_rows_through_in_order():
    out = list(shuffled_chunks(stream(250, [33, 70]), buffer_rows=0, out_rows=60, seed=0))
    np.testing.assert_array_equal(ids(out), np.arange(250))
    assert [c.n_rows for c in out] == [60, 60, 60, 60, 10]
    check_rows_intact(Chunk.concat(out))


def test_empty_input():
    assert list(shuffled_chunks(iter([]), buffer_rows=10, out_rows=4, seed=0)) == []
    assert list(shuffled_chunks([id_rows(0, 0)], buffer_rows=0, out_rows=4, seed=0)) == []


class Counting:
    """Wraps the input stream: rows consumed by the shuffler minus rows it emitted
    is what the shuffler holds (the consumer keeps nothing)."""

    def __init__(self, chunks):
        self.chunks, self.consumed, self.emitted, self.max_held = chunks, 0, 0, 0

    def __iter__(self):
        for c in self.chunks:
            self.consumed += c.n_rows
            self.max_held = max(self.max_held, self.consumed - self.emitted)
            yield c

    def drain(self, out):
        for c in out:
            self.emitted += c.n_rows


@pytest.mark.parametrize("buffer_rows, out_rows, sizes", [(200, 25, [30]), (200, 25, [7, 150]), (50, 10, [400]), (0, 25, [30, 3])])
def test_memory_is_bounded(buffer_rows, out_rows, sizes):
    src = Counting(stream(5000, sizes))
    src.drain(shuffled_chunks(src, buffer_rows=buffer_rows, out_rows=out_rows, seed=0))
    assert src.emitted == src.consumed == 5000
    bound = max(buffer_rows, out_rows) + max(sizes) - 1
    assert src.max_held <= bound
    assert src.max_held >= buffer_rows  # the buffer is really used


@pytest.mark.parametrize("buffer_rows", [0, 96])
@pytest.mark.parametrize("skip", [0, 1, 30, 32, 95, 96, 200, 399, 400, 1000])
def test_skip_rows_resumes_on_the_same_row(buffer_rows, skip):
    kw = dict(buffer_rows=buffer_rows, out_rows=32, seed=(4, 2))
    full = list(shuffled_chunks(stream(400, [45]), **kw))
    rest = list(shuffled_chunks(stream(400, [45]), skip_rows=skip, **kw))
    np.testing.assert_array_equal(ids(rest), ids(full)[skip:])
    if rest:
        check_rows_intact(Chunk.concat(rest))
        # After the first (partial) chunk, boundaries line up with the full stream.
        tail = [c.n_rows for c in full][-(len(rest) - 1) :] if len(rest) > 1 else []
        assert [c.n_rows for c in rest[1:]] == tail


# ---------------------------------------------------------------------------
# Epochs over a source
# ---------------------------------------------------------------------------


def shard_source(n_files=6, rows=70, chunk=25):
    """Shard i holds rows 70 i .. 70 i + 69, in chunks of 25."""
    return FakeSource(
        {
            f"shard-{i}": [id_rows(i * rows + j, min(chunk, rows - j)) for j in range(0, rows, chunk)]
            for i in range(n_files)
        }
    )


def test_shuffled_epoch():
    src = shard_source()
    kw = dict(seed=9, buffer_rows=60, out_rows=16)
    e0 = ids(list(shuffled_epoch(src, epoch=0, **kw)))
    np.testing.assert_array_equal(np.sort(e0), np.arange(420))
    np.testing.assert_array_equal(e0, ids(list(shuffled_epoch(src, epoch=0, **kw))))
    assert not np.array_equal(e0, ids(list(shuffled_epoch(src, epoch=1, **kw))))
    resumed = ids(list(shuffled_epoch(src, epoch=0, skip_rows=123, **kw)))
    np.testing.assert_array_equal(resumed, e0[123:])


def test_shuffled_epoch_shard_order():
    src = shard_source()
    plain = ids(list(shuffled_epoch(src, epoch=3, seed=0, buffer_rows=0, out_rows=50, shuffle_files=False)))
    np.testing.assert_array_equal(plain, np.arange(420))
    by_shard = ids(list(shuffled_epoch(src, epoch=3, seed=0, buffer_rows=0, out_rows=50)))
    order = epoch_file_order(src.files, 3, 0)
    expected = np.concatenate([np.arange(70) + 70 * int(f.split("-")[1]) for f in order])
    np.testing.assert_array_equal(by_shard, expected)


def test_bad_parameters():
    with pytest.raises(ValueError):
        list(shuffled_chunks([], buffer_rows=10, out_rows=0, seed=0))
    with pytest.raises(ValueError):
        list(shuffled_chunks([], buffer_rows=-1, out_rows=5, seed=0))
    with pytest.raises(ValueError):
        epoch_file_order(["a"], epoch=0, seed=-1)
