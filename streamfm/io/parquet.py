"""Streaming Parquet reader: ``ParquetFile.iter_batches`` over one file at a time.

Three layouts, decided from the first file's schema:

- wide: a label column and numeric feature columns (every row has every
  column, so the data set is dense);
- sparse: a label column and two list columns, feature indices (0-based
  integers) and their values -- what ``streamfm convert`` writes for libsvm;
- categorical: string (or dictionary) feature columns of a wide table, hashed
  into ``n_hash_features`` extra features (see :mod:`streamfm.io.hashing`).

Every other file of the data set must have the columns the layout reads, of
the same kinds.  Null, NaN or infinite values, and values of magnitude above
1e154 (``MAX_ABS_VALUE``), are errors naming the file, the 1-based row of the
file and the column (or, with ``skip_bad_rows``, dropped rows).  A wide
table written by ``streamfm convert`` records its source's column names
(``streamfm.feature_names``, ``streamfm.label_column``): a model's input
contract finds its columns by those names too.
"""
from __future__ import annotations

from typing import Iterator

import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streamfm.errors import InputError
from streamfm.io.arrow import batch_to_chunk, drop_bad_rows, label_column, to_numpy, weight_column, where
from streamfm.io.chunk import INDEX_DTYPE, INDPTR_DTYPE, MAX_ABS_VALUE, VALUE_DTYPE, Chunk
from streamfm.io.digest import ContentDigest, digest_problem, stored_digest
from streamfm.io.filesystems import resolve
from streamfm.io.options import ReadOptions
from streamfm.io.table import TableLayout, TableReader, is_numeric_type, is_text_type

DEFAULT_LABEL = "label"
DEFAULT_INDICES = "indices"
DEFAULT_VALUES = "values"
#: The schema metadata key naming a file's weight column (``convert`` and the held-out spool write it).
WEIGHT_METADATA = b"streamfm.weight_column"
#: The weight column ``convert`` and the spool write.
WEIGHT_COLUMN = "weight"
_MAX_INDEX = np.iinfo(np.int32).max


def open_parquet(path: str) -> pq.ParquetFile:
    """``pq.ParquetFile`` of ``path`` (local or a URI, ``io/filesystems.py``), or one InputError
    if it is not readable.

    ``pre_buffer=False``: with pre-buffering, pyarrow caches the compressed
    column chunks of every row group it is asked for, so streaming a whole
    file would end up holding all of it (measured: memory grew with the file).
    Data pages that carry a checksum (``streamfm convert`` writes them) are
    verified as they are read: a damaged page is an error, not changed values.
    """
    fs, fs_path = resolve(path)
    try:
        return pq.ParquetFile(fs_path, filesystem=fs, pre_buffer=False, page_checksum_verification=True)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise not_readable(path, exc) from None


