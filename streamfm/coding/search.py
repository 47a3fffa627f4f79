"""Nearest-anchor candidates from a FAISS index that is rebuilt as anchors move.

``AnchorIndex`` is one FAISS index over a set of anchors. ``AnchorSearch``
is a model's search over its training: the index, the anchors it was built
from, the IVF's list centroids and how often they were reused, when the next
rebuild is due, and how wide the search scans; ``SearchState`` is its part of
the model's state. The index is searched once per block of rows for K
candidates per row; the training kernel recomputes exact distances from the
current anchors, so staleness only costs accuracy when the true nearest
anchor falls out of the candidates. ``count_misses`` measures exactly that
on a few rows per block.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Below this many anchors the exact flat index is used; from here on an
# inverted-file index (IVF), whose cost per row grows about as sqrt(m):
# ~2 sqrt(m) lists, of which ``nprobe`` are scanned (~4 sqrt(m) anchors). On
# 2 cores with one FAISS thread (4,096 Covtype-shaped rows, K = 32, 54
# dimensions) an IVF over 64-128 lists searched m = 4,096 anchors in about
# half the flat index's time and found every nearest anchor; 256 lists were
# faster still but missed some. An IVF build trains its lists, a k-means of
# the anchors (see IVF_RETRAIN for how often). An HNSW graph searched slower
# than the IVF, built 5-10x slower and missed more nearest anchors.
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
    "flat" or "ivf". ``nprobe``: lists an IVF scans (None: NPROBE).

    An approximate index can miss a row's nearest anchor where the data have
    little cluster structure (on isotropic Gaussian anchors in 54 dimensions
    an IVF scanning 8 of 64 lists missed a third of them). The model checks
    real rows against a brute-force search after every block
    (``count_misses``) and, on a miss, calls :meth:`widen`, which doubles the
    lists scanned, up to all of them (exact).
    """

    def __init__(self, n_candidates: int, kind: str = "auto", nprobe: int | None = None):
        if kind not in ("auto", "flat", "ivf"):
            raise ValueError(f"kind must be auto, flat or ivf, got {kind!r}")
        self.K = int(n_candidates)
        self.kind = kind
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
        else:
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
        index.add(zf)
        self.index = index

    @property
    def approximate(self) -> bool:
        """True while a search can miss a nearest anchor that an exact one finds."""
        return self.index is not None and hasattr(self.index, "nprobe") and self.index.nprobe < self.index.nlist

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


# rows at the end of each block whose candidates are checked for misses
MISS_CHECK_ROWS = 32


@dataclass
class SearchState:
    """What a model's search needs to continue exactly: a resumed run searches the same candidates.

    In a model directory's manifest the numbers are ``rows_since_rebuild``,
    ``search_nprobe`` and ``ivf_uses`` and the arrays ``index_Z`` and
    ``ivf_centroids`` (:meth:`meta`, :meth:`arrays`).
    """

    rows_since_rebuild: int = 0  # rows trained since the last scheduled rebuild
    nprobe: int = 0  # IVF lists scanned, widened on misses (0: the index's default)
    ivf_uses: int = 0  # anchor snapshots indexed with ``centroids``
    snapshot: np.ndarray | None = None  # the anchors the index was built from
    centroids: np.ndarray | None = None  # the IVF's list centroids, reused by rebuilds

    def meta(self) -> dict:
        return {"rows_since_rebuild": self.rows_since_rebuild, "search_nprobe": self.nprobe,
                "ivf_uses": self.ivf_uses}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        if self.snapshot is not None:
            out["index_Z"] = self.snapshot
        if self.centroids is not None:
            out["ivf_centroids"] = self.centroids
        return out

    @classmethod
    def from_manifest(cls, meta: dict, arrays: dict) -> "SearchState":
        centroids = arrays.get("ivf_centroids")
        return cls(rows_since_rebuild=int(meta["rows_since_rebuild"]), nprobe=int(meta.get("search_nprobe", 0)),
                   ivf_uses=int(meta.get("ivf_uses", 0)) if centroids is not None else 0,
                   snapshot=arrays.get("index_Z"), centroids=centroids)

    @classmethod
    def merged(cls, states) -> "SearchState":
        """The search after a merge of workers' models: the averaged anchors are new points, so no
        snapshot and no lists (the next search rebuilds and trains new ones); an IVF widened by any
        worker's misses stays widened."""
        return cls(nprobe=max(s.nprobe for s in states))


