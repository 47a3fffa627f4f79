"""One data set from files, globs and directories: :func:`open_source`.

A :class:`DataSource` knows its files and format and yields bounded
:class:`~streamfm.io.chunk.Chunk` batches; nothing downstream knows which
format a row came from.  It holds no data: every pass re-reads the files, so
memory stays O(chunk) whatever the data set's size.
"""
from __future__ import annotations

import glob
import os
from typing import Iterable, Iterator, Sequence

from pyarrow.fs import FileType

from streamfm.errors import InputError, RowError
from streamfm.io import filesystems
from streamfm.io._files import COMPRESSION_SUFFIXES, file_size, strip_compression
from streamfm.io.chunk import Chunk
from streamfm.io.options import ReadOptions

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".tsv")
LIBSVM_SUFFIXES = (".svm", ".libsvm", ".svmlight", ".txt", ".t")
#: Files a directory is searched for (compressed text formats included).
DATA_SUFFIXES = PARQUET_SUFFIXES + tuple(
    s + c for s in CSV_SUFFIXES + LIBSVM_SUFFIXES for c in ("",) + tuple(COMPRESSION_SUFFIXES)
)
_GLOB_CHARS = "*?["


def format_of(path: str) -> str:
    """'parquet', 'csv' or 'libsvm' from a file name (libsvm for anything unknown)."""
    name = path.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if strip_compression(name).endswith(CSV_SUFFIXES):
        return "csv"
    return "libsvm"


def is_model_dir(path: str) -> bool:
    """A model directory (reserved for the model store) holds a manifest.json."""
    if filesystems.is_uri(path):
        try:
            return filesystems.info(filesystems.join(path, "manifest.json")).type == FileType.File
        except InputError:  # unreachable: reading it as data says so, naming the path itself
            return False
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "manifest.json"))


