"""The learning core: a model state and what trains and evaluates it on chunks.

No engine, no file format and no estimator API here: ``LLFMModel`` takes
standardised ``Chunk``s and integer/float targets. The estimators, the
streaming trainer and the Ray engine all drive this one object.
"""
from __future__ import annotations

import os

import numpy as np

from ..coding.anchors import coding_scale, kmeans_anchors
from ..coding.search import IVF_RETRAIN, AnchorIndex, count_misses
from ..coding.space import coding_dim, coding_vectors
from ..errors import DivergenceError
from ..kernels.llfm import (METHOD_CODES, N_STATS, OPTIMIZER_CODES, ST_K_SUM, ST_WANTED_MORE, FM, DO,
                            predict_rows, train_rows)
from ..kernels.losses import BINARY, OVR, SOFTMAX, SQUARED
from .config import Config

PARAM_NAMES = ("b", "W", "V", "Z")
ADAGRAD_NAMES = ("Ab", "AW", "AV")
# training rows in which each feature is stored: sets the L2 weight of a touch (kernels/llfm.py)
FEATURE_ROWS = "feature_rows"
# rows per block between index searches, and rows checked for misses per block
MISS_CHECK_ROWS = 32
# rows per FAISS search when one thread trains: the search of the next rows
# runs on a helper thread meanwhile (FAISS and the kernel release the GIL).
# A block's first search has nothing to hide behind, so the searches start
# at SEARCH_FIRST rows and double up to SEARCH_ROWS.
SEARCH_FIRST = 128
SEARCH_ROWS = 1024
DEFAULT_T0 = 10_000


def task_code(task: str, multiclass: str) -> int:
    if task == "binary":
        return BINARY
    if task == "regression":
        return SQUARED
    return SOFTMAX if multiclass == "softmax" else OVR


def initial_bias(task: str, multiclass: str = "softmax", *, label_mean: float | None = None,
                 class_counts=None) -> np.ndarray:
    """The outputs' starting value (C,): the best constant model. The label mean for a
    regression; the log odds of the positive class (binary) or of each class against the
    rest (one-vs-rest); the centred log class frequencies (softmax). ``class_counts``: rows
    per class, in the order of the outputs."""
    if task == "regression":
        return np.array([0.0 if label_mean is None else float(label_mean)])
    counts = np.asarray(class_counts, dtype=np.float64) + 0.5  # no infinite log of an absent class
    if task == "binary":
        return np.array([np.log(counts[1] / counts[0])])
    if multiclass == "ovr":
        return np.log(counts / (counts.sum() - counts))
    logf = np.log(counts / counts.sum())
    return logf - logf.mean()


_POOLS: dict = {}
# a forked child inherits the pools but not their threads: work submitted there
# would wait forever, so the child starts without pools and makes its own
os.register_at_fork(after_in_child=_POOLS.clear)


def _pool(threads: int, name: str = "hogwild"):
    """The process's pool of ``threads`` worker threads called ``name`` (made once, reused by every block)."""
    from concurrent.futures import ThreadPoolExecutor

    pool = _POOLS.get((name, threads))
    if pool is None:
        pool = _POOLS[name, threads] = ThreadPoolExecutor(threads, thread_name_prefix=f"streamfm-{name}")
    return pool


def _search_split(index: AnchorIndex, phi: np.ndarray, threads: int) -> np.ndarray:
    """``index.search(phi)`` as ``threads`` searches of contiguous row ranges at once.

    FAISS releases the GIL while it searches and every row's candidates are
    its own, so the result is the serial search's, row for row (tested); on
    2 cores the search took 0.65-0.75 of the time (measured on 8,192 rows
    against 4,096 anchors (IVF) and 64 anchors (flat), FAISS on one thread
    in each part).
    """
    cuts = np.linspace(0, len(phi), threads + 1).astype(np.int64)
    parts = [_pool(threads).submit(index.search, phi[cuts[k]:cuts[k + 1]]) for k in range(threads)]
    return np.concatenate([f.result() for f in parts])


