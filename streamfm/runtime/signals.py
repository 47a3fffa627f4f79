"""Stop a long run cleanly on SIGINT/SIGTERM: finish the chunk, checkpoint, exit.

A ``KeyboardInterrupt`` raised in the middle of an SGD step would leave the
parameters half-updated; the trainer would have to throw the step away and
the user loses everything since the last periodic checkpoint.  Instead,
:class:`GracefulStop` turns the signal into a flag that the trainer polls
between chunks (numba kernels do not run Python signal handlers anyway; the
handler runs once control is back in Python).  A second Ctrl-C means the
user insists: it raises ``KeyboardInterrupt`` at once.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Callable

__all__ = ["GracefulStop"]


class GracefulStop:
    """Context manager turning SIGINT and SIGTERM into a polled flag.

    While active, the first SIGINT or SIGTERM sets :attr:`requested` and
    :attr:`signal_name`; any SIGINT after that raises ``KeyboardInterrupt``
    (a second SIGTERM only keeps the flag set: supervisors send it
    repeatedly and expect a clean stop).  On exit the previous handlers are
    restored.  Handlers can only be installed in the main thread; elsewhere
    the manager does nothing and :attr:`active` is False.

    Parameters
    ----------
    on_request : callable, optional
        Called with the signal's name (``"SIGINT"``) on the first signal,
        e.g. to tell the user a final checkpoint is being written.  It runs
        in a signal handler: keep it short.

    Attributes
    ----------
    requested : bool
        A stop was requested.
    signal_name : str or None
        The first signal received.
    active : bool
        Handlers are installed (inside the ``with`` block, main thread).

    Examples
    --------
    >>> import os
    >>> with GracefulStop() as stop:
    ...     os.kill(os.getpid(), signal.SIGTERM)
    ...     while not stop.requested:  # the trainer: between chunks
    ...         pass
    >>> stop.signal_name
    'SIGTERM'
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_request: Callable[[str], None] | None = None):
        self.on_request = on_request
        self.requested = False
        self.signal_name: str | None = None
        self.active = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "GracefulStop":
        self.requested = False
        self.signal_name = None
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        self.active = True
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, previous in self._previous.items():
            # None: the previous handler was not installed from Python and
            # cannot be reinstalled; the default is the closest.
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()
        self.active = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.requested:
            return
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        if self.on_request is not None:
            self.on_request(self.signal_name)
