"""A model's state: everything needed to continue training exactly, typed, with its one restore path.

``ModelState.capture(model)`` takes a model's state (its arrays, not
copies); ``state.restore(model)`` puts it back; ``manifest()`` /
``from_manifest(meta, arrays)`` are its form in a model directory (the JSON
manifest's ``model`` entry and the checkpoint's ``.npy`` arrays; the names
below are the on-disk names); ``ModelState.merge`` combines the states of
workers that trained from one state.

The manifest form, as stored:

- meta: ``config`` (the hyper-parameters), ``n_features``, ``task``,
  ``n_outputs``, ``coding_scale``, ``t`` (optimiser step = rows trained),
  ``t0`` (the step decay), ``counters`` and the search's numbers
  (``rows_since_rebuild``, ``search_nprobe``, ``ivf_uses``: ``SearchState``),
  ``store`` (``{"kind", "bits", "dtype"}``, models/memory.py; absent: exact)
  with, for the hashed store, ``table_fill`` (slots touched),
  and ``init_sigma`` (the initial factors' scale, kernels/hashing.py);
- arrays: the parameters ``b`` (m', C), ``W`` (m', p, C), ``V`` (m', p, C,
  r) and the anchors ``Z`` (m, q), with m' = m + 1 when a global FM is
  trained beside the anchors' (m' = 1 for ``fm``); with AdaGrad its
  accumulators ``Ab``, ``AW``, ``AV`` (shaped as ``b``, ``W``, ``V``);
  ``feature_rows`` (p,), training rows that store each feature (L2's
  weights); and the search's ``index_Z`` (the anchors the FAISS index was
  built from) and ``ivf_centroids`` (its IVF's list centroids), when it has
  them. The hashed store's W, V (1, S, C[, r]) and accumulators are
  float32 tables of S = 2^bits slots, beside the slots' ``tags`` (uint32).

How states merge (:meth:`ModelState.merge`)
-------------------------------------------
Workers ``k = 1..K`` start a round from the same state ``S0`` and train
``n_k`` rows each, ``N = sum n_k``.

- Parameters (``b``, ``W``, ``V``, ``Z``): the row-weighted average
  ``sum_k n_k P_k / N``, i.e. ``S0`` moved by the row-weighted average of
  the workers' updates (model averaging). The hashed table merges slot by
  slot the same way (``models.table.merge_rows``: a slot first touched in
  the round starts from its initial factors).
- The optimiser step ``t`` and the counters (rows, neighbours, misses) add
  up: ``t = t0 + sum_k (t_k - t0) = t0 + N``. The learning rate then
  continues as if one worker had trained the ``N`` rows.
- AdaGrad accumulators (sums of squared gradients) add up the same way,
  ``A0 + sum_k (A_k - A0)``: after the merge a parameter's step size is the
  one a single worker would have after seeing every worker's gradients.
- ``feature_rows`` are the data's, the same in every worker: passed on.
- The search's snapshot and IVF lists are dropped and its rebuild counter
  reset (``SearchState.merged``): the averaged anchors are new points, so
  each worker rebuilds its index from them before its next search. A merge
  of one state is that state unchanged (nothing moved: its index stays
  valid).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..coding.search import SearchState
from .config import Config
from .memory import StoreSpec
from .table import TABLE_ACCUMS, TABLE_PARAMS, TAGS, HashedTable, merge_rows

if TYPE_CHECKING:
    from .core import LLFMModel

#: the parameters (averaged by a merge)
PARAM_NAMES = ("b", "W", "V", "Z")
#: AdaGrad's accumulators (a merge adds their increments)
ADAGRAD_NAMES = ("Ab", "AW", "AV")
#: training rows in which each feature is stored: sets the L2 weight of a touch (kernels/llfm.py)
FEATURE_ROWS = "feature_rows"
_META = ("n_features", "task", "n_outputs", "coding_scale", "t", "t0", "init_sigma")


def trained_names(config: Config, store: StoreSpec | None = None) -> tuple[str, ...]:
    """The trained arrays of a model with ``config``: parameters, and AdaGrad's accumulators when it
    steps; the hashed store's tags."""
    names = PARAM_NAMES + (ADAGRAD_NAMES if config.optimizer == "adagrad" else ())
    return names + ((TAGS,) if store is not None and store.hashed else ())


def _table_names(config: Config) -> tuple[str, ...]:
    return TABLE_PARAMS + (TABLE_ACCUMS if config.optimizer == "adagrad" else ()) + (TAGS,)