def resolve_paths(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Files named by ``paths``: files, globs and directories, resolved to
    absolute paths (URIs stay URIs: ``io/filesystems.py``), sorted, without
    duplicates.

    Local globs follow Python's ``glob`` (``~``, ``**``); a URI's glob lists
    the directory before its first glob character on its file system and
    matches by the same rules.

    Raises
    ------
    InputError
        A path that does not exist, a glob that matches no file, a directory
        with no data files.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise InputError("no input files given")
    found: set[str] = set()
    for entry in paths:
        if filesystems.is_uri(entry):
            found.update(_remote_files(entry))
            continue
        expanded = os.path.expanduser(entry)
        if any(ch in expanded for ch in _GLOB_CHARS) and not os.path.exists(expanded):
            matches = [m for m in glob.glob(expanded, recursive=True) if os.path.isfile(m)]
            if not matches:
                raise InputError(f"no file matches {entry!r}")
            found.update(matches)
        elif os.path.isdir(expanded):
            found.update(_dir_files(entry, expanded))
        elif os.path.isfile(expanded):
            found.add(expanded)
        elif os.path.exists(expanded):
            raise InputError(f"{entry}: not a regular file or directory")
        else:
            raise InputError(f"{entry}: no such file or directory")
    return sorted(f if filesystems.is_uri(f) else os.path.abspath(f) for f in found)


def _remote_files(entry: str) -> list[str]:
    """The files a URI names (a file, a glob or a directory), as URIs."""
    kind = filesystems.info(entry).type
    if kind == FileType.File:
        return [entry]
    if kind == FileType.Directory:
        if is_model_dir(entry):
            raise InputError(f"{entry} is a model directory, not data")
        files = [uri for uri, name in filesystems.listing(entry) if _is_data_name(name)]
        if not files:
            raise InputError(f"{entry}: no data files in this directory (looked for {', '.join(_shown_suffixes())})")
        return files
    if any(ch in entry for ch in _GLOB_CHARS):
        matches = filesystems.glob_uri(entry)
        if not matches:
            raise InputError(f"no file matches {entry!r}")
        return matches
    raise InputError(f"{entry}: no such file or directory")


def _is_data_name(name: str) -> bool:
    """A file a directory is searched for: a data suffix, neither hidden nor ``_``-prefixed
    (``_SUCCESS``, ``_metadata``)."""
    return not name.startswith((".", "_")) and name.lower().endswith(DATA_SUFFIXES)


def _dir_files(entry: str, path: str) -> list[str]:
    if is_model_dir(path):
        raise InputError(f"{entry} is a model directory, not data")
    files = [
        os.path.join(path, name)
        for name in os.listdir(path)
        if _is_data_name(name) and os.path.isfile(os.path.join(path, name))
    ]
    if not files:
        raise InputError(
            f"{entry}: no data files in this directory (looked for {', '.join(_shown_suffixes())})"
        )
    return files


def _shown_suffixes() -> list[str]:
    return list(PARQUET_SUFFIXES + CSV_SUFFIXES + LIBSVM_SUFFIXES) + [f"({', '.join(COMPRESSION_SUFFIXES)})"]


class DataSource:
    """One data set: files of one format, read in chunks.

    Use :func:`open_source` to make one.

    Attributes
    ----------
    files : list of str
        Absolute paths, sorted, without duplicates.
    format : {'libsvm', 'csv', 'parquet'}
    dense : bool
        Every row has every column (a wide CSV or Parquet table without hashed
        columns), so centring the features keeps the data dense.
    n_features_hint : int or None
        Declared width of a table (numeric columns, plus the hash space when
        columns are hashed), else None (libsvm: the largest index seen + 1
        is only known after reading).
    feature_names : list of str or None
        Names of a table's numeric feature columns (features 0..len-1).
    options : ReadOptions
        How the files are read (what the trainer stores to read them again).
    chunk_rows : int
        Default rows per chunk (``options.chunk_rows``).
    """

    def __init__(self, files: list[str], format: str, reader, options: ReadOptions):
        self.files = files
        self.format = format
        self.options = options
        self.chunk_rows = options.chunk_rows
        self._reader = reader

    @property
    def reader(self):
        """The format's reader (e.g. ``ParquetReader``: its ``columns`` and ``batch_chunk`` turn
        Arrow batches that another engine streams into chunks of this data set's layout)."""
        return self._reader

    # -- what the readers know --------------------------------------------------

    @property
    def dense(self) -> bool:
        layout = getattr(self._reader, "layout", None)
        return layout is not None and layout.dense

    @property
    def n_features_hint(self) -> int | None:
        if self.format == "libsvm":
            return None
        if self.format == "parquet":
            return self._reader.n_features_hint
        return self._reader.layout.n_features

    @property
    def feature_names(self) -> list[str] | None:
        layout = getattr(self._reader, "layout", None)
        return None if layout is None else list(layout.numeric)

    @property
    def label_column(self) -> str | None:
        """The label column of a table (None for libsvm)."""
        layout = getattr(self._reader, "layout", None)
        if layout is not None:
            return layout.label
        return getattr(self._reader, "label", None)

    @property
    def hashed_columns(self) -> list[str]:
        """Table columns hashed as categoricals."""
        layout = getattr(self._reader, "layout", None)
        return [] if layout is None else list(layout.hashed)

    @property
    def zero_based(self) -> bool | None:
        """libsvm: whether indices start at 0 (resolved on first read); else None."""
        return self._reader.zero_based if self.format == "libsvm" else None

    @property
    def bad_rows(self) -> int:
        """Rows skipped (``skip_bad_rows=True``) in the latest read of each file."""
        return sum(self._reader.bad_rows_by_file.values())

    def check_kinds(self) -> None:
        """After a whole pass: settle the kinds of columns hashed because their first block held
        text (a CSV column of numbers with a few bad cells is an error naming the first)."""
        check = getattr(self._reader, "check_kinds", None)
        if check is not None:
            check()

    def locate(self, path: str, row: int) -> str:
        """Where row ``row`` (0-based, counting the file's data rows) of ``path`` is, for a message:
        ``path:LINE`` for libsvm (blank and comment lines counted), ``path: row N`` for tables."""
        if self.format == "libsvm":
            return f"{path}:{self._reader.line_of(path, row)}"
        return f"{path}: row {row + 1}"

    @property
    def n_bytes(self) -> int:
        """Total size of the files as stored."""
        return sum(file_size(f) for f in self.files)

    # -- reading -------------------------------------------------------------------

    def iter_file(self, path: str, chunk_rows: int | None = None) -> Iterator[Chunk]:
        """Chunks of one file, in file order, each at most ``chunk_rows`` rows."""
        return self._reader.iter_file(os.fspath(path), _check_chunk_rows(chunk_rows or self.chunk_rows))

    def iter_placed(self, chunk_rows: int | None = None) -> Iterator[tuple[Chunk, str, int]]:
        """(chunk, its file, the number of the file's data rows before it), in file order."""
        for path in self.files:
            row0 = 0
            for chunk in self.iter_file(path, chunk_rows):
                yield chunk, path, row0
                row0 += chunk.n_rows

    def placed(self, exc: RowError, path: str, row0: int) -> InputError:
        """``exc`` (about row ``exc.row`` of a chunk of ``path`` that starts at data row ``row0``)
        with the row's place in the file."""
        return exc.at(self.locate(path, row0 + exc.row))

    def iter_chunks(self, files: Iterable[str] | None = None, chunk_rows: int | None = None) -> Iterator[Chunk]:
        """Chunks of every file, in ``files`` order (default: ``self.files``).

        ``files`` lets a caller (the shuffler) choose the shard order; a chunk
        never spans two files.
        """
        for path in self.files if files is None else files:
            yield from self.iter_file(path, chunk_rows)

    def __repr__(self) -> str:
        return f"DataSource(format={self.format!r}, files={len(self.files)}, dense={self.dense})"


def _check_chunk_rows(chunk_rows) -> int:
    n = int(chunk_rows)
    if n < 1:
        raise InputError(f"chunk_rows must be at least 1, got {chunk_rows}")
    return n


def open_source(paths, options: ReadOptions | None = None, *, contract=None, require_label: bool = True) -> DataSource:
    """Open files, globs or directories as one data set.

    Parameters
    ----------
    paths : str or path or list of them
        Each entry is a file, a glob (``data/part-*.parquet``) or a directory
        (every file with a known data suffix in it, hidden and ``_``-prefixed
        files excepted).
    options : ReadOptions or None
        How to read the files (format, columns, chunk size, ...); None: the
        defaults, the format from the file suffixes.
    contract : InputContract or None
        A model's input contract (``io/contract.py``): the files are read the
        way the model's training data was (index base, columns by name, each
        column's kind) and must fit its features.
    require_label : bool, default True
        Whether a table must have its label column (False: predictions).

    Returns
    -------
    DataSource

    Raises
    ------
    InputError
        Missing paths, empty globs or directories, mixed formats, table
        options for libsvm files, a missing label column, data that does not
        fit the contract, and whatever the first file's header reveals.

    Examples
    --------
    >>> src = open_source("banana.csv", ReadOptions(chunk_rows=1000))   # doctest: +SKIP
    >>> src.format, src.dense, src.n_features_hint
    ('csv', True, 2)
    """
    options = ReadOptions() if options is None else options
    files = resolve_paths(paths)
    format = options.format
    if format is None:
        kinds = {format_of(f) for f in files}
        if len(kinds) > 1:
            raise InputError(
                f"the inputs mix formats ({', '.join(sorted(kinds))}); give files of one format, "
                "or pass --format"
            )
        format = kinds.pop()
    if contract is not None:
        options = contract.read_options(options, format)
    options.check_format(format)
    if format == "libsvm":
        from streamfm.io.libsvm import LibsvmReader as reader_class
    elif format == "csv":
        from streamfm.io.csv import CsvReader as reader_class
    else:
        from streamfm.io.parquet import ParquetReader as reader_class
    source = DataSource(files, format, reader_class(files, options, contract, require_label), options)
    if contract is not None:
        contract.check(source)
    return source
