"""FAISS, imported once, run on one thread, without its per-query GIL checks.

streamfm's FAISS work is small (k-means on a sample of ~10^4 rows, searches
of a few thousand rows against ~10^2..10^4 anchors) and runs beside the
training kernel and the prefetch thread. FAISS's OpenMP threads are then
pure loss: measured on 2 cores, k-means and flat search ran 2-15x slower
with 2 OpenMP threads than with 1, and the OpenMP reductions make k-means
depend on the thread count. One thread: faster here, and the same anchors
on every machine. OpenMP keeps that setting per thread: a thread that has not
set it runs FAISS on as many OpenMP threads as there are cores (a helper
thread searched with 2 here, spinning on the core the kernel trained on), so
every FAISS call goes through :func:`faiss` in the thread that makes it.

FAISS's Python module also installs an interrupt callback that, during a
search, takes the GIL to check for Ctrl-C: an IVF search does so for every
query. While another Python thread holds the GIL (the trainer's reading
thread, a second search thread), each check waits for it, up to Python's
5 ms switch interval: 8,192 IVF queries took 41 s beside a busy Python
thread, against 0.14 s with the callback cleared (FAISS 1.15, measured
here). So the callback is cleared on import. During training Ctrl-C only
sets a flag that the trainer polls between chunks (runtime/signals.py), which
the callback could not act on anyway; a search returns within milliseconds.
The one long FAISS call, the k-means of the initial anchors, runs inside
:func:`interruptible`, which puts the callback back while it runs.
"""
from contextlib import contextmanager

_callback_cleared = False


def faiss():
    """The faiss module, set to one OpenMP thread in the calling thread."""
    global _callback_cleared
    import faiss as _faiss

    if _faiss.omp_get_max_threads() != 1:
        _faiss.omp_set_num_threads(1)
    if not _callback_cleared:
        _faiss.InterruptCallback.clear_instance()
        _callback_cleared = True
    return _faiss


@contextmanager
def interruptible():
    """FAISS calls inside the block stop on Ctrl-C (FAISS's own callback, for long calls only)."""
    f = faiss()
    f.PythonInterruptCallback.reset()
    try:
        yield f
    finally:
        f.InterruptCallback.clear_instance()
