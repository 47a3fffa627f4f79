"""Seeded generators of benchmark data shaped like the real thing, written in real formats.

- Covtype-shaped: 54 features as in UCI Covtype (10 real-valued, a one-hot
  of 4 "wilderness areas" and a one-hot of 40 "soil types"), binary labels
  from *locally different* linear rules (a rule per cluster of the real
  features), so LLFM has something to find that one FM cannot.
- CTR-shaped: categorical fields hashed into 2^20 features (~30 non-zeros a
  row), labels from a logistic model with pairwise field interactions.

Generation is blockwise: any number of rows in bounded memory, the same rows
for the same seed whatever the block size.
"""
from __future__ import annotations

import os

import numpy as np

COVTYPE_P = 54
N_CLUSTERS = 8


def _covtype_params(seed: int):
    rng = np.random.default_rng([seed, 0])
    return rng.normal(0, 3, size=(N_CLUSTERS, 10)), rng.normal(size=(N_CLUSTERS, 10)), rng.normal(size=(N_CLUSTERS, 44))


def covtype_blocks(rows: int, seed: int = 0, block: int = 100_000):
    """Yield (X float64 (b, 54), y int (b,)) blocks."""
    centres, normals, cat_w = _covtype_params(seed)
    for start in range(0, rows, block):
        b = min(block, rows - start)
        rng = np.random.default_rng([seed, 1, start])
        c = rng.integers(0, N_CLUSTERS, size=b)
        real = centres[c] + rng.normal(size=(b, 10))
        # as in the real data, the categorical features follow the location:
        # each cluster has its own wilderness area and five soil types (mostly)
        local = rng.random(b) < 0.9
        area = np.where(local, c % 4, rng.integers(0, 4, size=b))
        soil = np.where(local, 5 * c + rng.integers(0, 5, size=b), rng.integers(0, 40, size=b))
        X = np.zeros((b, COVTYPE_P))
        X[:, :10] = real
        X[np.arange(b), 10 + area] = 1.0
        X[np.arange(b), 14 + soil] = 1.0
        score = np.einsum("ij,ij->i", real - centres[c], normals[c]) + 0.5 * cat_w[c, area] + 0.5 * cat_w[c, 4 + soil]
        y = (score + 0.3 * rng.normal(size=b) > 0).astype(np.int64)
        yield X, y


def write_covtype_libsvm(path: str, rows: int, seed: int = 0, dense: bool = False) -> None:
    """libsvm text (1-based); ``dense`` writes every feature (zeros too), as a dense export would."""
    with open(path + ".tmp", "w") as fh:
        for X, y in covtype_blocks(rows, seed):
            lines = []
            for xi, yi in zip(X, y):
                idx = np.arange(COVTYPE_P) if dense else np.flatnonzero(xi)
                lines.append(f"{yi} " + " ".join(f"{j + 1}:{xi[j]:.6g}" for j in idx))
            fh.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


def write_covtype_parquet(path: str, rows: int, seed: int = 0, row_group: int = 65_536) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(f"f{j}", pa.float64()) for j in range(COVTYPE_P)] + [("label", pa.int64())])
    with pq.ParquetWriter(path + ".tmp", schema, compression="zstd") as w:
        for X, y in covtype_blocks(rows, seed, block=row_group):
            cols = [pa.array(X[:, j]) for j in range(COVTYPE_P)] + [pa.array(y)]
            w.write_table(pa.Table.from_arrays(cols, schema=schema), row_group_size=row_group)
    os.replace(path + ".tmp", path)


CTR_FIELDS = 30
CTR_VOCAB = 50_000
CTR_P = 1 << 20


def ctr_blocks(rows: int, seed: int = 0, block: int = 100_000, latent: int = 4, sort: bool = True,
               p: int = CTR_P):
    """Yield (indices int32 (b, 30), y int (b,)): one hashed feature id per field (of ``p``), value 1.

    ``sort=False`` keeps the ids in field order (column f is field f), for
    writers that group fields (e.g. Vowpal Wabbit namespaces).
    """
    prng = np.random.default_rng([seed, 2])
    emb = prng.normal(0, 0.6, size=(CTR_FIELDS, 512, latent))  # per-field latent of (value mod 512)
    bias = prng.normal(0, 0.4, size=(CTR_FIELDS, 512))
    for start in range(0, rows, block):
        b = min(block, rows - start)
        rng = np.random.default_rng([seed, 3, start])
        # Zipf-like values: a few common categories, a long tail
        vals = np.minimum(rng.zipf(1.3, size=(b, CTR_FIELDS)) - 1, CTR_VOCAB - 1)
        key = vals % 512
        f = np.arange(CTR_FIELDS)[None, :]
        e = emb[f, key]  # (b, F, latent)
        # pairwise interactions between the first 10 fields and the rest
        s = np.einsum("bfl,bgl->b", e[:, :10], e[:, 10:20]) / 5 + bias[f, key].sum(1) / 3 - 1.0
        y = (rng.random(b) < 1 / (1 + np.exp(-s))).astype(np.int64)
        ids = ((vals.astype(np.uint64) * np.uint64(2654435761) + f.astype(np.uint64) * np.uint64(40503))
               % np.uint64(p)).astype(np.int32)
        yield (np.sort(ids, axis=1) if sort else ids), y


def write_ctr_libsvm(path: str, rows: int, seed: int = 0) -> None:
    with open(path + ".tmp", "w") as fh:
        for ids, y in ctr_blocks(rows, seed):
            ids = ids + 1
            fh.write("\n".join(f"{yi} " + " ".join(f"{j}:1" for j in np.unique(r)) for r, yi in zip(ids, y)) + "\n")
    os.replace(path + ".tmp", path)


def write_ctr_parquet(path: str, rows: int, seed: int = 0, row_group: int = 65_536) -> None:
    """The sparse layout: label, indices list<int32>, values list<float64>."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("label", pa.int64()), ("indices", pa.list_(pa.int32())), ("values", pa.list_(pa.float64()))])
    with pq.ParquetWriter(path + ".tmp", schema, compression="zstd") as w:
        for ids, y in ctr_blocks(rows, seed, block=row_group):
            rows_ids = [np.unique(r) for r in ids]
            offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows_ids])]).astype(np.int32)
            flat = np.concatenate(rows_ids).astype(np.int32)
            ind = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))
            val = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.ones(len(flat))))
            w.write_table(pa.Table.from_arrays([pa.array(y), ind, val], schema=schema))
    os.replace(path + ".tmp", path)