class AnchorSearch:
    """The candidate search of one model over its training.

    The index is built from a snapshot of the anchors, taken at a scheduled
    rebuild every ``rebuild_every`` rows when the anchors are learned
    (``moving``); training that moves the anchors meanwhile does not change
    what a search returns, so a block's candidates are those of one search of
    its rows, however the rows are cut into parts. An IVF's list centroids are
    reused by later rebuilds and retrained every ``IVF_RETRAIN`` snapshots.
    After a block, :meth:`check` compares a few rows' candidates with a brute
    force over the current anchors and, on a miss, widens an approximate
    search for good. A FAISS index does not pickle: a pickled search rebuilds
    it from its snapshot on first use.
    """

    def __init__(self, n_candidates: int, rebuild_every: int, *, moving: bool):
        self.n_candidates = int(n_candidates)
        self.rebuild_every = int(rebuild_every)
        self.moving = moving
        self.index: AnchorIndex | None = None
        self.snapshot: np.ndarray | None = None
        self.centroids: np.ndarray | None = None
        self.ivf_uses = 0
        self.rows_since_rebuild = 0
        self.nprobe = 0

    def reset(self) -> None:
        """The anchors were replaced: the next search indexes them afresh."""
        self.index = self.snapshot = None

    def block_rows(self, rows_left: int) -> int:
        """Rows of the next block (at most ``rows_left``), starting the due rebuild first.

        Blocks end where a rebuild is due, counted in rows since the last one,
        so the result does not depend on how the stream was chunked.
        """
        if not self.moving:
            return rows_left
        if self.rows_since_rebuild >= self.rebuild_every:
            self.reset()  # anchors moved: rebuild before searching
            self.rows_since_rebuild = 0
        return min(rows_left, self.rebuild_every - self.rows_since_rebuild)

    def trained(self, rows: int) -> None:
        """``rows`` more rows were trained with the current index."""
        self.rows_since_rebuild += rows

    def current(self, Z: np.ndarray) -> AnchorIndex:
        """The index to search, built first when there is none (a scheduled rebuild snapshots ``Z``;
        a resumed run or a merge builds from its saved snapshot)."""
        if self.index is None:
            fresh = self.snapshot is None  # a scheduled rebuild, not a resumed run's or a merge's
            if fresh:
                self.snapshot = Z.copy()
                if self.ivf_uses >= IVF_RETRAIN:
                    self.centroids = None
            self.index = AnchorIndex(self.n_candidates, nprobe=self.nprobe or None)
            self.index.rebuild(self.snapshot, centroids=self.centroids)
            if self.index.centroids is None:
                self.centroids, self.ivf_uses = None, 0
            elif self.index.trained:
                self.centroids, self.ivf_uses = self.index.centroids, 1
            elif fresh:
                self.ivf_uses += 1
        return self.index

    def index_of(self, Z: np.ndarray) -> AnchorIndex:
        """A new index over the anchors ``Z`` as they are now (predictions), scanning as widely as
        this search; the training index keeps its own schedule."""
        index = AnchorIndex(self.n_candidates, nprobe=self.nprobe or None)
        index.rebuild(Z)
        return index

    def check(self, phi: np.ndarray, cand: np.ndarray, Z: np.ndarray) -> tuple[int, int]:
        """(misses, rows checked) among a block's last rows; a miss of an approximate search widens it.

        The block's last rows saw the most-moved anchors: the worst case. No
        check when every anchor is a candidate.
        """
        if cand.shape[1] >= Z.shape[0]:
            return 0, 0
        chk = slice(max(0, len(phi) - MISS_CHECK_ROWS), len(phi))
        misses = count_misses(phi[chk], cand[chk], Z)
        if misses and self.index is not None and self.index.approximate:
            # scan more of the index from now on (kept in the state, so a resumed run does the same)
            self.nprobe = self.index.widen()
        return misses, len(phi[chk])

    # ------------------------------------------------------------- state
    def state(self) -> SearchState:
        return SearchState(self.rows_since_rebuild, self.nprobe, self.ivf_uses, self.snapshot, self.centroids)

    def restore(self, state: SearchState) -> None:
        """Continue from ``state``, keeping the built index when it was built as the state's would be
        (the same snapshot, lists and width); otherwise the next search rebuilds from the state's
        snapshot, or, without one (a merge), from the anchors as they are then."""
        self.rows_since_rebuild = int(state.rows_since_rebuild)
        if state.nprobe != self.nprobe:
            self.index = None  # searched with other settings
            self.nprobe = int(state.nprobe)
        if state.snapshot is None:
            self.reset()
        elif self.snapshot is None or not np.array_equal(self.snapshot, state.snapshot):
            self.index, self.snapshot = None, np.array(state.snapshot)
        c = state.centroids
        if (c is None) != (self.centroids is None) or (c is not None and not np.array_equal(c, self.centroids)):
            self.index = None  # routed by other lists: rebuild with the state's
        self.centroids = None if c is None else np.array(c)
        self.ivf_uses = int(state.ivf_uses) if c is not None else 0

    def __getstate__(self):
        state = self.__dict__.copy()
        state["index"] = None
        return state