def not_readable(path: str, exc: BaseException) -> InputError:
    return InputError(f"{path}: not a readable Parquet file ({exc})")


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def _rows_of_entries(entries: np.ndarray, rows_of: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """The rows (a mask of ``n``) holding the marked entries, and the first marked entry."""
    rows = np.zeros(n, dtype=bool)
    rows[rows_of[entries]] = True
    return rows, int(np.flatnonzero(entries)[0])


@numba.njit(cache=True)
def _sort_rows(indptr, indices, data, dup):
    """Sort each row by index (in place); dup[i] = True where row i repeats an index."""
    for i in range(indptr.shape[0] - 1):
        a, b = indptr[i], indptr[i + 1]
        ordered = True
        for k in range(a + 1, b):
            if indices[k] <= indices[k - 1]:
                ordered = False
                break
        if ordered:
            continue
        order = np.argsort(indices[a:b], kind="mergesort")
        idx = indices[a:b].copy()
        val = data[a:b].copy()
        for k in range(b - a):
            indices[a + k] = idx[order[k]]
            data[a + k] = val[order[k]]
        for k in range(a + 1, b):
            if indices[k] == indices[k - 1]:
                dup[i] = True
                break


def _aliases(metadata: dict, names: list[str]) -> dict[str, str]:
    """The source's column names ``streamfm convert`` recorded for a wide table: name -> column."""
    out = {}
    features = metadata.get(b"streamfm.feature_names")
    if features is not None:
        source = features.decode("utf-8").split(",")
        written = [f"f{j}" for j in range(len(source))]
        if all(c in names for c in written):
            out.update({s: c for s, c in zip(source, written) if s not in names})
    label = metadata.get(b"streamfm.label_column")
    if label is not None and "label" in names and label.decode("utf-8") not in names:
        out[label.decode("utf-8")] = "label"
    return out


class ParquetReader(TableReader):
    """Reads the Parquet files of one data set in bounded chunks.

    Parameters
    ----------
    files : list of str
    options : ReadOptions
        ``label_column`` (default: "label"); the wide layout's
        ``feature_columns`` (default: all but the label), ``hash_columns``
        (default: every string/dictionary feature column) and
        ``n_hash_features``; the sparse layout's ``indices_column`` and
        ``values_column`` (default "indices" and "values" when both exist as
        list columns); ``skip_bad_rows``, ``chunk_rows``.

    Attributes
    ----------
    sparse : bool
        The sparse (indices/values) layout.
    layout : TableLayout or None
        The wide layout's columns (None for sparse).
    """

    default_label = DEFAULT_LABEL
    suggest_label_option = True

    def __init__(self, files: list[str], options: ReadOptions, contract=None, require_label: bool = True):
        super().__init__(files, options, contract, require_label)
        self.max_index = -1
        first = self.files[0]
        with open_parquet(first) as pf:
            schema = pf.schema_arrow
        self.names = list(schema.names)
        self.types = {f.name: f.type for f in schema}
        self.first_metadata = dict(schema.metadata or {})
        self.aliases = _aliases(self.first_metadata, self.names)
        o = options
        self.sparse = o.indices_column is not None or o.values_column is not None or (
            DEFAULT_INDICES in self.types
            and DEFAULT_VALUES in self.types
            and _is_list(self.types[DEFAULT_INDICES])
            and _is_list(self.types[DEFAULT_VALUES])
            and o.feature_columns is None
        )
        self.layout: TableLayout | None = None
        if self.sparse:
            contract, self.contract = self.contract, None  # index lists: features by number
            self.label = self._sparse_label()
            self.contract = contract  # for its weight column only
            self.weight = self.weight_name(self.label)
            self.contract = None
            if o.feature_columns is not None or o.hash_columns:
                raise InputError(
                    f"{first}: the sparse layout (index and value list columns) cannot be combined with "
                    "feature or hash columns"
                )
            self.indices_col = self.column(o.indices_column or DEFAULT_INDICES, "indices column")
            self.values_col = self.column(o.values_column or DEFAULT_VALUES, "values column")
            for c in (self.indices_col, self.values_col):
                if not _is_list(self.types[c]):
                    raise InputError(f"{first}: column '{c}' must be a list column, it is {self.types[c]}")
            if not pa.types.is_integer(self.types[self.indices_col].value_type):
                raise InputError(f"{first}: column '{self.indices_col}' must hold integers")
            self.columns = [c for c in (self.label, self.indices_col, self.values_col, self.weight) if c is not None]
        else:
            self.layout = self.make_layout()
            self.label = self.layout.label
            self.weight = self.layout.weight
            self.columns = self.layout.columns

    def default_weight(self) -> str | None:
        """The weight column ``streamfm convert`` (and the held-out spool) recorded, if the file has it."""
        name = self.first_metadata.get(WEIGHT_METADATA)
        name = None if name is None else name.decode("utf-8")
        return name if name in self.names else None

    def _sparse_label(self) -> str | None:
        """The label of index lists: the options', else the table contract's if the file has it,
        else "label"."""
        if self.options.label_column is None and self.contract is not None:
            if self.contract.label in self.names or self.contract.label in self.aliases:
                return self.column(self.contract.label, "label column")
        keep, self.contract = self.contract, None
        try:
            return self.label_name()
        finally:
            self.contract = keep

    def check_model_numeric(self, column: str, path: str, types: dict | None = None) -> None:
        """A column the model reads as numbers: numbers, or text (parsed, each value checked)."""
        t = (types or self.types)[column]
        if not (is_numeric_type(t) or is_text_type(t) or pa.types.is_null(t)):
            raise InputError(f"{path}: column '{self.source_name(column)}' has type {t}; the model reads it as numbers")

    def _check_kinds(self, path: str, schema: pa.Schema) -> None:
        """Every file's columns must be of the kinds the layout reads (a hashed column text)."""
        if self.layout is None:
            return
        types = {f.name: f.type for f in schema}
        for c in self.layout.numeric:
            if self.contract is not None:
                self.check_model_numeric(c, path, types)
            elif not (is_numeric_type(types[c]) or pa.types.is_null(types[c])):
                raise InputError(f"{path}: feature column '{c}' has type {types[c]}, but it holds numbers in "
                                 f"{self.files[0]}; all files of a data set must have the same columns")
        for c in self.layout.hashed:
            if is_numeric_type(types[c]) and self.contract is not None:
                raise InputError(f"{path}: column '{self.source_name(c)}' holds numbers ({types[c]}), but the "
                                 "model hashes it as text categories")

    @property
    def n_features_hint(self) -> int | None:
        """Declared width (wide layout), or the width stored by ``convert``, else None."""
        if self.layout is not None:
            return self.layout.n_features
        value = self.first_metadata.get(b"streamfm.n_features")
        return int(value) if value is not None else None

    # -- reading -----------------------------------------------------------------

    def iter_file(self, path: str, chunk_rows: int | None = None) -> Iterator[Chunk]:
        """Chunks of at most ``chunk_rows`` rows of one file, in file order."""
        chunk_rows = int(chunk_rows or self.chunk_rows)
        pf = open_parquet(path)
        names = pf.schema_arrow.names
        missing = [c for c in self.columns if c not in names]
        if missing:
            raise InputError(
                f"{path}: column '{self.source_name(missing[0])}' not found (the data set's first file has it); "
                f"the columns are: {', '.join(names)}"
            )
        self._check_kinds(path, pf.schema_arrow)
        self.bad_rows_by_file[path] = 0
        rows_done = 0
        batches = self._batches(pf, chunk_rows)
        stored = stored_digest(pf.metadata.metadata)
        digest = None if stored is None else ContentDigest(self.columns)
        try:
            while True:
                try:
                    batch = next(batches)
                    if digest is not None:
                        digest.add(batch)
                except StopIteration:
                    break
                except (pa.ArrowException, OSError, ValueError) as exc:
                    raise not_readable(path, exc) from None
                chunk, bad = self.batch_chunk(batch, path, rows_done)
                rows_done += batch.num_rows
                self.bad_rows_by_file[path] += bad
                if chunk.n_rows:
                    yield chunk
            problem = None if digest is None else digest_problem(stored, digest)
            if problem:
                raise InputError(f"{path}: the file is damaged ({problem}); convert it again from its source")
        finally:
            pf.close()

    def batch_chunk(self, batch, where: str, row0: int) -> tuple[Chunk, int]:
        """One Arrow record batch of this data set's layout as a Chunk, and the rows dropped as bad.

        ``where`` and ``row0`` name the batch in error messages (a file, or a
        stream such as a Ray worker's, and its first row's number). Used for
        the batches this reader reads, and for batches another engine streams
        (``engines/ray/worker.py``).
        """
        if self.sparse:
            return self._sparse_chunk(batch, where, row0)
        return batch_to_chunk(batch, self.layout, where, row0, self.skip_bad_rows)

    def _batches(self, pf: pq.ParquetFile, chunk_rows: int):
        """Record batches of at most ``chunk_rows`` rows, one row group at a time
        so that pyarrow decodes no more than one row group ahead."""
        for group in range(pf.num_row_groups):
            yield from pf.iter_batches(batch_size=chunk_rows, row_groups=[group], columns=self.columns,
                                       use_threads=True)

    def _sparse_chunk(self, batch, path: str, row0: int) -> tuple[Chunk, int]:
        n = batch.num_rows
        bad = np.zeros(n, dtype=bool) if self.skip_bad_rows else None
        if self.label is None:  # read without its label (predictions)
            y = np.zeros(n, dtype=VALUE_DTYPE)
        else:
            y = label_column(batch.column(self.label), self.label, path, row0, bad)
        w = None if self.weight is None else weight_column(batch.column(self.weight), self.weight, path, row0, bad)
        ind_off, ind = self._list_parts(batch.column(self.indices_col), self.indices_col, path, row0, bad)
        val_off, val = self._list_parts(batch.column(self.values_col), self.values_col, path, row0, bad)
        mismatch = np.diff(ind_off) != np.diff(val_off)
        if mismatch.any():
            self._bad_rows(mismatch, bad, path, row0, self.values_col,
                           f"'{self.indices_col}' and '{self.values_col}' have different lengths")
            # Rows that cannot be paired up are dropped whole.
            keep = np.flatnonzero(~mismatch)
            return self._rebuild_without(batch, keep, path, row0, int(mismatch.sum()))
        indptr = ind_off.astype(INDPTR_DTYPE)
        rows_of = np.repeat(np.arange(n), np.diff(indptr))
        ind = np.asarray(ind, dtype=np.int64)
        data = np.array(val, dtype=VALUE_DTYPE)  # a writable copy: rows get sorted in place
        out_of_range = (ind < 0) | (ind > _MAX_INDEX)
        if out_of_range.any():
            rows, k = _rows_of_entries(out_of_range, rows_of, n)
            self._bad_rows(rows, bad, path, row0, self.indices_col,
                           f"feature index {int(ind[k])} is out of range (0 .. {_MAX_INDEX})")
            ind = np.where(out_of_range, 0, ind)
        with np.errstate(invalid="ignore"):
            nonfinite = ~(np.abs(data) <= MAX_ABS_VALUE)
        if nonfinite.any():
            rows, k = _rows_of_entries(nonfinite, rows_of, n)
            limit = "" if not np.isfinite(data[k]) else \
                f" of magnitude at most {MAX_ABS_VALUE:g} (their squares must fit a float64)"
            self._bad_rows(rows, bad, path, row0, self.values_col,
                           f"the value {data[k]} is not finite; feature values must be finite numbers{limit}"
                           if not limit else f"the value {data[k]} is too large; feature values must be "
                           f"finite numbers{limit}")
        indices = ind.astype(INDEX_DTYPE)
        dup = np.zeros(n, dtype=bool)
        _sort_rows(indptr, indices, data, dup)
        if dup.any():
            self._bad_rows(dup, bad, path, row0, self.indices_col, "a feature index appears twice in the row")
        if len(indices):
            self.max_index = max(self.max_index, int(indices.max()))
        p = max(self.max_index + 1, self.n_features_hint or 0)
        chunk = Chunk(indptr, indices, data, y, p, weights=w)
        return drop_bad_rows(chunk, bad)

    def _rebuild_without(self, batch, keep, path, row0, n_dropped) -> tuple[Chunk, int]:
        # Only reached in skip mode (otherwise _bad_rows raised).
        chunk, n_bad = self._sparse_chunk(batch.take(pa.array(keep)), path, row0)
        return chunk, n_bad + n_dropped

    def _list_parts(self, arr, name: str, path: str, row0: int, bad):
        """Row offsets (from 0) and flat child values of a list column."""
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if arr.null_count:
            nulls = arr.is_null().to_numpy(zero_copy_only=False)
            self._bad_rows(nulls, bad, path, row0, name, "the list is missing (null)")
            arr = arr.fill_null(pa.scalar([], type=arr.type))
        offsets = to_numpy(arr.offsets).astype(np.int64)
        child = arr.flatten()
        offsets = offsets - offsets[0]
        if child.null_count:
            rows = np.zeros(len(arr), dtype=bool)
            nulls = np.flatnonzero(child.is_null().to_numpy(zero_copy_only=False))
            rows[np.searchsorted(offsets, nulls, side="right") - 1] = True
            self._bad_rows(rows, bad, path, row0, name, "a list entry is missing (null)")
            child = child.fill_null(0)
        return offsets, to_numpy(child)

    @staticmethod
    def _bad_rows(rows: np.ndarray, bad, path: str, row0: int, column: str, why: str) -> None:
        """Raise for the first of ``rows``, or (skip mode) mark them all bad."""
        if bad is None:
            i = int(np.flatnonzero(rows)[0])
            raise InputError(f"{where(path, row0 + i + 1, column)}: {why}")
        bad |= rows
