"""Nearest-anchor candidates from a FAISS index that is rebuilt as anchors move.

The index is searched once per chunk for K candidates per row; the training
kernel recomputes exact distances from the current anchors, so staleness
only costs accuracy when the true nearest anchor falls out of the
candidates. ``count_misses`` measures exactly that on a few rows per chunk.
"""
import numpy as np

# Below this many anchors the exact flat index is used; from here on an
# inverted-file index (IVF), whose cost per row grows about as sqrt(m):
# ~2 sqrt(m) lists, of which ``nprobe`` are scanned (~4 sqrt(m) anchors).
# Measured on this 2-core machine (one FAISS thread, 4,096 Covtype-shaped
# rows, K = 32, 54 dimensions): at m = 1,024 flat 10.6-11.8 us a row, IVF
# over 32 lists 4.8-8.9, over 64 lists 4.9; at m = 4,096 flat 21-23 us, IVF
# over 64 lists 10-15, over 128 lists 9-9.4, with no nearest anchor missed
# and the 16 nearest all found (256 lists: 7 us, but 0.02% of nearest
# anchors missed). Inside training, 128 lists against 64 took 8% off
# llfm-jo's time per row at m = 4,096 (session 5). An IVF build trains its
# lists, a k-means of the anchors (see IVF_RETRAIN for how often). HNSW
# (M = 16-32, efSearch 32-64) searched at 12-27 us a
# row, its build took 5-10x the IVF's, and it missed 0.4-2.5% of nearest
# anchors; it stays available as kind="hnsw". (Timed by hand with FAISS
# 1.15 on a noisy machine: the ratios, not the microseconds, are the point.)
IVF_FROM = 1024
NPROBE = 8
# Training an IVF's lists (a k-means of the anchors; 10 iterations balance
# them: with 1-3, a search over unstructured anchors took 1.4-1.6x longer) is
# most of a rebuild: at m = 4,096, 14 ms of 15.4, against 1.7 ms to route the
# anchors into lists already trained, every 8,192 rows. So a rebuild reuses
# the list centroids of an earlier one, retraining them every IVF_RETRAIN
# rebuilds: anchors move little in between, and the centroids only route the
# search (a route gone stale shows as misses, which widen the search).
IVF_RETRAIN = 8


def ivf_lists(m: int) -> int:
    """Inverted lists for m anchors: ~2 sqrt(m), so ``NPROBE`` probes scan ~4 sqrt(m) anchors."""
    return int(max(8, round(2 * np.sqrt(m))))


