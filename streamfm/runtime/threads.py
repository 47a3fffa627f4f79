"""The process's named thread pools, made once and reused by every block of training.

The pipelined search (a helper thread searches the next rows while the kernel
trains) and Hogwild training (parts of a block trained at once) submit work
for every block: their threads are kept, not started per block.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

_POOLS: dict[tuple[str, int], ThreadPoolExecutor] = {}
# a forked child inherits the pools but not their threads: work submitted there
# would wait forever, so the child starts without pools and makes its own
os.register_at_fork(after_in_child=_POOLS.clear)


def pool(threads: int, name: str) -> ThreadPoolExecutor:
    """The pool of ``threads`` worker threads called ``name`` (made on first use)."""
    found = _POOLS.get((name, threads))
    if found is None:
        found = _POOLS[name, threads] = ThreadPoolExecutor(threads, thread_name_prefix=f"streamfm-{name}")
    return found
