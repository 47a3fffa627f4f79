"""FAISS, imported once and run on one thread.

streamfm's FAISS work is small (k-means on a sample of ~10^4 rows, searches
of a few thousand rows against ~10^2..10^4 anchors) and runs beside the
training kernel and the prefetch thread. FAISS's OpenMP threads are then
pure loss: measured on 2 cores, k-means and flat search ran 2-15x slower
with 2 OpenMP threads than with 1, and the OpenMP reductions make k-means
depend on the thread count. One thread: faster here, and the same anchors
on every machine.
"""


def faiss():
    import faiss as _faiss

    if _faiss.omp_get_max_threads() != 1:
        _faiss.omp_set_num_threads(1)
    return _faiss
