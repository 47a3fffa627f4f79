"""Arrays a checkpoint may write by blocks: only the blocks changed since the checkpoint before.

A caller tracks some arrays by blocks (``Blocks``): arrays of the same
number of rows (the hashed table's W, V, accumulators and tags, each seen
as (rows, values per row)), cut into blocks of ``block`` rows, and the ids
of the blocks changed since the committed checkpoint ``since``; and
``static`` arrays, unchanged since then (the caller's promise). A
checkpoint then holds the tracked arrays either whole (a *base*) or as a
*delta*: ``<name>.delta.npy``, the changed blocks' rows one after another,
and ``delta_blocks.npy``, their ids; a delta holds no static array (the
base does). The manifest's ``chain`` entry (``{"names", "static", "rows",
"block", "base", "deltas"}``) names the base and the deltas to apply in
order; every checkpoint of a chain is named by the
manifest, so none is deleted while it is needed (kept checkpoints carry
their own chain). Loading opens the base's files and writes the deltas over
them (copy-on-write maps: the files stay as written).

A save writes a delta when the committed checkpoint is ``since``, its chain
tracks the same arrays, it has fewer than ``MAX_DELTAS`` deltas and at most
``MAX_SHARE`` of the blocks changed; otherwise a new base. The commit is
the manifest's atomic replacement, as for every checkpoint
(store/checkpoints.py): a crash at any moment leaves the last committed
chain whole.
"""
from __future__ import annotations

import functools
import pathlib
from dataclasses import dataclass

import numpy as np


#: deltas after a base before the next save writes a new base (bounds a load's work and the files kept)
MAX_DELTAS = 8
#: above this share of changed blocks a save writes a new base
MAX_SHARE = 0.5
DELTA_SUFFIX = ".delta"
DELTA_BLOCKS = "delta_blocks"


@dataclass(frozen=True)
class Blocks:
    """Arrays tracked by blocks in a save: ``names`` of ``rows`` rows each, blocks of ``block`` rows,
    ``changed`` (sorted block ids) since the committed checkpoint ``since`` (None: unknown)."""

    names: tuple
    rows: int
    block: int
    changed: np.ndarray
    since: str | None
    static: tuple = ()

    def layout(self) -> dict:
        return {"names": list(self.names), "static": list(self.static), "rows": int(self.rows),
                "block": int(self.block)}


def plan(blocks: Blocks | None, current: dict | None) -> dict | None:
    """The committed chain the save extends with a delta, or None (a new base, or no blocks)."""
    if blocks is None or current is None or blocks.since != current["checkpoint"]:
        return None
    chain = current.get("chain")
    if not chain or {k: chain.get(k, []) for k in ("names", "static", "rows", "block")} != blocks.layout():
        return None
    n_blocks = -(-blocks.rows // blocks.block)
    if len(chain["deltas"]) >= MAX_DELTAS or len(blocks.changed) > MAX_SHARE * n_blocks:
        return None
    return chain


def new_chain(blocks: Blocks | None, extends: dict | None, name: str) -> dict | None:
    """The manifest's chain after saving checkpoint ``name``."""
    if blocks is None:
        return None
    if extends is None:
        return {**blocks.layout(), "base": name, "deltas": []}
    return {**blocks.layout(), "base": extends["base"], "deltas": extends["deltas"] + [name]}


def _row_ranges(ids: np.ndarray, block: int, rows: int) -> np.ndarray:
    """The rows of blocks ``ids``, in order."""
    if len(ids) == 0:
        return np.zeros(0, np.int64)
    if block == 1:
        return np.asarray(ids, np.int64)
    starts = np.asarray(ids, np.int64) * block
    idx = (starts[:, None] + np.arange(block)).ravel()
    return idx[idx < rows]


def delta_files(blocks: Blocks, arrays: dict) -> dict:
    """The files of a delta checkpoint for the tracked arrays: {file stem: array, or a function
    that makes it}. Each tracked array's changed rows are gathered when its file is written, so a
    save holds one such copy at a time (up to half a table each), not all of them."""
    rows = _row_ranges(blocks.changed, blocks.block, blocks.rows)
    out = {DELTA_BLOCKS: np.asarray(blocks.changed, np.int64)}
    for name in blocks.names:
        out[name + DELTA_SUFFIX] = functools.partial(_gather_rows, arrays[name], blocks.rows, rows)
    return out


def _gather_rows(array, n_rows: int, rows: np.ndarray) -> np.ndarray:
    return np.asarray(array).reshape(n_rows, -1)[rows]


def split(blocks: Blocks | None, extends: dict | None, arrays: dict) -> tuple[dict, dict | None]:
    """(arrays written whole, a delta's files) of a save: all whole unless it ``extends`` a chain."""
    if extends is None:
        return arrays, None
    skip = set(blocks.names) | set(blocks.static)
    return {k: v for k, v in arrays.items() if k not in skip}, delta_files(blocks, arrays)


def folder_of(manifest: dict, name: str) -> str:
    """The checkpoint directory whose ``<name>.npy`` holds array ``name`` (a chain's base for tracked ones)."""
    chain = manifest.get("chain")
    if chain and (name in chain["names"] or name in chain.get("static", ())):
        return chain["base"]
    return manifest["checkpoint"]


def apply_deltas(path: pathlib.Path, chain: dict, arrays: dict, damaged) -> None:
    """Write the chain's deltas, in order, over the tracked arrays (opened writable from its base)."""
    rows, block = chain["rows"], chain["block"]
    for ckpt in chain["deltas"]:
        try:
            ids = np.load(path / ckpt / f"{DELTA_BLOCKS}.npy", allow_pickle=False)
            where = _row_ranges(ids, block, rows)
            for name in chain["names"]:
                values = np.load(path / ckpt / f"{name}{DELTA_SUFFIX}.npy", allow_pickle=False)
                flat = arrays[name].reshape(rows, -1)
                if values.shape != (len(where), flat.shape[1]):
                    raise ValueError(f"{name}{DELTA_SUFFIX}.npy has shape {values.shape}")
                flat[where] = values
        except FileNotFoundError:
            raise
        except (OSError, ValueError, EOFError) as exc:
            raise damaged(path, f"{ckpt}'s blocks cannot be read ({exc})") from None