@dataclass
class ModelState:
    """Everything needed to continue training a model exactly.

    ``params`` holds the trained arrays (``trained_names(config)``); the
    search's part (the anchors the FAISS index was built from, its IVF
    lists, the rebuild schedule) is ``search``, so a resumed run searches
    the same candidates as an uninterrupted one.
    """

    config: Config
    n_features: int
    task: str
    n_outputs: int
    coding_scale: float
    t: int
    t0: float
    counters: dict[str, int]
    params: dict[str, np.ndarray]
    feature_rows: np.ndarray | None = None
    search: SearchState = field(default_factory=SearchState)
    store: StoreSpec = field(default_factory=StoreSpec)
    init_sigma: float = 0.1
    #: m was chosen by ``anchors="auto"`` (models/capacity.py); ``config.anchors`` holds it
    anchors_auto: bool = False
    #: the hashed store's table (its arrays are those of ``params``), None for the exact store
    table: HashedTable | None = None

    # ------------------------------------------------------- model <-> state
    @classmethod
    def capture(cls, model: LLFMModel) -> "ModelState":
        """The state of ``model``: its own arrays (not copies; see :meth:`copy`)."""
        return cls(config=model.config, n_features=model.p, task=model.task, n_outputs=model.n_outputs,
                   coding_scale=model.coding_scale, t=model.t, t0=model.t0, counters=dict(model.counters),
                   params=dict(model.params), feature_rows=model.feature_rows, search=model.search.state(),
                   store=model.store, init_sigma=model.init_sigma, anchors_auto=model.anchors_auto,
                   table=model.table)

    def restore(self, model: LLFMModel, *, copy: bool = True) -> None:
        """Put this state into ``model`` (one made with this state's config, width and task).

        ``copy=True``: the values are copied into the model's own arrays where
        their shapes match (so the state's arrays may be read-only, as Ray's
        object store hands them out, and the model's memory is reused round
        after round), into new arrays otherwise. ``copy=False``: a new
        model takes the arrays as they are (memory maps stay memory maps).
        The model's FAISS index is kept when the state's search would build
        the same one.
        """
        rows = self.feature_rows
        if rows is not None and rows is not model.feature_rows and (
                model.feature_rows is None or not np.array_equal(model.feature_rows, rows)):
            model.feature_rows = np.array(rows) if copy else rows
        for name in trained_names(model.config, self.store):
            src = self.params[name]
            dst = model.params.get(name)
            if not copy:
                model.params[name] = src
            elif src is dst:  # the model's own (a sparse Ray round: models/table.py)
                continue
            elif isinstance(dst, np.ndarray) and dst.shape == np.shape(src) and dst.flags.writeable:
                np.copyto(dst, src)
            else:
                model.params[name] = np.array(src)
        model.store = self.store
        model.init_sigma = float(self.init_sigma)
        if self.store.hashed:
            arrays = {n: model.params[n] for n in _table_names(model.config)}
            if not copy and self.table is not None:
                model.table = self.table
            elif model.table is not None and all(model.table.arrays.get(n) is a for n, a in arrays.items()):
                model.table.dirty[:] = 0 if self.table is None else self.table.dirty
                model.table.origin = None  # new values: the next checkpoint writes the table whole
            else:
                model.table = HashedTable(arrays, self.store.bits,
                                          None if self.table is None else self.table.dirty.copy())
        else:
            model.table = None
        model.coding_scale = float(self.coding_scale)
        model.anchors_auto = bool(self.anchors_auto)
        model.t = int(self.t)
        model.t0 = float(self.t0)
        model.counters.update(self.counters)
        model.search.restore(self.search)

    def copy(self) -> "ModelState":
        """A copy that owns its arrays (training the model does not change it)."""
        own = lambda a: None if a is None else np.array(a, copy=True)  # noqa: E731
        search = replace(self.search, snapshot=own(self.search.snapshot), centroids=own(self.search.centroids))
        params = {k: own(v) for k, v in self.params.items()}
        table = None
        if self.table is not None:
            table = HashedTable({n: params[n] for n in self.table.arrays}, self.store.bits, self.table.dirty.copy())
        return replace(self, config=copy.deepcopy(self.config), counters=dict(self.counters), params=params,
                       feature_rows=own(self.feature_rows), search=search, table=table)

    # ------------------------------------------------------------ manifest
    def manifest(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able meta, arrays): the state as a model directory stores it."""
        meta = {"config": self.config.to_dict(), **{k: getattr(self, k) for k in _META},
                **self.search.meta(), "counters": dict(self.counters), "store": self.store.to_dict(),
                "anchors_auto": bool(self.anchors_auto)}
        if self.store.hashed:  # for `streamfm info`, which reads the manifest alone
            meta["table_fill"] = int(np.count_nonzero(self.params["tags"]))
        arrays = dict(self.params)
        if self.feature_rows is not None:
            arrays[FEATURE_ROWS] = self.feature_rows
        arrays.update(self.search.arrays())
        return meta, arrays

    @classmethod
    def from_manifest(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "ModelState":
        """The state of a manifest's meta and its arrays (other arrays beside them are ignored)."""
        config = Config.from_dict(meta["config"])
        store = StoreSpec.from_dict(meta.get("store"))
        table = HashedTable({n: arrays[n] for n in _table_names(config)}, store.bits) if store.hashed else None
        return cls(config=config, n_features=int(meta["n_features"]), task=meta["task"],
                   n_outputs=int(meta["n_outputs"]), coding_scale=float(meta["coding_scale"]), t=int(meta["t"]),
                   t0=float(meta["t0"]), counters=dict(meta["counters"]),
                   params={n: arrays[n] for n in trained_names(config, store)}, feature_rows=arrays.get(FEATURE_ROWS),
                   search=SearchState.from_manifest(meta, arrays), store=store,
                   init_sigma=float(meta.get("init_sigma", config.init_std)),
                   anchors_auto=bool(meta.get("anchors_auto", False)), table=table)

    # --------------------------------------------------------------- merge
    @classmethod
    def merge(cls, states: Sequence["ModelState"], rows: Sequence[int],
              base: "ModelState | None" = None, *, table: bool = True) -> "ModelState":
        """One state from the states of workers that trained ``rows`` rows each from ``base``.

        ``base``: the state every worker started the round from; additive
        quantities (step, counters, AdaGrad accumulators) combine as ``base +
        sum of increments``. None: they simply add up (states trained
        independently from zero). Parameters are the row-weighted average
        (equal weights if no worker trained a row). See the module notes.
        ``table=False``: the hashed table is merged elsewhere (engines/ray/sparse.py);
        the result holds the first state's.
        """
        if len(states) != len(rows) or not states:
            raise ValueError(f"need one row count per state, got {len(states)} states and {len(rows)} counts")
        if len(states) == 1:
            return states[0]
        n = np.asarray(rows, dtype=np.float64)
        if (n < 0).any():
            raise ValueError(f"row counts must be non-negative, got {list(rows)}")
        weights = n / n.sum() if n.sum() > 0 else np.full(len(n), 1.0 / len(n))
        first = states[0]
        params = {}
        table_names = _table_names(first.config) if first.store.hashed else ()
        for name in PARAM_NAMES:
            if name in table_names:
                continue
            out = np.multiply(first.params[name], weights[0])
            for w, s in zip(weights[1:], states[1:]):
                out += w * np.asarray(s.params[name])
            params[name] = out
        for name in ADAGRAD_NAMES:
            if name in first.params and name not in table_names:
                params[name] = _add_increments([s.params[name] for s in states],
                                               None if base is None else base.params[name])
        counters = {k: int(_add_increments([s.counters.get(k, 0) for s in states],
                                            None if base is None else base.counters.get(k, 0)))
                    for k in first.counters}
        merged_table = None
        if table_names and not table:
            params.update({n: first.params[n] for n in table_names})
            merged_table = first.table
        elif table_names:
            rows = merge_rows(None if base is None else {n: base.table.rows(n) for n in table_names},
                              [{n: s.table.rows(n) for n in table_names} for s in states], weights,
                              first.n_outputs, first.config.rank, first.init_sigma, first.config.seed)
            for n in table_names:
                params[n] = rows[n].reshape(first.params[n].shape)
            merged_table = HashedTable({n: params[n] for n in table_names}, first.store.bits)
        return replace(first, t=int(_add_increments([s.t for s in states], None if base is None else base.t)),
                       counters=counters, params=params, search=SearchState.merged([s.search for s in states]),
                       table=merged_table)


def _add_increments(values, base):
    """base + sum_k (v_k - base); the plain sum when base is None."""
    if base is None:
        out = np.array(values[0], dtype=np.result_type(values[0]), copy=True)
        for v in values[1:]:
            out = out + v
        return out
    base = np.asarray(base)
    out = np.array(base, copy=True)
    for v in values:
        out = out + (np.asarray(v) - base)
    return out
