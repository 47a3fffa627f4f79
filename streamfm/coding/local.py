"""Local coding: the weights gamma that mix the anchors' FMs (SPEC section 3).

Both functions take distances already sorted ascending and write the weights
of the first k into ``gamma``; they return k.  They are numba functions so the
per-row training kernel calls them directly; ``adaptive_coding_np`` is the
NumPy-facing wrapper for tests and for users.
"""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def adaptive_coding(bs, gamma):
    """Algorithm 1 (Anava & Levy 2016) on sorted ``bs`` = rho * d, ascending.

    Minimises ||gamma||_2 + gamma . b over the simplex. Writes gamma[:k] and
    returns (k, lam, S) with S = sum_{i<k} (lam - b_i), the normaliser the
    exact anchor gradient needs.
    """
    n = bs.shape[0]
    lam = bs[0] + 1.0
    k = 0
    s1 = 0.0
    s2 = 0.0
    # The loop compares the current lambda with the *next* b, as SPEC 3.2
    # writes it (the authors' MATLAB compares one step late).
    while k < n and lam > bs[k]:
        s1 += bs[k]
        s2 += bs[k] * bs[k]
        k += 1
        disc = k + s1 * s1 - k * s2
        if disc < 0.0:  # cannot happen in exact arithmetic; guards rounding
            disc = 0.0
        lam = (s1 + np.sqrt(disc)) / k
    S = 0.0
    for i in range(k):
        S += lam - bs[i]
    for i in range(k):
        gamma[i] = (lam - bs[i]) / S
    return k, lam, S


@njit(cache=True, nogil=True)
def soft_assignment(ds, k, beta, gamma):
    """Eq. 3: gamma_i proportional to exp(-beta d_i) over the k nearest (sorted ``ds``)."""
    if k > ds.shape[0]:
        k = ds.shape[0]
    tot = 0.0
    for i in range(k):
        # subtracting the minimum distance keeps exp() from underflowing to 0/0
        gamma[i] = np.exp(-beta * (ds[i] - ds[0]))
        tot += gamma[i]
    for i in range(k):
        gamma[i] /= tot
    return k


def adaptive_coding_np(b):
    """Algorithm 1 on an unsorted vector ``b``: returns gamma in b's order."""
    b = np.asarray(b, dtype=np.float64)
    order = np.argsort(b, kind="stable")
    g = np.zeros(len(b))
    k, _, _ = adaptive_coding(b[order], g)
    out = np.zeros(len(b))
    out[order[:k]] = g[:k]
    return out


def soft_assignment_np(d, k, beta):
    """Eq. 3 on an unsorted vector of distances: returns gamma in d's order."""
    d = np.asarray(d, dtype=np.float64)
    order = np.argsort(d, kind="stable")
    g = np.zeros(len(d))
    kk = soft_assignment(d[order], k, beta, g)
    out = np.zeros(len(d))
    out[order[:kk]] = g[:kk]
    return out
