"""Streaming CSV reader (pyarrow's ``open_csv``), plain or compressed (``io/_files.py``), local or remote.

By default the label is the last column and a header row is detected (see
below); the columns are resolved by :class:`~streamfm.io.table.TableReader`.

Header detection (``header="auto"``), per file: the first row is a header when
some field of it is not a number while the same field of the second row is
(``x1,x2,label`` over ``0.5,1.2,g``); a file of one row is a header only when
none of its fields is a number.  A file whose columns are all text cannot be
told apart: pass ``header=True`` or ``False``.

Column types are decided once, from the first MiB of the first file, and
then forced for every block of every file, so a later block cannot change a
column's type: numeric columns are read as float64, text feature columns are
hashed (see :mod:`streamfm.io.hashing`), and the label keeps its raw type
(float64, or str).  A column pyarrow infers as text whose values there are
mostly numbers is numbers (its other cells are errors naming their row).  A
column hashed because it held text is only tentatively so: the scan pass
counts its numbers and texts over the whole column (:meth:`CsvReader.check_kinds`),
and a column of mostly numbers is an error naming its first bad cell, so
whether a column is hashed never depends on the chunk size.  Only the empty
field is a null; "nan", "inf" are read as numbers and then rejected, so the
message shows what the file says.

Files with a header are read by column name (the columns in any order);
with a model's input contract (``io/contract.py``) the columns and their
kinds are the model's, and a file without a header takes the model's column
names by position.

Errors name the file, the 1-based data row (the header is not counted) and the
column.  pyarrow reports a bad field without its row, so on that (rare) path
the file is re-read with Python's ``csv`` module to find the row.  Those
slow paths for messages (a bad field, a ragged row, text that is not UTF-8)
are why this module is longer than most; the header rules and the column-kind
watch are in io/csv_sniff.py.
"""
from __future__ import annotations

import csv as _pycsv
import io
import re
from typing import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv

from streamfm.errors import InputError
from streamfm.io._files import (
    DECOMPRESS_ERRORS,
    compression_of,
    corrupt_error,
    format_token,
    open_binary,
    open_stream,
    rebatch,
)
from streamfm.io.arrow import batch_to_chunk
from streamfm.io.chunk import Chunk
from streamfm.io.options import ReadOptions
from streamfm.io.csv_sniff import (
    ColumnKind,
    detect_header,
    first_rows,
    is_number,
    quiet_undecodable_rows,
    to_float,
)
from streamfm.io.table import TableReader, is_numeric_type, is_text_type

# Column types are inferred from the first MiB of the first file, whatever the chunk size.
_INFER_BLOCK = 1 << 20
_MIN_BLOCK = 1 << 18
_MAX_BLOCK = 64 << 20
_NULLS = [""]
# What reading a CSV file through pyarrow can raise on bad input.  An .xz file
# is decompressed by Python (see _open), whose errors pass through pyarrow
# unchanged, so they are caught too.
_READ_ERRORS = (pa.ArrowInvalid, *DECOMPRESS_ERRORS)


# ---------------------------------------------------------------------------
# The reader
# ---------------------------------------------------------------------------


