"""The content checksum convert writes into a shard's footer, and the reader's check of it."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from streamfm import cli
from streamfm.errors import InputError
from streamfm.io import ReadOptions, open_source
from streamfm.io.digest import DIGEST_KEY, ContentDigest


def _rows(path):
    out = []
    for chunk in open_source(str(path), ReadOptions()).iter_chunks():
        out.append((chunk.y.copy(), chunk.indptr.copy(), chunk.indices.copy(), chunk.data.copy()))
    return out


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    root = tmp_path_factory.mktemp("digest")
    rng = np.random.default_rng(3)
    with open(root / "d.svm", "w") as fh:
        for i in range(200):
            cols = np.sort(rng.choice(20, size=rng.integers(1, 6), replace=False))
            fh.write(f"{i % 2} " + " ".join(f"{j + 1}:{rng.normal():.4f}" for j in cols) + "\n")
    assert cli.main(["convert", str(root / "d.svm"), "-o", str(root / "shards"), "-q"]) == 0
    return root / "shards" / "part-00000.parquet"


def test_the_digest_does_not_depend_on_how_rows_are_batched():
    t = pa.table({"label": pa.array(["a", "bb", None, "c"]),
                  "indices": pa.array([[1, 2], [3], [], [4, 5, 6]], pa.list_(pa.int32())),
                  "values": pa.array([[1.0, 2.0], [3.0], [], [4.0, 5.0, 6.0]]),
                  "y": pa.array([1.0, 2.0, 3.0, 4.0])})
    whole, rows, halves = ContentDigest(), ContentDigest(), ContentDigest()
    whole.add(t)
    for batch in t.to_batches(max_chunksize=1):
        rows.add(batch)
    halves.add(pa.concat_tables([t.slice(0, 3), t.slice(3)]))
    assert whole.crc == rows.crc == halves.crc and whole.rows == 4
    other = ContentDigest()
    other.add(t.set_column(1, "indices", pa.array([[1, 2, 3], [], [], [4, 5, 6]], pa.list_(pa.int32()))))
    assert other.crc["indices"] != whole.crc["indices"] and other.crc["values"] == whole.crc["values"]


def test_convert_writes_it_and_the_shard_reads_back(shard):
    assert DIGEST_KEY in pq.ParquetFile(shard).metadata.metadata
    assert sum(len(y) for y, *_ in _rows(shard)) == 200


def test_other_rows_under_the_same_footer_checksum_are_an_error(tmp_path, shard):
    """A shard whose decoded rows differ from what its checksum was taken over (as a flipped bit
    in a page header or the footer leaves it) is refused, naming the file."""
    pf = pq.ParquetFile(shard)
    table = pf.read()
    values = table.column("values").combine_chunks()
    changed = pa.ListArray.from_arrays(values.offsets, pc.negate(values.flatten()), type=values.type)
    bad = tmp_path / "part-00000.parquet"
    with pq.ParquetWriter(bad, table.schema) as w:
        cols = [changed if name == "values" else table.column(name) for name in table.schema.names]
        w.write_table(pa.Table.from_arrays(cols, schema=table.schema))
        w.add_key_value_metadata({DIGEST_KEY: pf.metadata.metadata[DIGEST_KEY]})
    with pytest.raises(InputError, match=r"part-00000.parquet: the file is damaged \(column 'values'"):
        _rows(bad)
    fewer = tmp_path / "fewer.parquet"
    with pq.ParquetWriter(fewer, table.schema) as w:
        w.write_table(table.slice(0, 150))
        w.add_key_value_metadata({DIGEST_KEY: pf.metadata.metadata[DIGEST_KEY]})
    with pytest.raises(InputError, match="150 rows read where 200 were written"):
        _rows(fewer)


def test_every_flipped_bit_of_the_first_page_header_is_an_error_or_changes_nothing(tmp_path, shard):
    """The page CRC covers no page header: the footer checksum catches what still decodes."""
    raw = shard.read_bytes()
    expected = _rows(shard)
    copy = tmp_path / "part-00000.parquet"
    for k in range(4, 64):  # past the magic bytes: the first column chunk's page header
        for bit in range(8):
            flipped = bytearray(raw)
            flipped[k] ^= 1 << bit
            copy.write_bytes(bytes(flipped))
            try:
                got = _rows(copy)
            except InputError:
                continue
            assert len(got) == len(expected)
            for a, b in zip(got, expected):
                for x, y in zip(a, b):
                    np.testing.assert_array_equal(x, y)
