"""libsvm / CSV -> Parquet shards, streamed: :func:`convert`.

Dense inputs (a wide CSV) become wide tables: ``label`` plus float64 columns
``f0 .. f{p-1}``.  Sparse inputs (libsvm, or a CSV with hashed columns) become
the sparse layout: ``label`` (float64, or string for text labels),
``indices`` (list<int32>, 0-based) and ``values`` (list<float64>).  Either
reads back through :func:`~streamfm.io.sources.open_source` as the same rows.

The shards are written into a temporary directory beside ``out_dir`` and
renamed into place only when every shard is complete, so a failure (a bad
line, a full disk, Ctrl-C) leaves nothing half-written behind.  An
``out_dir`` given by URI (``s3://...``: ``io/filesystems.py``) is written
through its file system into a hidden directory inside it, whose shards are
moved into place one by one at the end: an object store renames no
directory at once, so a failure during those moves can leave part of the
output there (a failure before them leaves nothing but what was there).  Every data
page carries a CRC-32 (``write_page_checksum``) and every shard's footer a
CRC-32 of its decoded columns (``io/digest.py``), which the reader verifies:
a damaged shard is an error, never changed values.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import secrets

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow.fs import FileSelector, FileType

from streamfm.errors import InputError, disk_full, is_disk_full
from streamfm.io import filesystems
from streamfm.io.chunk import Chunk
from streamfm.io.digest import ContentDigest
from streamfm.io.options import ReadOptions
from streamfm.io.parquet import WEIGHT_COLUMN, WEIGHT_METADATA
from streamfm.io.sources import DataSource, open_source
from streamfm.progress import progress_bar
from streamfm.io.atomic import fsync_dir, fsync_path, remove_dead_temporaries, temporary_path

SHARD_NAME = "part-{:05d}.parquet"


def _label_array(y: np.ndarray) -> pa.Array:
    if y.dtype.kind in "US":
        return pa.array(y.astype(str), type=pa.string())
    return pa.array(np.asarray(y, dtype=np.float64), type=pa.float64())


def _schema(source: DataSource, wide: bool, p: int, text_labels: bool, weighted: bool = False) -> pa.Schema:
    label = pa.field("label", pa.string() if text_labels else pa.float64(), nullable=False)
    if wide:
        fields = [label] + [pa.field(f"f{j}", pa.float64(), nullable=False) for j in range(p)]
    else:
        fields = [
            label,
            pa.field("indices", pa.list_(pa.int32()), nullable=False),
            pa.field("values", pa.list_(pa.float64()), nullable=False),
        ]
    meta = {"streamfm.source_format": source.format}
    if weighted:
        fields.append(pa.field(WEIGHT_COLUMN, pa.float64(), nullable=False))
        meta[WEIGHT_METADATA.decode()] = WEIGHT_COLUMN
    if not wide and source.n_features_hint:
        meta["streamfm.n_features"] = str(source.n_features_hint)  # read back as the declared width
    if source.feature_names and wide:
        meta["streamfm.feature_names"] = ",".join(source.feature_names)
    if source.label_column is not None and source.label_column != "label":
        meta["streamfm.label_column"] = str(source.label_column)  # a model's input contract finds it by name
    return pa.schema(fields, metadata=meta)


def chunk_to_table(chunk: Chunk, schema: pa.Schema, wide: bool) -> pa.Table:
    """One chunk as a table of the given (wide or sparse) schema."""
    label = _label_array(chunk.y)
    if label.type != schema.field("label").type:
        raise InputError(
            f"the labels change type within the data (the first rows have {schema.field('label').type} "
            f"labels, later ones {label.type})"
        )
    weighted = WEIGHT_COLUMN in schema.names
    if not weighted and chunk.weights is not None and (chunk.weights != 1).any():
        raise InputError("sample weights first appear after rows without any were written: put a weight on "
                         "the first line (label:1 weighs 1), or give every row one")
    if wide:
        p = len(schema) - 1 - weighted
        X = chunk.to_dense(p)
        cols = [label] + [pa.array(X[:, j]) for j in range(p)]
    else:
        # int32 list offsets: a chunk (at most chunk_rows rows) is far below 2**31 entries.
        offsets = pa.array(chunk.indptr.astype(np.int32))
        cols = [
            label,
            pa.ListArray.from_arrays(offsets, pa.array(chunk.indices, type=pa.int32())),
            pa.ListArray.from_arrays(offsets, pa.array(chunk.data, type=pa.float64())),
        ]
    if weighted:
        cols.append(pa.array(chunk.row_weights(), type=pa.float64()))
    return pa.Table.from_arrays(cols, schema=schema)


class _LocalShards:
    """Shards written into a hidden directory beside ``out_dir``, renamed into place at the end."""

    filesystem = None

    def __init__(self, out_dir: str, overwrite: bool):
        _check_out_dir(out_dir, overwrite)
        self.out_dir = out_dir
        self.tmp = _temp_dir_beside(out_dir)

    def path(self, name: str) -> str:
        return os.path.join(self.tmp, name)

    def publish(self, names: list[str]) -> list[str]:
        for name in names:
            fsync_path(os.path.join(self.tmp, name))  # pyarrow closes without fsync
        _publish(self.tmp, self.out_dir)
        return [os.path.join(self.out_dir, name) for name in names]

    def discard(self) -> int:
        """Remove what was written; returns its size."""
        written = sum(e.stat().st_size for e in os.scandir(self.tmp)) if os.path.isdir(self.tmp) else 0
        shutil.rmtree(self.tmp, ignore_errors=True)
        return written


def _temp_dir_beside(out_dir: str) -> str:
    """A hidden directory beside ``out_dir`` named with this pid (``io/atomic.py``), created with the
    user's umask; leftovers of dead converts there are removed first."""
    parent = os.path.dirname(os.path.abspath(out_dir)) or "."
    os.makedirs(parent, exist_ok=True)
    remove_dead_temporaries(parent)
    tmp = os.fspath(temporary_path(os.path.abspath(out_dir)))
    os.mkdir(tmp)
    return tmp


