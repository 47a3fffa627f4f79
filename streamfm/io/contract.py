"""What a model expects of its input: :class:`InputContract`, stored with the model.

A model's features are numbered: libsvm indices (0- or 1-based), the columns
of a table (numeric columns in order, then the hash space of categorical
columns), or a Parquet file's index lists.  The contract records how the
training data mapped onto those numbers, resolved once the scan pass has
read it all: the format, the index base libsvm files were read with, a
table's columns, its label column and each feature column's kind (numeric
or hashed), and the feature count.  Every later read of data for the model
(``predict``, ``evaluate``, incremental training, ``--resume``) opens the
files with it (:func:`~streamfm.io.sources.open_source`'s ``contract``):

- libsvm files are read with the stored index base (``--zero-based`` /
  ``--one-based`` given explicitly win: they describe the new file);
- tables (CSV, wide Parquet) are matched by column name (a CSV file without a
  header takes the training columns' names by position, with or without the
  label column); each feature column is read as the kind it had, so a numeric
  column holding text is an error naming the file, row and value, never a
  column hashed anew; the label column must be there for ``evaluate`` and
  training, and may be absent for ``predict``;
- data addressed by index (libsvm, Parquet index lists) fits a table's model
  by feature number: what ``streamfm convert`` writes of a table with hashed
  columns is that table's features.

The model directory stores the contract as the manifest's ``model.input``
(:meth:`to_dict`); a model saved without one reads its data as before.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from streamfm.errors import InputError
from streamfm.io.options import ReadOptions


@dataclass(frozen=True)
class InputContract:
    """How a model's training data mapped onto its features (see the module notes).

    Attributes
    ----------
    format : {'libsvm', 'csv', 'parquet'}
        The training data's format.
    n_features : int
        The model's feature count.
    zero_based : bool or None
        libsvm: the index base the training files were read with.
    label : str or None
        Tables and Parquet index lists: the label column.
    columns : tuple of str or None
        Wide tables: the first training file's columns, in order (a CSV file
        without a header: ``c0, c1, ...``).  None: data addressed by index.
    numeric, hashed : tuple of str
        Wide tables: the numeric feature columns in feature order (features
        ``0 .. len(numeric) - 1``) and the columns hashed into the
        ``n_hash_features`` features after them.
    n_hash_features : int or None
    indices_column, values_column : str or None
        Parquet index lists: the list columns.
    weight : str or None
        Tables and Parquet index lists: the training data's sample-weight
        column. Later reads with labels (training, ``evaluate``) weigh rows
        by it when a file has it; ``predict`` ignores it.
    """

    format: str
    n_features: int
    zero_based: bool | None = None
    label: str | None = None
    columns: tuple | None = None
    numeric: tuple = ()
    hashed: tuple = ()
    n_hash_features: int | None = None
    indices_column: str | None = None
    values_column: str | None = None
    weight: str | None = None

    @property
    def is_table(self) -> bool:
        """Features are named columns (a wide CSV or Parquet table), not indices."""
        return self.columns is not None

    # -- made from the training data ------------------------------------------------

    @classmethod
    def of(cls, source, n_features: int) -> "InputContract":
        """The contract of an open source after its scan pass (the kinds of its columns decided)."""
        reader = source.reader
        layout = getattr(reader, "layout", None)
        if source.format == "libsvm":
            return cls("libsvm", int(n_features), zero_based=bool(source.zero_based))
        if layout is None:  # Parquet index lists
            return cls("parquet", int(n_features), label=reader.label, indices_column=reader.indices_col,
                       values_column=reader.values_col, weight=reader.weight)
        return cls(source.format, int(n_features), label=reader.source_name(layout.label),
                   columns=tuple(reader.source_name(c) for c in reader.names),
                   numeric=tuple(reader.source_name(c) for c in layout.numeric),
                   hashed=tuple(reader.source_name(c) for c in layout.hashed),
                   n_hash_features=int(layout.n_hash_features) if layout.hashed else None,
                   weight=reader.source_name(layout.weight))

    # -- JSON ------------------------------------------------------------------------

    def to_dict(self) -> dict:
        out = asdict(self)
        for name in ("columns", "numeric", "hashed"):
            if out[name] is not None:
                out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "InputContract":
        """The contract a manifest stores; ValueError / TypeError for a malformed one."""
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        for name in ("columns", "numeric", "hashed"):
            if d.get(name) is not None:
                if not isinstance(d[name], list) or not all(isinstance(c, str) for c in d[name]):
                    raise TypeError(f"input.{name} must be a list of column names")
                d[name] = tuple(d[name])
        out = cls(**d)
        if out.format not in ("libsvm", "csv", "parquet") or not isinstance(out.n_features, int):
            raise ValueError("input.format / input.n_features are not valid")
        return out

    # -- reading later data ---------------------------------------------------------

    @classmethod
    def of_data(cls, data: dict) -> "InputContract | None":
        """The contract a run's data record carries (``RunState.data["input"]``: a continued
        model's new files), else None."""
        d = data.get("input")
        return None if d is None else cls.from_dict(d)

    def read_options(self, given: ReadOptions, format: str) -> ReadOptions:
        """``given`` with what the contract fixes for data of ``format`` (see the module notes).

        Raises
        ------
        InputError
            Feature or hash columns (or a hash space) given that differ from the
            model's; table data for a model trained on indices.
        """
        changes: dict[str, Any] = {}
        if format == "libsvm":
            if self.zero_based is not None and given.zero_based == "auto":
                changes["zero_based"] = self.zero_based
            return _replace(given, changes)
        if self.is_table:
            for name, mine in (("feature_columns", self.numeric + self.hashed), ("hash_columns", self.hashed)):
                value = getattr(given, name)
                if value is not None and set(value) != set(mine):
                    raise InputError(
                        f"--{name.replace('_', '-')} {','.join(map(str, value))} differs from the model's "
                        f"({','.join(mine) or 'none'}): the model reads the columns it was trained on; "
                        f"leave out --{name.replace('_', '-')}")
            if self.hashed and given.n_hash_features != ReadOptions().n_hash_features \
                    and given.n_hash_features != self.n_hash_features:
                raise InputError(f"--n-hash-features {given.n_hash_features} differs from the model's "
                                 f"{self.n_hash_features}; leave it out")
            if self.n_hash_features is not None:
                changes["n_hash_features"] = self.n_hash_features
            return _replace(given, changes)
        if format == "parquet":  # index lists: the model's list and label columns, unless given
            for name, mine in (("label_column", self.label), ("indices_column", self.indices_column),
                               ("values_column", self.values_column)):
                if getattr(given, name) is None and mine is not None:
                    changes[name] = mine
        return _replace(given, changes)

    def check(self, source) -> None:
        """Refuse data that cannot map onto the model's features (once opened with the contract)."""
        if self.is_table:
            hint = source.n_features_hint
            if getattr(source.reader, "layout", None) is None and hint is not None and hint != self.n_features:
                raise InputError(f"{source.files[0]} declares {hint:,} features (index lists), but the model "
                                 f"has {self.n_features:,}: it was converted from other data")
            return
        if getattr(source.reader, "layout", None) is not None:
            kind = "libsvm" if self.format == "libsvm" else "Parquet index lists"
            raise InputError(
                f"{source.files[0]} is a table of named columns, but the model was trained on {kind} "
                "(features by index): give it data in that form (streamfm convert writes libsvm as index "
                "lists)")

    def check_extra_columns(self, source, ignore: bool, kept=()) -> None:
        """Refuse table columns the model has no feature for (columns by name: a new column is
        more features than the model has), unless ``ignore`` (``--ignore-extra-features``) or
        ``kept`` (``predict --keep-columns``) names them."""
        extra = [c for c in getattr(source.reader, "extra_columns", None) or () if c not in kept]
        if extra and not ignore:
            raise InputError(f"{source.files[0]} has column(s) the model has no feature for: "
                             f"{', '.join(extra[:5])}{', ...' if len(extra) > 5 else ''} (features beyond the "
                             f"model's {self.n_features:,}); pass --ignore-extra-features to leave them out")

    def describe(self) -> str:
        """One line for ``streamfm info``."""
        if self.format == "libsvm":
            return f"libsvm, {0 if self.zero_based else 1}-based indices, {self.n_features:,} features"
        if not self.is_table:
            return f"Parquet index lists ('{self.indices_column}', '{self.values_column}'), label " \
                   f"'{self.label}', {self.n_features:,} features"
        text = f"{self.format} columns by name, label '{self.label}', {len(self.numeric):,} numeric"
        if self.hashed:
            text += f", {len(self.hashed):,} hashed into {self.n_hash_features:,}"
        if self.weight is not None:
            text += f", weights '{self.weight}'"
        return text


def _replace(options: ReadOptions, changes: dict) -> ReadOptions:
    if not changes:
        return options
    d = options.to_dict()
    d.update(changes)
    return ReadOptions.from_dict(d)
