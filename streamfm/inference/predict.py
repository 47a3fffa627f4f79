"""Streaming predictions to Parquet or CSV, in input order, written atomically (or CSV to standard output)."""
from __future__ import annotations

import os
import sys

import pyarrow as pa

from ..errors import InputError, RowError, disk_full, is_disk_full
from ..io.atomic import atomic_output, remove_dead_temporaries
from ..io.filesystems import is_uri
from ..models.trained import labels_as_written

OUTPUT_FORMATS = (".parquet", ".csv")
#: the output name that means standard output (CSV)
STDOUT = "-"


def _output_format(path: str) -> str:
    for ext in OUTPUT_FORMATS:
        if path.endswith(ext):
            return ext
    raise InputError(f"cannot tell the output format of {path!r}: name it *.parquet or *.csv")


def _table(trained, chunk, raw: bool = False) -> pa.Table:
    """The prediction columns of a chunk: ``prediction``, then ``proba_<label>`` of every class, or with
    ``raw`` the margins before the link: ``margin`` (binary: the log-odds of the second class) or
    ``margin_<label>`` (multiclass)."""
    f = trained.decision_chunk(chunk)
    if trained.task == "regression":
        return pa.table({"prediction": f[:, 0]})
    P = trained.model.proba_from_scores(f)
    labels = labels_as_written(trained.classes)
    cols = {"prediction": pa.array([labels[c] for c in P.argmax(1).tolist()])}
    if raw and trained.task == "binary":
        cols["margin"] = f[:, 0]
    else:
        for c, name in enumerate(labels):
            cols[f"{'margin' if raw else 'proba'}_{name}"] = f[:, c] if raw else P[:, c]
    return pa.table(cols)


def _with_kept(table: pa.Table, kept: pa.Table | None) -> pa.Table:
    if kept is None:
        return table
    clash = [n for n in kept.column_names if n in table.column_names]
    if clash:
        raise InputError(f"the kept column '{clash[0]}' has the name of a prediction column; rename it in the data")
    for name in reversed(kept.column_names):
        table = table.add_column(0, name, kept.column(name))
    return table


def predict_to_file(trained, source, out_path: str, *, chunk_rows=None, progress=None, keep=None,
                    raw: bool = False) -> int:
    """Write one prediction row per input row, in order; returns the row count.

    The file appears only when complete (``io.atomic.atomic_output``): it is
    written beside its final name and renamed, so an error midway leaves no
    partial output. ``out_path`` ``"-"``: CSV to standard output, as it comes.
    A URI (``s3://...``; ``io/filesystems.py``): written through its file
    system under a hidden name beside the final one, moved there when
    complete and deleted on an error (:func:`_predict_to_uri`).
    ``keep``: a :class:`~streamfm.io.kept.KeptColumns` whose columns come first
    in every row; ``raw``: margins instead of probabilities (:func:`_table`).
    """
    out_path = os.fspath(out_path)
    if out_path == STDOUT:
        return _predict_rows(trained, source, "csv", sys.stdout.buffer, chunk_rows, progress, keep, raw)
    fmt = _output_format(out_path)
    if is_uri(out_path):
        return _predict_to_uri(trained, source, out_path, fmt, chunk_rows, progress, keep, raw)
    directory = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(directory):
        raise InputError(f"the output directory {directory} does not exist")
    for f in source.files:
        if not is_uri(f) and os.path.exists(out_path) and os.path.samefile(f, out_path):
            raise InputError(f"the output {out_path} is one of the input files: it would be overwritten; "
                             "write the predictions to another file (-o)")
    remove_dead_temporaries(directory)  # what killed runs left
    written = 0
    try:
        with atomic_output(out_path) as tmp:
            try:
                rows = _predict_rows(trained, source, fmt, str(tmp), chunk_rows, progress, keep, raw)
            finally:
                written = _written(tmp)  # before a failure removes it: what a full disk message reports
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(out_path, written) from None
        raise
    return rows


def _predict_to_uri(trained, source, uri: str, fmt: str, chunk_rows, progress, keep, raw: bool) -> int:
    """``predict_to_file`` to a URI: a hidden file beside the final name, moved onto it when complete (an
    object store shows no object before its upload ends), deleted on any error."""
    import secrets

    from ..io import filesystems

    if uri in source.files:
        raise InputError(f"the output {uri} is one of the input files: it would be overwritten; "
                         "write the predictions to another file (-o)")
    fs, path = filesystems.resolve(uri)
    parent, _, name = path.rpartition("/")
    tmp = f"{parent}/.streamfm-predict-{os.getpid()}-{secrets.token_hex(4)}-{name}"
    if parent:
        fs.create_dir(parent, recursive=True)  # implicit on object stores; other file systems want it
    try:
        with fs.open_output_stream(tmp, compression=None) as sink:  # as named: no codec guessed from the suffix
            rows = _predict_rows(trained, source, fmt, sink, chunk_rows, progress, keep, raw)
        fs.move(tmp, path)
    except BaseException:
        try:
            fs.delete_file(tmp)
        except OSError:  # nothing was written, or the store is gone: the error at hand is the one to report
            pass
        raise
    return rows


def _predict_rows(trained, source, fmt: str, sink, chunk_rows, progress, keep, raw: bool) -> int:
    """Predictions of every row of ``source`` written to ``sink`` (a path or a binary file); the row count."""
    rows = 0
    writer = None
    try:
        for chunk, path, row0 in source.iter_placed(chunk_rows=chunk_rows):
            try:
                table = _table(trained, chunk, raw)
            except RowError as exc:
                raise source.placed(exc, path, row0) from None
            table = _with_kept(table, None if keep is None else keep.take(path, chunk.n_rows))
            if writer is None:
                writer = _writer(fmt, sink, table.schema)
            writer.write_table(table)
            rows += table.num_rows
            if progress is not None:
                progress.update(table.num_rows)
        if writer is None:
            raise InputError("the data to predict on has no rows")
    finally:
        if writer is not None:
            writer.close()
    return rows


def _written(path) -> int:
    """Bytes of the temporary output so far."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _writer(fmt: str, sink, schema: pa.Schema):
    if fmt == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetWriter(sink, schema)
    import pyarrow.csv as pcsv

    return pcsv.CSVWriter(sink, schema)


__all__ = ["predict_to_file"]