def _check_out_dir(out_dir: str, overwrite: bool) -> None:
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(f"{out_dir}: exists and is not a directory")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise InputError(f"{out_dir}: the output directory exists and is not empty (pass --overwrite to replace it)")


def _publish(tmp: str, out_dir: str) -> None:
    """Move the finished temporary directory to ``out_dir`` (replacing it)."""
    old = None
    if os.path.isdir(out_dir):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out_dir))}.old-",
                               dir=os.path.dirname(os.path.abspath(out_dir)))
        os.rmdir(old)
        os.rename(out_dir, old)
    os.rename(tmp, out_dir)
    # the renames live in the parent directory: sync it, or a power cut can undo them
    fsync_dir(os.path.dirname(os.path.abspath(out_dir)))
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class _RemoteShards:
    """Shards written through a remote file system into a hidden directory inside ``out_dir``
    (skipped when the directory is read as data), moved into place at the end."""

    def __init__(self, out_dir: str, overwrite: bool):
        self.out_dir = out_dir.rstrip("/")
        self.filesystem, self.base = filesystems.resolve(self.out_dir)
        kind = filesystems.info(self.out_dir).type
        if kind == FileType.File:
            raise InputError(f"{out_dir}: exists and is not a directory")
        self.new = kind == FileType.NotFound
        self.old = [] if self.new else self.filesystem.get_file_info(FileSelector(self.base))
        if self.old and not overwrite:
            raise InputError(f"{out_dir}: the output directory exists and is not empty (pass --overwrite to replace it)")
        self.tmp = f"{self.base}/.streamfm-convert-{os.getpid()}-{secrets.token_hex(4)}"
        self.filesystem.create_dir(self.tmp, recursive=True)

    def path(self, name: str) -> str:
        return f"{self.tmp}/{name}"

    def publish(self, names: list[str]) -> list[str]:
        fs = self.filesystem
        for entry in self.old:  # --overwrite: what was there goes first
            (fs.delete_dir if entry.type == FileType.Directory else fs.delete_file)(entry.path)
        for name in names:
            fs.move(self.path(name), f"{self.base}/{name}")
        fs.delete_dir(self.tmp)
        return [f"{self.out_dir}/{name}" for name in names]

    def discard(self) -> int:
        try:  # a directory made for this output goes too (on an object store, its marker)
            self.filesystem.delete_dir(self.base if self.new else self.tmp)
        except OSError:  # already failing: the error at hand is the one to report
            pass
        return 0


