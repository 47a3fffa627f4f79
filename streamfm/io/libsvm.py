"""Streaming reader of libsvm / svmlight text files, plain or compressed (``io/_files.py``), local or remote.

Format, one row per line::

    label idx:val idx:val ...  # optional comment
    label:weight idx:val ...   # a sample weight (finite, >= 0), as XGBoost reads it

A line without a weight weighs 1; a chunk none of whose lines has one carries
no weights (``Chunk.weights`` None). ``qid:N`` tokens are ignored, blank and comment-only lines are skipped, and
indices are 1-based unless the file is 0-based (``zero_based``).

How it is fast: the file is read in blocks of a few MiB of raw bytes; a block
is cut at its last newline (the partial last line is carried over to the next
block) and one numba kernel parses all its lines straight into the CSR arrays
of the chunk being filled.  Python touches each block, not each line.  The
kernel parses numbers itself with an exact fast path (Clinger's: a mantissa of
at most 2**53 and a power of ten of at most 1e22 make a single correctly
rounded IEEE operation); the rare value outside it (more than ~16 significant
digits, a huge exponent) is recorded as a "fix-up" and parsed by Python's
``float`` afterwards, so every value is exactly what ``float(token)`` gives.
Only values on that path can exceed ``MAX_ABS_VALUE`` (1e154, whose square
overflows): they are checked there.

Errors are found by the kernel, which reports the error kind, the line and
the offending token's byte range; Python only builds the message.

The module is longer than most: the kernel's state slots (``_S_*``), the
kernel that fills them and the reader that turns them into chunks and
messages are one parser's states, kept in one module.
"""
from __future__ import annotations

from typing import Iterator

import numba
import numpy as np

from streamfm.errors import InputError
from streamfm.io._files import format_token, open_binary, readinto_block
from streamfm.io.chunk import INDEX_DTYPE, INDPTR_DTYPE, MAX_ABS_VALUE, VALUE_DTYPE, Chunk
from streamfm.io.options import ReadOptions

#: Bytes read from the file per block (decompressed bytes for .gz etc.).
BLOCK_BYTES = 4 << 20

_MAX_INDEX = np.iinfo(np.int32).max
_UTF8_BOM = b"\xef\xbb\xbf"

# Kernel return status.
_DONE = 0  # every line of the block up to `end` consumed
_FULL = 1  # the chunk holds max_rows rows
_NEED_NNZ = 2  # indices/values arrays full: grow and call again
_NEED_FIX = 3  # fix-up arrays full: grow and call again
_ERROR = 4  # a bad line, described in state[_S_ERR:]

# Error kinds.
_E_LABEL = 1
_E_PAIR = 2
_E_NONFINITE = 3
_E_NONFINITE_LABEL = 4
_E_BIG_INDEX = 5
_E_ZERO_INDEX = 6
_E_DUPLICATE = 7
_E_WEIGHT = 8

# Slots of the int64 `state` array the kernel reads and updates.
_S_ROWS = 0  # rows in the chunk so far
_S_NNZ = 1  # entries in the chunk so far
_S_FIX = 2  # fix-ups recorded in this call
_S_LINE = 3  # lines of the file fully consumed
_S_BAD = 4  # bad lines skipped (skip_bad_rows)
_S_ERR = 5  # error kind
_S_TOK0 = 6  # offending token: start byte (or, for a duplicate, the index)
_S_TOK1 = 7  # offending token: end byte
_S_ERRLINE = 8  # 1-based line of the error
_S_MAXIDX = 9  # largest 0-based index output so far in this file
_S_WEIGHTED = 10  # a row of the chunk so far carries a weight
_N_STATE = 11

# Powers of ten that are exact doubles: the range of Clinger's fast path.
_POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)
_TWO53 = 2**53


# ---------------------------------------------------------------------------
# numba kernels
# ---------------------------------------------------------------------------


