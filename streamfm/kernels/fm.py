"""One anchor's factorization machine: evaluate and update, O(nnz * C * r).

Parameter layout (anchor i, feature j, output c, factor f):
    b[i, c]        bias
    W[i, j, c]     linear weights
    V[i, j, c, f]  factors
A row is the slice ``lo:hi`` of CSR ``indices`` / ``data``.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def fm_eval(i, lo, hi, indices, data, b, W, V, out_f, out_s):
    """f_ic for every output c into ``out_f`` (C,); sums s_icf = sum_j V_ijcf x_j into ``out_s`` (C, r).

    Returns the squared norm of the gradient of f_ic with respect to this
    anchor's parameters, maximised over c:
    1 + ||x||^2 + sum_{j,f} x_j^2 (s_f - V_jf x_j)^2.  It sets the normalised
    step size (see ``step_scale`` in kernels/llfm.py).
    """
    C = out_f.shape[0]
    r = out_s.shape[1]
    xx = 0.0
    for c in range(C):
        out_f[c] = b[i, c]
        for f in range(r):
            out_s[c, f] = 0.0
    for t in range(lo, hi):
        j = indices[t]
        x = data[t]
        xx += x * x
        for c in range(C):
            out_f[c] += W[i, j, c] * x
            sq = 0.0
            for f in range(r):
                v = V[i, j, c, f] * x
                out_s[c, f] += v
                sq += v * v
            out_f[c] -= 0.5 * sq
    gmax = 0.0
    for c in range(C):
        ss = 0.0
        for f in range(r):
            ss += out_s[c, f] * out_s[c, f]
        out_f[c] += 0.5 * ss
        # sum_j x_j^2 (s_f - V_jf x_j)^2, the factor part of the gradient norm
        gv = 0.0
        for t in range(lo, hi):
            j = indices[t]
            x = data[t]
            for f in range(r):
                d = x * (out_s[c, f] - V[i, j, c, f] * x)
                gv += d * d
        if gv > gmax:
            gmax = gv
    return 1.0 + xx + gmax


@njit(cache=True)
def fm_update(i, lo, hi, indices, data, b, W, V, s, G, eta, l2_w, l2_v,
              adagrad, Ab, AW, AV):
    """SGD step on anchor i's FM for output gradients ``G`` (C,) = dloss/df_ic.

    ``s`` (C, r) holds the factor sums from ``fm_eval`` at the current
    parameters. L2 is applied only to the features present in the row
    (as libFM does), so a sparse row costs O(nnz), never O(p).
    With ``adagrad`` the per-parameter step is eta / sqrt(accumulated g^2).
    """
    C = G.shape[0]
    r = s.shape[1]
    for c in range(C):
        gc = G[c]
        if gc == 0.0:
            continue
        if adagrad:
            Ab[i, c] += gc * gc
            b[i, c] -= eta * gc / np.sqrt(Ab[i, c] + 1e-12)
        else:
            b[i, c] -= eta * gc
        for t in range(lo, hi):
            j = indices[t]
            x = data[t]
            gw = gc * x + l2_w * W[i, j, c]
            if adagrad:
                AW[i, j, c] += gw * gw
                W[i, j, c] -= eta * gw / np.sqrt(AW[i, j, c] + 1e-12)
            else:
                W[i, j, c] -= eta * gw
            for f in range(r):
                v = V[i, j, c, f]
                gv = gc * x * (s[c, f] - v * x) + l2_v * v
                if adagrad:
                    AV[i, j, c, f] += gv * gv
                    V[i, j, c, f] = v - eta * gv / np.sqrt(AV[i, j, c, f] + 1e-12)
                else:
                    V[i, j, c, f] = v - eta * gv
