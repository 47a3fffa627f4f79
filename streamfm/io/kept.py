"""Columns carried through to the predictions (``streamfm predict --keep-columns id,...``).

The kept columns of a CSV or Parquet data set are read by a second reader
beside the data's own, file by file, and cut to the data chunks' row counts
(:meth:`KeptColumns.take`), so they need not be features and the readers
stay as they are. That pairs rows one to one only when every row is read,
so ``--skip-bad-rows`` is refused with them. CSV columns are kept as text,
as written (an identifier ``007`` stays ``007``); Parquet columns keep their
types.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import pyarrow as pa

from streamfm.errors import InputError


class KeptColumns:
    """The columns ``names`` of ``source`` (a CSV or Parquet ``DataSource``), file by file.

    Raises
    ------
    InputError
        A libsvm source, a column the data does not have, ``skip_bad_rows``.
    """

    def __init__(self, source, names: Sequence[str]):
        self.names = list(dict.fromkeys(names))
        if source.format == "libsvm":
            raise InputError("--keep-columns needs CSV or Parquet data: libsvm rows have no named columns")
        if source.options.skip_bad_rows:
            raise InputError("--keep-columns cannot go with --skip-bad-rows: a skipped row would shift the kept "
                             "columns against the predictions")
        reader = source.reader
        missing = [n for n in self.names if n not in reader.names]
        if missing:
            raise InputError(f"{source.files[0]} has no column '{missing[0]}' to keep; its columns are: "
                             f"{', '.join(reader.names)}")
        self.source = source
        self._pending: list[pa.RecordBatch] = []
        self._batches: Iterator[pa.RecordBatch] = iter(())
        self._path: str | None = None

    def _open(self, path: str) -> Iterator[pa.RecordBatch]:
        reader = self.source.reader
        if self.source.format == "parquet":
            from streamfm.io.parquet import open_parquet

            return open_parquet(path).iter_batches(columns=self.names, batch_size=self.source.chunk_rows)
        has_header, delim, names = reader._file_format(path)
        missing = [n for n in self.names if n not in names]
        if missing:
            raise InputError(f"{path} has no column '{missing[0]}' to keep")
        return iter(reader._open(path, has_header, delim, column_types={n: pa.string() for n in self.names},
                                 include=self.names, names=names))

    def take(self, path: str, n: int) -> pa.Table:
        """The kept columns of the next ``n`` rows of ``path`` (the rows after those taken before)."""
        if path != self._path:
            self._path, self._batches, self._pending = path, self._open(path), []
        have = sum(b.num_rows for b in self._pending)
        while have < n:
            batch = next(self._batches, None)
            if batch is None:
                raise InputError(f"{path}: the kept columns ended before the data's rows")
            self._pending.append(batch)
            have += batch.num_rows
        table = pa.Table.from_batches(self._pending).combine_chunks()
        rest = table.slice(n)
        self._pending = rest.to_batches() if rest.num_rows else []
        return table.slice(0, n).select(self.names)