@numba.njit(cache=True, inline="always")
def _is_digit(c):
    return c >= 48 and c <= 57


@numba.njit(cache=True, inline="always")
def _is_nonfinite_word(buf, s, e):
    """Is buf[s:e] (after an optional sign) nan, inf or infinity, any case?"""
    if s < e and (buf[s] == 43 or buf[s] == 45):
        s += 1
    n = e - s
    if n != 3 and n != 8:
        return False
    # OR-ing 32 lower-cases ASCII letters.
    w0, w1, w2 = buf[s] | 32, buf[s + 1] | 32, buf[s + 2] | 32
    if n == 3 and w0 == 110 and w1 == 97 and w2 == 110:  # nan
        return True
    if not (w0 == 105 and w1 == 110 and w2 == 102):  # inf
        return False
    if n == 3:
        return True
    return (
        (buf[s + 3] | 32) == 105  # i
        and (buf[s + 4] | 32) == 110  # n
        and (buf[s + 5] | 32) == 105  # i
        and (buf[s + 6] | 32) == 116  # t
        and (buf[s + 7] | 32) == 121  # y
    )


@numba.njit(cache=True, inline="always")
def _parse_number(buf, s, e):
    """Parse the decimal number in buf[s:e].

    Returns (status, value): status 0 = parsed exactly, 1 = valid syntax but
    outside the exact fast path (parse it with Python's float), 2 = not a
    number, 3 = nan/inf.
    """
    i = s
    neg = False
    if i < e and (buf[i] == 43 or buf[i] == 45):
        neg = buf[i] == 45
        i += 1
    mant = 0  # significant digits, at most 18 so that int64 cannot overflow
    nsig = 0
    ndig = 0
    exp10 = 0
    inexact = False  # a non-zero digit was dropped
    while i < e and _is_digit(buf[i]):
        d = buf[i] - 48
        ndig += 1
        if nsig < 18:
            if mant != 0 or d != 0:
                mant = mant * 10 + d
                nsig += 1
        else:
            exp10 += 1
            if d != 0:
                inexact = True
        i += 1
    if i < e and buf[i] == 46:  # '.'
        i += 1
        # The integer part's loop again, specialised for the fraction (each digit kept moves the
        # exponent down, a dropped one does not move it): no per-digit branch on the part.
        while i < e and _is_digit(buf[i]):
            d = buf[i] - 48
            ndig += 1
            if nsig < 18:
                if mant != 0 or d != 0:
                    mant = mant * 10 + d
                    nsig += 1
                exp10 -= 1
            elif d != 0:
                inexact = True
            i += 1
    if ndig == 0:
        return (3 if _is_nonfinite_word(buf, s, e) else 2), 0.0
    if i < e and (buf[i] == 101 or buf[i] == 69):  # 'e' / 'E'
        i += 1
        eneg = False
        if i < e and (buf[i] == 43 or buf[i] == 45):
            eneg = buf[i] == 45
            i += 1
        if i >= e or not _is_digit(buf[i]):
            return 2, 0.0
        ev = 0
        while i < e and _is_digit(buf[i]):
            if ev < 100000:
                ev = ev * 10 + (buf[i] - 48)
            i += 1
        exp10 += -ev if eneg else ev
    if i != e:
        return 2, 0.0
    if mant == 0:
        return 0, -0.0 if neg else 0.0
    while mant % 10 == 0:  # 1.50000000000000000 -> 15e-1
        mant //= 10
        exp10 += 1
    if inexact or mant > _TWO53 or exp10 < -22 or exp10 > 22:
        return 1, 0.0
    v = float(mant)
    if exp10 >= 0:
        v = v * _POW10[exp10]
    else:
        v = v / _POW10[-exp10]
    return 0, -v if neg else v


@numba.njit(cache=True, inline="always")
def _is_space(c):
    return c == 32 or c == 9 or c == 13 or c == 11 or c == 12


