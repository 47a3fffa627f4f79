"""Initial anchors: seeded k-means (FAISS) on the scan pass's reservoir sample."""
import numpy as np

from ..errors import InputError


def kmeans_anchors(sample: np.ndarray, m: int, *, seed: int = 0, niter: int = 25, nredo: int = 4) -> np.ndarray:
    """``m`` centroids of the rows of ``sample`` (n, q); float64 (m, q).

    FAISS k-means is seeded, so the same sample and seed give the same anchors.
    """
    from ._faiss import faiss as _load
    from ._faiss import interruptible
    faiss = _load()

    sample = np.ascontiguousarray(sample, dtype=np.float32)
    n, q = sample.shape
    if n < m:
        raise InputError(
            f"{m} anchors need at least {m} sample rows; the data gave {n}. "
            "Use fewer anchors (--anchors) or more data."
        )
    # a few restarts (best objective kept): random initialisation alone can
    # leave two anchors in one cluster and none in another
    km = faiss.Kmeans(q, m, niter=niter, nredo=nredo, seed=int(seed) % (2**31), verbose=False,
                      max_points_per_centroid=max(256, n // m + 1),
                      min_points_per_centroid=1)  # small samples are the caller's choice, not a warning
    with interruptible():  # thousands of anchors take seconds: let Ctrl-C stop it
        km.train(sample)
    return km.centroids.astype(np.float64)


def coding_scale(sample: np.ndarray, anchors: np.ndarray) -> float:
    """Mean squared distance from a sample row to its nearest anchor.

    Distances are divided by this before the coding (rho * d, beta * d), so
    the coding parameters mean the same thing whatever the number and scale
    of the features: rho = 1 lets Algorithm 1 reach anchors about one typical
    nearest-anchor distance farther than the nearest.
    """
    from ._faiss import faiss as _load
    faiss = _load()

    index = faiss.IndexFlatL2(anchors.shape[1])
    index.add(np.ascontiguousarray(anchors, dtype=np.float32))
    d, _ = index.search(np.ascontiguousarray(sample, dtype=np.float32), 1)
    scale = float(np.mean(d[:, 0]))
    return scale if scale > 1e-12 else 1.0
