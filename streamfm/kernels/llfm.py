"""Per-row SGD for FM and LLFM over one chunk of rows (SPEC sections 1-5).

Everything here takes raw arrays. A chunk arrives with, per row, its CSR
slice, its coding vector phi(x) (dense, q columns) and K candidate anchors
from the FAISS index (-1 where there were fewer). Distances to the candidates
are recomputed from the *current* anchors, so a stale index only matters when
the true nearest anchor is missing from the candidates (counted elsewhere).

Methods: FM (one anchor, gamma = 1), DO (soft assignment, anchors fixed),
APL (soft assignment, anchors learned), JO (Algorithm 1, anchors learned).

With ``glob`` (the default of the LLFM methods), a row's output is a global
FM plus the local mixture, f = f_0 + sum_i gamma_i f_i: the FM parameters
b, W, V hold m + 1 FMs, the last (index m, beside the m anchors of Z) the
global one, which every row trains with weight 1. Each local FM then sees
only the rows near its anchor, and on data whose coding carries no locality
(one-hot users and items, say) the global FM learns what they cannot; the
paper's model is ``glob`` False.

``table``: None for the exact store (FM i's feature j at W[i, j], V[i, j]),
or the hashed store's ``(shift, tags, dirty, sigma, skey)``
(kernels/hashing.py): W (1, S, C) and V (1, S, C, r) are a table of S =
2^bits slots shared by every FM. Each row's slots are computed per
neighbour before its evaluation (``slots[a, :nnz]``, touching and
initialising new ones), and the FM functions of kernels/fm.py run
unchanged with FM index 0, ``indices`` = the neighbour's slots, the row's
values and L2 weights as views, and the bias as the view ``b[i:i + 1]``.
The ``fm`` method never needs it: one FM hashes feature j alone, so its
chunks are remapped to slots before the kernel (models/core.py).
The L2 weights ``reg`` are aligned with ``data`` (see ``train_rows_general``).
"""
import numpy as np
from numba import njit

from ..coding.local import adaptive_coding, soft_assignment
from ._prefetch import prefetch_anchor
from .fm import (ada_accumulate, ada_step, fm_eval, fm_rows_adagrad, fm_rows_dense, fm_rows_single, fm_update,
                 row_weight)
from .hashing import fm_args, row_slots, slot_buffer, touch_row
from .losses import BINARY, SQUARED, loss_grad

FM, DO, APL, JO = 0, 1, 2, 3
METHOD_CODES = {"fm": FM, "llfm-do": DO, "llfm-apl": APL, "llfm-jo": JO}
SGD, NORMALIZED, ADAGRAD = 0, 1, 2
OPTIMIZER_CODES = {"sgd": SGD, "normalized": NORMALIZED, "adagrad": ADAGRAD}

# stats slots returned by the kernels
ST_WANTED_MORE = 0  # Algorithm 1 used every candidate: it may have wanted more
ST_K_SUM = 1  # sum of neighbours used, for the mean k
ST_COLLISIONS = 2  # hashed store: touches of a slot first touched by another (FM, feature) pair
N_STATS = 3

# neighbours whose parameters are requested ahead of their evaluation: one, since
# the evaluations run in vector registers (kernels/_simd.py); two or more were slower
PREFETCH_AHEAD = 1


@njit(cache=True, nogil=True)
def code_row(method, row, phi, cand, Z, k_soft, beta, rho, ids, dist, gamma, order_buf):
    """Neighbour ids, sorted distances and weights for one row; returns (k, S).

    ``ids``/``dist``/``gamma`` get the k neighbours, nearest first. S is
    Algorithm 1's normaliser (1 for soft assignment, unused there).
    """
    if method == FM:
        ids[0] = 0
        dist[0] = 0.0
        gamma[0] = 1.0
        return 1, 1.0
    K = cand.shape[1]
    q = Z.shape[1]
    n = 0
    for a in range(K):
        z = cand[row, a]
        if z < 0:
            continue
        d = 0.0
        for u in range(q):
            e = phi[row, u] - Z[z, u]
            d += e * e
        order_buf[n] = z
        dist[n] = d
        n += 1
    # insertion sort: K is small (tens), and it keeps ties in candidate order
    for a in range(1, n):
        dv = dist[a]
        iv = order_buf[a]
        b = a - 1
        while b >= 0 and dist[b] > dv:
            dist[b + 1] = dist[b]
            order_buf[b + 1] = order_buf[b]
            b -= 1
        dist[b + 1] = dv
        order_buf[b + 1] = iv
    for a in range(n):
        ids[a] = order_buf[a]
    if method == JO:
        for a in range(n):
            dist[a] *= rho  # Algorithm 1 runs on b = rho * d
        k, lam, S = adaptive_coding(dist[:n], gamma)
        for a in range(n):
            dist[a] /= rho
        return k, S
    k = soft_assignment(dist[:n], k_soft, beta, gamma)
    return k, 1.0


