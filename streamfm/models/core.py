"""The learning core: a model's parameters and what trains and evaluates it on chunks.

No engine, no file format and no estimator API here: ``LLFMModel`` takes
standardised ``Chunk``s and integer/float targets. The estimators, the
streaming trainer and the Ray engine all drive this one object. Its state
is ``models/state.py``'s ``ModelState``, its anchor search
``coding.search.AnchorSearch``, and how a block of rows is searched and
trained (pipelined, Hogwild) ``models/schedule.py``; ``models/init.py``
makes a ready model from data.
"""
from __future__ import annotations

import time
from functools import partial
from typing import Callable

import numpy as np

from ..coding.anchors import coding_scale, kmeans_anchors
from ..coding.search import AnchorSearch
from ..coding.space import coding_dim, coding_vectors
from ..errors import DivergenceError
from ..kernels.hashing import feature_slots, fill_initial_factors, seed_key, touch_features
from ..kernels.llfm import (METHOD_CODES, N_STATS, OPTIMIZER_CODES, ST_COLLISIONS, ST_K_SUM, ST_WANTED_MORE, FM,
                            DO, predict_rows, train_rows)
from ..kernels.losses import BINARY, OVR, SOFTMAX, SQUARED
from .capacity import AUTO
from .config import Config
from .memory import StoreSpec
from .schedule import Schedule
from .state import ADAGRAD_NAMES, PARAM_NAMES, ModelState
from .table import HashedTable

DEFAULT_T0 = 10_000
_NO_WEIGHTS = np.zeros(0)  # the kernels' sample weights of an unweighted chunk (kernels/fm.py row_weight)


def adagrad_bound(task: int) -> float:
    """How far one AdaGrad row step may move f, in units of |dloss/df| (kernels/llfm.py).

    1 for the one-output losses (a squared-loss step then reaches the row's
    target at most, to first order), 2 for the C-output ones. Both lie well
    inside the stability limit 2 / curvature of each loss (squared 2,
    logistic 8, softmax 4). Measured in-process on one seeded split each: on
    LETTER (26 classes, 15 epochs) 2 gave LLFM-JO 95.5% test accuracy against
    94.9% with 1; a bound of 2 for the logistic loss left Banana and Magic04
    unchanged but made LLFM-JO overfit sooner on movielens-small (log loss
    0.5421 against 0.5400).
    """
    return 2.0 if task in (SOFTMAX, OVR) else 1.0


