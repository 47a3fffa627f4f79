"""The throughput benchmark's data: dense Covtype-shaped and sparse CTR-shaped rows in three formats.

Every data set is one seeded stream of ``tools/datagen.py``: its first rows
train, the next ones test. Each split is written as Parquet, libsvm and VW
text (the peers' own format), once, under ``bench-data/throughput/`` (git
ignores bench-data/), and reused by later runs.
"""
from __future__ import annotations

import os

import numpy as np

from tools.harness import REPO

DATA = os.path.join(REPO, "bench-data", "throughput")
SEED = 7
BLOCK = 100_000
DENSE_P = 54


def _split(blocks, n_train):
    """(is_train, X, y) of (X, y) blocks of one stream: its first n_train rows train, the rest test
    (a block across the boundary is cut there)."""
    done = 0
    for X, y in blocks:
        cut = min(max(n_train - done, 0), len(y))
        if cut:
            yield True, X[:cut], y[:cut]
        if cut < len(y):
            yield False, X[cut:], y[cut:]
        done += len(y)


def _covtype_split(n_train, n_test):
    from tools.datagen import covtype_blocks

    return _split(covtype_blocks(n_train + n_test, seed=SEED, block=BLOCK), n_train)


def _ctr_split(n_train, n_test):
    from tools.datagen import ctr_blocks

    return _split(ctr_blocks(n_train + n_test, seed=SEED, block=BLOCK, sort=False), n_train)


class _Writers:
    """Parquet, libsvm and VW text writers for one split (files appear whole, on ``close``)."""

    def __init__(self, stem, schema):
        import pyarrow.parquet as pq

        self.stem = stem
        self.pq = pq.ParquetWriter(stem + ".parquet.tmp", schema, compression="zstd")
        self.svm = open(stem + ".svm.tmp", "w")
        self.vw = open(stem + ".vw.tmp", "w")

    def close(self):
        self.pq.close()
        self.svm.close()
        self.vw.close()
        for ext in ("parquet", "svm", "vw"):
            os.replace(f"{self.stem}.{ext}.tmp", f"{self.stem}.{ext}")


def _fmt(v):
    return f"{v:.6g}"


def _dense_schema():
    import pyarrow as pa

    return pa.schema([(f"f{j}", pa.float64()) for j in range(DENSE_P)] + [("label", pa.int64())])


def _dense_table(X, y, schema):
    import pyarrow as pa

    cols = [pa.array(X[:, j]) for j in range(DENSE_P)] + [pa.array(y)]
    return pa.Table.from_arrays(cols, schema=schema)


def make_dense(n_train, n_test, tag, parquet_only=False, root=None):
    """``{"train": stem, "test": stem}`` of the dense data (``stem`` + ".parquet", ".svm", ".vw").

    ``parquet_only``: Parquet files alone (the scaling sections' larger sets).
    """
    root = root or DATA
    stems = {s: os.path.join(root, f"dense{tag}-{s}") for s in ("train", "test")}
    if all(os.path.exists(stems[s] + (".parquet" if parquet_only else ".vw")) for s in stems):
        return stems
    os.makedirs(root, exist_ok=True)
    schema = _dense_schema()
    if parquet_only:
        import pyarrow.parquet as pq

        ws = {k: pq.ParquetWriter(stems[k] + ".parquet.tmp", schema, compression="zstd") for k in stems}
        for is_train, X, y in _covtype_split(n_train, n_test):
            ws["train" if is_train else "test"].write_table(_dense_table(X, y, schema), row_group_size=65536)
        for k, w in ws.items():
            w.close()
            os.replace(stems[k] + ".parquet.tmp", stems[k] + ".parquet")
        return stems
    w = {s: _Writers(stems[s], schema) for s in stems}
    for is_train, X, y in _covtype_split(n_train, n_test):
        out = w["train" if is_train else "test"]
        out.pq.write_table(_dense_table(X, y, schema), row_group_size=65536)
        svm, vw = [], []
        for xi, yi in zip(X, y):
            nz = np.flatnonzero(xi)
            toks = [(j, _fmt(xi[j])) for j in nz]
            svm.append(f"{yi} " + " ".join(f"{j + 1}:{v}" for j, v in toks))
            vw.append(f"{1 if yi else -1} |f " + " ".join(f"{j}:{v}" for j, v in toks))
        out.svm.write("\n".join(svm) + "\n")
        out.vw.write("\n".join(vw) + "\n")
    for x in w.values():
        x.close()
    return stems


def make_sparse(n_train, n_test, tag, root=None):
    """``{"train": stem, "test": stem}`` of the sparse CTR-shaped data, in the three formats."""
    import pyarrow as pa

    root = root or DATA
    stems = {s: os.path.join(root, f"sparse{tag}-{s}") for s in ("train", "test")}
    if all(os.path.exists(stems[s] + ".vw") for s in stems):
        return stems
    os.makedirs(root, exist_ok=True)
    schema = pa.schema([("label", pa.int64()), ("indices", pa.list_(pa.int32())), ("values", pa.list_(pa.float64()))])
    w = {s: _Writers(stems[s], schema) for s in stems}
    for is_train, ids, y in _ctr_split(n_train, n_test):
        out = w["train" if is_train else "test"]
        rows = [np.unique(r) for r in ids]
        offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int32)
        flat = np.concatenate(rows).astype(np.int32)
        ind = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))
        val = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.ones(len(flat))))
        out.pq.write_table(pa.Table.from_arrays([pa.array(y), ind, val], schema=schema))
        out.svm.write("\n".join(f"{yi} " + " ".join(f"{j + 1}:1" for j in r) for r, yi in zip(rows, y)) + "\n")
        # VW: the two field groups of the generator's interactions as namespaces
        # a (fields 0-9) and b (fields 10-29); feature names are the hashed ids
        out.vw.write("\n".join(
            f"{1 if yi else -1} |a " + " ".join(map(str, r[:10])) + " |b " + " ".join(map(str, r[10:]))
            for r, yi in zip(ids.tolist(), y)) + "\n")
    for x in w.values():
        x.close()
    return stems


def count_rows(stem):
    import pyarrow.parquet as pq

    return pq.ParquetFile(stem + ".parquet").metadata.num_rows


def subset_vw(stem, rows):
    """The first ``rows`` lines of a VW file (for the slow peers)."""
    out = f"{stem}-first{rows}.vw"
    if not os.path.exists(out):
        with open(stem + ".vw") as src, open(out + ".tmp", "w") as dst:
            for i, line in enumerate(src):
                if i >= rows:
                    break
                dst.write(line)
        os.replace(out + ".tmp", out)
    return out
