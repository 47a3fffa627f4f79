"""How to read a data set: :class:`ReadOptions`, one object for every reader.

The command line builds it from its data flags, :func:`~streamfm.io.sources.open_source`
hands it to the format's reader, and the trainer stores it in the model
manifest (``training.data.options``, as :meth:`ReadOptions.to_dict`) so that
``--resume`` reads the data again the same way.  Every option is checked
once, here, when the object is made.
"""
from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass, fields
from typing import Any, Mapping

from streamfm.errors import InputError

FORMATS = ("libsvm", "csv", "parquet")
#: Options that only a table (CSV, Parquet) has.
TABLE_OPTIONS = ("label_column", "feature_columns", "hash_columns", "indices_column", "values_column",
                 "weight_column")
_MAX_FEATURES = 2**31 - 1


@dataclass(frozen=True)
class ReadOptions:
    """How the files of a data set are read.

    Parameters
    ----------
    format : {'libsvm', 'csv', 'parquet'} or None
        None: from the file suffixes (.parquet/.pq; .csv/.tsv; anything else
        libsvm; .gz/.bz2/.xz allowed for text).  All files must agree.
    label_column : str or int or None
        Tables: the label column, by name or position (negative from the end;
        a string of digits is a position too).  Default: the last column for
        CSV, "label" for Parquet.
    feature_columns : sequence of str or None
        Tables: the feature columns (default: all but the label); kept as a
        tuple (lists in :meth:`to_dict`).
    indices_column, values_column : str or None
        Parquet sparse layout: the list columns (default "indices", "values").
    weight_column : str or int or None
        Tables: the column of sample weights (finite, >= 0), by name or
        position; not a feature.  None: every row weighs 1 (libsvm files carry
        weights in their lines instead: ``label:weight idx:val ...``).
    hash_columns : sequence of str or None
        Tables: columns hashed as categoricals (default: every text feature
        column); a hash column not among ``feature_columns`` is a feature too.
    n_hash_features : int, default 2**20
        Size of the hash space of categorical columns.
    zero_based : bool or "auto", default "auto"
        libsvm: whether feature indices start at 0.
    header : bool or "auto", default "auto"
        CSV: whether files start with a header row.
    skip_bad_rows : bool, default False
        Skip (and count) malformed rows instead of raising.
    chunk_rows : int, default 65536
        Rows per chunk at most.

    Raises
    ------
    InputError
        An option of the wrong kind or out of range (the message names it).

    Examples
    --------
    >>> opts = ReadOptions(format="csv", label_column="y", chunk_rows=1000)
    >>> ReadOptions.from_dict(opts.to_dict()) == opts
    True
    """

    format: str | None = None
    label_column: str | int | None = None
    feature_columns: tuple | None = None
    indices_column: str | None = None
    values_column: str | None = None
    hash_columns: tuple | None = None
    n_hash_features: int = 2**20
    zero_based: bool | str = "auto"
    header: bool | str = "auto"
    skip_bad_rows: bool = False
    chunk_rows: int = 65536
    weight_column: str | int | None = None

    def __post_init__(self) -> None:
        if self.format is not None and self.format not in FORMATS:
            raise InputError(f"unknown format {self.format!r}; expected one of {', '.join(FORMATS)}")
        for name in ("label_column", "weight_column"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _column_name(getattr(self, name), name))
        for name in ("feature_columns", "hash_columns"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                    raise InputError(f"{name} must be a list of column names, got {value!r}")
                object.__setattr__(self, name, tuple(_column_name(c, name) for c in value))
        for name in ("indices_column", "values_column"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InputError(f"{name} must be a column name, got {value!r}")
        n = _integer(self.n_hash_features, "n_hash_features")
        if not 1 <= n <= _MAX_FEATURES:
            raise InputError(
                f"n_hash_features must be between 1 and 2**31 - 1 - (numeric columns), got {self.n_hash_features}"
            )
        object.__setattr__(self, "n_hash_features", n)
        for name, choices in (("zero_based", "True, False or 'auto'"), ("header", "True, False or 'auto'"),
                              ("skip_bad_rows", "True or False")):
            value = getattr(self, name)
            if isinstance(value, str) and value == "auto" and name != "skip_bad_rows":
                continue
            if isinstance(value, str) or value not in (True, False):
                raise InputError(f"{name} must be {choices}, got {value!r}")
            object.__setattr__(self, name, bool(value))
        rows = _integer(self.chunk_rows, "chunk_rows")
        if rows < 1:
            raise InputError(f"chunk_rows must be at least 1, got {self.chunk_rows}")
        object.__setattr__(self, "chunk_rows", rows)

    # -- JSON ------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Every option as JSON values (what the manifest stores): column lists as lists."""
        out = dataclasses.asdict(self)
        for name in ("feature_columns", "hash_columns"):
            if out[name] is not None:
                out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ReadOptions":
        """Options from :meth:`to_dict`, or from any subset of its keys (the rest default).

        Raises
        ------
        InputError
            A key that is no option, or a bad value.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown read option {unknown[0]!r}; the options are: {', '.join(sorted(known))}")
        return cls(**d)

    @classmethod
    def coerce(cls, value: "ReadOptions | Mapping[str, Any] | None") -> "ReadOptions":
        """``value`` itself, options from a mapping (:meth:`from_dict`), or the defaults for None."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        raise TypeError(f"read options must be ReadOptions or a mapping, not {type(value).__name__}")

    # -- per format --------------------------------------------------------------------

    def check_format(self, format: str) -> None:
        """Refuse table options for libsvm files (which have no columns)."""
        if format == "libsvm":
            given = [name for name in TABLE_OPTIONS if getattr(self, name) is not None]
            if given:
                raise InputError(
                    f"{given[0].replace('_', '-')} applies to CSV and Parquet tables, not to libsvm files"
                )


def _integer(value, name: str) -> int:
    """An int (or NumPy integer); not a bool, a float or a string."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise InputError(f"{name} must be an integer, got {value!r}")
    return operator.index(value)


def _column_name(value, name: str):
    """A column named by a string, or by an integer position."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise InputError(f"{name}: a column is a name or a position, got {value!r}")
    return int(value)