class AnchorIndex:
    """K-nearest-anchor search over anchors ``Z`` (m, q).

    kind: "auto" (all anchors when m <= K, flat when m < IVF_FROM, else IVF),
    "flat", "ivf" or "hnsw". ``nprobe``: lists an IVF scans (None: NPROBE).

    An approximate index can miss a row's nearest anchor where the data have
    little cluster structure (on isotropic Gaussian anchors in 54 dimensions
    an IVF scanning 8 of 64 lists missed a third of them). The model checks
    real rows against a brute-force search after every block
    (``count_misses``) and, on a miss, calls :meth:`widen`, which doubles the
    lists scanned, up to all of them (exact).
    """

    def __init__(self, n_candidates: int, kind: str = "auto", hnsw_m: int = 32, nprobe: int | None = None):
        self.K = int(n_candidates)
        self.kind = kind
        self.hnsw_m = hnsw_m
        self.nprobe = int(nprobe or NPROBE)
        self.index = None
        self.m = 0
        self.rebuilds = 0
        self.centroids = None  # an IVF's list centroids (nlist, q) float32, else None
        self.trained = False  # True when the last rebuild trained them, not when it was given them

    def rebuild(self, Z: np.ndarray, centroids: np.ndarray | None = None) -> None:
        """Index the anchors ``Z`` (m, q).

        ``centroids``: an IVF's list centroids from an earlier rebuild
        (:attr:`centroids`) to route with instead of training new ones; used
        only when an IVF is built and their shape fits it.
        """
        from ._faiss import faiss as _load
        faiss = _load()

        m, q = Z.shape
        self.m = m
        self.rebuilds += 1
        self.centroids, self.trained = None, False
        if m <= self.K and self.kind == "auto":
            self.index = None  # every anchor is a candidate: no search needed
            return
        zf = np.ascontiguousarray(Z, dtype=np.float32)
        kind = self.kind if self.kind != "auto" else ("flat" if m < IVF_FROM else "ivf")
        if kind == "flat":
            index = faiss.IndexFlatL2(q)
        elif kind == "ivf":
            nlist = min(ivf_lists(m), m)
            quantizer = faiss.IndexFlatL2(q)
            reuse = centroids is not None and centroids.shape == (nlist, q)
            if reuse:
                # trained lists: the IVF is ready once its quantizer holds them
                quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
            index = faiss.IndexIVFFlat(quantizer, q, nlist)
            if not reuse:
                # the lists are a k-means of the anchors themselves: a few
                # iterations suffice (they only route the search), seeded so that
                # the same anchors give the same index (a resumed run searches as
                # the uninterrupted one did); FAISS's "too few points per
                # centroid" advice is for data, not for routing
                index.cp.niter = 10
                index.cp.seed = 1234
                index.cp.min_points_per_centroid = 1
                index.train(zf)
                self.trained = True
            self.centroids = quantizer.reconstruct_n(0, nlist)
            self.nprobe = min(self.nprobe, nlist)
            index.nprobe = self.nprobe
        else:
            index = faiss.IndexHNSWFlat(q, self.hnsw_m)
            index.hnsw.efConstruction = 64
            index.hnsw.efSearch = max(2 * self.K, 64)
        index.add(zf)
        self.index = index

    @property
    def approximate(self) -> bool:
        """True while a search can miss a nearest anchor that an exact one finds."""
        if self.index is None:
            return False
        if hasattr(self.index, "nprobe"):
            return self.index.nprobe < self.index.nlist
        return "HNSW" in type(self.index).__name__

    def widen(self) -> int:
        """Scan twice as many IVF lists from now on (up to all: exact); returns the new nprobe."""
        if self.index is not None and hasattr(self.index, "nprobe"):
            self.nprobe = min(2 * self.nprobe, self.index.nlist)
            self.index.nprobe = self.nprobe
        return self.nprobe

    def search(self, phi: np.ndarray) -> np.ndarray:
        """Candidate anchor ids (n, min(K, m)) int64, nearest first; -1 pads."""
        n = phi.shape[0]
        if self.index is None:
            return np.broadcast_to(np.arange(self.m, dtype=np.int64), (n, self.m)).copy()
        from ._faiss import faiss as _load
        _load()  # this thread's FAISS on one OpenMP thread (a helper thread may search)
        _, ids = self.index.search(np.ascontiguousarray(phi, dtype=np.float32), min(self.K, self.m))
        return ids.astype(np.int64, copy=False)


def count_misses(phi: np.ndarray, cand: np.ndarray, Z: np.ndarray) -> int:
    """Rows whose true nearest anchor (brute force, current Z) is not among ``cand``.

    The brute force is FAISS's (one matrix product on its one thread, in
    float32 like the index it checks). NumPy's ``phi @ Z.T`` ran on
    OpenBLAS's threads, which spin between calls: from 1,024 anchors on,
    where OpenBLAS splits this product, a check every block kept a second
    core busy for the whole run, the core the prefetch thread reads on
    (measured on 2 cores). A flat index's search would not multiply: below
    FAISS's threshold of queries it takes the distances one by one (1.4-1.6
    ms against 0.55 for 32 rows and 4,096 anchors).
    """
    from ._faiss import faiss as _load
    faiss = _load()

    d = faiss.pairwise_distances(np.ascontiguousarray(phi, dtype=np.float32),
                                 np.ascontiguousarray(Z, dtype=np.float32))
    nearest = d.argmin(1)
    return int((cand != nearest[:, None]).all(1).sum())
