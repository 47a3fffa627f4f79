"""The coding space phi(x) in which anchors live (SPEC 3, 3.4).

Up to ``MAX_IDENTITY`` features phi is the identity (anchors in R^p, as in
the paper). Wider data, typically hashed sparse features, is mapped by a
fixed count sketch into ``SKETCH_DIM`` dense coordinates: each feature j goes
to one bucket with a sign, so phi(x) costs O(nnz) and needs no stored matrix.
The FM part always uses the full sparse x.
"""
import numpy as np

MAX_IDENTITY = 1000
SKETCH_DIM = 64
#: The largest |coordinate| of phi(x) the FAISS search (float32) computes with: squared distances
#: of larger coordinates overflow float32 (3.4e38), and a row then finds no anchor.
MAX_CODING_VALUE = 1e18


def coding_kind(p: int) -> str:
    """The coding space of data of ``p`` features: ``"identity"`` or ``"count_sketch"``."""
    return "identity" if p <= MAX_IDENTITY else "count_sketch"


def coding_dim(p: int) -> int:
    return p if coding_kind(p) == "identity" else SKETCH_DIM


def _sketch(indices: np.ndarray, q: int):
    # Knuth's multiplicative hash: stable across runs and platforms
    h = (indices.astype(np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    bucket = (h % np.uint64(q)).astype(np.int64)
    sign = np.where((h >> np.uint64(31)) & np.uint64(1), -1.0, 1.0)
    return bucket, sign


def coding_vectors(indptr, indices, data, p: int) -> np.ndarray:
    """phi(x) for every row of a CSR chunk: float64 (n, q), C-contiguous."""
    n = len(indptr) - 1
    q = coding_dim(p)
    out = np.zeros((n, q), dtype=np.float64)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    if q == p:
        out[rows, indices] = data
    else:
        bucket, sign = _sketch(indices, q)
        np.add.at(out, (rows, bucket), sign * data)
    return out