def _searched_parts(index: AnchorIndex, phi: np.ndarray):
    """``(start, stop, candidates)`` for consecutive ranges of rows of ``phi`` (SEARCH_FIRST
    rows, doubling up to SEARCH_ROWS), each range searched on a helper thread while the
    caller works (trains, predicts) on the range before it.

    FAISS and the kernels release the GIL, and every row's candidates are its
    own: they are those of one search of all the rows. With 2 cores this
    hides most of the search: one epoch of llfm-jo on 100,000 dense rows,
    chunks in memory, 4 alternating rounds, fastest (median) us per row: at
    m = 4,096, 25.7 (29.0) searching each block at once, 22.4 (25.4) in
    parts of 1,024 rows, 18.6 (22.6) in parts from 128 up; at m = 64, 6.0
    (6.2), 5.0 (5.3) and 4.5 (5.2).
    """
    if len(phi) <= SEARCH_FIRST:
        yield 0, len(phi), index.search(phi)
        return
    pool = _pool(1, "search")
    cuts, size = [0], SEARCH_FIRST
    while cuts[-1] < len(phi):
        cuts.append(min(len(phi), cuts[-1] + size))
        size = min(2 * size, SEARCH_ROWS)
    ahead = pool.submit(index.search, phi[cuts[0]:cuts[1]])
    for j in range(len(cuts) - 1):
        cand = ahead.result()
        if j + 2 < len(cuts):
            ahead = pool.submit(index.search, phi[cuts[j + 1]:cuts[j + 2]])
        yield cuts[j], cuts[j + 1], cand


def _hogwild(method, task, indptr, indices, data, y, phi, cand, args, t_start, losses, ks, stats, threads):
    """train_rows on ``threads`` contiguous parts of a block at once (shared parameters, no locks).

    ``indices`` None: full-width rows (see kernels/llfm.py).
    """
    pool = _pool(threads)
    n = len(indptr) - 1
    cuts = np.linspace(0, n, threads + 1).astype(np.int64)
    part_stats = np.zeros((threads, len(stats)), dtype=stats.dtype)

    def part(k):
        lo, hi = cuts[k], cuts[k + 1]
        a, e = indptr[lo], indptr[hi]
        # step numbers as in the serial order, so the schedule is the same
        train_rows(method, task, indptr[lo:hi + 1] - a, None if indices is None else indices[a:e], data[a:e],
                   y[lo:hi], phi[lo:hi], cand[lo:hi], *args, t_start + int(lo), losses[lo:hi], ks[lo:hi],
                   part_stats[k])

    for f in [pool.submit(part, k) for k in range(threads)]:
        f.result()
    stats += part_stats.sum(0)