@njit(cache=True, nogil=True)
def row_buffers(Kmax, C, r):
    """Per-row scratch of the row loops, allocated once per chunk:
    (ids, order_buf, dist, gamma, F, Sb, gn, work, fbuf) for up to Kmax neighbours."""
    return (np.zeros(Kmax, np.int64), np.zeros(Kmax, np.int64), np.zeros(Kmax), np.zeros(Kmax),
            np.zeros((Kmax, C)), np.zeros((Kmax, C, r)), np.zeros(Kmax), np.zeros((C, r)), np.zeros(C))


@njit(cache=True, nogil=True)
def _forward(k, ids, lo, hi, indices, data, b, W, V, gamma, F, Sb, fbuf, gn, work, table, slots):
    """Each neighbour's FM outputs F[a], factor sums Sb[a], mixture f; returns sum gamma^2 ||grad||^2.
    ``table`` not None: the hashed store, the row's slots in ``slots`` (``touch_row``)."""
    C = fbuf.shape[0]
    for c in range(C):
        fbuf[c] = 0.0
    D = 0.0
    # with many anchors or features the parameters outgrow the caches: the
    # first neighbours' blocks are asked for at once, each later one's during
    # the evaluation PREFETCH_AHEAD neighbours before it (see kernels/_prefetch.py);
    # the hashed store's slots were requested as they were computed (touch_row)
    if table is None:
        for a in range(min(k, PREFETCH_AHEAD)):
            prefetch_anchor(ids[a], lo, hi, indices, W, V)
    for a in range(k):
        ahead = ids[a + PREFETCH_AHEAD] if a + PREFETCH_AHEAD < k and table is None else -1
        fi, flo, fhi, fidx, fdata, fb, _, _ = fm_args(table, a, ids[a], lo, hi, indices, data, b, b, data, slots)
        gn[a] = fm_eval(fi, flo, fhi, fidx, fdata, fb, W, V, F[a], Sb[a], work, ahead)
        D += gamma[a] * gamma[a] * gn[a]
        for c in range(C):
            fbuf[c] += gamma[a] * F[a, c]
    return D


@njit(cache=True, nogil=True)
def anchor_steps(method, row, k, S, ids, gamma, F, fbuf, g, phi, Z, beta, rho, zscale, zclip, eta_z,
                 jo_exact, sumF, kappa):
    """One row's SGD step on its k neighbours' anchors (APL or JO), in place on ``Z``.

    ``F`` (k, C) holds each neighbour's outputs and ``fbuf`` (C,) their
    mixture at the parameters the loss saw, ``g`` (C,) dloss/df, ``S``
    Algorithm 1's normaliser, ``eta_z`` the anchor step at this row;
    ``sumF`` (C,) and ``kappa`` (>= k,) are scratch. Steps are in units of
    the coding scale ``zscale`` and clipped to ``zclip``.
    """
    C = fbuf.shape[0]
    q = Z.shape[1]
    for c in range(C):
        sumF[c] = 0.0
        for e in range(k):
            sumF[c] += F[e, c]
    for a in range(k):
        coef = 0.0
        for c in range(C):
            if method == JO:
                # SPEC 4: the second term is d lambda / d b_l = gamma_l
                t = F[a, c] - fbuf[c]
                if jo_exact:
                    t -= gamma[a] * (sumF[c] - k * fbuf[c])
                coef += g[c] * 2.0 * rho * t / S
            else:
                coef += g[c] * 2.0 * beta * gamma[a] * (F[a, c] - fbuf[c])
        kp = eta_z * zscale * coef
        if kp > zclip:
            kp = zclip
        elif kp < -zclip:
            kp = -zclip
        kappa[a] = kp
    for a in range(k):
        zi = ids[a]
        kp = kappa[a]
        # z -= eta_z * g * coef * (phi - z): a move along phi - z
        for u in range(q):
            Z[zi, u] -= kp * (phi[row, u] - Z[zi, u])


