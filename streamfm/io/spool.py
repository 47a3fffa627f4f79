"""Rows written once to a Parquet file, to be read many times: :class:`ParquetSpool`.

The trainer spools the rows it holds out for validation here during the scan
pass, then evaluates the file after every epoch like a ``--valid`` set
instead of reading the whole training data again. The file is in the sparse
layout that ``streamfm convert`` writes (``label``, ``indices``, ``values``),
so ``open_source`` reads it back as the same rows. Its row groups hold a
fixed number of rows, whatever the chunks appended: the file, and the chunks
a reader makes of it, do not depend on how the input was chunked.
"""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streamfm.io.chunk import Chunk
from streamfm.io.convert import chunk_to_table

#: rows per row group (and so per chunk read back, at most)
ROW_GROUP_ROWS = 65_536


def sparse_schema(text_labels: bool, n_features_hint: int | None = None) -> pa.Schema:
    """The sparse layout's schema (``label``, ``indices``, ``values``), as ``convert`` writes it."""
    fields = [
        pa.field("label", pa.string() if text_labels else pa.float64(), nullable=False),
        pa.field("indices", pa.list_(pa.int32()), nullable=False),
        pa.field("values", pa.list_(pa.float64()), nullable=False),
    ]
    meta = {"streamfm.source_format": "spool"}
    if n_features_hint:
        meta["streamfm.n_features"] = str(int(n_features_hint))
    return pa.schema(fields, metadata=meta)


class ParquetSpool:
    """Append chunks to one Parquet file in the sparse layout; memory: one row group.

    Nothing is written before a row group is full or ``close`` is called: a
    spool given fewer rows than a row group and then aborted never touches
    the disk.

    Parameters
    ----------
    path : str or os.PathLike, or a callable returning one
        The file (written in place: write to a temporary name and rename
        it when complete, e.g. ``ModelDir.temp_path`` / ``install``). A
        callable is called once, when the file is first needed.
    n_features_hint : int or None
        The width stored in the file's metadata (read back as the declared
        width, so full-width rows stay full width).
    row_group_rows : int
        Rows per row group.
    """

    def __init__(self, path, *, n_features_hint: int | None = None, row_group_rows: int = ROW_GROUP_ROWS,
                 compression: str = "zstd"):
        self._path = path
        self.path: str | None = None if callable(path) else os.fspath(path)
        self.n_features_hint = n_features_hint
        self.row_group_rows = int(row_group_rows)
        self.compression = compression
        self.rows = 0
        self._pending: list[Chunk] = []
        self._n_pending = 0
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, chunk: Chunk) -> None:
        """Append the rows of ``chunk`` (labels as the scan converted them: float64 or str)."""
        if chunk.n_rows == 0:
            return
        if self._schema is None:
            self._schema = sparse_schema(np.asarray(chunk.y).dtype.kind in "US", self.n_features_hint)
        self._pending.append(chunk)
        self._n_pending += chunk.n_rows
        self.rows += chunk.n_rows
        while self._n_pending >= self.row_group_rows:
            self._flush(self.row_group_rows)

    def _flush(self, n: int) -> None:
        rows = Chunk.concat(self._pending)
        self._pending, self._n_pending = [], 0
        if rows.n_rows > n:
            self._pending, self._n_pending = [rows.take(np.arange(n, rows.n_rows))], rows.n_rows - n
            rows = rows.take(np.arange(n))
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._open(), self._schema, compression=self.compression)
        self._writer.write_table(chunk_to_table(rows, self._schema, wide=False), row_group_size=n)

    def close(self) -> int:
        """Write what is pending and close the file (an empty file if no row came); returns the rows."""
        if self._n_pending:
            self._flush(self._n_pending)
        if self._writer is None:
            pq.write_table((self._schema or sparse_schema(False, self.n_features_hint)).empty_table(), self._open())
        else:
            self._writer.close()
            self._writer = None
        return self.rows

    def _open(self) -> str:
        if self.path is None:
            self.path = os.fspath(self._path())
        return self.path

    def abort(self) -> None:
        """Close without completing (the caller removes the file, if ``path`` is set)."""
        self._pending, self._n_pending = [], 0
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # already failing
                pass
            self._writer = None
