"""What the CSV reader needs beside pyarrow: the first rows, the delimiter and the header
(``header="auto"``: io/csv.py's docstring), the watch on a text column's kind, and quiet
handling of rows that are not UTF-8.

Kept apart from the reader (io/csv.py) because each is a small rule of its own, tested on its own.
"""
from __future__ import annotations

import csv as _pycsv
import sys

import pyarrow as pa

from streamfm.errors import InputError
from streamfm.io._files import format_token, open_binary, read_block, strip_compression

_SNIFF_BYTES = 1 << 16
_MAX_BLOCK = 64 << 20


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def first_rows(path: str, n: int = 2) -> tuple[list[list[str]], int, str]:
    """The first ``n`` non-blank rows (as field lists), the bytes per line seen
    and the delimiter.

    Reads 64 KiB at a time until it holds ``n`` complete lines (wide files can
    have lines longer than that), the end of the file, or 64 MiB.
    """
    blocks: list[bytes] = []
    size = 0
    eof = False
    complete = 0  # non-blank lines read to their newline
    open_line_has_text = False
    with open_binary(path) as f:
        while not eof and complete < n and size < _MAX_BLOCK:
            more = read_block(f, path, _SNIFF_BYTES)  # a broken .gz fails right here
            eof = not more
            blocks.append(more)
            size += len(more)
            pieces = more.split(b"\n")
            for k, piece in enumerate(pieces):
                open_line_has_text = open_line_has_text or bool(piece.strip())
                if k < len(pieces) - 1:  # this piece ends at a newline
                    complete += open_line_has_text
                    open_line_has_text = False
    head = b"".join(blocks)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = text.splitlines()
    if not eof and lines and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the last line may be cut
    lines = [ln for ln in lines if ln.strip()]
    delim = delimiter(path, lines[0] if lines else "")
    rows = list(_pycsv.reader(lines[:n], delimiter=delim))
    per_line = max(1, len(head) // max(1, len(lines))) if lines else 64
    return rows, per_line, delim


def delimiter(path: str, first_line: str) -> str:
    """',' unless the file is .tsv or its first line has tabs and no commas."""
    if strip_compression(path).lower().endswith(".tsv"):
        return "\t"
    if "," not in first_line and "\t" in first_line:
        return "\t"
    return ","


def detect_header(rows: list[list[str]]) -> bool:
    """The ``header="auto"`` rule (see the module docstring)."""
    if not rows:
        return False
    first = rows[0]
    if len(rows) == 1:
        return not any(is_number(v) for v in first)
    second = rows[1]
    return any(not is_number(a) and is_number(b) for a, b in zip(first, second))


def quiet_undecodable_rows() -> None:
    """Keep pyarrow's failure to decode a malformed row that is not UTF-8 (before it calls the
    invalid-row handler) off the user's screen: pyarrow reports it as an "exception ignored"
    traceback and then raises its own error, which the reader turns into a message naming the
    line.  Installed once; every other unraisable exception goes to the previous hook."""
    previous = sys.unraisablehook
    if getattr(previous, "_streamfm_csv", False):
        return

    def hook(unraisable):
        tb = unraisable.exc_traceback
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if isinstance(unraisable.exc_value, UnicodeDecodeError) and tb is not None \
                and "pyarrow" in tb.tb_frame.f_code.co_filename:
            return
        previous(unraisable)

    hook._streamfm_csv = True
    sys.unraisablehook = hook


class ColumnKind:
    """A text column hashed by default, watched until the scan pass decides its kind.

    Counts its values that are numbers and those that are not, and where the
    first of each is.  :meth:`check`: mostly numbers is a numeric column with
    bad cells (an error naming the first); mostly text, a categorical column.
    """

    _NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"

    def __init__(self, name: str):
        self.name = name
        self.numbers = 0
        self.texts = 0
        self.first_text: tuple | None = None

    def add(self, arr, path: str, row0: int) -> None:
        import pyarrow.compute as pc  # ~65 ms to import: only for data with text columns

        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        is_number = pc.match_substring_regex(arr, self._NUMBER).fill_null(True)
        n_numbers = pc.sum(is_number).as_py() or 0
        n_values = len(arr) - arr.null_count
        n_texts = n_values - (n_numbers - arr.null_count)
        if n_texts and self.first_text is None:
            text_mask = pc.and_(pc.invert(is_number), pc.is_valid(arr))
            i = int(pc.index(text_mask, True).as_py())
            self.first_text = (path, row0 + i + 1, arr[i].as_py())
        self.numbers += n_numbers - arr.null_count
        self.texts += n_texts

    def check(self) -> None:
        if self.numbers > self.texts and self.first_text is not None:
            path, row, value = self.first_text
            raise InputError(
                f"{path}: row {row}, column '{self.name}': cannot parse '{format_token(str(value))}' as a number; "
                f"{self.numbers:,} of the column's {self.numbers + self.texts:,} values are numbers: fix the "
                f"cell, or pass --hash-columns {self.name} to hash the column as categories")


def to_float(arr: pa.Array) -> pa.Array:
    """Strings -> float64; empty stays null, unparsable becomes NaN."""
    try:
        return arr.cast(pa.float64())
    except pa.ArrowInvalid:
        out = []
        for v in arr.to_pylist():
            if v is None:
                out.append(None)
                continue
            try:
                out.append(float(v))
            except ValueError:
                out.append(float("nan"))
        return pa.array(out, type=pa.float64())