@numba.njit(cache=True)
def _sort_row(indices, values, a, b, fix_dest, f0, f1):
    """Sort row entries a:b by index; move the row's pending fix-ups with them."""
    order = np.argsort(indices[a:b], kind="mergesort")
    idx = indices[a:b].copy()
    val = values[a:b].copy()
    inv = np.empty(b - a, dtype=np.int64)
    for k in range(b - a):
        indices[a + k] = idx[order[k]]
        values[a + k] = val[order[k]]
        inv[order[k]] = k
    for f in range(f0, f1):
        if fix_dest[f] >= 0:
            fix_dest[f] = a + inv[fix_dest[f] - a]


@numba.njit(cache=True)
def _parse_lines(
    buf, pos, end, max_rows, offset, skip_bad,
    labels, weights, indptr, indices, values, lines,
    fix_start, fix_end, fix_dest, fix_row, state,
):
    """Parse the complete lines in buf[pos:end] into the chunk arrays.

    Rows are appended at state[_S_ROWS] / entries at state[_S_NNZ].  Stops at
    `end`, when the chunk holds `max_rows` rows, when an array is full (the
    line in progress is rolled back, to be parsed again after the caller grows
    the arrays) or at a bad line.  Returns (status, position of the first
    unconsumed byte).

    `offset` is 1 for 1-based files (index 0 is then an error) and 0 for
    0-based ones.  A value outside the exact fast path is left for the caller:
    fix_dest >= 0 is an entry position, fix_dest = -1 - row a label, and
    fix_dest = -1 - (max_rows + row) a weight.
    """
    n_rows = state[_S_ROWS]
    nnz = state[_S_NNZ]
    nfix = state[_S_FIX]
    line = state[_S_LINE]
    bad = state[_S_BAD]
    max_idx = state[_S_MAXIDX]
    cap = indices.shape[0]
    fcap = fix_start.shape[0]
    status = _DONE
    while pos < end:
        if n_rows >= max_rows:
            status = _FULL
            break
        le = pos
        while le < end and buf[le] != 10:
            le += 1
        nxt = le + 1 if le < end else end
        row_nnz0 = nnz
        row_fix0 = nfix
        err = 0
        tok0 = 0
        tok1 = 0
        need = _DONE
        have_label = False
        in_order = True
        prev = -1
        label = 0.0
        weight = 1.0
        row_weighted = False
        i = pos
        while True:
            while i < le and _is_space(buf[i]):
                i += 1
            if i >= le or buf[i] == 35:  # end of line or '#'
                break
            ts = i
            while i < le and not _is_space(buf[i]) and buf[i] != 35:
                i += 1
            te = i
            if not have_label:
                c = ts
                while c < te and buf[c] != 58:  # label:weight
                    c += 1
                st, v = _parse_number(buf, ts, c)
                if st == 2 or st == 3:
                    err = _E_LABEL if st == 2 else _E_NONFINITE_LABEL
                    tok0, tok1 = ts, c
                    break
                if c < te:
                    sw, weight = _parse_number(buf, c + 1, te)
                    if sw == 2 or sw == 3 or weight < 0.0:
                        err, tok0, tok1 = _E_WEIGHT, ts, te
                        break
                    if nfix + 2 > fcap:
                        need = _NEED_FIX
                        break
                    if sw == 1:
                        fix_start[nfix] = c + 1
                        fix_end[nfix] = te
                        fix_dest[nfix] = -1 - (max_rows + n_rows)
                        fix_row[nfix] = n_rows
                        nfix += 1
                    row_weighted = True
                if st == 1:
                    if nfix >= fcap:
                        need = _NEED_FIX
                        break
                    fix_start[nfix] = ts
                    fix_end[nfix] = c
                    fix_dest[nfix] = -1 - n_rows
                    fix_row[nfix] = n_rows
                    nfix += 1
                label = v
                have_label = True
                continue
            if te - ts >= 4 and buf[ts] == 113 and buf[ts + 1] == 105 and buf[ts + 2] == 100 and buf[ts + 3] == 58:
                continue  # qid:N
            c = ts
            while c < te and buf[c] != 58:  # ':'
                c += 1
            if c == ts or c >= te - 1:
                err, tok0, tok1 = _E_PAIR, ts, te
                break
            raw = 0
            digits_ok = True
            for k in range(ts, c):
                if not _is_digit(buf[k]):
                    digits_ok = False
                    break
                if raw <= _MAX_INDEX + 1:
                    raw = raw * 10 + (buf[k] - 48)
            if not digits_ok:
                err, tok0, tok1 = _E_PAIR, ts, te
                break
            if raw - offset > _MAX_INDEX:
                err, tok0, tok1 = _E_BIG_INDEX, ts, te
                break
            if raw < offset:
                err, tok0, tok1 = _E_ZERO_INDEX, ts, te
                break
            st, v = _parse_number(buf, c + 1, te)
            if st == 2 or st == 3:
                err = _E_PAIR if st == 2 else _E_NONFINITE
                tok0, tok1 = ts, te
                break
            if nnz >= cap:
                need = _NEED_NNZ
                break
            if st == 1:
                if nfix >= fcap:
                    need = _NEED_FIX
                    break
                fix_start[nfix] = c + 1
                fix_end[nfix] = te
                fix_dest[nfix] = nnz
                fix_row[nfix] = n_rows
                nfix += 1
            idx = raw - offset
            if idx <= prev:
                in_order = False
            prev = idx
            indices[nnz] = idx
            values[nnz] = v
            nnz += 1
        if need != _DONE:
            nnz = row_nnz0
            nfix = row_fix0
            status = need
            break
        if err == 0 and have_label:
            if not in_order:
                _sort_row(indices, values, row_nnz0, nnz, fix_dest, row_fix0, nfix)
            for k in range(row_nnz0 + 1, nnz):
                if indices[k] == indices[k - 1]:
                    err = _E_DUPLICATE
                    tok0 = indices[k] + offset  # the index as written in the file
                    tok1 = -1
                    break
        if err != 0:
            nnz = row_nnz0
            nfix = row_fix0
            if skip_bad and err != _E_ZERO_INDEX:
                bad += 1
                line += 1
                pos = nxt
                continue
            state[_S_ERR] = err
            state[_S_TOK0] = tok0
            state[_S_TOK1] = tok1
            state[_S_ERRLINE] = line + 1
            status = _ERROR
            break
        line += 1
        pos = nxt
        if not have_label:  # blank or comment-only line
            continue
        labels[n_rows] = label
        weights[n_rows] = weight
        if row_weighted:
            state[_S_WEIGHTED] = 1
        lines[n_rows] = line
        n_rows += 1
        indptr[n_rows] = nnz
        if nnz > row_nnz0 and indices[nnz - 1] > max_idx:
            max_idx = indices[nnz - 1]
    state[_S_ROWS] = n_rows
    state[_S_NNZ] = nnz
    state[_S_FIX] = nfix
    state[_S_LINE] = line
    state[_S_BAD] = bad
    state[_S_MAXIDX] = max_idx
    return status, pos


