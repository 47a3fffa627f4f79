"""Streaming predictions to Parquet or CSV, in input order, written atomically."""
from __future__ import annotations

import os

import pyarrow as pa

from ..errors import InputError, RowError, disk_full, is_disk_full
from ..io.atomic import remove_dead_temporaries, temporary_path

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
    cols = {"prediction": pa.array(trained.classes[P.argmax(1)].tolist())}
    for c, name in enumerate(trained.classes.tolist()):
        cols[f"proba_{name}"] = P[:, c]
    return pa.table(cols)


def predict_to_file(trained, source, out_path: str, *, chunk_rows=None, progress=None) -> int:
    """Write one prediction row per input row, in order; returns the row count.

    The file appears only when complete: it is written beside its final name
    and renamed, so an error midway leaves no partial output.
    """
    out_path = os.fspath(out_path)
    fmt = _output_format(out_path)
    directory = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(directory):
        raise InputError(f"the output directory {directory} does not exist")
    for f in source.files:
        if os.path.exists(out_path) and os.path.samefile(f, out_path):
            raise InputError(f"the output {out_path} is one of the input files: it would be overwritten; "
                             "write the predictions to another file (-o)")
    remove_dead_temporaries(directory)  # what killed runs left
    tmp = os.fspath(temporary_path(out_path))
    writer = None
    rows = 0
    try:
        for chunk, path, row0 in source.iter_placed(chunk_rows=chunk_rows):
            try:
                table = _table(trained, chunk)
            except RowError as exc:
                raise source.placed(exc, path, row0) from None
            if writer is None:
                if fmt == ".parquet":
                    import pyarrow.parquet as pq

                    writer = pq.ParquetWriter(tmp, table.schema)
                else:
                    import pyarrow.csv as pcsv

                    writer = pcsv.CSVWriter(tmp, table.schema)
            writer.write_table(table)
            rows += table.num_rows
            if progress is not None:
                progress.update(table.num_rows)
        if writer is None:  # no rows: still a valid, empty file with the right columns
            raise InputError("the data to predict on has no rows")
        writer.close()
        writer = None
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out_path)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(out_path, os.path.getsize(tmp) if os.path.exists(tmp) else 0) from None
        raise
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    return rows


__all__ = ["predict_to_file"]