@njit(cache=True, nogil=True)
def train_rows(method, task, rows, phi, cand, params, accums, coding, steps, t_start, out, table):
    """One SGD step per row, in order (see ``train_rows_general``).

    The arguments, grouped (numba unpacks the tuples at compile time):

    - ``rows`` = (indptr, indices, data, y, sw): CSR rows, their targets and
      their sample weights (float64; an empty array: every row weighs 1);
    - ``params`` = (b, W, V, Z), updated in place;
    - ``accums`` = (Ab, AW, AV): AdaGrad's accumulators (any arrays of the
      right dimensions when another optimiser steps);
    - ``coding`` = (k_soft, beta, rho, zscale, zclip);
    - ``steps`` = (eta0, t0, eta_z0, l2_w, l2_v, reg, opt, bound, glob, jo_exact, l2_fm, z_end);
    - ``out`` = (losses, ks, stats): written (losses, ks) and added to (stats);
    - ``table``: None (the exact store) or the hashed store's addressing
      (see the module notes).

    ``indices`` None means full-width rows (every row holds all p features:
    data is the rows of an (n, p) array); numba compiles that case as a
    specialisation of its own (see kernels/fm.py). ``fm`` with one output
    takes a fast path: ``kernels.fm.fm_rows_adagrad`` for AdaGrad, and for
    plain or normalised SGD ``fm_rows_single``, or ``fm_rows_dense`` for
    full-width rows; everything else the general loop.
    """
    indptr, indices, data, y, sw = rows
    b = params[0]
    if method == FM and b.shape[1] == 1 and (task == BINARY or task == SQUARED) and table is None:
        eta0, t0, _, l2_w, l2_v, reg, opt, bound, _, _, _, _ = steps
        losses, ks, stats = out
        _fm_fast_path(task, indptr, indices, data, y, sw, params, accums, eta0, t0, l2_w, l2_v, reg, opt, bound,
                      t_start, losses)
        n = indptr.shape[0] - 1
        for row in range(n):
            ks[row] = 1
        stats[ST_K_SUM] += n
        return
    train_rows_general(method, task, rows, phi, cand, params, accums, coding, steps, t_start, out, table)


@njit(cache=True, nogil=True)
def _fm_fast_path(task, indptr, indices, data, y, sw, params, accums, eta0, t0, l2_w, l2_v, reg, opt, bound, t_start,
                  losses):
    """``train_rows``' choice of fast path. ``indices`` is an argument here, not a tuple's element: numba
    drops the branches of ``indices is None`` at compile time only for arguments."""
    b, W, V, _ = params
    Ab, AW, AV = accums
    n = indptr.shape[0] - 1
    if opt == ADAGRAD:
        fm_rows_adagrad(task, indptr, indices, data, y, sw, b, W, V, Ab, AW, AV, eta0, bound, l2_w, l2_v, reg, losses)
    elif indices is None:
        fm_rows_dense(task, data.reshape((n, W.shape[1])), y, sw, b, W, V, eta0, t0, l2_w, l2_v, reg,
                      opt == NORMALIZED, t_start, losses)
    else:
        fm_rows_single(task, indptr, indices, data, y, sw, b, W, V, eta0, t0, l2_w, l2_v, reg, opt == NORMALIZED,
                       t_start, losses)


