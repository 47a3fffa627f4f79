""""compiling kernels (first run only)": said when numba has to compile the kernels a command calls.

numba compiles a kernel on its first call and keeps the result on disk
(``cache=True``), so only the first run after installing (or after a kernel's
source changed) spends a minute or more compiling. The signal is numba's own
cache index of a kernel: it holds no entry for the kernel's current source
(the index is keyed by the source file's modification time and size). That
is one small file read per kernel, through numba's cache internals; should
they change, the check says nothing rather than fail.
"""
from __future__ import annotations

import sys

COMPILING = "compiling kernels (first run only)"


def cache_is_cold(dispatcher) -> bool:
    """Whether a ``cache=True`` numba dispatcher has nothing cached on disk for its current source."""
    try:
        return not dispatcher._cache._cache_file._load_index()
    except Exception:  # numba internals moved, or no cache: say nothing
        return False


def note_compiling(quiet: bool, kernels: tuple[str, ...]) -> bool:
    """Print :data:`COMPILING` to standard error (not with ``quiet``) if the cache of one of
    ``kernels`` (names in ``kernels/llfm.py``: the entry points the command calls for sure, so a run
    that skips one does not announce a compilation that never comes) is cold; returns whether it was
    printed."""
    if quiet:
        return False
    from streamfm.kernels import llfm

    if any(cache_is_cold(getattr(llfm, name)) for name in kernels):
        print(COMPILING, file=sys.stderr, flush=True)
        return True
    return False