def task_code(task: str, multiclass: str) -> int:
    if task == "binary":
        return BINARY
    if task == "regression":
        return SQUARED
    return SOFTMAX if multiclass == "softmax" else OVR


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
    store : StoreSpec or None
        Where W and V live (models/memory.py): the exact layout (default) or
        the hashed table (``table``).

    Attributes
    ----------
    search : AnchorSearch
        The FAISS candidate search and its rebuild schedule.
    schedule : Schedule
        How a block's search and training run (pipelined parts, Hogwild).
    step_scale : float
        A factor on every step (FM, its AdaGrad bound, anchors) that an
        engine averaging several workers' updates sets; not part of the state.
    on_block : callable or None
        None (default), or ``on_block(args, seconds)``, called after every
        kernel call of training with the kernel's arguments (the parameters as
        the call left them) and its wall time: a benchmark's view of the
        kernel. Under Hogwild it is called from the training threads.
    """

    def __init__(self, config: Config, n_features: int, task: str, n_classes: int = 2,
                 store: StoreSpec | None = None):
        self.config = config.for_features(n_features).validate()
        self.p = int(n_features)
        self.task = task
        self.n_outputs = n_classes if task == "multiclass" else 1
        self.method = METHOD_CODES[config.method]
        self.q = 0 if self.method == FM else coding_dim(self.p)
        if config.anchors == AUTO and self.method != FM:
            raise ValueError('anchors="auto" is resolved before a model is made (models/init.py resolve_anchors)')
        self.m = 1 if self.method == FM else config.anchors
        self.anchors_auto = False  # m chosen by anchors="auto" (set by models/init.py)
        # a global FM beside the anchors' (kernels/llfm.py): its parameters follow theirs
        self.glob = self.method != FM and config.global_fm
        self.n_fms = self.m + self.glob
        self.coding_scale = 1.0
        self.t = 0  # optimiser step = rows trained on
        self.t0 = float(config.t0) if config.t0 > 0 else float(DEFAULT_T0)
        self.counters = {"rows": 0, "k_sum": 0, "wanted_more": 0, "miss_checks": 0, "misses": 0,
                         "collisions": 0}
        self.store = store or StoreSpec()
        self.table: HashedTable | None = None  # the hashed store's (models/table.py)
        self.init_sigma = float(config.init_std)  # the initial factors' scale (kernels/hashing.py)
        self.params: dict[str, np.ndarray] = {}
        self.feature_rows: np.ndarray | None = None
        self.step_scale = 1.0
        self.search = AnchorSearch(config.n_candidates, config.rebuild_every, moving=self.method not in (FM, DO))
        self.schedule = Schedule()
        self.on_block: Callable[[tuple, float], None] | None = None
        self._reg_cache = None
        self._tile_cache = None

    # ---------------------------------------------------------------- set-up
    def init_params(self, mean_sq_norm: float | None = None, bias=0.0) -> None:
        """b = ``bias``, w = 0, V ~ N(0, sigma^2); anchors zero until ``init_anchors``.

        V's initial values are a function of (seed, FM, feature, output,
        factor) (kernels/hashing.py): the exact store fills them now, the
        hashed store when a slot is first touched.

        ``bias``: the outputs' starting value, a scalar or (C,), the global
        FM's bias (every FM's without one; see
        ``models/init.py``: a regression starts at the label mean and a
        classifier at the log odds of the class frequencies, so the first
        epochs do not spend their steps moving the bias).
        sigma = init_std (0.1, as the paper and libFM) for rows with
        E||x||^2 <= 10 (ten standardised features); larger rows get
        init_std * sqrt(10 / E||x||^2). The initial pairwise term has a
        standard deviation of about E||x||^2 * sqrt(r/2) * sigma^2: with a
        fixed 0.1 it is ~22 for 1,000 standardised features, which saturates
        the loss before the first step; scaled, it stays ~0.2.
        """
        m, p, C, r = self.n_fms, self.p, self.n_outputs, self.config.rank
        sigma = self.config.init_std
        if mean_sq_norm is not None and mean_sq_norm > 10:
            sigma *= np.sqrt(10.0 / mean_sq_norm)
        self.init_sigma = float(sigma)
        adagrad = self.config.optimizer == "adagrad"
        b = np.zeros((m, C))
        # with a global FM the anchors' FMs start at zero, the global one at ``bias``: f = f_0 + sum_i
        # gamma_i f_i with sum_i gamma_i = 1 would otherwise start at twice the best constant
        b[self.m if self.glob else 0:] = np.broadcast_to(np.asarray(bias, dtype=np.float64), (C,))
        self.params = {"b": b, "Z": np.zeros((self.m, self.q))}
        if self.store.hashed:
            self.table = HashedTable.new(self.store.bits, C, r, adagrad, self.store.dtype)
            self.params.update(self.table.arrays)
        else:
            V = np.empty((m, p, C, r))
            fill_initial_factors(V, self.init_sigma, seed_key(self.config.seed), 0)
            self.params.update(W=np.zeros((m, p, C)), V=V)
            if adagrad:
                self.params.update(AW=np.zeros((m, p, C)), AV=np.zeros((m, p, C, r)))
        if adagrad:
            self.params["Ab"] = np.zeros((m, C))

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
        self.search.reset()

    def anchor_end(self) -> float:
        """The step t from which the anchors stay: ``anchor_epochs`` epochs of t0 rows (0: inf, never)."""
        return float(self.config.anchor_epochs) * self.t0 if self.config.anchor_epochs else float("inf")

    def set_epoch_rows(self, n_rows: int) -> None:
        """With t0 = 0 (default), the step decays per epoch: eta_t = eta0 / (1 + t / n_rows)."""
        if self.config.t0 == 0 and n_rows > 0:
            self.t0 = float(n_rows)

    def coding_vectors(self, chunk) -> np.ndarray:
        if self.method == FM:
            return np.zeros((chunk.n_rows, 0))
        return coding_vectors(chunk.indptr, chunk.indices, chunk.data, self.p)

    # ------------------------------------------------------------- kernels
    def _kernel_params(self):
        """(b, W, V, Z) and AdaGrad's (Ab, AW, AV), a dummy for each when another optimiser steps."""
        P = self.params
        dummy = [np.zeros((1,) * d) for d in (2, 3, 4)]
        A = [P.get(n, d) for n, d in zip(ADAGRAD_NAMES, dummy)]
        return tuple(np.asarray(P[n]) for n in PARAM_NAMES), tuple(np.asarray(a) for a in A)

    def _reg_weights(self, features=None) -> np.ndarray:
        """L2's weight of a touch, 1 / rows per feature (0 before ``set_feature_rows``): of every
        feature, or of the features ``features`` (a chunk's indices, O(nnz))."""
        if self.feature_rows is None:
            return np.zeros(self.p if features is None else len(features))
        rows = np.asarray(self.feature_rows if features is None else self.feature_rows[features])
        return np.where(rows > 0, 1.0 / np.maximum(rows, 1), 0.0)

    def _reg_data(self, chunk, full_width: bool) -> np.ndarray:
        """L2's weights aligned with the chunk's values (the kernels' ``reg``, kernels/llfm.py):
        full-width chunks repeat the per-feature weights row after row (cached per shape)."""
        if not full_width:
            return self._reg_weights(chunk.indices)
        key = (self.feature_rows, chunk.n_rows)
        if self._tile_cache is None or self._tile_cache[0][0] is not key[0] or self._tile_cache[0][1] != key[1]:
            if self._reg_cache is None or self._reg_cache[0] is not self.feature_rows:
                self._reg_cache = (self.feature_rows, self._reg_weights())
            self._tile_cache = (key, np.tile(self._reg_cache[1], chunk.n_rows))
        return self._tile_cache[1]

    def _addressing(self, chunk, full_width: bool, train: bool, stats=None):
        """(indices, table) for the kernels: the chunk's indices (None: full width) and None for the
        exact store; for the hashed one the kernels' table arguments, or with ``fm`` (one FM, so
        feature j alone is hashed) the chunk's indices remapped to slots and no table."""
        indices = None if full_width else chunk.indices
        if not self.store.hashed:
            return indices, None
        args = self.table.kernel_args(self.init_sigma, self.config.seed)
        if self.method != FM:
            return indices, args
        shift, tags, dirty, sigma, skey = args
        slots = np.empty(len(chunk.data), np.int64)
        if train:
            stats[ST_COLLISIONS] += touch_features(0, indices, max(self.p, 1), shift, tags, dirty, self.params["V"],
                                                   sigma, skey, slots)
        else:
            feature_slots(0, indices, max(self.p, 1), shift, slots)
        return slots, None

    def _l2_fm(self) -> np.ndarray:
        """Each FM's factor on l2_w and l2_v (the kernels' ``l2_fm``): ``l2_local`` for the anchors'
        FMs beside a global FM, 1 otherwise."""
        out = np.ones(self.n_fms)
        if self.glob:
            out[:self.m] = self.config.l2_local
        return out

    def _coding_consts(self):
        # distances enter the coding divided by the coding scale (see anchors.py)
        return (self.config.n_neighbors, self.config.beta / self.coding_scale,
                self.config.rho / self.coding_scale)

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

        Sample weights (``chunk.weights``) scale each row's gradient in the
        kernels (kernels/fm.py ``row_weight``); rows of weight 0 are left out
        before the kernels, as if absent (not even L2 or the step count sees
        them). The returned losses are unweighted (0 for rows of weight 0).
        """
        if chunk.weights is not None and not chunk.weights.all():
            keep = np.flatnonzero(chunk.weights)
            losses = np.zeros(chunk.n_rows)
            if len(keep):
                losses[keep] = self.partial_fit_chunk(chunk.take(keep), np.asarray(targets)[keep], threads)
            return losses
        n = chunk.n_rows
        losses = np.empty(n)
        ks = np.empty(n, dtype=np.int64)
        params, accums = self._kernel_params()
        Z = params[3]
        c = self.config
        task = task_code(self.task, c.multiclass)
        targets = np.ascontiguousarray(targets, dtype=np.float64)
        sw = _NO_WEIGHTS if chunk.weights is None else np.ascontiguousarray(chunk.weights, dtype=np.float64)
        phi_all = self.coding_vectors(chunk)
        stats = np.zeros(N_STATS, dtype=np.int64)
        full = self._full_width(chunk)
        indices, table = self._addressing(chunk, full, True, stats)
        reg = self._reg_data(chunk, full)
        scale = self.step_scale
        consts = (params, accums, self._coding_consts() + (self.coding_scale, c.anchor_clip),
                  (c.step * scale, self.t0, c.eta_anchor * scale, c.l2_w, c.l2_v, reg, OPTIMIZER_CODES[c.optimizer],
                   float(scale) * adagrad_bound(task), self.glob, c.jo_exact, self._l2_fm(), self.anchor_end()), table)
        lo = 0
        while lo < n:
            hi = lo + self.search.block_rows(n - lo)
            phi = phi_all[lo:hi]
            run = partial(self._train_rows, task, chunk, indices, targets, sw, phi_all, consts, losses, ks, lo, self.t)
            index = None if self.method == FM else self.search.current(Z)
            if threads > 1 and hi - lo >= 2 * threads:
                cand = self.schedule.hogwild(index, phi, run, stats, threads)
            else:
                # one thread trains while a helper searches the next rows' candidates
                cand = self.schedule.serial(index, phi, run, stats)
            self.t += hi - lo
            self.search.trained(hi - lo)
            if self.method != FM:
                misses, checked = self.search.check(phi, cand, Z)
                self.counters["misses"] += misses
                self.counters["miss_checks"] += checked
            lo = hi
        self.counters["rows"] += n
        self.counters["k_sum"] += int(stats[ST_K_SUM])
        self.counters["wanted_more"] += int(stats[ST_WANTED_MORE])
        self.counters["collisions"] = self.counters.get("collisions", 0) + int(stats[ST_COLLISIONS])
        if not np.all(np.isfinite(losses)):
            raise DivergenceError(
                "training diverged (non-finite loss). Lower the step size (--eta0) or use the "
                "default optimiser (--optimizer adagrad); the last checkpoint is kept."
            )
        return losses

    def _train_rows(self, task, chunk, indices, targets, sw, phi, consts, losses, ks, lo, t_block, s, t, cand,
                    stats):
        """The kernel on rows ``s:t`` of the block that starts at row ``lo`` of ``chunk``
        (``indices`` None: full-width rows), its step count starting at ``t_block``."""
        a, e = lo + s, lo + t
        ip = chunk.indptr[a:e + 1]
        u, v = ip[0], ip[-1]
        rows = (ip - u, None if indices is None else indices[u:v], chunk.data[u:v], targets[a:e],
                sw if not len(sw) else sw[a:e])
        params, accums, coding, steps, table = consts
        steps = steps[:5] + (steps[5][u:v],) + steps[6:]  # the L2 weights of these rows' values
        args = (self.method, task, rows, phi[a:e], cand, params, accums, coding, steps, t_block + s,
                (losses[a:e], ks[a:e], stats), table)
        if self.on_block is None:
            train_rows(*args)
        else:
            start = time.perf_counter()
            train_rows(*args)
            self.on_block(args, time.perf_counter() - start)

    def decision_chunk(self, chunk, return_k: bool = False):
        """Raw outputs f (n, C) for a standardised chunk."""
        n = chunk.n_rows
        out = np.empty((n, self.n_outputs))
        ks = np.empty(n, dtype=np.int64)
        params, _ = self._kernel_params()
        Z = params[3]
        coding = self._coding_consts()
        phi = self.coding_vectors(chunk)
        if self.method == FM:
            parts = [(0, n, np.zeros((n, 0), dtype=np.int64))]
        else:
            # a fresh index over the anchors as they are now; the training
            # index keeps its own rebuild schedule
            parts = self.schedule.parts(self.search.index_of(Z), phi)
        indices, table = self._addressing(chunk, self._full_width(chunk), False)
        for s, t, cand in parts:
            ip = chunk.indptr[s:t + 1]
            a, e = ip[0], ip[-1]
            rows = (ip - a, None if indices is None else indices[a:e], chunk.data[a:e])
            predict_rows(self.method, rows, phi[s:t], cand, params, coding, self.glob, (out[s:t], ks[s:t]), table)
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
        """Everything needed to continue training exactly, in its manifest form (JSON-able meta,
        arrays): ``ModelState.capture(self).manifest()``, what the store and the engines pass."""
        return ModelState.capture(self).manifest()

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "LLFMModel":
        """The model of a manifest-form state; arrays are used as given (memmaps stay memmaps)."""
        return cls.from_model_state(ModelState.from_manifest(meta, arrays))

    @classmethod
    def from_model_state(cls, state: ModelState) -> "LLFMModel":
        """A new model holding ``state``'s arrays as they are."""
        model = cls(state.config, state.n_features, state.task, max(state.n_outputs, 2), store=state.store)
        state.restore(model, copy=False)
        return model

    def load_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Take the values and counters of another manifest-form state of this model, in place
        (``ModelState.restore``: copied into this model's own arrays, which ``arrays`` may be
        read-only for; the FAISS index is kept when the state would build the same one)."""
        ModelState.from_manifest(meta, arrays).restore(self)

    # -------------------------------------------------------------- metrics
    def metrics(self) -> dict:
        c = self.counters
        rows = max(c["rows"], 1)
        return {
            "mean_k": c["k_sum"] / rows,
            "wanted_more_rate": c["wanted_more"] / rows,
            "candidate_miss_rate": c["misses"] / max(c["miss_checks"], 1),
        }