@njit(cache=True, nogil=True)
def train_rows_general(method, task, rows, phi, cand, params, accums, coding, steps, t_start, out, table):
    """One SGD step per row, in order. Parameters are updated in place.

    The FM step (``opt``):

    - ADAGRAD: per-parameter steps eta0 / sqrt(sum of squared gradients),
      bounded per row so that the step changes f by at most
      ``bound`` * |dloss/df| to first order:
      eta = min(eta0, bound / sum_a gamma_a^2 ||grad f_a||^2_A), the norm
      taken in AdaGrad's metric (see ``ada_accumulate``). Frequent features
      get small steps and rare ones large steps (sparse data); the bound
      (1, or the engine's step scale) keeps wide dense rows from
      overshooting. No decay schedule.
    - NORMALIZED: eta_t = eta0 * t0 / (t0 + t) divided by ||grad_theta f||^2
      (summed over the neighbours, weighted by gamma^2), so one step changes
      f by at most eta_t * |dloss/df| whatever the number or scale of the
      features.
    - SGD: eta_t = eta0 * t0 / (t0 + t).

    L2: the penalty (l2_w ||w||^2 + l2_v ||V||^2) / 2 over the whole data is
    applied lazily to the features a row touches: the weight of the value
    ``data[t]`` of feature j is ``l2 * reg[t]``, with ``reg[t]`` = 1 /
    (training rows in which j is stored), so that one epoch applies the
    penalty once, whatever the feature's frequency (a Gaussian prior of
    precision l2 on every parameter), at O(nnz) per row. ``reg`` is aligned
    with ``data`` (not indexed by feature) so that the hashed store, whose
    ``indices`` are slots, weighs each value as the exact store does.
    ``l2_fm`` (one per FM) multiplies FM i's l2_w and l2_v: beside the global
    FM the anchors' FMs get ``l2_local`` (models/config.py), the global 1.

    ``glob``: the global FM (index m) joins the row's neighbours with weight
    1 (see the module notes); the coding and the anchor steps see only the
    local mixture. ``ks`` counts local neighbours.

    Anchor steps are taken in units of the coding scale (``zscale``, the mean
    squared distance of a row to its nearest anchor), decay as
    t0 / (t0 + t), and their relative size is clipped to ``zclip``; from
    step ``z_end`` on (``anchor_epochs`` epochs of t0 rows; inf: never) the
    anchors stay where they are.
    ``jo_exact=False`` drops the lambda term of the JO anchor gradient, as
    the paper's eqs. 13-14 do (kept only to measure what the term is worth).
    Sample weights ``sw`` scale each row's dloss/df (kernels/fm.py ``row_weight``).
    Writes each row's loss (before its update, unweighted) to ``losses`` and k to ``ks``.
    The arguments are grouped as in ``train_rows``; ``indices`` None:
    full-width rows.
    """
    indptr, indices, data, y, sw = rows
    b, W, V, Z = params
    Ab, AW, AV = accums
    k_soft, beta, rho, zscale, zclip = coding
    eta0, t0, eta_z0, l2_w, l2_v, reg, opt, bound, glob, jo_exact, l2_fm, z_end = steps
    losses, ks, stats = out
    n = indptr.shape[0] - 1
    C = b.shape[1]
    r = V.shape[3]
    m = Z.shape[0]
    Kmax = max(cand.shape[1], 1) + 1
    ids, order_buf, dist, gamma, F, Sb, gn, work, fbuf = row_buffers(Kmax, C, r)
    g = np.zeros(C)
    G = np.zeros(C)
    kappa = np.zeros(Kmax)
    sumF = np.zeros(C)
    flocal = np.zeros(C)
    ada_part = np.zeros(r)  # ada_accumulate's scratch
    slots = slot_buffer(table, indptr, Kmax)
    for row in range(n):
        lo = indptr[row]
        hi = indptr[row + 1]
        kl, S = code_row(method, row, phi, cand, Z, k_soft, beta, rho, ids, dist, gamma, order_buf)
        ks[row] = kl
        stats[ST_K_SUM] += kl
        if method == JO and kl == cand.shape[1] and kl < m:
            stats[ST_WANTED_MORE] += 1
        k = kl
        if glob and method != FM:
            ids[k] = m  # the global FM, weight 1 beside the local mixture
            gamma[k] = 1.0
            k += 1
        if table is not None:
            stats[ST_COLLISIONS] += touch_row(k, ids, lo, hi, indices, table, W, V, slots)
        D = _forward(k, ids, lo, hi, indices, data, b, W, V, gamma, F, Sb, fbuf, gn, work, table, slots)
        losses[row] = loss_grad(task, fbuf, y[row], g)
        if sw.shape[0] > 0:
            w = row_weight(sw, row)
            for c in range(C):
                g[c] *= w
        tt = t_start + row
        sched = t0 / (t0 + tt)
        # anchor steps first: they need F at the parameters the loss saw
        if (method == APL or method == JO) and tt < z_end:
            for c in range(C):
                flocal[c] = fbuf[c] - (F[kl, c] if k > kl else 0.0)
            anchor_steps(method, row, kl, S, ids, gamma, F, flocal, g, phi, Z, beta, rho, zscale, zclip,
                         eta_z0 * sched, jo_exact, sumF, kappa)
        if opt == ADAGRAD:
            norm = 0.0
            for a in range(k):
                for c in range(C):
                    G[c] = g[c] * gamma[a]
                fi, flo, fhi, fidx, fdata, fb, fAb, freg = fm_args(table, a, ids[a], lo, hi, indices, data, b, Ab,
                                                                   reg, slots)
                lf = l2_fm[ids[a]]
                norm += gamma[a] * gamma[a] * ada_accumulate(fi, flo, fhi, fidx, fdata, fb, W, V, Sb[a], G,
                                                             l2_w * lf, l2_v * lf, freg, fAb, AW, AV, ada_part)
            eta = eta0
            if eta * norm > bound:
                eta = bound / norm
            for a in range(k):
                for c in range(C):
                    G[c] = g[c] * gamma[a]
                fi, flo, fhi, fidx, fdata, fb, fAb, freg = fm_args(table, a, ids[a], lo, hi, indices, data, b, Ab,
                                                                   reg, slots)
                lf = l2_fm[ids[a]]
                ada_step(fi, flo, fhi, fidx, fdata, fb, W, V, Sb[a], G, eta, l2_w * lf, l2_v * lf, freg, fAb, AW, AV)
            continue
        eta = eta0 * sched
        if opt == NORMALIZED:
            eta /= D
        for a in range(k):
            for c in range(C):
                G[c] = g[c] * gamma[a]
            fi, flo, fhi, fidx, fdata, fb, _, freg = fm_args(table, a, ids[a], lo, hi, indices, data, b, b, reg,
                                                             slots)
            lf = l2_fm[ids[a]]
            fm_update(fi, flo, fhi, fidx, fdata, fb, W, V, Sb[a], G, eta, l2_w * lf, l2_v * lf, freg)


