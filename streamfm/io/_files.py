"""Small helpers shared by the readers: opening (compressed) files, re-cutting chunks.

Files open through ``pyarrow.fs`` (``io/filesystems.py``: local paths and
URIs alike), decompressed by suffix through pyarrow's input streams; xz,
which pyarrow has no codec for, through Python's ``lzma`` over the raw
stream.  Everything here turns the many ways of failing on a bad file
(pyarrow's ``OSError``, ``EOFError``, ``lzma.LZMAError``, ...) into one
:class:`~streamfm.errors.InputError` that names the file.
"""
from __future__ import annotations

import io
import lzma
import os
import zlib
from typing import BinaryIO, Iterator

import numpy as np
import pyarrow as pa

from streamfm.errors import InputError
from streamfm.io import filesystems
from streamfm.io.chunk import Chunk

#: Compressed-file suffixes the text readers understand, and their codecs (pyarrow's names; xz: ``lzma``).
COMPRESSION_SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd", ".lz4": "lz4", ".xz": "xz"}

#: What the decompressors raise on a truncated or corrupt stream.
DECOMPRESS_ERRORS = (EOFError, zlib.error, lzma.LZMAError, OSError, pa.ArrowException)

#: Read-ahead for line-wise reading (the readers' own blocks are larger and bypass it).
_BUFFER_BYTES = 1 << 20

#: Read-ahead on a remote file's raw bytes: a decompressor asks for 64 KiB at a time, and each read
#: of a remote stream is a request.
REMOTE_READ_BYTES = 8 << 20


def compression_of(path: str) -> str | None:
    """'gzip', 'bz2', 'zstd', 'lz4', 'xz' or None, from the file name's last suffix."""
    return COMPRESSION_SUFFIXES.get(os.path.splitext(path)[1].lower())


def strip_compression(path: str) -> str:
    """The file name without a trailing compression suffix (.gz, .zst, ...)."""
    root, ext = os.path.splitext(path)
    return root if ext.lower() in COMPRESSION_SUFFIXES else path


def corrupt_error(path: str, exc: BaseException) -> InputError:
    """The one message for a compressed file that cannot be decompressed."""
    detail = str(exc) or type(exc).__name__
    return InputError(f"{path}: the compressed file is truncated or corrupt ({detail})")


def open_stream(path: str):
    """``path`` as a decompressed pyarrow (or, for xz, ``lzma``) input stream: no line-wise
    reading (:func:`open_binary` adds that); a URI's raw bytes are read ahead in large requests.

    Raises
    ------
    InputError
        The file cannot be opened (missing, a directory, no permission).
    """
    kind = compression_of(path)
    fs, where = filesystems.resolve(path)
    ahead = REMOTE_READ_BYTES if filesystems.is_uri(path) else None
    try:
        if kind == "xz":  # pyarrow has no xz codec
            return _XzFile(fs.open_input_stream(where, compression=None, buffer_size=ahead))
        return fs.open_input_stream(where, compression=kind, buffer_size=ahead)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot open ({_reason(exc)})") from None


def open_binary(path: str) -> BinaryIO:
    """Open ``path`` for reading bytes, decompressing by suffix: a buffered file object
    (``readline``, iteration, ``readinto``).

    Raises
    ------
    InputError
        The file cannot be opened (missing, a directory, no permission).
    """
    stream = open_stream(path)
    return stream if isinstance(stream, _XzFile) else io.BufferedReader(stream, _BUFFER_BYTES)


class _XzFile(lzma.LZMAFile):
    """Python's xz reader over a pyarrow stream, closing the stream with itself (``LZMAFile``
    leaves a file object it was given open)."""

    def __init__(self, raw):
        super().__init__(raw, "rb")
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def _reason(exc: BaseException) -> str:
    """An OSError's reason without pyarrow's boilerplate where there is a plain one."""
    if isinstance(exc, FileNotFoundError):
        return "No such file or directory"
    if isinstance(exc, PermissionError):
        return "Permission denied"
    return str(exc)


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
    """Bytes stored (0 if the file vanished or cannot be looked up)."""
    try:
        size = filesystems.info(path).size
    except InputError:
        return 0
    return size or 0


def format_token(token: bytes | str, limit: int = 60) -> str:
    """A token as it appears in an error message: decoded, shortened."""
    if isinstance(token, (bytes, bytearray, np.ndarray)):
        token = bytes(token).decode("utf-8", errors="replace")
    return token if len(token) <= limit else token[: limit - 3] + "..."