# ---------------------------------------------------------------------------
# Python driver
# ---------------------------------------------------------------------------


class _ChunkBuffer:
    """The arrays one chunk is parsed into, reused from chunk to chunk."""

    def __init__(self, chunk_rows: int, nnz_guess: int) -> None:
        self.labels = np.empty(chunk_rows, dtype=np.float64)
        self.weights = np.empty(chunk_rows, dtype=np.float64)
        self.indptr = np.zeros(chunk_rows + 1, dtype=INDPTR_DTYPE)
        self.lines = np.empty(chunk_rows, dtype=np.int64)
        self.indices = np.empty(max(nnz_guess, 16), dtype=INDEX_DTYPE)
        self.values = np.empty(max(nnz_guess, 16), dtype=VALUE_DTYPE)
        self.fix_start = np.empty(1024, dtype=np.int64)
        self.fix_end = np.empty(1024, dtype=np.int64)
        self.fix_dest = np.empty(1024, dtype=np.int64)
        self.fix_row = np.empty(1024, dtype=np.int64)

    def grow_nnz(self, nnz: int) -> None:
        new = 2 * len(self.indices)
        for name in ("indices", "values"):
            old = getattr(self, name)
            arr = np.empty(new, dtype=old.dtype)
            arr[:nnz] = old[:nnz]
            setattr(self, name, arr)

    def grow_fix(self) -> None:
        # Fix-ups never outlive one kernel call, so nothing needs copying.
        new = 2 * len(self.fix_start)
        for name in ("fix_start", "fix_end", "fix_dest", "fix_row"):
            setattr(self, name, np.empty(new, dtype=np.int64))


