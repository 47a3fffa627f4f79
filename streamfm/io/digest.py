"""A checksum of a Parquet file's decoded content, per column: what ``convert`` writes and the reader checks.

Parquet's page CRC-32 (``write_page_checksum``) covers a page's data, not its
header nor the file's footer, and a flipped bit in either can still decode:
fewer values, a shifted row group, another row count. So every shard
``convert`` (and the held-out spool) writes also carries, in its footer's
key-value metadata, a CRC-32 of each column's decoded values in file order;
the reader recomputes it from what it decoded and refuses the file when they
differ. The CRC is taken over a canonical form (list columns: each row's
length, then the flattened values; strings: lengths, then the bytes), so it
does not depend on how the rows were cut into batches or row groups.
"""
from __future__ import annotations

import json
import zlib

import numpy as np
import pyarrow as pa

#: The footer's key-value metadata key: JSON {"rows": n, "crc32": {column: [CRC-32 of each canonical stream]}}.
DIGEST_KEY = b"streamfm.content_crc32"


def _crc(values, crc: int) -> int:
    if isinstance(values, np.ndarray):
        values = np.ascontiguousarray(values).view(np.uint8)
    return zlib.crc32(values, crc)


def _streams(arr: pa.Array) -> list:
    """One column's canonical byte streams, each a NumPy array or a memoryview: a CRC continued
    stream by stream over consecutive batches equals the CRC of the batches joined."""
    # imported when a checksum is first taken, not when the reader loads: ~0.1 s of a quiet run's start-up
    import pyarrow.compute as pc

    t = arr.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        lengths = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        return [lengths] + _streams(arr.flatten())
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        lengths = pc.binary_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        _, offsets, data = arr.buffers()
        if data is None or len(arr) == 0:
            return [lengths, b""]
        wide = pa.types.is_large_string(t) or pa.types.is_large_binary(t)
        off = np.frombuffer(offsets, np.int64 if wide else np.int32)[arr.offset:arr.offset + len(arr) + 1]
        return [lengths, memoryview(data)[int(off[0]):int(off[-1])]]
    return [arr.to_numpy(zero_copy_only=False)]


class ContentDigest:
    """Running CRC-32 per column over record batches or tables, in file order."""

    def __init__(self, columns: list[str] | None = None):
        self.columns = columns  # None: every column of what is added
        self.crc: dict[str, list[int]] = {}  # per column, a CRC per canonical stream
        self.rows = 0

    def add(self, data: pa.Table | pa.RecordBatch) -> None:
        names = self.columns if self.columns is not None else data.schema.names
        for name in names:
            col = data.column(name)
            parts = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
            for part in parts:
                streams = _streams(part)
                crcs = self.crc.setdefault(name, [0] * len(streams))
                self.crc[name] = [_crc(v, c) for v, c in zip(streams, crcs)]
        self.rows += data.num_rows

    def metadata(self) -> dict[bytes, bytes]:
        """The footer entry for ``ParquetWriter.add_key_value_metadata``."""
        return {DIGEST_KEY: json.dumps({"rows": self.rows, "crc32": self.crc}).encode()}


def stored_digest(file_metadata) -> dict | None:
    """The digest a file's footer holds (``pq.FileMetaData.metadata``), None if it has none;
    a damaged entry reads as ``{}``, which matches nothing."""
    raw = (file_metadata or {}).get(DIGEST_KEY)
    if raw is None:
        return None
    try:
        stored = json.loads(raw)
        return {"rows": int(stored["rows"]),
                "crc32": {str(k): [int(c) for c in v] for k, v in stored["crc32"].items()}}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}


def digest_problem(stored: dict, read: ContentDigest) -> str | None:
    """Why what was read is not what was written (None when it is): the rows, or the columns read."""
    if not stored:
        return "its content checksum is unreadable"
    if read.rows != stored["rows"]:
        return f"{read.rows:,} rows read where {stored['rows']:,} were written"
    for name, crcs in read.crc.items():
        if stored["crc32"].get(name) != crcs:
            return f"column '{name}' does not match the checksum written with it"
    return None
