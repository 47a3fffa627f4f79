"""Streaming predictions to Parquet or CSV, in input order, written atomically."""
from __future__ import annotations

import os

import pyarrow as pa

from ..errors import InputError
from ..io.atomic import atomic_output
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
    rows = 0
    with atomic_output(out_path) as tmp:
        writer = None
        try:
            for chunk in source.iter_chunks(chunk_rows=chunk_rows):
                table = _table(trained, chunk)
                if writer is None:
                    writer = _writer(fmt, str(tmp), table.schema)
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


def _writer(fmt: str, path: str, schema: pa.Schema):
    if fmt == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetWriter(path, schema)
    import pyarrow.csv as pcsv

    return pcsv.CSVWriter(path, schema)


__all__ = ["predict_to_file"]