class _Blocks:
    """One reused byte buffer over a file, refilled so that it always starts at
    a line: ``buf[:end]`` holds complete lines, ``buf[end:filled]`` the start
    of the next one (carried to the front on the next refill).

    A fixed buffer, rather than a new bytes object per block, keeps memory flat
    and spares a copy of every block.  It grows only for a line longer than
    itself.
    """

    def __init__(self, f, path: str, size: int) -> None:
        self.f = f
        self.path = path
        self.buf = bytearray(max(int(size), 2))
        self.filled = 0
        self.end = 0
        self.eof = False

    def array(self) -> np.ndarray:
        return np.frombuffer(self.buf, dtype=np.uint8)

    def next(self) -> bool:
        """Drop the parsed lines and read on to the next complete line(s).

        False at the end of the file.  The last line needs no newline.
        """
        carry = self.filled - self.end
        if carry:
            self.buf[:carry] = self.buf[self.end : self.filled]
        self.filled, self.end = carry, 0
        while True:
            if self.eof:
                self.end = self.filled
                return self.filled > 0
            if self.filled == len(self.buf):  # a line longer than the buffer
                grown = bytearray(2 * len(self.buf))
                grown[: self.filled] = self.buf[: self.filled]
                self.buf = grown
            view = memoryview(self.buf)[self.filled :]
            try:
                n = readinto_block(self.f, self.path, view)
            finally:
                view.release()  # an exported bytearray could not be replaced safely
            if not n:
                self.eof = True
                continue
            newline = self.buf.rfind(b"\n", self.filled, self.filled + n)
            self.filled += n
            if newline >= 0:
                self.end = newline + 1
                return True


