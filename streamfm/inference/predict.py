"""Streaming predictions to Parquet or CSV, in input order, written atomically."""
from __future__ import annotations

import os

import pyarrow as pa

from ..errors import InputError, RowError, disk_full, is_disk_full
from ..io.atomic import atomic_output, remove_dead_temporaries
from ..io.filesystems import is_uri
from ..models.trained import labels_as_written

OUTPUT_FORMATS = (".parquet", ".csv")


def _output_format(path: str) -> str:
    for ext in OUTPUT_FORMATS:
        if path.endswith(ext):
            return ext
    raise InputError(f"cannot tell the output format of {path!r}: name it *.parquet or *.csv")


def _table(trained, chunk) -> pa.Table:
    f = trained.decision_chunk(chunk)
    if trained.task == "regression":
        return pa.table({"prediction": f[:, 0]})
    P = trained.model.proba_from_scores(f)
    labels = labels_as_written(trained.classes)
    cols = {"prediction": pa.array([labels[c] for c in P.argmax(1).tolist()])}
    for c, name in enumerate(labels):
        cols[f"proba_{name}"] = P[:, c]
    return pa.table(cols)


def predict_to_file(trained, source, out_path: str, *, chunk_rows=None, progress=None) -> int:
    """Write one prediction row per input row, in order; returns the row count.

    The file appears only when complete (``io.atomic.atomic_output``): it is
    written beside its final name and renamed, so an error midway leaves no
    partial output.
    """
    out_path = os.fspath(out_path)
    fmt = _output_format(out_path)
    directory = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(directory):
        raise InputError(f"the output directory {directory} does not exist")
    for f in source.files:
        if not is_uri(f) and os.path.exists(out_path) and os.path.samefile(f, out_path):
            raise InputError(f"the output {out_path} is one of the input files: it would be overwritten; "
                             "write the predictions to another file (-o)")
    remove_dead_temporaries(directory)  # what killed runs left
    rows = 0
    written = 0
    try:
        with atomic_output(out_path) as tmp:
            writer = None
            try:
                for chunk, path, row0 in source.iter_placed(chunk_rows=chunk_rows):
                    try:
                        table = _table(trained, chunk)
                    except RowError as exc:
                        raise source.placed(exc, path, row0) from None
                    if writer is None:
                        writer = _writer(fmt, str(tmp), table.schema)
                    writer.write_table(table)
                    rows += table.num_rows
                    if progress is not None:
                        progress.update(table.num_rows)
                if writer is None:
                    raise InputError("the data to predict on has no rows")
            finally:
                written = _written(tmp)  # before a failure removes it: what a full disk message reports
                if writer is not None:
                    writer.close()
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(out_path, written) from None
        raise
    return rows


def _written(path) -> int:
    """Bytes of the temporary output so far."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _writer(fmt: str, path: str, schema: pa.Schema):
    if fmt == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetWriter(path, schema)
    import pyarrow.csv as pcsv

    return pcsv.CSVWriter(path, schema)


__all__ = ["predict_to_file"]
