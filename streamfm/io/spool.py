"""Rows written once to a Parquet file, to be read many times: :class:`ParquetSpool`.

The trainer spools the rows it holds out for validation here during the scan
pass, then evaluates the file after every epoch like a ``--valid`` set
instead of reading the whole training data again. The file is in the sparse
layout that ``streamfm convert`` writes (``label``, ``indices``, ``values``),
so ``open_source`` reads it back as the same rows. Its row groups are cut
from the rows themselves (``row_group_rows`` rows, fewer if they hold more
than ``row_group_entries`` stored values), whatever the chunks appended: the
file, and the chunks a reader makes of it, do not depend on how the input
was chunked, and memory holds at most one row group (plus one chunk).
"""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streamfm.io.chunk import Chunk
from streamfm.io.convert import chunk_to_table
from streamfm.io.digest import ContentDigest
from streamfm.io.parquet import WEIGHT_COLUMN, WEIGHT_METADATA

#: rows per row group (and so per chunk read back, at most)
ROW_GROUP_ROWS = 65_536
#: stored values per row group, at most (~48 MB of indices and values), for wide rows
ROW_GROUP_ENTRIES = 4_000_000


def sparse_schema(text_labels: bool, n_features_hint: int | None = None, weighted: bool = False) -> pa.Schema:
    """The sparse layout's schema (``label``, ``indices``, ``values``; ``weight`` for weighted rows),
    as ``convert`` writes it."""
    fields = [
        pa.field("label", pa.string() if text_labels else pa.float64(), nullable=False),
        pa.field("indices", pa.list_(pa.int32()), nullable=False),
        pa.field("values", pa.list_(pa.float64()), nullable=False),
    ]
    meta = {"streamfm.source_format": "spool"}
    if weighted:
        fields.append(pa.field(WEIGHT_COLUMN, pa.float64(), nullable=False))
        meta[WEIGHT_METADATA.decode()] = WEIGHT_COLUMN
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
    row_group_rows, row_group_entries : int
        Rows per row group, and the stored values a row group may hold
        (a row group ends at the row that reaches them; at least one row).
    """

    def __init__(self, path, *, n_features_hint: int | None = None, row_group_rows: int = ROW_GROUP_ROWS,
                 row_group_entries: int = ROW_GROUP_ENTRIES, compression: str = "zstd"):
        self._path = path
        self.path: str | None = None if callable(path) else os.fspath(path)
        self.n_features_hint = n_features_hint
        self.row_group_rows = int(row_group_rows)
        self.row_group_entries = int(row_group_entries)
        self.compression = compression
        self.rows = 0
        self._pending: list[Chunk] = []
        self._n_pending = 0
        self._nnz_pending = 0
        self._writer: pq.ParquetWriter | None = None
        self._digest: ContentDigest | None = None
        self._schema: pa.Schema | None = None
        self._text = False

    def write(self, chunk: Chunk) -> None:
        """Append the rows of ``chunk`` (labels as the scan converted them: float64 or str)."""
        if chunk.n_rows == 0:
            return
        if self.rows == 0:
            self._text = np.asarray(chunk.y).dtype.kind in "US"
        self._pending.append(chunk)
        self._n_pending += chunk.n_rows
        self._nnz_pending += chunk.nnz
        self.rows += chunk.n_rows
        while self._n_pending >= self.row_group_rows or self._nnz_pending >= self.row_group_entries:
            self._flush(full=True)

    def _flush(self, full: bool) -> None:
        """Write the next row group: cut where the rows reach a group's rows or entries (``full``),
        or everything pending."""
        rows = Chunk.concat(self._pending)
        n = rows.n_rows
        if full:
            reach = int(np.searchsorted(rows.indptr[1:], self.row_group_entries)) + 1  # rows to reach the entries
            n = max(1, min(n, self.row_group_rows, reach))
        self._pending, self._n_pending, self._nnz_pending = [], 0, 0
        if rows.n_rows > n:
            rest = rows.take(np.arange(n, rows.n_rows))
            self._pending, self._n_pending, self._nnz_pending = [rest], rest.n_rows, rest.nnz
            rows = rows.take(np.arange(n))
        if self._writer is None:
            # weighted rows get a weight column: decided by the first row group written
            self._schema = sparse_schema(self._text, self.n_features_hint, rows.weights is not None)
            self._writer = pq.ParquetWriter(self._open(), self._schema, compression=self.compression,
                                           write_page_checksum=True)
            self._digest = ContentDigest()
        table = chunk_to_table(rows, self._schema, wide=False)
        self._writer.write_table(table, row_group_size=n)
        self._digest.add(table)

    def close(self) -> int:
        """Write what is pending and close the file (an empty file if no row came); returns the rows."""
        while self._n_pending >= self.row_group_rows or self._nnz_pending >= self.row_group_entries:
            self._flush(full=True)
        if self._n_pending:
            self._flush(full=False)
        if self._writer is None:
            pq.write_table((self._schema or sparse_schema(False, self.n_features_hint)).empty_table(), self._open())
        else:
            self._writer.add_key_value_metadata(self._digest.metadata())
            self._writer.close()
            self._writer = None
        return self.rows

    def _open(self) -> str:
        if self.path is None:
            self.path = os.fspath(self._path())
        return self.path

    def abort(self) -> None:
        """Close without completing (the caller removes the file, if ``path`` is set)."""
        self._pending, self._n_pending, self._nnz_pending = [], 0, 0
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # already failing
                pass
            self._writer = None
