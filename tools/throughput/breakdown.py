"""Where a training epoch's time goes: the trainer's own loop, each stage timed where it runs.

``run_breakdown`` (a measurement of ``bench_throughput.py``, in its own
process) trains one epoch from the file as the trainer does, timing the
reading (reading, decoding, shuffling, standardising), the coding vectors
phi(x), the kernel (``LLFMModel.on_block``) and, as the rest, the anchor
search. The model's search runs once per block on the training thread
(``model.schedule.search_first`` above any block) so that its time is not
hidden on a helper thread.

The kernel's time is then split on the epoch's first block: ``staged_rows``
repeats ``kernels.llfm.train_rows`` up to a stage (1 = coding only:
candidate distances, sort, Algorithm 1; 2 = + the FM forward passes and the
loss; 3 = + the anchor updates, no FM update), and the full kernel is
``train_rows`` itself; differences between consecutive stages, timed on the
same rows from the same parameters, give each part's share. A benchmark aid
only: the training code is ``train_rows``.
"""
from __future__ import annotations

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
    indptr, indices, data, y, _ = rows
    b, W, V, Z = params
    k_soft, beta, rho, zscale, zclip = coding
    eta0, t0, eta_z0, l2_w, l2_v, reg, opt, bound, glob, jo_exact, _ = steps
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


def run_breakdown(spec):
    """One epoch of the trainer's loop over ``spec["train"]``, its time split by stage.

    phi(x) is timed by computing it once more on each chunk, just before the
    training step computes it (the same function on the same rows); that
    extra computation is taken out of the total.
    """
    from streamfm.io.sources import open_source
    from streamfm.models.config import Config
    from streamfm.models.init import model_from_scan
    from streamfm.models.trained import TrainedModel
    from streamfm.preprocess.scan import scan
    from streamfm.preprocess.shuffle import shuffled_epoch
    from streamfm.preprocess.standardize import Standardizer

    src = open_source(spec["train"])
    cfg = Config(method=spec.get("method", "llfm-jo"), anchors=spec["anchors"], rank=10)
    sc = scan(src, sample_size=10_000, seed=cfg.seed, progress=False)
    std = Standardizer.from_scan(sc, "auto", dense_source=src.dense)  # as the trainer's default
    model = model_from_scan(cfg, sc, std, src.dense)  # the trainer's model
    trained = TrainedModel(model, std, sc.classes)
    T = {"read": 0.0, "phi": 0.0, "kernel": 0.0}
    start = {k: v.copy() for k, v in model.params.items()}  # the first block's starting parameters
    keep = []  # the first block's inputs, for the split of the kernel time

    def on_block(args, seconds):
        if not keep:
            keep.append(first_block(args, start))
        T["kernel"] += seconds

    # one search per block, in this thread, between the kernel calls (training otherwise
    # searches the next rows on a helper thread while the kernel runs): what is not timed
    # below is the search, its rebuilds and the miss checks
    model.schedule.search_first = 10**12
    model.on_block = on_block
    stream = shuffled_epoch(src, epoch=0, seed=cfg.seed, buffer_rows=100_000, out_rows=4096,
                            chunk_rows=65536)
    t_all = time.perf_counter()
    rows = 0
    it = iter(stream)
    while True:
        t = time.perf_counter()
        c = next(it, None)
        if c is not None:
            tg = trained.targets(c.y)
            c = std.transform(c)
        T["read"] += time.perf_counter() - t
        if c is None:
            break
        t = time.perf_counter()
        model.coding_vectors(c)
        T["phi"] += time.perf_counter() - t
        model.partial_fit_chunk(c, tg)
        rows += c.n_rows
    total = time.perf_counter() - t_all - T["phi"]  # without the extra phi(x)
    k = T["kernel"]
    if cfg.method == "fm":
        # fm with one output runs kernels.fm.fm_rows_single, one loop for the forward pass and
        # the update: the staged general loop would not split its time
        parts = {"reading, decoding, shuffling, standardising": T["read"],
                 "FM kernel (forward and update, one loop)": k,
                 "Python, chunk and block overhead": total - T["read"] - k}
        return {"rows": rows, "seconds": total, "parts": parts, "mean_k": 1.0}
    split = split_kernel(keep[0])
    parts = {
        "reading, decoding, shuffling, standardising": T["read"],
        "coding vectors phi(x)": T["phi"],
        "anchor search (FAISS) and miss checks": total - sum(T.values()),
        "coding (candidate distances, Algorithm 1)": k * split["coding"],
        "FM forward (f and gradient norm)": k * split["forward"],
        "FM updates": k * split["fm_update"],
        "anchor updates": k * split["anchor_update"],
    }
    return {"rows": rows, "seconds": total, "parts": parts, "kernel_split": split,
            "mean_k": model.metrics()["mean_k"]}
