"""Slow, obviously correct Python versions of the hashed store's addressing and its training step.

Python integers masked to 64 bits stand in for numba's uint64; a step loops
over a row's (FM, slot) pairs one by one, so two features (or two FMs) that
share a slot update it in turn, as the kernels do.
"""
import math

import numpy as np

import reference as ref

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix64(x):
    z = (int(x) + GOLDEN) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def pair_key(i, j):
    return splitmix64(((int(i) * GOLDEN) & MASK) ^ int(j))


def slot_and_tag(i, j, bits):
    key = pair_key(i, j)
    tag = key & 0xFFFFFFFF
    return key >> (64 - bits), tag or 1


def seed_key(seed):
    return splitmix64(splitmix64(seed) ^ 0x5EED)


def initial_factor(skey, tag, u):
    base = splitmix64(int(skey) ^ (int(tag) << 32))
    a = splitmix64((base + 2 * u) & MASK)
    b = splitmix64((base + 2 * u + 1) & MASK)
    u1 = ((a >> 11) + 0.5) * 2.0 ** -53
    u2 = (b >> 11) * 2.0 ** -53
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def touch(T, i, j, bits, sigma, skey):
    """Slot of FM i's feature j in table T (dict of arrays W (S, C), V (S, C, r), tags); initialises
    a fresh slot. Returns (slot, collided)."""
    s, tag = slot_and_tag(i, j, bits)
    if T["tags"][s] == 0:  # (int64 tags: Python ints stay exact)
        T["tags"][s] = tag
        C, r = T["V"].shape[1:]
        for c in range(C):
            for f in range(r):
                T["V"][s, c, f] = sigma * initial_factor(skey, tag, c * r + f)
        return s, False
    return s, T["tags"][s] != tag


def fm_out(T, b_i, slots, x):
    """(C,) outputs and (C, r) factor sums of one FM whose features are at ``slots``."""
    C = b_i.shape[0]
    f = b_i.copy()
    S = np.zeros((C, T["V"].shape[2]))
    for c in range(C):
        sq = 0.0
        for s, xv in zip(slots, x):
            f[c] += T["W"][s, c] * xv
            S[c] += T["V"][s, c] * xv
            sq += (T["V"][s, c] ** 2).sum() * xv * xv
        f[c] += 0.5 * ((S[c] ** 2).sum() - sq)
    return f, S


def sgd_step(method, task, feats, x, y, phi, b, Z, T, bits, sigma, skey, k_soft, beta, rho, eta, eta_z, zscale,
             glob=False):
    """One plain SGD step of a sparse row (features ``feats``, values ``x``) on the hashed table T
    (updated in place) with biases b and anchors Z (updated in place); returns (loss, k, collisions).
    ``glob``: the global FM (index m) joins with weight 1; the anchors see the local mixture."""
    local = ref.neighbours(method, phi, Z, k_soft, beta, rho)
    gamma, S = ref.coding_fixed(method, phi, Z, local, beta, rho)
    k = len(local)
    ids = list(local) + ([Z.shape[0]] if glob else [])
    weights = np.concatenate([gamma, [1.0] * glob])
    hits = 0
    slots = []
    for i in ids:
        row = []
        for j in feats:
            s, hit = touch(T, i, j, bits, sigma, skey)
            hits += hit
            row.append(s)
        slots.append(row)
    outs = [fm_out(T, b[i], sl, x) for i, sl in zip(ids, slots)]
    F = np.array([o[0] for o in outs[:k]])
    f = gamma @ F
    loss, g = ref.loss_and_grad(task, f + (outs[k][0] if glob else 0.0), y)
    if method in ("llfm-apl", "llfm-jo"):
        Z0 = Z.copy()
        for a, i in enumerate(local):
            if method == "llfm-jo":
                t = (F[a] - f) - gamma[a] * (F.sum(0) - k * f)
                coef = g @ (2 * rho * t / S)
            else:
                coef = g @ (2 * beta * gamma[a] * (F[a] - f))
            Z[i] = Z[i] - eta_z * zscale * coef * (phi - Z0[i])
    for a, i in enumerate(ids):
        Sa = outs[a][1]
        for c in range(b.shape[1]):
            G = g[c] * weights[a]
            b[i, c] -= eta * G
            for s, xv in zip(slots[a], x):
                T["W"][s, c] -= eta * G * xv
            for s, xv in zip(slots[a], x):
                v = T["V"][s, c].copy()
                T["V"][s, c] = v - eta * G * xv * (Sa[c] - v * xv)
    return loss, k, hits
