"""Run a generator one step ahead in a background thread (reading overlaps training).

The trainer's stream (read a file, decode, shuffle, standardise) is NumPy,
pyarrow and numba work that mostly releases the GIL, as does the training
kernel (``nogil=True``): with a second core, a thread that prepares the next
chunks while the kernel trains on the current one hides most of the reading
cost. Items come out in exactly the order the generator makes them, so
training is unchanged (and deterministic); an exception raised by the
generator is raised in the consumer at the item where it happened.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator

_DONE = object()


class Prefetch:
    """``with Prefetch(items, depth) as it: for x in it: ...``

    At most ``depth`` items are made ahead of the consumer (memory: ``depth``
    chunks). ``depth=0`` iterates in the calling thread. Leaving the block
    early (break, return, exception) stops the thread and drops what it made
    ahead.
    """

    def __init__(self, items: Iterable, depth: int = 2):
        self._items = items
        self.depth = int(depth)
        self._queue: queue.Queue | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put((True, item)):
                    return
        except BaseException as exc:  # delivered to the consumer, in order
            self._put((False, exc))
            return
        self._put((True, _DONE))

    def _put(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __enter__(self) -> Iterator:
        if self.depth <= 0:
            return iter(self._items)
        self._queue = queue.Queue(maxsize=self.depth)
        self._thread = threading.Thread(target=self._run, name="streamfm-prefetch", daemon=True)
        self._thread.start()
        return self._consume()

    def _consume(self) -> Iterator:
        while True:
            ok, item = self._queue.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item

    def __exit__(self, *exc) -> None:
        if self._thread is None:
            return
        self._stop.set()
        # unblock a producer waiting on a full queue, then wait for it
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()
        close = getattr(self._items, "close", None)
        if close is not None:
            close()
