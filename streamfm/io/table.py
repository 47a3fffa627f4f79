"""What the CSV and Parquet readers share: columns named or counted, and the table layout.

A table row is a label, numeric feature columns (kept dense: every column,
zeros included) and optional categorical columns hashed into extra features
(see :mod:`streamfm.io.hashing`).  :class:`TableReader` turns the read
options (label, feature and hash columns) into a :class:`TableLayout`
against the first file's column names and Arrow types, with one message for
each way they can disagree; the CSV and Parquet readers differ only in how
they learn those names and types, and how they read rows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from streamfm.errors import InputError
from streamfm.io.options import ReadOptions

_MAX_INDEX = np.iinfo(np.int32).max


@dataclass
class TableLayout:
    """Which columns of a table are the label, numeric and hashed features."""

    label: str | None  # None: a table read without its label (predictions)
    numeric: list[str]
    hashed: list[str] = field(default_factory=list)
    n_hash_features: int = 2**20
    weight: str | None = None  # the sample-weight column, if any

    def __post_init__(self) -> None:
        if not self.numeric and not self.hashed:
            raise InputError(f"no feature columns: the table has only its label column '{self.label}'")

    @property
    def n_features(self) -> int:
        """Declared width: numeric columns, plus the hash space if any."""
        return len(self.numeric) + (self.n_hash_features if self.hashed else 0)

    @property
    def dense(self) -> bool:
        """Every row has every feature (no hashed columns)."""
        return not self.hashed

    @property
    def columns(self) -> list[str]:
        """Columns to read, label first, the weight column last."""
        return ([self.label] if self.label is not None else []) + self.numeric + self.hashed + \
            ([self.weight] if self.weight is not None else [])


def is_numeric_type(t: pa.DataType) -> bool:
    """Arrow types read as float64 features."""
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)


def is_text_type(t: pa.DataType) -> bool:
    """Arrow types hashed as categoricals."""
    if pa.types.is_dictionary(t):
        return is_text_type(t.value_type)
    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or getattr(pa.types, "is_string_view", lambda _: False)(t)
    )


class TableReader:
    """The part of a table reader that is not parsing: options, columns, layout, bad rows.

    A subclass sets ``names`` (the first file's columns, in order) and
    ``types`` (their Arrow types), then calls :meth:`make_layout`.

    Attributes
    ----------
    files : list of str
    options : ReadOptions
    contract : InputContract or None
        The model's (``io/contract.py``): the layout comes from its columns.
    require_label : bool
        Whether the label column must be there (False: ``predict``).
    skip_bad_rows : bool
    chunk_rows : int
        Rows per chunk unless a read asks for another size.
    bad_rows_by_file : dict of str to int
        Rows skipped in each file's latest read.
    extra_columns : list of str
        With a contract: the first file's columns that the model does not
        read (neither its label nor one of its features).
    aliases : dict of str to str
        Other names of columns (``streamfm convert`` records a table's own
        column names in its shards): name -> column.
    """

    #: The label column when the options name none, and whether the "not found" message
    #: should then suggest --label-column.
    default_label: str | int = -1
    suggest_label_option = False

    def __init__(self, files: list[str], options: ReadOptions, contract=None, require_label: bool = True):
        self.files = list(files)
        self.options = options
        self.contract = contract if contract is not None and contract.is_table else None
        self.require_label = bool(require_label)
        self.skip_bad_rows = options.skip_bad_rows
        self.chunk_rows = options.chunk_rows
        self.bad_rows_by_file: dict[str, int] = {}
        self.names: list[str] = []
        self.types: dict[str, pa.DataType] = {}
        self.aliases: dict[str, str] = {}
        # with a contract: the first file's columns that are neither the label nor a model feature
        self.extra_columns: list[str] = []

    def source_name(self, column: str | None) -> str | None:
        """The name a column had in the data it was made from (its alias), else its own."""
        for alias, name in self.aliases.items():
            if name == column:
                return alias
        return column

    def column(self, spec, what: str, *, suggest: bool = False, path: str | None = None) -> str:
        """The name of the column ``spec`` names: a name, or a position (an int, or a string of
        digits from the command line; negative counts from the end)."""
        path = path or self.files[0]
        if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
            k = int(spec)
            if not -len(self.names) <= k < len(self.names):
                raise InputError(
                    f"{what} {k} is out of range: {path} has {len(self.names)} columns "
                    f"({self._listed()})"
                )
            return self.names[k]
        name = str(spec)
        if name in self.names:
            return name
        if name in self.aliases:
            return self.aliases[name]
        if re.fullmatch(r"[-+]?\d+", name.strip()):
            return self.column(int(name), what, path=path)
        advice = " (pass --label-column)" if suggest else ""
        raise InputError(f"{what} '{name}' not found in {path}{advice}; the columns are: {self._listed()}")

    def _listed(self) -> str:
        return ", ".join(self.names)

    def label_name(self) -> str | None:
        """The label column's name: the options', else the contract's, else ``default_label``;
        None when it is missing and not required."""
        o = self.options
        if o.label_column is not None:
            spec, given = o.label_column, True
        elif self.contract is not None:
            spec, given = self.contract.label, False
        else:
            spec, given = self.default_label, False
        try:
            return self.column(spec, "label column", suggest=not given and self.suggest_label_option
                               and self.contract is None)
        except InputError as exc:
            if not self.require_label:
                return None
            if self.contract is not None and not given:
                raise InputError(f"label column '{spec}' (the model's) not found in {self.files[0]}; "
                                 f"the columns are: {self._listed()}") from None
            raise exc from None

    def weight_name(self, label: str | None) -> str | None:
        """The sample-weight column: the options' (it must be there), else the contract's when the
        file has it and labels are read (training, ``evaluate``), else the data's own default
        (``default_weight``: what ``convert`` and the held-out spool record), else None."""
        o = self.options
        if o.weight_column is not None:
            name = self.column(o.weight_column, "weight column")
        elif self.contract is not None and self.contract.weight is not None and self.require_label:
            spec = self.contract.weight
            name = self.aliases.get(spec, spec) if spec in self.names or spec in self.aliases else None
        else:
            name = self.default_weight()
        if name is not None and name == label:
            raise InputError(f"column '{name}' is both the label and the weight column")
        return name

    def default_weight(self) -> str | None:
        """A weight column the file itself names (a subclass says how); None here."""
        return None

    def make_layout(self) -> TableLayout:
        """The options' label, numeric and hashed columns, checked against ``names`` and ``types``.

        With a contract, its columns and kinds.  Without, hash columns default
        to every text feature column (``tentative``: see
        :meth:`text_columns`); given, they are features even when
        ``feature_columns`` does not list them.
        """
        if self.contract is not None:
            return self._contract_layout()
        o = self.options
        label = self.label_name()
        weight = self.weight_name(label)
        if o.feature_columns is None:
            features = [c for c in self.names if c != label and c != weight]
        else:
            features = [self.column(c, "feature column") for c in o.feature_columns]
        if o.hash_columns is None:
            hashed = self.text_columns(features)
        else:
            hashed = [self.column(c, "hash column") for c in o.hash_columns]
            features += [c for c in hashed if c not in features]
        if label in features:
            raise InputError(f"column '{label}' is both the label and a feature")
        if weight is not None and weight in features:
            raise InputError(f"column '{weight}' is both the weight column and a feature")
        numeric = [c for c in features if c not in hashed]
        for c in numeric:
            self.check_numeric(c, self.files[0])
        if len(numeric) + o.n_hash_features > _MAX_INDEX:
            raise InputError(
                f"n_hash_features must be between 1 and 2**31 - 1 - (numeric columns), got {o.n_hash_features}"
            )
        return TableLayout(label, numeric, hashed, o.n_hash_features, weight)

    def text_columns(self, features: list[str]) -> list[str]:
        """The feature columns hashed when no hash columns are given: those of text type."""
        return [c for c in features if is_text_type(self.types[c])]

    def check_numeric(self, column: str, path: str) -> None:
        """Refuse a numeric feature column whose type is not a number."""
        t = self.types[column]
        if is_text_type(t):
            raise InputError(f"{path}: feature column '{column}' is not numeric; "
                             "add it to the hash columns (--hash-columns) to hash its values")
        if not is_numeric_type(t):
            raise InputError(f"{path}: feature column '{column}' has type {t}, not a number")

    def _contract_layout(self) -> TableLayout:
        """The contract's columns, by name, each of the kind it had."""
        c = self.contract
        label = self.label_name()
        weight = self.weight_name(label)
        numeric, hashed = [], []
        for names, out in ((c.numeric, numeric), (c.hashed, hashed)):
            for name in names:
                try:
                    out.append(self.column(name, "feature column"))
                except InputError:
                    raise InputError(self._missing_feature(name)) from None
        for name in numeric:
            self.check_model_numeric(name, self.files[0])
        if label in numeric or label in hashed:
            raise InputError(f"column '{label}' is both the label and one of the model's features")
        if weight is not None and (weight in numeric or weight in hashed):
            raise InputError(f"column '{weight}' is both the weight column and one of the model's features")
        self.extra_columns = [n for n in self.names if n not in numeric and n not in hashed and n != label
                              and n != (c.label if c.label in self.names else None)
                              and n != weight and n != c.weight]
        return TableLayout(label, numeric, hashed, c.n_hash_features or 1, weight)

    def _missing_feature(self, name: str) -> str:
        c = self.contract
        return (f"{self.files[0]} has no column '{name}', a feature of the model (its data's columns were "
                f"{', '.join(c.columns)}; this file's are: {self._listed()})")

    def check_model_numeric(self, column: str, path: str) -> None:
        """A column the model reads as numbers must be numbers here (a subclass says how)."""
