"""Small helpers shared by the readers: opening (compressed) files, re-cutting chunks.

Everything here turns the standard library's many ways of failing on a bad
file (``EOFError``, ``zlib.error``, ``gzip.BadGzipFile``, ``lzma.LZMAError``,
``OSError``) into one :class:`~streamfm.errors.InputError` that names the file.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import os
import zlib
from typing import BinaryIO, Iterator

import numpy as np

from streamfm.errors import InputError
from streamfm.io.chunk import Chunk

#: Compressed-file suffixes the text readers understand, and their modules.
COMPRESSION_SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}

#: What the decompressors raise on a truncated or corrupt stream.
DECOMPRESS_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError, OSError)


def compression_of(path: str) -> str | None:
    """'gzip', 'bz2', 'xz' or None, from the file name's last suffix."""
    return COMPRESSION_SUFFIXES.get(os.path.splitext(path)[1].lower())


def strip_compression(path: str) -> str:
    """The file name without a trailing .gz / .bz2 / .xz."""
    root, ext = os.path.splitext(path)
    return root if ext.lower() in COMPRESSION_SUFFIXES else path


def corrupt_error(path: str, exc: BaseException) -> InputError:
    """The one message for a compressed file that cannot be decompressed."""
    detail = str(exc) or type(exc).__name__
    return InputError(f"{path}: the compressed file is truncated or corrupt ({detail})")


def open_binary(path: str) -> BinaryIO:
    """Open ``path`` for reading bytes, decompressing by suffix.

    Raises
    ------
    InputError
        The file cannot be opened (missing, a directory, no permission).
    """
    kind = compression_of(path)
    try:
        if kind == "gzip":
            return gzip.open(path, "rb")
        if kind == "bz2":
            return bz2.open(path, "rb")
        if kind == "xz":
            return lzma.open(path, "rb")
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror or exc})") from None


def _read_error(path: str, exc: BaseException) -> InputError:
    """The InputError for a failed read: a corrupt compressed stream, or an I/O error."""
    if compression_of(path) is None:
        return InputError(f"{path}: cannot read ({exc})")
    return corrupt_error(path, exc)


def read_block(f: BinaryIO, path: str, size: int) -> bytes:
    """``f.read(size)``, with decompression failures turned into InputError."""
    try:
        return f.read(size)
    except DECOMPRESS_ERRORS as exc:
        raise _read_error(path, exc) from None


def readinto_block(f: BinaryIO, path: str, view: memoryview) -> int:
    """``f.readinto(view)``, with decompression failures turned into InputError."""
    try:
        return f.readinto(view)
    except DECOMPRESS_ERRORS as exc:
        raise _read_error(path, exc) from None


def rebatch(pieces: Iterator[Chunk], chunk_rows: int) -> Iterator[Chunk]:
    """Re-cut a stream of chunks of any size into chunks of exactly ``chunk_rows``
    rows (the last one shorter).

    Used where the underlying reader's batches follow bytes (CSV blocks) or row
    groups (Parquet) rather than the requested chunk size.  Holds at most one
    output chunk plus one input piece.
    """
    pending: list[Chunk] = []
    n_pending = 0
    sliced = False  # is a lone pending part a view into a larger piece?
    for piece in pieces:
        start = 0
        while start < piece.n_rows:
            take = min(chunk_rows - n_pending, piece.n_rows - start)
            if start == 0 and take == piece.n_rows:
                part = piece
            else:
                part, sliced = piece.slice(start, start + take), True
            pending.append(part)
            n_pending += take
            start += take
            if n_pending == chunk_rows:
                yield _join(pending, sliced)
                pending, n_pending, sliced = [], 0, False
    if n_pending:
        yield _join(pending, sliced)


def _join(parts: list[Chunk], sliced: bool) -> Chunk:
    if len(parts) > 1:
        return Chunk.concat(parts)  # concatenation copies
    out = parts[0]
    if sliced:
        # A view would pin its whole parent piece in memory: copy the slice.
        out = Chunk(out.indptr.copy(), out.indices.copy(), out.data.copy(), out.y.copy(), out.n_features,
                    weights=None if out.weights is None else out.weights.copy())
    return out


def file_size(path: str) -> int:
    """Bytes on disk (0 if the file vanished)."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def format_token(token: bytes | str, limit: int = 60) -> str:
    """A token as it appears in an error message: decoded, shortened."""
    if isinstance(token, (bytes, bytearray, np.ndarray)):
        token = bytes(token).decode("utf-8", errors="replace")
    return token if len(token) <= limit else token[: limit - 3] + "..."
