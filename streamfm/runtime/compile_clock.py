"""Time spent compiling numba kernels (or loading them from numba's disk cache), to leave out of rows/s.

numba announces every compilation on its event bus: the global compiler
lock is held, as the event ``numba:compiler_lock``, from the start of a
dispatcher's compile (a cache lookup first) to its end. :class:`CompileClock`
listens to that event while it is open and adds up the time (nested events
once), so the training loop can subtract it from an epoch's time: epoch 1
of a first run then reports the rows/s of training, not of compiling.
Anything that raises the event counts; a test can raise it around a slow
call to stand for a compilation.
"""
from __future__ import annotations

import threading
import time

import numba.core.event as numba_event

#: the numba event that spans a compilation (including a disk-cache load)
COMPILE_EVENT = "numba:compiler_lock"


class CompileClock(numba_event.Listener):
    """Seconds spent inside ``numba:compiler_lock`` events while the clock is open (a context manager)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._since = 0.0
        self._seconds = 0.0

    @property
    def seconds(self) -> float:
        """Compile time so far, including a compilation in progress."""
        with self._lock:
            running = time.perf_counter() - self._since if self._depth else 0.0
            return self._seconds + running

    def on_start(self, event) -> None:
        with self._lock:
            if self._depth == 0:
                self._since = time.perf_counter()
            self._depth += 1

    def on_end(self, event) -> None:
        with self._lock:
            self._depth = max(self._depth - 1, 0)
            if self._depth == 0:
                self._seconds += time.perf_counter() - self._since

    def __enter__(self) -> "CompileClock":
        numba_event.register(COMPILE_EVENT, self)
        return self

    def __exit__(self, *exc) -> bool:
        numba_event.unregister(COMPILE_EVENT, self)
        return False
