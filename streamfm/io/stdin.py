"""Standard input as a data file: ``-`` on the command line (``zcat big.svm.gz | streamfm train - ...``).

Training reads its data more than once (the scan pass, then every epoch), and
predictions need the readers' chunked access, so standard input is first
copied to a temporary file (:func:`spooled_stdin`) in a directory the caller
chooses, and that file is removed when the command ends, whether it
succeeded, failed or was interrupted. Disk use is the size of the stream as
it arrives: gzip, bzip2 and xz streams (told by their magic bytes) are kept
compressed and decompressed by the readers as files of those suffixes are.

The format is the caller's (``--format``) or sniffed from the first data
lines: a line with commas is CSV, a line ``LABEL IDX:VALUE ...`` libsvm, a
line with tabs CSV; a Parquet file (magic ``PAR1``) is recognised too.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from streamfm.errors import InputError, disk_full, is_disk_full

#: the data argument that names standard input
STDIN = "-"
#: the name of a spool's temporary directory starts so
SPOOL_PREFIX = "streamfm-stdin-"

#: leading bytes of a compressed stream -> the suffix its readers decompress by
_COMPRESSED = ((b"\x1f\x8b", ".gz"), (b"BZh", ".bz2"), (b"\xfd7zXZ\x00", ".xz"))
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_SUFFIX = {"libsvm": ".svm", "csv": ".csv", "parquet": ".parquet"}
#: lines looked at to tell libsvm from CSV
_SNIFF_LINES = 20


def names_stdin(paths) -> bool:
    """Whether the data arguments ``paths`` name standard input (and only it: else InputError)."""
    paths = [paths] if isinstance(paths, str) else list(paths or [])
    if STDIN not in paths:
        return False
    if len(paths) > 1:
        raise InputError("'-' (standard input) must be the only data argument: standard input cannot be "
                         "combined with files")
    return True


def is_spool(path: str) -> bool:
    """Whether ``path`` is a copy of standard input made by :func:`spooled_stdin` (gone after its command)."""
    return os.path.basename(os.path.dirname(path)).startswith(SPOOL_PREFIX)


@contextmanager
def spooled_stdin(directory: str | None = None, format: str | None = None,
                  stream: BinaryIO | None = None) -> Iterator[str]:
    """Copy ``stream`` (default: standard input's bytes) to a temporary file in ``directory``
    (default: ``$TMPDIR``); yield its path, named with the suffixes its readers expect; remove it
    on leaving, whatever happened.

    ``format``: 'libsvm', 'csv' or 'parquet', or None to sniff it.

    Raises
    ------
    InputError
        An empty stream, a format that cannot be told (pass ``--format``), or ``directory`` missing.
    DiskFullError
        The disk filled while copying.
    """
    stream = sys.stdin.buffer if stream is None else stream
    if directory is not None and not os.path.isdir(directory):
        raise InputError(f"the directory {directory} for spooling standard input does not exist")
    tmp = tempfile.mkdtemp(prefix=SPOOL_PREFIX, dir=directory)
    try:
        raw = os.path.join(tmp, "stdin")
        head = stream.read(8)
        if not head:
            raise InputError("standard input is empty: no data")
        compression = next((suffix for magic, suffix in _COMPRESSED if head.startswith(magic)), "")
        written = 0
        try:
            with open(raw, "wb") as out:
                out.write(head)
                written = len(head) + _copy(stream, out)
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full(f"{raw} (standard input)", written) from None
            raise
        if format is None:
            format = "parquet" if head.startswith(b"PAR1") else _sniff(raw, compression)
        if format == "parquet" and compression:
            raise InputError("standard input is a compressed Parquet file: Parquet compresses itself; "
                             "pipe the file as it is")
        path = raw + _SUFFIX[format] + compression
        os.rename(raw, path)
        yield path
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _copy(stream: BinaryIO, out: BinaryIO) -> int:
    n = 0
    while True:
        block = stream.read(1 << 20)
        if not block:
            return n
        out.write(block)
        n += len(block)


def _sniff(path: str, compression: str) -> str:
    """'libsvm' or 'csv' from the first data lines of the spooled file."""
    opener = _OPENERS.get(compression, open)
    try:
        with opener(path, "rb") as f:
            lines = [f.readline(1 << 16) for _ in range(_SNIFF_LINES)]
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise InputError(f"standard input: the compressed stream is truncated or corrupt ({exc})") from None
    for line in lines:
        text = line.decode("utf-8", "replace").strip()
        if not text or text.startswith("#"):
            continue
        tokens = text.split()
        if "," in text:  # never in a libsvm line
            return "csv"
        if len(tokens) > 1 and all(":" in t for t in tokens[1:]):
            return "libsvm"
        if "\t" in text:
            return "csv"
        if len(tokens) > 1:
            break
    raise InputError("cannot tell whether standard input is libsvm or CSV from its first lines: "
                     "pass --format libsvm or --format csv")
