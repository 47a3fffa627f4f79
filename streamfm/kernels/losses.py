"""Loss values and their gradients with respect to the model outputs f_c.

Task codes are small integers so the numba kernels can branch on them.
"""
import numpy as np
from numba import njit

BINARY = 0  # logistic loss, one output, target 0/1
SOFTMAX = 1  # softmax cross-entropy, C outputs, target a class code
OVR = 2  # one-vs-rest logistic, C outputs, target a class code
SQUARED = 3  # squared loss (1/2 (f - y)^2), one output

TASK_CODES = {"binary": BINARY, "softmax": SOFTMAX, "ovr": OVR, "regression": SQUARED}


@njit(cache=True, inline="always")
def _log1pexp(z):
    # log(1 + exp(z)) without overflow for large |z|
    if z > 0.0:
        return z + np.log1p(np.exp(-z))
    return np.log1p(np.exp(z))


@njit(cache=True, inline="always")
def _sigmoid(z):
    if z >= 0.0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@njit(cache=True, nogil=True)
def loss_grad(task, f, y, g):
    """Loss of outputs ``f`` (C,) for target ``y``; writes dloss/df into ``g``.

    The logistic loss is the log loss of p = sigmoid(f) (natural log), so
    training and evaluation report the same number.
    """
    C = f.shape[0]
    if task == BINARY:
        z = f[0]
        g[0] = _sigmoid(z) - y
        # -[y log p + (1-y) log(1-p)] = log(1+e^z) - y z
        return _log1pexp(z) - y * z
    if task == SQUARED:
        d = f[0] - y
        g[0] = d
        return 0.5 * d * d
    yc = int(y)
    if task == SOFTMAX:
        fmax = f[0]
        for c in range(1, C):
            if f[c] > fmax:
                fmax = f[c]
        tot = 0.0
        for c in range(C):
            g[c] = np.exp(f[c] - fmax)
            tot += g[c]
        for c in range(C):
            g[c] /= tot
        loss = np.log(tot) + fmax - f[yc]
        g[yc] -= 1.0
        return loss
    # OVR: an independent logistic loss per class, summed
    loss = 0.0
    for c in range(C):
        t = 1.0 if c == yc else 0.0
        g[c] = _sigmoid(f[c]) - t
        loss += _log1pexp(f[c]) - t * f[c]
    return loss
