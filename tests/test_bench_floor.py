"""The benchmark's floor kernel (tools/floor.py) against a NumPy reference."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools.floor import bare_fm_sgd  # noqa: E402


def test_bare_fm_sgd_matches_numpy():
    rng = np.random.default_rng(0)
    n, p, r, eta, l2 = 7, 5, 3, 0.05, 0.01
    X, y = rng.normal(size=(n, p)), rng.integers(0, 2, n).astype(float)
    b, w, V = np.array([0.1]), rng.normal(size=p) * 0.1, rng.normal(size=(p, r)) * 0.3
    B, Wr, Vr = b.copy(), w.copy(), V.copy()
    total = bare_fm_sgd(X, y, b, w, V, eta, l2)
    ref_total = 0.0
    for x, t in zip(X, y):
        s = Vr.T @ x
        f = B[0] + Wr @ x + 0.5 * (s @ s - ((Vr * Vr).T @ (x * x)).sum())
        ref_total += np.log1p(np.exp(f)) - t * f
        g = 1 / (1 + np.exp(-f)) - t
        gV = g * (np.outer(x, s) - Vr * (x * x)[:, None]) + l2 * Vr
        B, Wr, Vr = B - eta * g, Wr - eta * (g * x + l2 * Wr), Vr - eta * gV
    assert total == np.float64(total) and abs(total - ref_total) < 1e-10
    np.testing.assert_allclose(b, B, atol=1e-12)
    np.testing.assert_allclose(w, Wr, atol=1e-12)
    np.testing.assert_allclose(V, Vr, atol=1e-12)