def convert(
    inputs,
    out_dir: str,
    *,
    options: ReadOptions | None = None,
    rows_per_shard: int = 1_000_000,
    compression: str = "zstd",
    progress: bool = True,
    overwrite: bool = False,
) -> list[str]:
    """Convert libsvm or CSV files to Parquet shards ``part-00000.parquet``, ...

    Parameters
    ----------
    inputs : str or list or DataSource
        Files, globs or directories (see :func:`open_source`), or an open
        source.
    out_dir : str
        Output directory; created, or replaced with ``overwrite=True``.
    options : ReadOptions or None
        How to read ``inputs`` (passed to :func:`open_source`; an open source
        has its own).
    rows_per_shard : int, default 1_000_000
        Rows per shard (the last one may hold fewer).
    compression : str, default "zstd"
        Parquet compression codec ("zstd", "snappy", "gzip", "none", ...).
    progress : bool, default True
        Show a tqdm bar (rows, rows/s) on stderr.
    overwrite : bool, default False
        Replace a non-empty ``out_dir``.

    Returns
    -------
    list of str
        Paths of the shards written, in order.

    Raises
    ------
    InputError
        Bad input (nothing is written then), or ``out_dir`` not empty.
    """
    if int(rows_per_shard) < 1:
        raise InputError(f"rows_per_shard must be at least 1, got {rows_per_shard}")
    rows_per_shard = int(rows_per_shard)
    if isinstance(inputs, DataSource):
        if options is not None:
            raise ValueError("convert: an open source is read with its own options; pass no options")
        source = inputs
    else:
        source = open_source(inputs, options)
    out_dir = os.fspath(out_dir)
    shards = (_RemoteShards if filesystems.is_uri(out_dir) else _LocalShards)(out_dir, overwrite)
    wide = source.dense
    names: list[str] = []
    writer = None
    try:
        schema = None
        in_shard = 0
        bar = progress_bar(desc="convert", unit="rows", unit_scale=True, disable=not progress, leave=False)
        with bar:
            for chunk in source.iter_chunks(chunk_rows=min(source.chunk_rows, rows_per_shard)):
                if schema is None:
                    p = source.n_features_hint or chunk.n_features
                    schema = _schema(source, wide, p, chunk.y.dtype.kind in "US", chunk.weights is not None)
                start = 0
                while start < chunk.n_rows:
                    if writer is None:
                        names.append(SHARD_NAME.format(len(names)))
                        writer = pq.ParquetWriter(shards.path(names[-1]), schema, filesystem=shards.filesystem,
                                                  compression=compression, write_page_checksum=True)
                        digest = ContentDigest()
                        in_shard = 0
                    take = min(rows_per_shard - in_shard, chunk.n_rows - start)
                    part = chunk if take == chunk.n_rows else chunk.slice(start, start + take)
                    table = chunk_to_table(part, schema, wide)
                    writer.write_table(table)
                    digest.add(table)
                    in_shard += take
                    start += take
                    bar.update(take)
                    if in_shard == rows_per_shard:
                        writer.add_key_value_metadata(digest.metadata())
                        writer.close()
                        writer = None
        if schema is None:  # no rows at all: one empty, readable shard
            schema = _schema(source, wide, source.n_features_hint or 0, False)
            names.append(SHARD_NAME.format(0))
            pq.write_table(schema.empty_table(), shards.path(names[0]), filesystem=shards.filesystem,
                           compression=compression, write_page_checksum=True)
        if writer is not None:
            writer.add_key_value_metadata(digest.metadata())
            writer.close()
            writer = None
        # a CSV column hashed because it began with text must be text throughout: checked before
        # anything is published
        source.check_kinds()
        return shards.publish(names)
    except BaseException as exc:
        if writer is not None:
            try:
                writer.close()
            except Exception:  # already failing; the directory goes anyway
                pass
        written = shards.discard()
        if isinstance(exc, OSError) and is_disk_full(exc):
            raise disk_full(out_dir, written) from None
        raise
