"""Crash-safe file writes: write elsewhere, fsync, rename, fsync the directory.

A reader (or a restarted process) sees either the old file or the complete
new one, never a half-written file, whatever instant the writer dies at:

1. the data go to a temporary file in the *same* directory (``os.replace``
   is atomic only within one file system);
2. the temporary file is fsynced, so its data are on disk before its name is;
3. ``os.replace`` swaps the name in atomically;
4. the directory is fsynced, so the rename itself survives a power loss.

Temporary names are hidden (``.preds.tmp-<pid>-<hex>.parquet``): a data set
read as "every file in this directory" skips hidden files, so a leftover of
a crash is never mistaken for data.  They keep the target's suffix, for
writers that pick a format from it.  Each temporary name is unique, so two
writers of the same path cannot write into one temporary file; the last
``os.replace`` wins.  The pid in the name says whose it is: a writer about to
write beside a target removes the leftovers of writers that are dead
(:func:`remove_dead_temporaries`).  Temporary files are created like any
file (the user's umask applies), so the output they become does too.
"""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import secrets
import shutil
from typing import Any, Iterator

import numpy as np

from streamfm.errors import DiskFullError, is_disk_full

__all__ = [
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_json",
    "dumps_json",
    "fsync_dir",
    "fsync_path",
    "remove_dead_temporaries",
    "temporary_path",
    "write_and_fsync",
]


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a directory's entries (creations, renames, deletions) to disk.

    Parameters
    ----------
    path : str or os.PathLike
        The directory.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file that was written (and closed) by someone else to disk.

    Used when a third-party writer (pyarrow, np.save to a path) closed the
    file without fsyncing it.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_and_fsync(fd: int, data: bytes) -> None:
    """Write all of ``data`` to an open file descriptor, then fsync the file.

    ``os.write`` may write less than it was given (a signal, a nearly full disk):
    it is called again for the rest until everything is written.

    Parameters
    ----------
    fd : int
        A file descriptor open for writing.
    data : bytes-like
    """
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)


def _json_default(obj: Any) -> Any:
    # Manifests and metrics are built from numpy results: accept numpy
    # scalars and small arrays rather than making every caller convert.
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot write a {type(obj).__name__} as JSON: {obj!r}")


def dumps_json(obj: Any, *, indent: int | None = 2) -> str:
    """Serialise ``obj`` to JSON, accepting numpy scalars and arrays.

    Parameters
    ----------
    obj : object
        Dicts, lists, strings, numbers, booleans, None, numpy scalars and
        arrays, paths.
    indent : int or None, default 2
        Passed to :func:`json.dumps`; None gives one line.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        If ``obj`` holds something JSON cannot represent.

    Examples
    --------
    >>> dumps_json({"step": np.int64(3), "loss": np.float32(0.5)}, indent=None)
    '{"step": 3, "loss": 0.5}'
    """
    # NaN is allowed (Python's json reads it back): a diverged run's last
    # loss must not make its checkpoint or metrics impossible to write.
    return json.dumps(obj, indent=indent, default=_json_default, ensure_ascii=False)


def temporary_path(target: str | os.PathLike) -> pathlib.Path:
    """A hidden, unique temporary name beside ``target``: ``.stem.tmp-<pid>-<hex>.suffix``.

    Same directory (so a rename is atomic), keeps the suffix (".preds.csv.gz"
    -> stem "preds.csv", suffix ".gz").
    """
    target = pathlib.Path(target)
    token = f"tmp-{os.getpid()}-{secrets.token_hex(4)}"
    return target.with_name(f".{target.stem}.{token}{target.suffix}")


#: a temporary name of :func:`temporary_path` (files) or of ``convert`` (directories): its pid
_TEMP_RE = re.compile(r"\A\..*\.tmp-(\d+)-[0-9a-f]{8}(\.[^/]*)?\Z")


def pid_alive(pid: int) -> bool:
    """Whether a process of that id runs on this machine (one of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_temporaries(directory: str | os.PathLike) -> list[str]:
    """Remove the temporary files and directories in ``directory`` whose writer (the pid in the
    name) is dead: what a killed ``predict -o`` or ``convert`` left.  Returns their names."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = _TEMP_RE.match(name)
        if m is None or pid_alive(int(m.group(1))):
            continue
        path = os.path.join(directory, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed.append(name)
        except OSError:  # gone meanwhile, or not ours to remove
            continue
    return removed


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Write a file under a temporary name; commit it atomically on success.

    The caller writes the file at the yielded path by any means (a
    ``ParquetWriter``, ``open``, ``np.save``) and closes it inside the
    ``with`` block.  On a normal exit the file is fsynced and renamed over
    ``path`` and the directory is fsynced.  On an exception the temporary
    file is removed and ``path`` is untouched.

    Parameters
    ----------
    path : str or os.PathLike
        The final file.  Its directory must exist.

    Yields
    ------
    pathlib.Path
        Where to write.

    Examples
    --------
    >>> import tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_output(d / "preds.csv") as tmp:
    ...     _ = tmp.write_text("0.25\\n")
    >>> (d / "preds.csv").read_text()
    '0.25\\n'
    """
    target = pathlib.Path(path)
    tmp = temporary_path(target)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException:
        # KeyboardInterrupt too: nothing half-written is left behind.
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Parameters
    ----------
    path : str or os.PathLike
        The final file.  Its directory must exist.
    data : bytes-like
        The whole new content.
    """
    try:
        with atomic_output(path) as tmp:
            # O_EXCL: the unique temporary name must not exist yet.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                write_and_fsync(fd, data)
            finally:
                os.close(fd)
    except OSError as exc:
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise DiskFullError(f"no space left on device while writing {path}: it needs {len(data):,} bytes; "
                                "the previous version of the file is kept") from None
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> None:
    """Replace ``path`` with ``obj`` as JSON, atomically and durably.

    ``obj`` is serialised before anything is written, so an object JSON
    cannot represent raises :class:`TypeError` and leaves ``path`` untouched.

    Parameters
    ----------
    path : str or os.PathLike
        The final file.  Its directory must exist.
    obj : object
        See :func:`dumps_json`.
    indent : int or None, default 2
        Passed to :func:`json.dumps`.
    """
    text = dumps_json(obj, indent=indent) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))