class LLFMModel:
    """Parameters, counters and the chunk-level train / predict of FM and LLFM.

    Parameters
    ----------
    config : Config
    n_features : int
        p, the width of x.
    task : {"binary", "multiclass", "regression"}
    n_classes : int
        C for multiclass; ignored otherwise (one output).
    """

    def __init__(self, config: Config, n_features: int, task: str, n_classes: int = 2):
        self.config = config.validate()
        self.p = int(n_features)
        self.task = task
        self.n_outputs = n_classes if task == "multiclass" else 1
        self.method = METHOD_CODES[config.method]
        self.q = 0 if self.method == FM else coding_dim(self.p)
        self.m = 1 if self.method == FM else config.anchors
        # a global FM beside the anchors' (kernels/llfm.py): its parameters follow theirs
        self.glob = self.method != FM and config.global_fm
        self.n_fms = self.m + self.glob
        self.coding_scale = 1.0
        self.t = 0  # optimiser step = rows trained on
        self.t0 = float(config.t0) if config.t0 > 0 else float(DEFAULT_T0)
        self.counters = {"rows": 0, "k_sum": 0, "wanted_more": 0, "miss_checks": 0, "misses": 0}
        self.params: dict[str, np.ndarray] = {}
        self.feature_rows: np.ndarray | None = None
        # a factor on every step (FM, its AdaGrad bound, anchors) that an engine averaging
        # several workers' updates sets; not part of the model's state
        self.step_scale = 1.0
        self._reg_cache = None
        self._index = None
        self._index_Z = None  # the anchors the current index was built from
        self._ivf_centroids = None  # the IVF's list centroids, reused by rebuilds (coding/search.py)
        self._ivf_uses = 0  # anchor snapshots indexed with them
        self._rows_since_rebuild = 0
        self.search_nprobe = 0  # IVF lists scanned, widened on misses (0: the index's default)

    # ---------------------------------------------------------------- set-up
    def init_params(self, mean_sq_norm: float | None = None, bias=0.0) -> None:
        """b = ``bias``, w = 0, V ~ N(0, sigma^2), seeded; anchors zero until ``init_anchors``.

        ``bias``: the outputs' starting value, a scalar or (C,) (the trainer
        starts a regression at the label mean and a classifier at the log
        odds of the class frequencies, so the first epochs do not spend
        their steps moving the bias).
        sigma = init_std (0.1, as the paper and libFM) for rows with
        E||x||^2 <= 10 (ten standardised features); larger rows get
        init_std * sqrt(10 / E||x||^2). The initial pairwise term has a
        standard deviation of about E||x||^2 * sqrt(r/2) * sigma^2: with a
        fixed 0.1 it is ~22 for 1,000 standardised features, which saturates
        the loss before the first step; scaled, it stays ~0.2.
        """
        rng = np.random.default_rng(self.config.seed)
        m, p, C, r = self.n_fms, self.p, self.n_outputs, self.config.rank
        sigma = self.config.init_std
        if mean_sq_norm is not None and mean_sq_norm > 10:
            sigma *= np.sqrt(10.0 / mean_sq_norm)
        b = np.zeros((m, C))
        b[:] = np.broadcast_to(np.asarray(bias, dtype=np.float64), (C,))
        self.params = {
            "b": b,
            "W": np.zeros((m, p, C)),
            "V": rng.normal(0.0, sigma, size=(m, p, C, r)),
            "Z": np.zeros((self.m, self.q)),
        }
        if self.config.optimizer == "adagrad":
            self.params.update(
                Ab=np.zeros((m, C)), AW=np.zeros((m, p, C)), AV=np.zeros((m, p, C, r))
            )

    def set_feature_rows(self, rows) -> None:
        """Training rows in which each feature is stored (after scaling): L2 weighs a feature's
        every touch by 1 / rows, so an epoch applies the penalty once (kernels/llfm.py).
        Until this is called, or for a feature seen in no row, L2 has no effect."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.shape != (self.p,):
            raise ValueError(f"feature_rows must have shape ({self.p},), got {rows.shape}")
        self.feature_rows = rows

    def init_anchors(self, sample_chunk) -> None:
        """k-means anchors and the coding scale from a (standardised) sample of rows."""
        if self.method == FM:
            return
        phi = self.coding_vectors(sample_chunk)
        Z = kmeans_anchors(phi, self.m, seed=self.config.seed)
        self.params["Z"][...] = Z
        self.coding_scale = coding_scale(phi, Z)
        self._index = self._index_Z = None

    def set_epoch_rows(self, n_rows: int) -> None:
        """With t0 = 0 (default), the step decays per epoch: eta_t = eta0 / (1 + t / n_rows)."""
        if self.config.t0 == 0 and n_rows > 0:
            self.t0 = float(n_rows)

    def coding_vectors(self, chunk) -> np.ndarray:
        if self.method == FM:
            return np.zeros((chunk.n_rows, 0))
        return coding_vectors(chunk.indptr, chunk.indices, chunk.data, self.p)

    # ------------------------------------------------------------- kernels
    def _kernel_args(self):
        P = self.params
        dummy = [np.zeros((1,) * d) for d in (2, 3, 4)]
        A = [P.get(n, d) for n, d in zip(ADAGRAD_NAMES, dummy)]
        return [np.asarray(P[n]) for n in PARAM_NAMES], [np.asarray(a) for a in A]

    def _reg_weights(self) -> np.ndarray:
        """L2's weight of a touch, 1 / rows per feature (0 before ``set_feature_rows``); computed
        once per ``feature_rows`` array."""
        if self._reg_cache is None or self._reg_cache[0] is not self.feature_rows:
            rows = np.zeros(self.p) if self.feature_rows is None else np.asarray(self.feature_rows)
            self._reg_cache = (self.feature_rows, np.where(rows > 0, 1.0 / np.maximum(rows, 1), 0.0))
        return self._reg_cache[1]

    def _coding_consts(self):
        # distances enter the coding divided by the coding scale (see anchors.py)
        return (self.config.n_neighbors, self.config.beta / self.coding_scale,
                self.config.rho / self.coding_scale)

    def _candidates(self, phi: np.ndarray, Z: np.ndarray, threads: int = 1) -> np.ndarray:
        """K candidate anchors per row of ``phi``, rebuilding the index first when it is due;
        ``threads > 1`` splits the search between that many threads (the same candidates)."""
        if self.method == FM:
            return np.zeros((phi.shape[0], 0), dtype=np.int64)
        self._ensure_index(Z)
        if threads > 1 and len(phi) >= 64 * threads:
            return _search_split(self._index, phi, threads)
        return self._index.search(phi)

    def _candidate_parts(self, phi: np.ndarray, Z: np.ndarray):
        """``_searched_parts`` of a block's rows, with the index rebuilt first when it is due.

        The index is built from the snapshot of the anchors taken at the last
        scheduled rebuild: training that moves ``Z`` meanwhile does not
        change what a search returns, so the candidates are those of one
        search of all the rows (tested).
        """
        if self.method == FM:
            yield 0, len(phi), self._candidates(phi, Z)
            return
        self._ensure_index(Z)
        yield from _searched_parts(self._index, phi)

    def _ensure_index(self, Z: np.ndarray) -> None:
        """Build the FAISS index over the anchors when there is none (a scheduled rebuild
        snapshots ``Z``; a resumed run or a merge rebuilds from its saved snapshot)."""
        if self._index is None:
            fresh = self._index_Z is None  # a scheduled rebuild, not a resumed run's or a merge's
            if fresh:
                self._index_Z = Z.copy()
                if self._ivf_uses >= IVF_RETRAIN:
                    self._ivf_centroids = None
            self._index = AnchorIndex(self.config.n_candidates, nprobe=self.search_nprobe or None)
            self._index.rebuild(self._index_Z, centroids=self._ivf_centroids)
            if self._index.centroids is None:
                self._ivf_centroids, self._ivf_uses = None, 0
            elif self._index.trained:
                self._ivf_centroids, self._ivf_uses = self._index.centroids, 1
            elif fresh:
                self._ivf_uses += 1

    def _full_width(self, chunk) -> bool:
        """Every row holds all p features: the kernels then take ``indices=None``, their dense
        specialisations, which load no index."""
        return chunk.n_features == self.p and chunk.full_width

    def partial_fit_chunk(self, chunk, targets: np.ndarray, threads: int = 1) -> np.ndarray:
        """One SGD pass over the chunk's rows in order; returns each row's loss before its step.

        ``threads > 1`` (opt-in) is Hogwild: each block of rows is cut into
        ``threads`` contiguous parts trained at once by the (GIL-free) kernel
        on the shared parameters, without locks. Updates race, so the result
        is not reproducible bit for bit; ``threads=1`` (default) is. The
        block's anchor search is split between the threads too (that part
        gives the same candidates as one search).
        """
        n = chunk.n_rows
        losses = np.empty(n)
        ks = np.empty(n, dtype=np.int64)
        (b, W, V, Z), (Ab, AW, AV) = self._kernel_args()
        k_soft, beta, rho = self._coding_consts()
        c = self.config
        targets = np.ascontiguousarray(targets, dtype=np.float64)
        learns_anchors = self.method not in (FM, DO)
        phi_all = self.coding_vectors(chunk)
        stats = np.zeros(N_STATS, dtype=np.int64)
        full_width = self._full_width(chunk)
        reg = self._reg_weights()
        lo = 0
        while lo < n:
            if learns_anchors and self._rows_since_rebuild >= c.rebuild_every:
                self._index = self._index_Z = None  # anchors moved: rebuild before searching
                self._rows_since_rebuild = 0
            # blocks end where a rebuild is due, counted in rows since the last
            # one, so the result does not depend on how the stream was chunked
            hi = min(n, lo + (c.rebuild_every - self._rows_since_rebuild)) if learns_anchors else n
            phi = phi_all[lo:hi]
            scale = self.step_scale
            args = (b, W, V, Z, Ab, AW, AV, k_soft, beta, rho,
                    self.coding_scale, c.anchor_clip, c.step * scale, self.t0, c.eta_anchor * scale,
                    c.l2_w, c.l2_v, reg, OPTIMIZER_CODES[c.optimizer], float(scale), self.glob, c.jo_exact)
            if threads > 1 and hi - lo >= 2 * threads:
                cand = self._candidates(phi, Z, threads)
                ip = chunk.indptr[lo:hi + 1]
                a, e = ip[0], ip[-1]
                _hogwild(self.method, task_code(self.task, c.multiclass), ip - a,
                         None if full_width else chunk.indices[a:e], chunk.data[a:e], targets[lo:hi],
                         phi, cand, args, self.t, losses[lo:hi], ks[lo:hi], stats, threads)
            else:
                # one thread trains while a helper searches the next rows' candidates
                parts = []
                for s, t, cand in self._candidate_parts(phi, Z):
                    parts.append(cand)
                    ip = chunk.indptr[lo + s:lo + t + 1]
                    a, e = ip[0], ip[-1]
                    train_rows(self.method, task_code(self.task, c.multiclass), ip - a,
                               None if full_width else chunk.indices[a:e], chunk.data[a:e],
                               targets[lo + s:lo + t], phi[s:t], cand, *args, self.t + s,
                               losses[lo + s:lo + t], ks[lo + s:lo + t], stats)
                cand = parts[0] if len(parts) == 1 else np.concatenate(parts)
            self.t += hi - lo
            self._rows_since_rebuild += hi - lo
            if self.method != FM and cand.shape[1] < self.m:
                # rows at the end of the block saw the most-moved anchors: the worst case
                chk = slice(max(0, (hi - lo) - MISS_CHECK_ROWS), hi - lo)
                misses = count_misses(phi[chk], cand[chk], Z)
                self.counters["misses"] += misses
                self.counters["miss_checks"] += len(phi[chk])
                if misses and self._index is not None and self._index.approximate:
                    # an approximate search missed: scan more of the index from
                    # now on (kept in the state, so a resumed run does the same)
                    self.search_nprobe = self._index.widen()
            lo = hi
        self.counters["rows"] += n
        self.counters["k_sum"] += int(stats[ST_K_SUM])
        self.counters["wanted_more"] += int(stats[ST_WANTED_MORE])
        if not np.all(np.isfinite(losses)):
            raise DivergenceError(
                "training diverged (non-finite loss). Lower the step size (--eta0) or use the "
                "default optimiser (--optimizer adagrad); the last checkpoint is kept."
            )
        return losses

    def decision_chunk(self, chunk, return_k: bool = False):
        """Raw outputs f (n, C) for a standardised chunk."""
        n = chunk.n_rows
        out = np.empty((n, self.n_outputs))
        ks = np.empty(n, dtype=np.int64)
        (b, W, V, Z), _ = self._kernel_args()
        k_soft, beta, rho = self._coding_consts()
        phi = self.coding_vectors(chunk)
        if self.method == FM:
            parts = [(0, n, np.zeros((n, 0), dtype=np.int64))]
        else:
            # a fresh index over the anchors as they are now; the training
            # index keeps its own rebuild schedule
            index = AnchorIndex(self.config.n_candidates, nprobe=self.search_nprobe or None)
            index.rebuild(Z)
            parts = _searched_parts(index, phi)
        full_width = self._full_width(chunk)
        for s, t, cand in parts:
            ip = chunk.indptr[s:t + 1]
            a, e = ip[0], ip[-1]
            predict_rows(self.method, ip - a, None if full_width else chunk.indices[a:e], chunk.data[a:e],
                         phi[s:t], cand, b, W, V, Z, k_soft, beta, rho, self.glob, out[s:t], ks[s:t])
        return (out, ks) if return_k else out

    def proba_from_scores(self, f: np.ndarray) -> np.ndarray:
        """Class probabilities (n, C) from raw outputs; (n, 2) for binary."""
        if self.task == "binary":
            p1 = 1.0 / (1.0 + np.exp(-np.clip(f[:, 0], -500, 500)))
            return np.column_stack([1.0 - p1, p1])
        if self.config.multiclass == "softmax":
            e = np.exp(f - f.max(1, keepdims=True))
            return e / e.sum(1, keepdims=True)
        s = 1.0 / (1.0 + np.exp(-np.clip(f, -500, 500)))
        return s / np.maximum(s.sum(1, keepdims=True), 1e-300)

    # ------------------------------------------------------------- state
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """Everything needed to continue training exactly: (JSON-able meta, arrays).

        The anchors the FAISS index was last built from are part of it, so a
        resumed run searches the same candidates as an uninterrupted one.
        """
        meta = {
            "config": self.config.to_dict(),
            "n_features": self.p,
            "task": self.task,
            "n_outputs": self.n_outputs,
            "coding_scale": self.coding_scale,
            "t": self.t,
            "t0": self.t0,
            "rows_since_rebuild": self._rows_since_rebuild,
            "search_nprobe": self.search_nprobe,
            "ivf_uses": self._ivf_uses,
            "counters": dict(self.counters),
        }
        arrays = dict(self.params)
        if self.feature_rows is not None:
            arrays[FEATURE_ROWS] = self.feature_rows
        if self._index_Z is not None:
            arrays["index_Z"] = self._index_Z
        if self._ivf_centroids is not None:
            arrays["ivf_centroids"] = self._ivf_centroids
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "LLFMModel":
        """The inverse of ``state``; arrays are used as given (memmaps stay memmaps)."""
        model = cls(Config.from_dict(meta["config"]), meta["n_features"], meta["task"],
                    max(meta["n_outputs"], 2))
        model.coding_scale = float(meta["coding_scale"])
        model.t = int(meta["t"])
        model.t0 = float(meta["t0"])
        model._rows_since_rebuild = int(meta["rows_since_rebuild"])
        model.search_nprobe = int(meta.get("search_nprobe", 0))
        model.counters.update(meta["counters"])
        model.params = {n: arrays[n] for n in model._state_names()}
        if FEATURE_ROWS in arrays:
            model.feature_rows = arrays[FEATURE_ROWS]
        model._index_Z = np.array(arrays["index_Z"]) if "index_Z" in arrays else None
        model._take_ivf(meta, arrays)
        return model

    def _state_names(self) -> tuple[str, ...]:
        """The trained arrays: parameters, and AdaGrad's accumulators when it steps."""
        return PARAM_NAMES + (ADAGRAD_NAMES if self.config.optimizer == "adagrad" else ())

    def _take_ivf(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """The IVF list centroids of a state (none in a merge's: the anchors moved, so retrain)."""
        c = arrays.get("ivf_centroids")
        self._ivf_centroids = None if c is None else np.array(c)
        self._ivf_uses = int(meta.get("ivf_uses", 0)) if c is not None else 0

    def load_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Take the values and counters of another state of this model, in place.

        The values are copied into this model's own arrays, so ``arrays`` may be
        read-only (Ray's object store hands out read-only views) and this
        model's memory is reused round after round. A state without
        ``index_Z`` (a merge of several workers: the anchors moved) makes the
        next chunk rebuild the FAISS index from the current anchors; a state
        whose ``index_Z`` is the one this model's index was built from keeps
        the index.
        """
        if FEATURE_ROWS in arrays:
            rows = np.asarray(arrays[FEATURE_ROWS])
            if self.feature_rows is None or not np.array_equal(self.feature_rows, rows):
                self.feature_rows = np.array(rows)
        for n in self._state_names():
            src = np.asarray(arrays[n])
            dst = self.params.get(n)
            if isinstance(dst, np.ndarray) and dst.shape == src.shape and dst.flags.writeable:
                np.copyto(dst, src)
            else:
                self.params[n] = np.array(src)
        self.coding_scale = float(meta["coding_scale"])
        self.t = int(meta["t"])
        self.t0 = float(meta["t0"])
        self._rows_since_rebuild = int(meta["rows_since_rebuild"])
        self.counters.update(meta["counters"])
        nprobe = int(meta.get("search_nprobe", 0))
        if nprobe != self.search_nprobe:
            self._index = None  # searched with other settings: rebuild (from index_Z)
            self.search_nprobe = nprobe
        new_Z = arrays.get("index_Z")
        if new_Z is None:
            self._index = self._index_Z = None
        elif self._index_Z is None or not np.array_equal(self._index_Z, new_Z):
            self._index, self._index_Z = None, np.array(new_Z)
        c = arrays.get("ivf_centroids")
        if (c is None) != (self._ivf_centroids is None) or (
                c is not None and not np.array_equal(c, self._ivf_centroids)):
            self._index = None  # routed by other lists: rebuild with the state's
        self._take_ivf(meta, arrays)

    def __getstate__(self):
        # a FAISS index does not pickle; it is rebuilt from the anchors on use
        state = self.__dict__.copy()
        state["_index"] = None
        return state

    # -------------------------------------------------------------- metrics
    def metrics(self) -> dict:
        c = self.counters
        rows = max(c["rows"], 1)
        return {
            "mean_k": c["k_sum"] / rows,
            "wanted_more_rate": c["wanted_more"] / rows,
            "candidate_miss_rate": c["misses"] / max(c["miss_checks"], 1),
        }