class LibsvmReader:
    """Reads libsvm files of one data set in bounded chunks.

    Parameters
    ----------
    files : list of str
        The data set's files; ``zero_based="auto"`` looks at ``files[0]``.
    options : ReadOptions
        ``zero_based`` (True, False or "auto": decided from the first
        non-empty chunk of the first file that has rows, where an index 0
        means 0-based; a 0 met later in a file read as 1-based is an error
        that says so), ``skip_bad_rows`` (skip malformed lines and count
        them) and ``chunk_rows`` (the default for :meth:`iter_file`).

    Attributes
    ----------
    bad_rows_by_file : dict of str to int
        Lines skipped in each file's latest read.
    max_index : int
        Largest 0-based feature index seen so far (-1 before any).
    """

    def __init__(self, files: list[str], options: ReadOptions, contract=None, require_label: bool = True):
        # a libsvm line always has its label; the contract's index base comes in ``options``
        self.files = list(files)
        self.options = options
        self.skip_bad_rows = options.skip_bad_rows
        self.chunk_rows = options.chunk_rows
        zero_based = options.zero_based
        self._zero_based: bool | None = None if zero_based == "auto" else bool(zero_based)
        self.bad_rows_by_file: dict[str, int] = {}
        self.max_index = -1

    @property
    def zero_based(self) -> bool:
        """Whether the files' indices start at 0 (resolved on first use)."""
        if self._zero_based is None:
            self._zero_based = self._detect_zero_based()
        return self._zero_based

    def _detect_zero_based(self) -> bool:
        for path in self.files:
            for chunk in self._iter(path, self.chunk_rows, offset=0, record=False):
                if chunk.nnz:
                    return bool(chunk.indices.min() == 0)
        return False

    def iter_file(self, path: str, chunk_rows: int | None = None) -> Iterator[Chunk]:
        """Chunks of at most ``chunk_rows`` rows of one file, in file order."""
        offset = 0 if self.zero_based else 1
        return self._iter(path, chunk_rows or self.chunk_rows, offset=offset, record=True)

    # -- the loop over blocks -------------------------------------------------

    def line_of(self, path: str, row: int) -> int:
        """The 1-based line of ``path`` that holds its data row ``row`` (0-based; blank, comment and
        skipped lines are no rows): a slow path for messages, which reads the file again."""
        lines: list[np.ndarray] = []
        seen = 0
        offset = 0 if self.zero_based else 1
        for chunk in self._iter(path, self.chunk_rows, offset=offset, record=False, lines_out=lines):
            if seen + chunk.n_rows > row:
                return int(lines[-1][row - seen])
            seen += chunk.n_rows
        return -1

    def _iter(self, path: str, chunk_rows: int, *, offset: int, record: bool,
              lines_out: list | None = None) -> Iterator[Chunk]:
        skip = self.skip_bad_rows
        state = np.zeros(_N_STATE, dtype=np.int64)
        state[_S_MAXIDX] = -1
        cb = _ChunkBuffer(chunk_rows, nnz_guess=min(chunk_rows * 16, 1 << 22))
        dropped: list[int] = []  # rows of the current chunk found bad after parsing
        if record:
            self.bad_rows_by_file[path] = 0
        with open_binary(path) as f:
            blocks = _Blocks(f, path, BLOCK_BYTES)
            first = True
            while blocks.next():
                arr = blocks.array()
                pos = 0
                if first and blocks.buf.startswith(_UTF8_BOM):  # written by some Windows tools
                    pos = len(_UTF8_BOM)
                first = False
                while pos < blocks.end:
                    status, pos = _parse_lines(
                        arr, pos, blocks.end, chunk_rows, offset, skip,
                        cb.labels, cb.weights, cb.indptr, cb.indices, cb.values, cb.lines,
                        cb.fix_start, cb.fix_end, cb.fix_dest, cb.fix_row, state,
                    )
                    if state[_S_FIX]:
                        self._apply_fixups(path, blocks.buf, cb, int(state[_S_FIX]), dropped)
                        state[_S_FIX] = 0
                    if status == _ERROR:
                        raise self._error(path, arr, state, offset)
                    if status == _NEED_NNZ:
                        cb.grow_nnz(int(state[_S_NNZ]))
                    elif status == _NEED_FIX:
                        cb.grow_fix()
                    elif status == _FULL:
                        yield self._emit(path, cb, state, dropped, record, lines_out)
            if state[_S_ROWS]:
                yield self._emit(path, cb, state, dropped, record, lines_out)
        if record:
            self.bad_rows_by_file[path] = int(state[_S_BAD])

    def _apply_fixups(self, path: str, buf: bytearray, cb: _ChunkBuffer, nfix: int, dropped: list[int]) -> None:
        """Parse the values the kernel left to Python's float (exact, rarer)."""
        for k in range(nfix):
            tok = bytes(buf[int(cb.fix_start[k]) : int(cb.fix_end[k])])
            v = float(tok)
            dest = int(cb.fix_dest[k])
            what = "value" if dest >= 0 else "label" if -1 - dest < len(cb.labels) else "weight"
            if dest >= 0:
                cb.values[dest] = v
            elif what == "label":
                cb.labels[-1 - dest] = v
            else:
                cb.weights[-1 - dest - len(cb.labels)] = v
            if not abs(v) <= MAX_ABS_VALUE or (what == "weight" and v < 0):  # e.g. 1e999, or 1e300
                row = int(cb.fix_row[k])
                if self.skip_bad_rows:
                    dropped.append(row)
                elif what == "weight":
                    raise InputError(f"{path}:{int(cb.lines[row])}: weight '{format_token(tok)}' is not a finite "
                                     "number >= 0")
                else:
                    why = ("is not finite (it overflows to infinity)" if not np.isfinite(v) else
                           f"is too large: values must be of magnitude at most {MAX_ABS_VALUE:g} "
                           "(their squares must fit a float64)")
                    raise InputError(f"{path}:{int(cb.lines[row])}: {what} '{format_token(tok)}' {why}")

    def _emit(self, path: str, cb: _ChunkBuffer, state: np.ndarray, dropped: list[int], record: bool,
              lines_out: list | None = None) -> Chunk:
        n = int(state[_S_ROWS])
        nnz = int(state[_S_NNZ])
        if record:  # a detection pass reads raw indices: keep them out
            self.max_index = max(self.max_index, int(state[_S_MAXIDX]))
        chunk = Chunk(
            cb.indptr[: n + 1].copy(),
            cb.indices[:nnz].copy(),
            cb.values[:nnz].copy(),
            cb.labels[:n].copy(),
            self.max_index + 1,
            weights=cb.weights[:n].copy() if state[_S_WEIGHTED] else None,
        )
        state[_S_WEIGHTED] = 0
        if dropped:
            keep = np.setdiff1d(np.arange(n), np.asarray(dropped, dtype=np.int64))
            state[_S_BAD] += n - len(keep)
            chunk = chunk.take(keep)
            dropped.clear()
            if lines_out is not None:
                lines_out.append(cb.lines[:n][keep].copy())
        elif lines_out is not None:
            lines_out.append(cb.lines[:n].copy())
        state[_S_ROWS] = 0
        state[_S_NNZ] = 0
        if record:
            self.bad_rows_by_file[path] = int(state[_S_BAD])
        return chunk

    def _error(self, path: str, arr: np.ndarray, state: np.ndarray, offset: int) -> InputError:
        kind = int(state[_S_ERR])
        line = int(state[_S_ERRLINE])
        where = f"{path}:{line}"
        if kind == _E_DUPLICATE:
            return InputError(f"{where}: feature index {int(state[_S_TOK0])} appears twice in one row")
        tok = format_token(arr[int(state[_S_TOK0]) : int(state[_S_TOK1])])
        if kind == _E_LABEL:
            return InputError(f"{where}: cannot parse label '{tok}' (expected a number)")
        if kind == _E_PAIR:
            return InputError(f"{where}: cannot parse '{tok}' (expected index:value)")
        if kind == _E_NONFINITE:
            return InputError(f"{where}: non-finite value in '{tok}' (NaN and infinity are not allowed)")
        if kind == _E_WEIGHT:
            return InputError(f"{where}: cannot read the weight in '{tok}' (label:weight, the weight a finite "
                              "number >= 0)")
        if kind == _E_NONFINITE_LABEL:
            return InputError(f"{where}: label '{tok}' is not a finite number")
        if kind == _E_BIG_INDEX:
            return InputError(f"{where}: feature index too large in '{tok}' (at most {_MAX_INDEX})")
        if kind == _E_ZERO_INDEX:
            how = (
                "the first rows had none, so the data was read as 1-based"
                if self.options.zero_based == "auto"
                else "the data is read as 1-based"
            )
            return InputError(
                f"{where}: feature index 0 in '{tok}', but {how}; the file looks 0-based: "
                "pass --zero-based (zero_based=True)"
            )
        return InputError(f"{where}: cannot parse this line")  # pragma: no cover