class CsvReader(TableReader):
    """Reads the CSV files of one data set in bounded chunks.

    Parameters
    ----------
    files : list of str
        The files; the first one fixes the columns and their types.
    options : ReadOptions
        ``label_column`` (default: the last column), ``feature_columns``,
        ``hash_columns`` (default: every non-numeric feature column),
        ``n_hash_features``, ``header``, ``skip_bad_rows`` (drop and count rows
        with a wrong field count, a missing, NaN, infinite or unparsable
        value) and ``chunk_rows``.
    """

    def __init__(self, files: list[str], options: ReadOptions, contract=None, require_label: bool = True):
        super().__init__(files, options, contract, require_label)
        self.header = options.header
        first = self.files[0]
        rows, per_line, delim = first_rows(first)
        if not rows:
            raise InputError(f"{first}: the CSV file is empty")
        has_header = self._has_header(rows)
        self.n_columns = len(rows[0])
        self.names = [v.strip() for v in rows[0]] if has_header else self._positional_names(first, self.n_columns)
        self.block_size = int(min(max(per_line * self.chunk_rows, _MIN_BLOCK), _MAX_BLOCK))
        inferred = self._infer_types(first, has_header, delim)
        # A feature column is read as float64 or as text (column_types below): any other type
        # pyarrow infers (null for a column empty in the first block, a date) is read as numbers.
        self.types = {c: t if is_text_type(t) else pa.float64() for c, t in inferred.items()}
        # text columns hashed because no hash columns were given: the scan pass decides (check_kinds)
        self.tentative: dict[str, ColumnKind] = {}
        self.layout = self.make_layout()
        label = self.layout.label
        label_type = inferred[label] if label is not None else pa.float64()
        self.label_numeric = is_numeric_type(label_type) or pa.types.is_null(label_type)
        self.column_types = {} if label is None else {label: pa.float64() if self.label_numeric else pa.string()}
        self.column_types.update({c: pa.float64() for c in self.layout.numeric})
        self.column_types.update({c: pa.string() for c in self.layout.hashed})
        if self.layout.weight is not None:
            self.column_types[self.layout.weight] = pa.float64()

    def _has_header(self, rows: list[list[str]]) -> bool:
        """The header option, or the ``"auto"`` rule; a first row that names the model's feature
        columns (a contract) is a header whatever its values."""
        if self.header != "auto":
            return bool(self.header)
        c = self.contract
        if c is not None and set(c.numeric + c.hashed) <= {v.strip() for v in rows[0]}:
            return True
        return detect_header(rows)

    def _positional_names(self, path: str, n: int) -> list[str]:
        """Names of the columns of a file without a header: ``c0, c1, ...``, or with a contract the
        training columns' names by position (all of them, or all but the label)."""
        c = self.contract
        if c is not None:
            if n == len(c.columns):
                return list(c.columns)
            if n == len(c.columns) - 1 and c.label in c.columns and not self.require_label:
                return [name for name in c.columns if name != c.label]
            raise InputError(f"{path} has no header and {n} columns, but the model's data had "
                             f"{len(c.columns)} ({', '.join(c.columns)}): give the columns a header row, "
                             "or the model's columns in its order")
        return [f"c{i}" for i in range(n)]

    def text_columns(self, features: list[str]) -> list[str]:
        hashed = super().text_columns(features)
        self.tentative = {c: ColumnKind(c) for c in hashed}
        return hashed

    def check_numeric(self, column: str, path: str) -> None:
        """Nothing to refuse here: numeric columns are read as float64, and a cell that is not a
        number is an error naming its row (or a bad row)."""

    def check_kinds(self) -> None:
        """After a pass over every file: a column hashed because its first block held text must
        hold mostly text.  A column of numbers with a few cells that are not (``1,5``, ``hello``) is
        bad input naming the first such cell, not a categorical column (unless ``--hash-columns``
        names it).  The kinds are decided from then on."""
        for kind in self.tentative.values():
            kind.check()
        self.tentative = {}

    # -- set-up ----------------------------------------------------------------

    def _infer_types(self, path: str, has_header: bool, delim: str) -> dict[str, pa.DataType]:
        """The type of every column, from the first MiB of the first file: pyarrow's inference,
        except that a text column whose values there are mostly numbers is numbers (with a few bad
        cells, which the reading pass reports by row)."""
        # Bad rows are the reading pass's business: ignore them here.
        reader = self._open(path, has_header, delim, column_types=None, include=None, on_invalid=lambda row: "skip",
                            block_size=_INFER_BLOCK)
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return {f.name: f.type for f in reader.schema}
        except _READ_ERRORS as exc:
            raise self._translate(path, exc, has_header, delim, 0, self.names) from None
        types = {}
        for f in batch.schema:
            types[f.name] = f.type
            if is_text_type(f.type):
                kind = ColumnKind(f.name)
                kind.add(batch.column(f.name), path, 0)
                if kind.numbers > kind.texts:
                    types[f.name] = pa.float64()
        return types

    def _open(self, path: str, has_header: bool, delim: str, *, column_types, include, on_invalid=None,
              block_size: int | None = None, names: list[str] | None = None):
        """A pyarrow streaming reader over one file (``names``: its columns, default the first file's)."""
        source = open_stream(path)  # released with the reader
        read_opts = pacsv.ReadOptions(
            block_size=block_size or self.block_size,
            column_names=names or self.names,
            skip_rows=1 if has_header else 0,
        )
        if on_invalid is not None:
            quiet_undecodable_rows()
        parse_opts = pacsv.ParseOptions(delimiter=delim, invalid_row_handler=on_invalid)
        conv_opts = pacsv.ConvertOptions(
            column_types=column_types,
            include_columns=include,
            null_values=_NULLS,
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        )
        try:
            return pacsv.open_csv(source, read_options=read_opts, parse_options=parse_opts, convert_options=conv_opts)
        except _READ_ERRORS as exc:
            source.close()
            raise self._translate(path, exc, has_header, delim, 0, names or self.names) from None

    def _file_format(self, path: str) -> tuple[bool, str, list[str]]:
        """(has a header, delimiter, column names) of one file.

        A file with a header is read by its own column names (in any order:
        columns are matched by name); one without must have the first file's
        width, and takes its names by position.
        """
        rows, _, delim = first_rows(path)
        if not rows:
            return False, delim, self.names
        has_header = self._has_header(rows)
        if has_header:
            names = [v.strip() for v in rows[0]]
            missing = [c for c in self.layout.columns if c not in names]
            if missing:
                raise InputError(f"{path}: no column '{self.source_name(missing[0])}' (the data set's first file "
                                 f"has it); the columns are: {', '.join(names)}")
            return True, delim, names
        if len(rows[0]) != self.n_columns:
            raise InputError(
                f"{path}: has {len(rows[0])} columns but {self.files[0]} has {self.n_columns}; "
                "all files of a data set must have the same columns"
            )
        return False, delim, self.names

    # -- reading -----------------------------------------------------------------

    def iter_file(self, path: str, chunk_rows: int | None = None) -> Iterator[Chunk]:
        """Chunks of at most ``chunk_rows`` rows of one file, in file order."""
        return rebatch(self._pieces(path), int(chunk_rows or self.chunk_rows))

    def _pieces(self, path: str) -> Iterator[Chunk]:
        has_header, delim, names = self._file_format(path)
        skipped: list[str] = []

        def on_invalid(row) -> str:
            if self.skip_bad_rows:
                skipped.append(row.text)
                return "skip"
            return "error"

        # In skip mode numbers are parsed here, row by row if need be, so that a
        # bad field drops its row instead of failing the whole block.
        types = self.column_types
        if self.skip_bad_rows:
            types = {c: pa.string() for c in self.layout.columns}
        self.bad_rows_by_file[path] = 0
        reader = self._open(path, has_header, delim, column_types=types, include=self.layout.columns,
                            on_invalid=on_invalid, names=names)
        rows_done = 0  # data rows of the file before the current batch
        n_bad = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except _READ_ERRORS as exc:
                raise self._translate(path, exc, has_header, delim, rows_done, names) from None
            if self.skip_bad_rows:
                batch = self._parse_numbers(batch)
            for kind in self.tentative.values():
                kind.add(batch.column(kind.name), path, rows_done)
            chunk, bad = batch_to_chunk(batch, self.layout, path, rows_done, self.skip_bad_rows)
            rows_done += batch.num_rows
            n_bad += bad
            self.bad_rows_by_file[path] = n_bad + len(skipped)
            if chunk.n_rows:
                yield chunk
        self.bad_rows_by_file[path] = n_bad + len(skipped)

    def _parse_numbers(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Skip mode: strings -> float64 for numeric columns; unparsable -> NaN
        (which batch_to_chunk then drops as a bad row)."""
        cols = []
        for name in batch.schema.names:
            arr = batch.column(name)
            if self.column_types[name] == pa.float64():
                arr = to_float(arr)
            cols.append(arr)
        return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)

    # -- errors ------------------------------------------------------------------

    def _translate(self, path: str, exc: BaseException, has_header: bool, delim: str, rows_done: int,
                   names: list[str]) -> InputError:
        """One clear InputError for whatever pyarrow / the decompressor raised."""
        msg = str(exc)
        conversion = "conversion error" in msg
        if "invalid UTF8" in msg or "invalid utf8" in msg.lower():
            found = self._locate_utf8(path, rows_done, has_header)
            if found is not None:
                line, text = found
                return InputError(f"{path}: line {line}: not UTF-8 text ('{format_token(text)}'); "
                                  "save the file as UTF-8")
            return InputError(f"{path}: not UTF-8 text; save the file as UTF-8")
        if conversion or "parse error" in msg or ("Expected" in msg and "columns" in msg):
            m = re.search(r"column #(\d+)", msg) if conversion else None
            found = self._locate(path, has_header, delim, rows_done, int(m.group(1)) if m else None, names)
            if found is None:
                return InputError(f"{path}: {msg}")
            row, what, text = found  # what: the column's name, or the row's field count
            shown = format_token(text)
            if conversion:
                return InputError(f"{path}: row {row}, column '{self.source_name(what)}': cannot parse "
                                  f"'{shown}' as a number{self._numeric_advice(what)}")
            return InputError(f"{path}: row {row}: expected {len(names)} fields, got {what} ('{shown}')")
        if compression_of(path) is not None:
            return corrupt_error(path, exc)
        return InputError(f"{path}: cannot read as CSV ({msg})")

    def _numeric_advice(self, column: str) -> str:
        if self.contract is not None:
            return " (the model reads this column as numbers)"
        if column == self.layout.label or column == self.layout.weight:
            return ""
        return f" (the column is numeric: fix the cell, or pass --hash-columns {column} to hash it as categories)"

    def _locate(self, path: str, has_header: bool, delim: str, rows_done: int, col: int | None,
                names: list[str]):
        """Slow path: find the first bad row after the first ``rows_done`` data rows.

        With ``col``, a field of that column that is not a number; without, a
        row with the wrong number of fields.  Returns (row, column name or
        field count, offending text), or None.
        """
        try:
            with open_binary(path) as f:
                text = io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline="")
                header_pending = has_header
                row = 0
                for fields in _pycsv.reader(text, delimiter=delim):
                    if not any(v.strip() for v in fields):
                        continue  # pyarrow skips blank lines too
                    if header_pending:
                        header_pending = False
                        continue
                    row += 1
                    if row <= rows_done:
                        continue
                    if col is None:
                        if len(fields) != len(names):
                            return row, len(fields), delim.join(fields)
                    elif col < len(fields) and fields[col].strip() and not is_number(fields[col]):
                        return row, names[col], fields[col]
        except (OSError, EOFError, UnicodeError, _pycsv.Error):
            return None
        return None

    @staticmethod
    def _locate_utf8(path: str, rows_done: int, has_header: bool):
        """Slow path: the first line (1-based, header included) that is not valid UTF-8, and its text."""
        try:
            with open_binary(path) as f:
                for number, line in enumerate(f, start=1):
                    try:
                        line.decode("utf-8")
                    except UnicodeDecodeError:
                        return number, line.decode("utf-8", errors="replace").rstrip("\r\n")
        except (OSError, EOFError):
            return None
        return None
