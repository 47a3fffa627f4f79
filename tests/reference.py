"""Slow, obviously correct NumPy versions of the numba kernels (SPEC 1-4).

Dense rows, loops over anchors, no tricks: the fast kernels must match these.
"""
import numpy as np


def fm_value(x, b, w, V):
    """One FM, one output: b + w.x + sum_{j<l} <V_j, V_l> x_j x_l, by the O(p^2) definition."""
    p = len(x)
    f = b + w @ x
    for j in range(p):
        for l in range(j + 1, p):
            f += (V[j] @ V[l]) * x[j] * x[l]
    return f


def fm_outputs(x, b, W, V, i):
    """f_ic for every output c of anchor i; W (m,p,C), V (m,p,C,r)."""
    C = b.shape[1]
    return np.array([fm_value(x, b[i, c], W[i, :, c], V[i, :, c, :]) for c in range(C)])


def loss_and_grad(task, f, y):
    if task == "binary":
        p = 1 / (1 + np.exp(-f[0]))
        return -(y * np.log(p) + (1 - y) * np.log(1 - p)), np.array([p - y])
    if task == "regression":
        return 0.5 * (f[0] - y) ** 2, np.array([f[0] - y])
    yc = int(y)
    if task == "softmax":
        e = np.exp(f - f.max())
        pr = e / e.sum()
        g = pr.copy()
        g[yc] -= 1
        return -np.log(pr[yc]), g
    s = 1 / (1 + np.exp(-f))
    t = np.zeros_like(f)
    t[yc] = 1
    return -np.sum(t * np.log(s) + (1 - t) * np.log(1 - s)), s - t


def coding_fixed(method, phi, Z, ids, beta, rho):
    """gamma on a fixed neighbour set ``ids`` (the finite-difference view)."""
    d = np.array([np.sum((phi - Z[i]) ** 2) for i in ids])
    if method == "fm":
        return np.ones(1), 1.0
    if method in ("llfm-do", "llfm-apl"):
        e = np.exp(-beta * (d - d.min()))
        return e / e.sum(), 1.0
    bb = rho * d
    k = len(ids)
    s1, s2 = bb.sum(), (bb**2).sum()
    lam = (s1 + np.sqrt(k + s1 * s1 - k * s2)) / k
    a = lam - bb
    return a / a.sum(), a.sum()


def llfm_loss(method, task, x, y, phi, b, W, V, Z, ids, beta, rho, glob=False):
    """The loss with the neighbour set ``ids`` held fixed; ``glob``: plus the global FM (index m)."""
    gamma, _ = coding_fixed(method, phi, Z, ids, beta, rho)
    F = np.array([fm_outputs(x, b, W, V, i) for i in ids])
    f = gamma @ F
    if glob and method != "fm":
        f = f + fm_outputs(x, b, W, V, Z.shape[0])
    return loss_and_grad(task, f, y)[0]


def neighbours(method, phi, Z, k_soft, beta, rho):
    """Neighbour ids as the kernel chooses them (all anchors are candidates)."""
    if method == "fm":
        return [0]
    d = ((phi[None, :] - Z) ** 2).sum(1)
    order = np.argsort(d, kind="stable")
    if method in ("llfm-do", "llfm-apl"):
        return list(order[:k_soft])
    bs = rho * d[order]
    lam, k, s1, s2 = bs[0] + 1, 0, 0.0, 0.0
    while k < len(bs) and lam > bs[k]:
        s1 += bs[k]
        s2 += bs[k] ** 2
        k += 1
        lam = (s1 + np.sqrt(max(k + s1 * s1 - k * s2, 0))) / k
    return list(order[:k])


def sgd_step(method, task, x, y, phi, P, k_soft, beta, rho, eta, eta_z, zscale, exact=True, glob=False, l2=None,
             weight=1.0):
    """One plain SGD step (no normalisation, no clip) on dense x; returns new params.

    ``weight``: the row's sample weight, a factor on its loss (so on every gradient).

    ``glob``: f = f_global + sum gamma_i f_i, the global FM at index m of b, W, V; the anchor
    gradient is that of the local mixture (the global FM does not depend on the anchors).
    ``l2``: None (no L2), or (l2_w, l2_v, reg (p,), l2_fm (FMs,)): FM i's weight and factors of
    every feature j with x_j != 0 decay by l2_w * l2_fm[i] * reg[j] (l2_v for the factors).
    """
    b, W, V, Z = (P[n].copy() for n in "bWVZ")
    ids = neighbours(method, phi, Z, k_soft, beta, rho)
    gamma, S = coding_fixed(method, phi, Z, ids, beta, rho)
    F = np.array([fm_outputs(x, b, W, V, i) for i in ids])
    f = gamma @ F
    glob = glob and method != "fm"
    f_glob = fm_outputs(x, b, W, V, Z.shape[0]) if glob else 0.0
    _, g = loss_and_grad(task, f + f_glob, y)
    g = weight * g
    k = len(ids)
    if method in ("llfm-apl", "llfm-jo"):
        for a, i in enumerate(ids):
            if method == "llfm-jo":
                t = (F[a] - f) - (gamma[a] * (F.sum(0) - k * f) if exact else 0)
                coef = g @ (2 * rho * t / S)
            else:
                coef = g @ (2 * beta * gamma[a] * (F[a] - f))
            Z[i] = Z[i] - eta_z * zscale * coef * (phi - P["Z"][i])
    W0, V0 = P["W"], P["V"]
    fms = list(zip(ids, gamma)) + ([(Z.shape[0], 1.0)] if glob else [])
    for i, gam in fms:
        if l2 is None:
            dw = dv = np.zeros_like(x)
        else:
            l2_w, l2_v, reg, l2_fm = l2
            touched = (x != 0) * reg * l2_fm[i]
            dw, dv = l2_w * touched, l2_v * touched
        for c in range(b.shape[1]):
            G = g[c] * gam
            s = V0[i, :, c, :].T @ x  # (r,)
            b[i, c] -= eta * G
            W[i, :, c] -= eta * (G * x + dw * W0[i, :, c])
            V[i, :, c, :] -= eta * (G * x[:, None] * (s[None, :] - V0[i, :, c, :] * x[:, None])
                                    + dv[:, None] * V0[i, :, c, :])
    return dict(b=b, W=W, V=V, Z=Z)
