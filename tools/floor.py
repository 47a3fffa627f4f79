"""The arithmetic floor: a bare in-memory numba FM SGD loop over a dense array.

No reading, no decoding, no standardising, no coding, no checkpoints: rows
already in memory as a C-contiguous (n, p) float64 array, one logistic-loss
SGD step per row on one FM (bias, weights, rank-r factors). It is the
practical ceiling of any per-row FM SGD on this machine, and
``tools/bench_throughput.py`` reports streamfm's end-to-end throughput as a
fraction of it. ``tests/test_bench_floor.py`` checks it against NumPy.
"""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def bare_fm_sgd(X, y, b, w, V, eta, l2):
    """One SGD step per row of ``X`` (n, p) on (b (1,), w (p,), V (p, r)); returns the summed log loss.

    f = b + w.x + 1/2 sum_f [(sum_j V_jf x_j)^2 - sum_j V_jf^2 x_j^2]; loss = log(1 + e^f) - y f;
    b -= eta g; w_j -= eta (g x_j + l2 w_j); V_jf -= eta (g x_j (s_f - V_jf x_j) + l2 V_jf).
    """
    n, p = X.shape
    r = V.shape[1]
    s = np.zeros(r)
    total = 0.0
    for i in range(n):
        f = b[0]
        for f_ in range(r):
            s[f_] = 0.0
        sq = 0.0
        for j in range(p):
            x = X[i, j]
            f += w[j] * x
            for f_ in range(r):
                v = V[j, f_] * x
                s[f_] += v
                sq += v * v
        ss = 0.0
        for f_ in range(r):
            ss += s[f_] * s[f_]
        f += 0.5 * (ss - sq)
        if f > 0.0:
            total += f + np.log1p(np.exp(-f)) - y[i] * f
            g = 1.0 / (1.0 + np.exp(-f)) - y[i]
        else:
            e = np.exp(f)
            total += np.log1p(e) - y[i] * f
            g = e / (1.0 + e) - y[i]
        b[0] -= eta * g
        for j in range(p):
            x = X[i, j]
            w[j] -= eta * (g * x + l2 * w[j])
            gx = g * x
            for f_ in range(r):
                v = V[j, f_]
                V[j, f_] = v - eta * (gx * (s[f_] - v * x) + l2 * v)
    return total
