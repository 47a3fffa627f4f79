"""The model directory's lock: one trainer at a time."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pathlib
from typing import Iterator

from streamfm.errors import InputError

LOCK = ".lock"


@contextlib.contextmanager
def exclusive_lock(path: pathlib.Path) -> Iterator[int]:
    """Hold ``path/.lock`` exclusively (the directory must exist); yields the file descriptor.

    ``fcntl.flock``, non-blocking.  The kernel releases it when the ``with``
    block ends and also when the process dies, even by ``kill -9``: a stale
    lock cannot outlive its holder, which a pid file could.  The holder's pid
    is written into the file for the error message only.

    Raises
    ------
    InputError
        Another process holds the lock.
    """
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            pid = holder if holder.isdigit() else "unknown"
            raise InputError(
                f"model directory {path} is in use by another trainer (pid {pid}); "
                "wait for it to finish or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield fd
    finally:
        os.close(fd)  # the last descriptor closed releases the flock
