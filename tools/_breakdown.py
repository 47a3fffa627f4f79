"""Split the training kernel's time into coding, FM forward, anchor updates and FM updates.

``staged_rows`` repeats ``kernels.llfm.train_rows`` up to a stage:
1 = coding only (candidate distances, sort, Algorithm 1), 2 = + the FM
forward passes and the loss, 3 = + the anchor updates (no FM update).
The full kernel (stage 4) is ``train_rows`` itself; differences between
consecutive stages, timed on the same rows from the same parameters, give
each part's share. A benchmark aid only: the training code is train_rows.
"""
import time

import numpy as np
from numba import njit

from streamfm.kernels.llfm import APL, JO, _forward, anchor_steps, code_row, row_buffers, train_rows
from streamfm.kernels.losses import loss_grad


@njit(cache=True)
def staged_rows(stage, method, task, indptr, indices, data, y, phi, cand, b, W, V, Z,
                k_soft, beta, rho, zscale, zclip, eta0, t0, eta_z0, glob, t_start):
    n = indptr.shape[0] - 1
    C = b.shape[1]
    r = V.shape[3]
    Kmax = max(cand.shape[1], 1) + 1
    ids, order_buf, dist, gamma, F, Sb, gn, work, fbuf = row_buffers(Kmax, C, r)
    g = np.zeros(C)
    kappa = np.zeros(Kmax)
    sumF = np.zeros(C)
    acc = 0.0
    for row in range(n):
        lo = indptr[row]
        hi = indptr[row + 1]
        k, S = code_row(method, row, phi, cand, Z, k_soft, beta, rho, ids, dist, gamma, order_buf)
        acc += gamma[0]
        if stage < 2:
            continue
        if glob and method != 0:  # the global FM, as train_rows adds it (its anchor steps see the
            ids[k] = Z.shape[0]   # local mixture: the same work, so it is timed on fbuf)
            gamma[k] = 1.0
            _forward(k + 1, ids, lo, hi, indices, data, b, W, V, gamma, F, Sb, fbuf, gn, work, None, None)
        else:
            _forward(k, ids, lo, hi, indices, data, b, W, V, gamma, F, Sb, fbuf, gn, work, None, None)
        acc += loss_grad(task, fbuf, y[row], g)
        if stage < 3 or not (method == APL or method == JO):
            continue
        sched = t0 / (t0 + t_start + row)
        anchor_steps(method, row, k, S, ids, gamma, F, fbuf, g, phi, Z, beta, rho, zscale, zclip,
                     eta_z0 * sched, True, sumF, kappa)
    return acc


def first_block(args, start):
    """A copy of ``train_rows``' arguments of a block, seen by ``LLFMModel.on_block`` after the call,
    with the parameters and AdaGrad accumulators it started from (``start``: the model's arrays
    before the block): the block's inputs for ``split_kernel``."""
    def own(x):
        return np.array(x, copy=True) if isinstance(x, np.ndarray) else x

    out = [tuple(own(x) for x in a) if isinstance(a, tuple) else own(a) for a in args]
    out[5] = tuple(start[n].copy() for n in ("b", "W", "V", "Z"))
    out[6] = tuple(start[n].copy() if n in start else a for n, a in zip(("Ab", "AW", "AV"), out[6]))
    return out


def split_kernel(args, reps=25):
    """Shares of the kernel time (coding, forward, anchor_update, fm_update) on one block.

    ``args`` are train_rows' arguments as the trainer passed them (copied, ``first_block``).
    """
    method, task, rows, phi, cand, params, accums, coding, steps, t_start, out, table = args
    indptr, indices, data, y = rows
    b, W, V, Z = params
    k_soft, beta, rho, zscale, zclip = coding
    eta0, t0, eta_z0, l2_w, l2_v, reg, opt, bound, glob, jo_exact = steps
    times = {}
    for stage in (1, 2, 3, 4):
        best = np.inf
        for _ in range(reps):
            bb, WW, VV, ZZ = b.copy(), W.copy(), V.copy(), Z.copy()
            AA = tuple(a.copy() for a in accums)
            t = time.perf_counter()
            if stage < 4:
                staged_rows(stage, method, task, indptr, indices, data, y, phi, cand, bb, WW, VV, ZZ,
                            k_soft, beta, rho, zscale, zclip, eta0, t0, eta_z0, glob, t_start)
            else:
                train_rows(method, task, rows, phi, cand, (bb, WW, VV, ZZ), AA, coding, steps, t_start,
                           tuple(o.copy() for o in out), table)
            best = min(best, time.perf_counter() - t)
        times[stage] = best
    parts = {"coding": times[1], "forward": max(times[2] - times[1], 0.0),
             "anchor_update": max(times[3] - times[2], 0.0), "fm_update": max(times[4] - times[3], 0.0)}
    tot = sum(parts.values())
    return {k: v / tot for k, v in parts.items()}