@njit(cache=True, nogil=True)
def predict_rows(method, rows, phi, cand, params, coding, glob, out, table):
    """Raw outputs f (n, C) and local neighbours used, into ``out`` = (f, ks); no update.

    ``rows`` = (indptr, indices, data), ``params`` = (b, W, V, Z), ``coding`` =
    (k_soft, beta, rho); ``indices`` None: full-width rows, ``glob`` the
    global FM and ``table`` the store, as in ``train_rows`` (the hashed
    store's untouched slots read as zero, and stay untouched).
    """
    indptr, indices, data = rows
    b, W, V, Z = params
    k_soft, beta, rho = coding
    f_out, ks = out
    n = indptr.shape[0] - 1
    C = b.shape[1]
    r = V.shape[3]
    Kmax = max(cand.shape[1], 1) + 1
    ids, order_buf, dist, gamma, F, Sb, gn, work, fbuf = row_buffers(Kmax, C, r)
    slots = slot_buffer(table, indptr, Kmax)
    for row in range(n):
        lo = indptr[row]
        hi = indptr[row + 1]
        k, S = code_row(method, row, phi, cand, Z, k_soft, beta, rho, ids, dist, gamma, order_buf)
        ks[row] = k
        if glob and method != FM:
            ids[k] = Z.shape[0]
            gamma[k] = 1.0
            k += 1
        if table is not None:
            row_slots(k, ids, lo, hi, indices, table[0], W, V, slots)
        _forward(k, ids, lo, hi, indices, data, b, W, V, gamma, F, Sb, fbuf, gn, work, table, slots)
        for c in range(C):
            f_out[row, c] = fbuf[c]
