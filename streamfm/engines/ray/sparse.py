"""The Ray engine's rounds with the hashed store: workers and driver send the slots a round changed.

With the exact store a worker returns its whole state and the driver
broadcasts the whole merge. With the hashed store (models/table.py) the
table is most of the state and a round changes a small part of it, so:

- a worker returns ``pack(model)``: its state without the table's arrays
  and the run's fixed per-feature arrays, plus ``table_slots`` (the slots
  it changed in the round: the table's round flags) and
  ``table_rows.<name>`` (their rows);
- the driver's ``merge`` merges the rest as ``ModelState.merge`` does and
  the table slot by slot over the union of the workers' slots
  (``models.table.merge_rows``: a worker that did not touch a slot holds
  the round's base row there), written into the driver's own table (marked
  for its next checkpoint); it broadcasts the merged rest with the union's
  slots and merged rows;
- a worker's ``unpack`` loads the rest and writes those rows into its own
  table, which then equals the driver's.

``payload_bytes`` measures what a state carries (docs/scaling.md).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ...models.state import ModelState
from ...models.table import merge_rows

SLOTS = "table_slots"
ROWS = "table_rows."
#: arrays fixed for a run that a round never sends
FIXED = ("feature_rows",)


def pack(model) -> tuple[dict, dict]:
    """A worker's state after its round, with the table's changed slots alone (see the module notes)."""
    meta, arrays = model.state()
    table = model.table
    out = {k: v for k, v in arrays.items() if k not in table.arrays and k not in FIXED}
    slots = table.take_round()
    out[SLOTS] = slots
    out.update({ROWS + name: rows for name, rows in table.read_rows(slots).items()})
    return meta, out


def unpack(model, state) -> None:
    """Load a broadcast merge into a worker's model: the rest in place, the merged rows into its table."""
    meta, arrays = state
    table = model.table
    rest = {k: v for k, v in arrays.items() if k != SLOTS and not k.startswith(ROWS)}
    own = {n: getattr(model, n) for n in FIXED if getattr(model, n, None) is not None}
    model.load_state(meta, {**rest, **table.arrays, **own})
    table.write_rows(arrays[SLOTS], {n: arrays[ROWS + n] for n in table.arrays}, dirty=False)
    table.take_round()


def merge(packed, rows, base, model) -> tuple[ModelState, tuple[dict, dict]]:
    """(the merged state holding the driver's ``model``'s table, the broadcast) of the workers'
    ``pack`` outputs after a round from ``base`` (the driver's state at its start)."""
    table = model.table
    base_meta, base_arrays = base
    stand_in = {**{n: base_arrays[n] for n in table.arrays}, **{n: base_arrays[n] for n in FIXED if n in base_arrays}}
    states = [ModelState.from_manifest(m, {**_rest(a), **stand_in}) for m, a in packed]
    merged = ModelState.merge(states, rows, ModelState.from_manifest(*base), table=False)
    slots = np.unique(np.concatenate([a[SLOTS] for _, a in packed]))
    base_rows = table.read_rows(slots)
    mine = []
    for _, a in packed:
        w = {n: v.copy() for n, v in base_rows.items()}
        at = np.searchsorted(slots, a[SLOTS])
        for n in table.arrays:
            w[n][at] = a[ROWS + n]
        mine.append(w)
    n = np.asarray(rows, np.float64)
    weights = n / n.sum() if n.sum() > 0 else np.full(len(n), 1.0 / len(n))
    cfg = model.config
    out = merge_rows(base_rows, mine, weights, model.n_outputs, cfg.rank, model.init_sigma, cfg.seed)
    table.write_rows(slots, out, dirty=True)
    merged = replace(merged, params={**merged.params, **table.arrays}, table=table)
    meta, arrays = merged.manifest()
    send = {k: v for k, v in arrays.items() if k not in table.arrays and k not in FIXED}
    send[SLOTS] = slots
    send.update({ROWS + name: v for name, v in out.items()})
    return merged, (meta, send)


def _rest(arrays: dict) -> dict:
    return {k: v for k, v in arrays.items() if k != SLOTS and not k.startswith(ROWS)}


def payload_bytes(state) -> int:
    """Bytes of a (meta, arrays) state's arrays: what it moves between processes, near enough."""
    return int(sum(np.asarray(a).nbytes for a in state[1].values()))
