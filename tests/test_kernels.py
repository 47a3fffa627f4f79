"""The numba kernels against the NumPy reference (tests/reference.py)."""
import numpy as np
import pytest
import scipy.sparse as sp

import reference as ref
from streamfm.kernels.fm import ada_accumulate, ada_step, fm_eval, fm_update
from streamfm.kernels.llfm import (ADAGRAD, METHOD_CODES, N_STATS, NORMALIZED, SGD, predict_rows, train_rows,
                                   train_rows_general)
from streamfm.kernels.losses import TASK_CODES, loss_grad


def random_params(rng, m, p, C, r, q):
    return dict(
        b=rng.normal(size=(m, C)) * 0.3,
        W=rng.normal(size=(m, p, C)) * 0.3,
        V=rng.normal(size=(m, p, C, r)) * 0.3,
        Z=rng.normal(size=(m, q)),
    )


def csr_rows(rng, n, p, density):
    X = sp.random(n, p, density=density, random_state=np.random.RandomState(rng.integers(1 << 30)),
                  data_rvs=lambda k: rng.normal(size=k), format="csr")
    X.sort_indices()
    return X.indptr.astype(np.int64), X.indices.astype(np.int32), X.data.astype(np.float64), X.toarray()


@pytest.mark.parametrize("density", [1.0, 0.3])
@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("r", [3, 7, 10])  # the vector sweeps: blocks of 2+1, 4+2+1, 4+4+2 factors
def test_fm_eval_matches_definition(density, C, r):
    rng = np.random.default_rng(1)
    p, m = 7, 2
    P = random_params(rng, m, p, C, r, 1)
    indptr, indices, data, X = csr_rows(rng, 5, p, density)
    f, s, work = np.zeros(C), np.zeros((C, r)), np.zeros((C, r))
    for row in range(5):
        for i in range(m):
            gn = fm_eval(i, indptr[row], indptr[row + 1], indices, data, P["b"], P["W"], P["V"], f, s, work, -1)
            np.testing.assert_allclose(f, ref.fm_outputs(X[row], P["b"], P["W"], P["V"], i), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(s, np.einsum("pcr,p->cr", P["V"][i], X[row]), atol=1e-12)
            x = X[row]
            gv = max(((x[:, None] * (s[c][None, :] - P["V"][i, :, c, :] * x[:, None])) ** 2).sum() for c in range(C))
            assert gn == pytest.approx(1 + x @ x + gv)


@pytest.mark.parametrize("r", [1, 4, 7])  # the vector sweeps: blocks of 1, 4, 4+2+1 factors
def test_fm_update_matches_reference_gradient(r):
    rng = np.random.default_rng(2)
    p, C = 6, 2
    P = random_params(rng, 1, p, C, r, 1)
    indptr, indices, data, X = csr_rows(rng, 1, p, 0.6)
    x = X[0]
    f, s = np.zeros(C), np.zeros((C, r))
    fm_eval(0, 0, indptr[1], indices, data, P["b"], P["W"], P["V"], f, s, np.zeros((C, r)), -1)
    G = np.array([0.7, -0.4])
    eta, l2w, l2v = 0.05, 0.01, 0.02
    reg = rng.uniform(0.5, 2.0, size=p)  # per-feature L2 weights
    b, W, V = (P[n].copy() for n in "bWV")
    fm_update(0, 0, indptr[1], indices, data, b, W, V, s, G, eta, l2w, l2v, reg[indices])  # aligned with data
    touched = x != 0
    for c in range(C):
        gb = G[c]
        gw = G[c] * x + l2w * reg * P["W"][0, :, c]
        gV = (G[c] * x[:, None] * (s[c][None] - P["V"][0, :, c, :] * x[:, None])
              + l2v * reg[:, None] * P["V"][0, :, c, :])
        assert b[0, c] == pytest.approx(P["b"][0, c] - eta * gb)
        # L2 touches only the features present in the row (O(nnz) updates)
        np.testing.assert_allclose(W[0, touched, c], P["W"][0, touched, c] - eta * gw[touched], atol=1e-12)
        np.testing.assert_array_equal(W[0, ~touched, c], P["W"][0, ~touched, c])
        np.testing.assert_allclose(V[0, touched, c], P["V"][0, touched, c] - eta * gV[touched], atol=1e-12)
        np.testing.assert_array_equal(V[0, ~touched, c], P["V"][0, ~touched, c])


@pytest.mark.parametrize("r", [1, 5])
@pytest.mark.parametrize("C", [1, 2])
def test_adagrad_halves_match_reference(r, C):
    """``ada_accumulate`` adds every touched parameter's squared gradient (L2 included) and
    returns the norm of grad f in AdaGrad's metric; ``ada_step`` moves each by eta g / sqrt(A)."""
    rng = np.random.default_rng(21)
    p = 6
    P = random_params(rng, 2, p, C, r, 1)
    indptr, indices, data, X = csr_rows(rng, 1, p, 0.6)
    x = X[0]
    touched = x != 0
    i = 1
    f, s = np.zeros(C), np.zeros((C, r))
    fm_eval(i, 0, indptr[1], indices, data, P["b"], P["W"], P["V"], f, s, np.zeros((C, r)), -1)
    G = rng.normal(size=C)
    eta, l2w, l2v = 0.07, 0.3, 0.5
    reg = rng.uniform(0.5, 2.0, size=p)
    A0 = [rng.uniform(0.1, 1.0, size=P[n].shape) for n in "bWV"]  # accumulators from earlier rows
    A = [a.copy() for a in A0]
    b, W, V = (P[n].copy() for n in "bWV")
    reg_data = reg[indices]  # the kernels' weights are aligned with data
    norm = ada_accumulate(i, 0, indptr[1], indices, data, b, W, V, s, G, l2w, l2v, reg_data, *A, np.zeros(r))
    ada_step(i, 0, indptr[1], indices, data, b, W, V, s, G, eta, l2w, l2v, reg_data, *A)
    norms = []
    for c in range(C):
        dW = x  # df/dw_j
        dV = x[:, None] * (s[c][None] - P["V"][i, :, c, :] * x[:, None])  # df/dV_jf
        gb, gw = G[c], G[c] * dW + l2w * reg * P["W"][i, :, c]
        gV = G[c] * dV + l2v * reg[:, None] * P["V"][i, :, c, :]
        Ab = A0[0][i, c] + gb**2
        AW = A0[1][i, :, c] + np.where(touched, gw**2, 0)
        AV = A0[2][i, :, c, :] + np.where(touched[:, None], gV**2, 0)
        np.testing.assert_allclose(A[0][i, c], Ab)
        np.testing.assert_allclose(A[1][i, :, c], AW)
        np.testing.assert_allclose(A[2][i, :, c, :], AV)
        assert b[i, c] == pytest.approx(P["b"][i, c] - eta * gb / np.sqrt(Ab))
        np.testing.assert_allclose(W[i, touched, c], (P["W"][i, :, c] - eta * gw / np.sqrt(AW))[touched])
        np.testing.assert_allclose(V[i, touched, c], (P["V"][i, :, c] - eta * gV / np.sqrt(AV))[touched])
        norms.append(1 / np.sqrt(Ab) + np.sum((dW**2 / np.sqrt(AW))[touched])
                     + np.sum((dV**2 / np.sqrt(AV))[touched]))
    assert norm == pytest.approx(max(norms))
    # the other anchor and the untouched features are left alone
    for n, arr, a0, a in zip("bWV", (b, W, V), A0, A):
        np.testing.assert_array_equal(arr[0], P[n][0])
        np.testing.assert_array_equal(a[0], a0[0])
    np.testing.assert_array_equal(W[i, ~touched], P["W"][i, ~touched])
    np.testing.assert_array_equal(A[2][i, ~touched], A0[2][i, ~touched])


@pytest.mark.parametrize("task,C,y", [("binary", 1, 1.0), ("binary", 1, 0.0), ("regression", 1, 0.3),
                                      ("softmax", 4, 2.0), ("ovr", 4, 1.0)])
def test_loss_gradient_finite_differences(task, C, y):
    rng = np.random.default_rng(3)
    f = rng.normal(size=C) * 2
    g = np.zeros(C)
    loss = loss_grad(TASK_CODES[task], f, y, g)
    assert loss == pytest.approx(ref.loss_and_grad(task, f, y)[0])
    h = 1e-6
    for c in range(C):
        e = np.zeros(C)
        e[c] = h
        num = (ref.loss_and_grad(task, f + e, y)[0] - ref.loss_and_grad(task, f - e, y)[0]) / (2 * h)
        assert g[c] == pytest.approx(num, rel=1e-6, abs=1e-8)


def test_logistic_loss_is_finite_for_huge_scores():
    g = np.zeros(1)
    assert np.isfinite(loss_grad(0, np.array([800.0]), 0.0, g))
    assert loss_grad(0, np.array([-800.0]), 0.0, g) == pytest.approx(0.0)


def _kernel_step(method, task, C, indptr, indices, data, y, phi, P, eta, eta_z, zscale,
                 k_soft=3, beta=0.7, rho=0.4, exact=True, glob=False, l2=None, sw=np.zeros(0), z_end=np.inf,
                 t_start=0):
    """Plain SGD (no normalisation, no clip, t0 huge so eta_t = eta) through the kernel; ``l2`` as
    ``reference.sgd_step``'s (None: no L2); ``sw``: the rows' sample weights (empty: unweighted);
    ``z_end``: the step from which the anchors stay; ``t_start``: the first row's step."""
    n = len(indptr) - 1
    m = P["Z"].shape[0]  # anchors (the FMs are m, or m + 1 with the global one)
    cand = np.tile(np.arange(m, dtype=np.int64), (n, 1)) if method != "fm" else np.zeros((n, 0), np.int64)
    Q = {k: v.copy() for k, v in P.items()}
    losses, ks, stats = np.zeros(n), np.zeros(n, np.int64), np.zeros(N_STATS, np.int64)
    dummy = [np.zeros((1,) * d) for d in (2, 3, 4)]
    tc = TASK_CODES[task]
    train_rows(METHOD_CODES[method], tc, (indptr, indices, data, y, sw), phi, cand,
               (Q["b"], Q["W"], Q["V"], Q["Z"]), tuple(dummy), (k_soft, beta, rho, zscale, 1e9),
               (eta, 1e18, eta_z) + kernel_l2(l2, indices) + (SGD, 1.0, glob, exact, fm_l2(l2, P), z_end), t_start,
               (losses, ks, stats), None)
    return Q, losses, ks


def kernel_l2(l2, indices):
    """The kernel's (l2_w, l2_v, reg aligned with the values) of ``reference.sgd_step``'s ``l2``."""
    return (0.0, 0.0, np.zeros(len(indices))) if l2 is None else (l2[0], l2[1], l2[2][indices])


def fm_l2(l2, P):
    """The kernel's ``l2_fm``, each FM's factor on L2: ``l2``'s, or ones."""
    return np.ones(P["b"].shape[0]) if l2 is None else l2[3]


CASES = [("fm", "binary", 1), ("llfm-do", "binary", 1), ("llfm-apl", "regression", 1),
         ("llfm-jo", "binary", 1), ("llfm-jo", "softmax", 3), ("llfm-apl", "ovr", 3)]


def glob_params(P, method, glob):
    """P with one more FM (index m, the global one) when ``glob`` applies; anchors Z unchanged."""
    if not glob or method == "fm":
        return P
    rng = np.random.default_rng(99)
    Q = dict(P)
    for n in "bWV":
        Q[n] = np.concatenate([P[n], rng.normal(size=(1,) + P[n].shape[1:]) * 0.3])
    return Q


@pytest.mark.parametrize("glob", [False, True])
@pytest.mark.parametrize("method,task,C", CASES)
def test_train_rows_matches_numpy_reference(method, task, C, glob):
    rng = np.random.default_rng(4)
    p, r, m, n = 5, 3, 6, 4
    mm = 1 if method == "fm" else m
    P = glob_params(random_params(rng, mm, p, C, r, 0 if method == "fm" else p), method, glob)
    indptr, indices, data, X = csr_rows(rng, n, p, 0.7)
    y = rng.integers(0, C if C > 1 else 2, size=n).astype(float)
    if task == "regression":
        y = rng.normal(size=n)
    phi = X.copy() if method != "fm" else np.zeros((n, 0))
    eta, eta_z, zscale = 0.05, 0.1, 1.3
    Q, losses, ks = _kernel_step(method, task, C, indptr, indices, data, y, phi, P, eta, eta_z, zscale, glob=glob)
    R = {k: v.copy() for k, v in P.items()}
    for row in range(n):  # rows in order, each step on the parameters the previous left
        ids = ref.neighbours(method, phi[row], R["Z"], 3, 0.7, 0.4)
        assert ks[row] == len(ids)
        assert losses[row] == pytest.approx(
            ref.llfm_loss(method, task, X[row], y[row], phi[row], R["b"], R["W"], R["V"], R["Z"], ids, 0.7, 0.4,
                          glob=glob))
        R = ref.sgd_step(method, task, X[row], y[row], phi[row], R, 3, 0.7, 0.4, eta, eta_z, zscale, glob=glob)
    for name in "bWVZ":
        np.testing.assert_allclose(Q[name], R[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_weighted_rows_match_numpy_reference():
    """Sample weights scale each row's loss, so every gradient (FM and anchors): the kernel's steps on
    rows of weights 0.3, 2.5, 0 and 1 are the NumPy reference's weighted steps (the general loop and the
    fm fast path; the hashed store and AdaGrad: tests/test_weights.py)."""
    rng = np.random.default_rng(8)
    p, r, m, n = 5, 3, 6, 4
    w = np.array([0.3, 2.5, 0.0, 1.0])
    for method, task, C in CASES:
        P = glob_params(random_params(rng, 1 if method == "fm" else m, p, C, r, 0 if method == "fm" else p),
                        method, True)
        indptr, indices, data, X = csr_rows(rng, n, p, 0.7)
        y = rng.normal(size=n) if task == "regression" else rng.integers(0, max(C, 2), size=n).astype(float)
        phi = X.copy() if method != "fm" else np.zeros((n, 0))
        Q, _, _ = _kernel_step(method, task, C, indptr, indices, data, y, phi, P, 0.05, 0.1, 1.3, glob=True, sw=w)
        R = {k: v.copy() for k, v in P.items()}
        for row in range(n):
            R = ref.sgd_step(method, task, X[row], y[row], phi[row], R, 3, 0.7, 0.4, 0.05, 0.1, 1.3, glob=True,
                             weight=w[row])
        for name in "bWVZ":
            np.testing.assert_allclose(Q[name], R[name], rtol=1e-9, atol=1e-12, err_msg=f"{method} {task} {name}")


@pytest.mark.parametrize("method,task,C", [("llfm-jo", "regression", 1), ("llfm-do", "softmax", 3)])
def test_each_fms_l2_matches_numpy_reference(method, task, C):
    """L2 with a factor per FM (``l2_fm``: the anchors' ``l2_local``, the global FM's 1): every FM
    a row touches decays by its own factor, on the features the row stores."""
    rng = np.random.default_rng(8)
    p, r, m, n = 5, 3, 6, 4
    P = glob_params(random_params(rng, m, p, C, r, p), method, True)
    indptr, indices, data, X = csr_rows(rng, n, p, 0.7)
    y = rng.normal(size=n) if task == "regression" else rng.integers(0, C, size=n).astype(float)
    l2 = (0.3, 0.7, rng.uniform(0.1, 1.0, p), np.append(rng.uniform(1.0, 6.0, m), 1.0))
    Q, _, _ = _kernel_step(method, task, C, indptr, indices, data, y, X.copy(), P, 0.05, 0.1, 1.3, glob=True, l2=l2)
    R = {k: v.copy() for k, v in P.items()}
    for row in range(n):
        R = ref.sgd_step(method, task, X[row], y[row], X[row], R, 3, 0.7, 0.4, 0.05, 0.1, 1.3, glob=True, l2=l2)
    for name in "bWVZ":
        np.testing.assert_allclose(Q[name], R[name], rtol=1e-9, atol=1e-12, err_msg=name)
    # the factors matter: with every FM's factor 1 the parameters differ
    Q1, _, _ = _kernel_step(method, task, C, indptr, indices, data, y, X.copy(), P, 0.05, 0.1, 1.3, glob=True,
                            l2=l2[:3] + (np.ones(m + 1),))
    assert not np.allclose(Q1["W"], Q["W"])



@pytest.mark.parametrize("method", ["llfm-jo", "llfm-apl"])
def test_anchors_stay_from_their_end_step_on(method):
    """``z_end``: rows whose step t is below it move the anchors, as the NumPy reference does; from
    it on the anchors stay and the FMs still learn (the reference with an anchor step of 0). The end
    falls on the row of step t = z_end whatever t the chunk starts at."""
    rng = np.random.default_rng(9)
    p, r, m, n = 5, 3, 6, 6
    P = glob_params(random_params(rng, m, p, 1, r, p), method, True)
    indptr, indices, data, X = csr_rows(rng, n, p, 0.8)
    y = rng.normal(size=n)
    for t_start, moving in ((0, 4), (10, 2)):
        Q, _, _ = _kernel_step(method, "regression", 1, indptr, indices, data, y, X.copy(), P, 0.05, 0.1, 1.3,
                               glob=True, z_end=12.0 if t_start else 4.0, t_start=t_start)
        R = {k: v.copy() for k, v in P.items()}
        for row in range(n):
            R = ref.sgd_step(method, "regression", X[row], y[row], X[row], R, 3, 0.7, 0.4, 0.05,
                             0.1 if row < moving else 0.0, 1.3, glob=True)
        for name in "bWVZ":
            np.testing.assert_allclose(Q[name], R[name], rtol=1e-9, atol=1e-12, err_msg=f"{t_start} {name}")
    moved, _, _ = _kernel_step(method, "regression", 1, indptr, indices, data, y, X.copy(), P, 0.05, 0.1, 1.3,
                               glob=True)
    assert not np.allclose(moved["Z"], Q["Z"])  # without an end the last rows move them too

@pytest.mark.parametrize("task", ["binary", "regression"])
@pytest.mark.parametrize("opt", [NORMALIZED, SGD, ADAGRAD])
@pytest.mark.parametrize("density", [1.0, 0.3])
def test_fm_fast_path_equals_the_general_loop(task, opt, density):
    """fm with one output takes kernels.fm.fm_rows_single (fm_rows_dense for full-width rows), or
    fm_rows_adagrad; the general loop (tested against NumPy above) must give the same parameters,
    losses and counts, with L2 and the schedule (or the AdaGrad bound) on."""
    rng = np.random.default_rng(11)
    p, r, n = 7, 4, 60
    P = random_params(rng, 1, p, 1, r, 0)
    indptr, indices, data, _ = csr_rows(rng, n, p, density)
    y = rng.normal(size=n) if task == "regression" else rng.integers(0, 2, size=n).astype(float)
    full = density == 1.0
    assert not full or (np.diff(indptr) == p).all()  # full-width rows
    out = []
    reg = rng.uniform(0.5, 2.0, size=p)  # per-feature L2 weights
    # indices None: full-width rows, the fast path's fm_rows_dense
    runs = [(train_rows, indices), (train_rows_general, indices), (train_rows, None)][: 2 + full]
    for kernel, idx in runs:
        Q = {k: v.copy() for k, v in P.items()}
        losses, ks, stats = np.zeros(n), np.zeros(n, np.int64), np.zeros(N_STATS, np.int64)
        A = [np.zeros_like(Q[k]) if opt == ADAGRAD else np.zeros((1,) * Q[k].ndim) for k in "bWV"]
        kernel(METHOD_CODES["fm"], TASK_CODES[task], (indptr, idx, data, y, np.zeros(0)), np.zeros((n, 0)),
               np.zeros((n, 0), np.int64), (Q["b"], Q["W"], Q["V"], Q["Z"]), tuple(A), (3, 1.0, 0.3, 1.0, 0.1),
               (0.3, 40.0, 0.05, 1e-3, 2e-3, reg[indices], opt, 0.5, False, True, np.ones(1), np.inf), 5,
               (losses, ks, stats), None)
        out.append((Q, losses, ks, stats))
    (Qa, la, ka, sa), (Qb, lb, kb, sb) = out[:2]
    for name in "bWV":
        np.testing.assert_allclose(Qa[name], Qb[name], rtol=1e-12, atol=1e-14, err_msg=name)
    np.testing.assert_allclose(la, lb, rtol=1e-12)
    np.testing.assert_array_equal(ka, kb)
    np.testing.assert_array_equal(sa, sb)
    assert not np.allclose(Qa["V"], P["V"])  # it trained
    if full:
        # the dense paths (no index array) are the CSR fast paths bit for bit
        Qd, ld, kd, sd = out[2]
        for name in "bWV":
            np.testing.assert_array_equal(Qd[name], Qa[name], err_msg=name)
        np.testing.assert_array_equal(ld, la)
        np.testing.assert_array_equal(kd, ka)
        np.testing.assert_array_equal(sd, sa)


@pytest.mark.parametrize("method,task,C,opt,glob", [("llfm-jo", "binary", 1, NORMALIZED, False),
                                                    ("llfm-apl", "softmax", 3, SGD, True),
                                                    ("llfm-do", "regression", 1, ADAGRAD, False),
                                                    ("fm", "ovr", 3, NORMALIZED, False),
                                                    ("fm", "binary", 1, ADAGRAD, False),
                                                    ("llfm-jo", "softmax", 3, ADAGRAD, True)])
def test_full_width_specialisation_equals_the_csr_loop(method, task, C, opt, glob):
    """Full-width rows passed with indices=None (the kernels' dense specialisation: no
    index loads) train and predict exactly as the same rows in CSR form, bit for bit."""
    rng = np.random.default_rng(12)
    p, r, m, n = 7, 4, 6, 40
    mm = 1 if method == "fm" else m
    P = glob_params(random_params(rng, mm, p, C, r, 0 if method == "fm" else p), method, glob)
    indptr, indices, data, X = csr_rows(rng, n, p, 1.0)
    assert (np.diff(indptr) == p).all() and (indices.reshape(n, p) == np.arange(p)).all()
    y = rng.normal(size=n) if task == "regression" else rng.integers(0, C if C > 1 else 2, size=n).astype(float)
    phi = X.copy() if method != "fm" else np.zeros((n, 0))
    cand = np.tile(np.arange(mm, dtype=np.int64), (n, 1)) if method != "fm" else np.zeros((n, 0), np.int64)
    out = []
    for idx in (indices, None):
        Q = {k: v.copy() for k, v in P.items()}
        A = [np.zeros_like(Q[k]) if opt == ADAGRAD else np.zeros((1,) * Q[k].ndim) for k in "bWV"]
        losses, ks, stats = np.zeros(n), np.zeros(n, np.int64), np.zeros(N_STATS, np.int64)
        train_rows(METHOD_CODES[method], TASK_CODES[task], (indptr, idx, data, y, np.zeros(0)), phi, cand,
                   (Q["b"], Q["W"], Q["V"], Q["Z"]), tuple(A), (3, 0.7, 0.4, 1.3, 0.1),
                   (0.05, 40.0, 0.1, 1e-3, 2e-3, np.full(len(data), 0.5), opt, 1.0, glob, True,
                    np.linspace(0.5, 3.0, P["b"].shape[0]), np.inf), 3, (losses, ks, stats), None)
        f, kp = np.zeros((n, C)), np.zeros(n, np.int64)
        predict_rows(METHOD_CODES[method], (indptr, idx, data), phi, cand, (Q["b"], Q["W"], Q["V"], Q["Z"]),
                     (3, 0.7, 0.4), glob, (f, kp), None)
        out.append((Q, losses, ks, stats, f, kp))
    (Qa, *rest_a), (Qb, *rest_b) = out
    for name in "bWVZ":
        np.testing.assert_array_equal(Qb[name], Qa[name], err_msg=name)
    for a, b in zip(rest_a, rest_b):
        np.testing.assert_array_equal(b, a)
    assert not np.allclose(Qa["V"], P["V"])  # it trained


def _numeric_grad(fun, arr, idx_list, h=1e-6):
    out = []
    for idx in idx_list:
        old = arr[idx]
        arr[idx] = old + h
        up = fun()
        arr[idx] = old - h
        dn = fun()
        arr[idx] = old
        out.append((up - dn) / (2 * h))
    return np.array(out)


@pytest.mark.parametrize("method,task,C,glob", [("fm", "binary", 1, False), ("llfm-apl", "binary", 1, False),
                                                ("llfm-jo", "binary", 1, False), ("llfm-jo", "softmax", 3, False),
                                                ("llfm-jo", "regression", 1, False), ("llfm-jo", "binary", 1, True),
                                                ("llfm-apl", "softmax", 3, True)])
def test_gradients_against_finite_differences(method, task, C, glob):
    """Every parameter's gradient, read off one kernel step, against central differences
    of the loss with the neighbour set held fixed (SPEC 4)."""
    rng = np.random.default_rng(5)
    p, r, m = 4, 2, 5
    mm = 1 if method == "fm" else m
    P = glob_params(random_params(rng, mm, p, C, r, 0 if method == "fm" else p), method, glob)
    if method != "fm":
        P["Z"] *= 0.5  # anchors near the data so that several are neighbours
    indptr, indices, data, X = csr_rows(rng, 1, p, 1.0)
    y = np.array([1.0]) if task != "regression" else np.array([0.4])
    phi = X.copy() if method != "fm" else np.zeros((1, 0))
    beta, rho = 0.7, 0.4
    eta, eta_z, zscale = 1e-3, 1e-3, 1.0
    Q, _, ks = _kernel_step(method, task, C, indptr, indices, data, y, phi, P, eta, eta_z, zscale,
                            beta=beta, rho=rho, glob=glob)
    ids = ref.neighbours(method, phi[0], P["Z"], 3, beta, rho)
    if method == "llfm-jo":
        assert len(ids) >= 2, "the case must exercise the lambda term"
    fms = list(ids) + ([m] if glob else [])  # the FMs the row trains
    Pw = {k: v.copy() for k, v in P.items()}

    def loss():
        return ref.llfm_loss(method, task, X[0], y[0], phi[0], Pw["b"], Pw["W"], Pw["V"], Pw["Z"], ids, beta, rho,
                             glob=glob)

    for name, rate in (("b", eta), ("W", eta), ("V", eta), ("Z", eta_z * zscale)):
        if name == "Z" and method == "fm":
            continue
        idx = [tuple(i) for i in np.argwhere(np.ones(P[name].shape, bool))]
        idx = [i for i in idx if i[0] in (ids if name == "Z" else fms)]
        analytic = (P[name][tuple(np.array(idx).T)] - Q[name][tuple(np.array(idx).T)]) / rate
        numeric = _numeric_grad(loss, Pw[name], idx)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7, err_msg=name)


def test_paper_anchor_gradient_differs_from_exact():
    """The flag that drops the lambda term really changes the anchor step (issue 5 measures by how much)."""
    rng = np.random.default_rng(6)
    p, m = 4, 5
    P = random_params(rng, m, p, 1, 2, p)
    P["Z"] *= 0.5
    indptr, indices, data, X = csr_rows(rng, 1, p, 1.0)
    args = ("llfm-jo", "binary", 1, indptr, indices, data, np.array([1.0]), X.copy(), P, 1e-3, 1e-2, 1.0)
    exact, _, ks = _kernel_step(*args)
    paper, _, _ = _kernel_step(*args, exact=False)
    assert ks[0] >= 2
    assert not np.allclose(exact["Z"], paper["Z"])
    R = ref.sgd_step("llfm-jo", "binary", X[0], 1.0, X[0], P, 3, 0.7, 0.4, 1e-3, 1e-2, 1.0, exact=False)
    np.testing.assert_allclose(paper["Z"], R["Z"], rtol=1e-9)


def test_normalised_step_bounds_change_in_output():
    """With normalisation one step moves f by eta * |g| to first order, whatever p."""
    rng = np.random.default_rng(7)
    for p in (2, 50, 1000):
        P = random_params(rng, 1, p, 1, 4, 0)
        P["V"] *= 0.1
        x = rng.normal(size=p)
        indptr = np.array([0, p], np.int64)
        indices = np.arange(p, dtype=np.int32)
        f0 = np.zeros((1, 1))
        ks = np.zeros(1, np.int64)
        phi = np.zeros((1, 0))
        cand = np.zeros((1, 0), np.int64)
        predict_rows(0, (indptr, indices, x), phi, cand, (P["b"], P["W"], P["V"], P["Z"]), (1, 1.0, 1.0), False,
                     (f0, ks), None)
        Q = {k: v.copy() for k, v in P.items()}
        dummy = [np.zeros((1,) * d) for d in (2, 3, 4)]
        losses, stats = np.zeros(1), np.zeros(N_STATS, np.int64)
        eta = 1e-3
        train_rows(0, 3, (indptr, indices, x, np.array([f0[0, 0] + 1.0]), np.zeros(0)), phi, cand,
                   (Q["b"], Q["W"], Q["V"], Q["Z"]), tuple(dummy), (1, 1.0, 1.0, 1.0, 1.0),
                   (eta, 1e18, 0.0, 0.0, 0.0, np.zeros(p), NORMALIZED, 1.0, False, True, np.ones(1), np.inf), 0,
                   (losses, ks, stats), None)
        f1 = np.zeros((1, 1))
        predict_rows(0, (indptr, indices, x), phi, cand, (Q["b"], Q["W"], Q["V"], Q["Z"]), (1, 1.0, 1.0), False,
                     (f1, ks), None)
        # squared loss, g = f - y = -1: the step raises f by eta (first order)
        assert f1[0, 0] - f0[0, 0] == pytest.approx(eta, rel=1e-2)


def test_prefetch_anchor_is_a_hint_that_compiles_to_prefetches():
    """The kernels' prefetch must compile on this numba/LLVM (its intrinsic's name
    depends on the pointer kind), emit a real prefetch, read nothing it should
    not (full-width and sparse rows, first and last anchor), and change no value."""
    import platform

    from numba import njit

    from streamfm.kernels._prefetch import prefetch_anchor

    @njit
    def touch(ids, indptr, indices, W, V):
        for row in range(indptr.shape[0] - 1):
            for i in ids:
                prefetch_anchor(i, indptr[row], indptr[row + 1], indices, W, V)

    rng = np.random.default_rng(0)
    m, p, C, r = 5, 7, 2, 3
    W, V = rng.normal(size=(m, p, C)), rng.normal(size=(m, p, C, r))
    W0, V0 = W.copy(), V.copy()
    X = sp.csr_matrix(np.array([[1.0] * p, [0, 2.0, 0, 0, 0, 0, 3.0], [0.0] * p]))
    touch(np.array([0, m - 1, 2]), X.indptr.astype(np.int64), X.indices.astype(np.int64), W, V)
    full = np.arange(0, 3 * p + 1, p, dtype=np.int64)
    touch(np.array([0, m - 1, 2]), full, None, W, V)  # full-width rows given without indices
    assert np.array_equal(W, W0) and np.array_equal(V, V0)
    if platform.machine().lower() in ("x86_64", "amd64"):
        asm = touch.inspect_asm(touch.signatures[0])
        assert "prefetch" in asm


@pytest.mark.parametrize("C, r", [(1, 3), (2, 9)])
def test_prefetch_during_evaluation_changes_no_value(C, r):
    """``fm_eval`` asks for a later neighbour's lines feature by feature (its ``ahead``
    anchor; W in numba, V inside the first vector sweep, kernels/_simd.py): results
    equal those of an evaluation without it, bit for bit, and no parameter is
    touched, for full-width and sparse rows, the first and the last anchor, and a
    feature's factors spanning one line or several (C * r = 18 > 8)."""
    from numba import njit

    from streamfm.kernels._prefetch import prefetch_span

    @njit
    def sweep(i, p, W, V):
        C, r = V.shape[2], V.shape[3]
        for j in range(p):
            prefetch_span(W, (i * p + j) * C, C)
            prefetch_span(V, (i * p + j) * C * r, C * r)

    rng = np.random.default_rng(3)
    m, p = 4, 6
    P = {"b": rng.normal(size=(m, C)), "W": rng.normal(size=(m, p, C)), "V": rng.normal(size=(m, p, C, r))}
    before = {k: v.copy() for k, v in P.items()}
    for i in (0, m - 1):
        sweep(i, p, P["W"], P["V"])
    X = sp.csr_matrix(np.array([[0.5, -1.0, 0, 0, 2.0, 0], list(rng.normal(size=p))]))
    indptr, indices, data = X.indptr.astype(np.int64), X.indices.astype(np.int64), X.data
    for idx in (indices, None):
        if idx is None:  # full-width rows: the dense second row alone
            lo, hi, d = 0, p, X[1].toarray().ravel()
        else:
            lo, hi, d = indptr[0], indptr[1], data
        out = []
        for ahead in (-1, 0, m - 1):
            f, s, work = np.zeros(C), np.zeros((C, r)), np.zeros((C, r))
            g = fm_eval(1, lo, hi, idx, d, P["b"], P["W"], P["V"], f, s, work, ahead)
            out.append((g, f, s))
        for g, f, s in out[1:]:
            assert g == out[0][0] and np.array_equal(f, out[0][1]) and np.array_equal(s, out[0][2])
    assert all(np.array_equal(P[k], before[k]) for k in P)


def test_vector_sweeps_refuse_arrays_they_cannot_read_by_pointer():
    """The intrinsics of kernels/_simd.py read data, indices and V element by element from
    their base pointers: a strided view must fail to compile, never be read astray."""
    from numba.core.errors import TypingError

    rng = np.random.default_rng(5)
    m, p, C, r = 2, 4, 1, 4
    P = random_params(rng, m, p, C, r, 1)
    f, s, work = np.zeros(C), np.zeros((C, r)), np.zeros((C, r))
    data = rng.normal(size=2 * p)
    fm_eval(0, 0, p, None, data[:p], P["b"], P["W"], P["V"], f, s, work, -1)  # contiguous: fine
    with pytest.raises(TypingError):
        fm_eval(0, 0, p, None, data[::2], P["b"], P["W"], P["V"], f, s, work, -1)
    with pytest.raises(TypingError):
        fm_eval(0, 0, p, None, data[:p], P["b"], P["W"], np.asfortranarray(P["V"]), f, s, work, -1)
