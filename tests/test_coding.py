"""Local coding (Algorithm 1, soft assignment), anchors and the FAISS candidate search."""
import numpy as np
import pytest
from scipy.optimize import minimize

from streamfm.coding.anchors import coding_scale, kmeans_anchors
from streamfm.coding.local import adaptive_coding_np, soft_assignment_np
from streamfm.coding.search import AnchorIndex, count_misses
from streamfm.coding.space import SKETCH_DIM, coding_vectors
from streamfm.errors import InputError


def slsqp_simplex(b):
    """The general solver: min ||g||_2 + g.b over the simplex."""
    n = len(b)
    res = minimize(lambda g: np.linalg.norm(g) + g @ b, np.full(n, 1.0 / n), method="SLSQP",
                   bounds=[(0, 1)] * n, constraints=[{"type": "eq", "fun": lambda g: g.sum() - 1}],
                   options={"ftol": 1e-13, "maxiter": 1000})
    return res.x, res.fun


@pytest.mark.parametrize("seed", range(12))
def test_algorithm1_is_the_simplex_minimiser(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    b = rng.uniform(0, 3, size=n) * rng.choice([0.1, 1.0, 5.0])
    g = adaptive_coding_np(b)
    assert g.min() >= 0 and g.sum() == pytest.approx(1.0)
    x, fun = slsqp_simplex(b)
    obj = np.linalg.norm(g) + g @ b
    assert obj <= fun + 1e-9  # never worse than the general solver
    np.testing.assert_allclose(g, x, atol=2e-4)


def test_algorithm1_weights_fall_linearly_and_cut_off():
    b = np.array([0.0, 0.2, 0.4, 5.0])
    g = adaptive_coding_np(b)
    assert g[3] == 0.0
    # gamma_i proportional to lam - b_i: equal steps in b give equal steps in gamma
    assert g[0] - g[1] == pytest.approx(g[1] - g[2])
    # equal distances: equal weights over all of them
    np.testing.assert_allclose(adaptive_coding_np(np.zeros(4)), 0.25)


def test_soft_assignment():
    d = np.array([3.0, 1.0, 2.0, 0.5, 9.0])
    g = soft_assignment_np(d, 3, 2.0)
    near = np.argsort(d)[:3]
    expect = np.exp(-2.0 * d[near]) / np.exp(-2.0 * d[near]).sum()
    np.testing.assert_allclose(g[near], expect)
    assert g.sum() == pytest.approx(1.0) and np.count_nonzero(g) == 3
    # huge distances do not underflow to 0/0
    assert np.isfinite(soft_assignment_np(d + 1e6, 3, 50.0)).all()


def test_flat_and_all_candidates_equal_brute_force():
    rng = np.random.default_rng(0)
    Z, phi = rng.normal(size=(40, 6)), rng.normal(size=(100, 6))
    brute = np.argsort(((phi[:, None] - Z[None]) ** 2).sum(-1), axis=1)
    idx = AnchorIndex(40)  # K = m: every anchor is a candidate
    idx.rebuild(Z)
    cand = idx.search(phi)
    assert cand.shape == (100, 40)
    assert all(set(c) == set(range(40)) for c in cand)
    flat = AnchorIndex(8, kind="flat")
    flat.rebuild(Z)
    np.testing.assert_array_equal(flat.search(phi)[:, 0], brute[:, 0])
    assert count_misses(phi, flat.search(phi), Z) == 0


def test_ivf_for_many_anchors_widens_to_exact_and_is_seeded():
    from streamfm.coding.search import IVF_FROM, NPROBE

    rng = np.random.default_rng(4)
    Z, phi = rng.normal(size=(IVF_FROM, 8)), rng.normal(size=(300, 8))
    idx = AnchorIndex(32)  # auto: an IVF from IVF_FROM anchors on
    idx.rebuild(Z)
    assert "IVF" in type(idx.index).__name__ and idx.approximate and idx.nprobe == NPROBE
    cand = idx.search(phi)
    assert cand.shape == (300, 32)
    again = AnchorIndex(32)  # the same anchors: the same index, the same candidates
    again.rebuild(Z)
    np.testing.assert_array_equal(again.search(phi), cand)
    while idx.approximate:  # what the model does after a block with a miss
        idx.widen()
    assert idx.nprobe == idx.index.nlist
    exact = idx.search(phi)
    brute = np.argsort(((phi[:, None] - Z[None]) ** 2).sum(-1), axis=1)[:, :32]
    assert count_misses(phi, exact, Z) == 0
    assert np.mean([set(a) == set(b) for a, b in zip(exact, brute)]) > 0.99  # float32 ties aside
    small = AnchorIndex(32)
    small.rebuild(Z[: IVF_FROM - 1])
    assert "Flat" in type(small.index).__name__ and not small.approximate


def test_ivf_rebuild_reuses_given_list_centroids():
    """A rebuild given an earlier IVF's list centroids routes with them instead of
    training: the same lists, so the same candidates as the index that trained them."""
    from streamfm.coding.search import IVF_FROM, ivf_lists

    rng = np.random.default_rng(4)
    Z, phi = rng.normal(size=(IVF_FROM, 8)), rng.normal(size=(200, 8))
    first = AnchorIndex(32)
    first.rebuild(Z)
    assert first.trained and first.centroids.shape == (ivf_lists(IVF_FROM), 8)
    again = AnchorIndex(32)
    again.rebuild(Z, centroids=first.centroids)
    assert not again.trained
    np.testing.assert_array_equal(again.centroids, first.centroids)
    np.testing.assert_array_equal(again.search(phi), first.search(phi))
    # anchors with cluster structure that then move a little: the old lists still route the search
    centres = rng.normal(scale=4.0, size=(16, 8))
    Zc = centres[rng.integers(0, 16, IVF_FROM)] + rng.normal(size=(IVF_FROM, 8))
    rows = centres[rng.integers(0, 16, 200)] + rng.normal(size=(200, 8))
    trained = AnchorIndex(32)
    trained.rebuild(Zc)
    moved = Zc + rng.normal(scale=0.05, size=Zc.shape)
    reused, fresh = AnchorIndex(32), AnchorIndex(32)
    reused.rebuild(moved, centroids=trained.centroids)
    fresh.rebuild(moved)
    assert fresh.trained and not reused.trained and not np.array_equal(fresh.centroids, trained.centroids)
    assert count_misses(rows, reused.search(rows), moved) == count_misses(rows, fresh.search(rows), moved) == 0
    wrong = AnchorIndex(32)
    wrong.rebuild(Z, centroids=first.centroids[:5])  # centroids that do not fit: trained anew
    assert wrong.trained
    flat = AnchorIndex(32)
    flat.rebuild(Z[:100], centroids=first.centroids)  # a flat index has no lists
    assert flat.centroids is None and not flat.trained


def test_count_misses_sees_a_stale_index():
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(50, 3))
    phi = Z[:10] + 1e-3
    idx = AnchorIndex(4, kind="flat")
    idx.rebuild(Z)
    cand = idx.search(phi)
    Z2 = Z.copy()
    Z2[10] = phi[0]  # an anchor moved onto row 0 after the index was built
    assert count_misses(phi, cand, Z2) == 1


def test_count_misses_matches_a_numpy_brute_force():
    rng = np.random.default_rng(5)
    Z = rng.normal(size=(1500, 6))
    phi = rng.normal(size=(64, 6))
    cand = np.stack([rng.choice(1500, 40, replace=False) for _ in range(64)])
    nearest = ((phi[:, None, :] - Z[None, :, :]) ** 2).sum(2).argmin(1)
    cand[:20, 0] = nearest[:20]  # a third of the rows do have their nearest anchor
    expected = int((cand != nearest[:, None]).all(1).sum())
    assert 40 <= expected <= 44
    assert count_misses(phi, cand, Z) == expected


def test_kmeans_is_seeded_and_scale_is_positive():
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(c, 0.1, size=(100, 2)) for c in (-3, 0, 3)])
    A = kmeans_anchors(X, 3, seed=7)
    np.testing.assert_array_equal(A, kmeans_anchors(X, 3, seed=7))
    np.testing.assert_allclose(np.sort(A[:, 0]), [-3, 0, 3], atol=0.1)
    assert 0 < coding_scale(X, A) < 0.1
    with pytest.raises(InputError, match="anchors need at least"):
        kmeans_anchors(X[:2], 3)


def test_coding_space_identity_and_sketch():
    indptr = np.array([0, 2, 3], np.int64)
    indices = np.array([0, 2, 1], np.int32)
    data = np.array([1.5, -2.0, 3.0])
    np.testing.assert_array_equal(coding_vectors(indptr, indices, data, 3), [[1.5, 0, -2.0], [0, 3.0, 0]])
    wide = coding_vectors(indptr, np.array([5, 900_000, 77], np.int32), data, 1 << 20)
    assert wide.shape == (2, SKETCH_DIM)
    # a count sketch keeps each value's magnitude in one bucket
    assert sorted(np.abs(wide[0][wide[0] != 0])) in ([1.5, 2.0], [0.5])


@pytest.mark.parametrize("m", [20, 100, 1024])
def test_search_split_between_threads_gives_the_serial_candidates(m):
    """--threads N splits a block's search into N row ranges searched at once
    (models/schedule.py): every row's candidates must be the serial search's, for
    all-anchor, flat and IVF indexes, and for rows that do not split evenly."""
    from streamfm.coding.search import IVF_FROM
    from streamfm.models.schedule import split_search

    assert IVF_FROM == 1024  # the last case is an IVF
    rng = np.random.default_rng(11)
    Z, phi = rng.normal(size=(m, 6)), rng.normal(size=(301, 6))
    idx = AnchorIndex(32)
    idx.rebuild(Z)
    serial = idx.search(phi)
    for threads in (2, 3):
        np.testing.assert_array_equal(split_search(idx, phi, threads), serial)


def _searches_while_python_holds_the_gil(index, phi, hold_s=20.0) -> bool:
    """Does ``index.search(phi)`` in a thread finish while this thread runs Python code?

    This thread gives the GIL up only when Python forces a switch, every
    50 ms here. A search that takes the GIL for each query (FAISS's
    interrupt callback) then needs 50 ms a query: 200 s for 4,000 queries,
    far past the deadline. One that takes it only a few times, entering and
    leaving FAISS, finishes in well under a second (measured: 0.17 s).
    """
    import sys
    import threading
    import time

    done = threading.Event()
    t = threading.Thread(target=lambda: (index.search(phi), done.set()))
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.05)
    try:
        t.start()
        end = time.monotonic() + hold_s
        while not done.is_set() and time.monotonic() < end:
            pass  # Python bytecode: the GIL stays here but for the forced switches
        finished = done.is_set()
    finally:
        sys.setswitchinterval(old)
        t.join()
    return finished


def test_ivf_search_needs_no_gil_even_after_a_kmeans():
    """FAISS's per-query Ctrl-C check is off (coding/_faiss.py): a search beside a busy
    Python thread (the trainer's reader) is not throttled by the GIL. The k-means,
    which turns the check back on while it runs, turns it off again."""
    from streamfm.coding.search import IVF_FROM

    rng = np.random.default_rng(5)
    data = rng.normal(size=(3000, 8))
    kmeans_anchors(data, 16, seed=0, niter=2, nredo=1)
    Z = rng.normal(size=(IVF_FROM, 8))
    idx = AnchorIndex(8)
    idx.rebuild(Z)
    assert "IVF" in type(idx.index).__name__
    assert _searches_while_python_holds_the_gil(idx, rng.normal(size=(4000, 8)))


def test_a_search_from_another_thread_runs_faiss_on_one_openmp_thread():
    """OpenMP's thread count is per thread: a helper thread that searches (the
    pipelined or split search) must set its own, or FAISS runs there on every core."""
    from concurrent.futures import ThreadPoolExecutor

    from streamfm.coding._faiss import faiss as load

    faiss = load()
    rng = np.random.default_rng(6)
    idx = AnchorIndex(4)
    idx.rebuild(rng.normal(size=(64, 5)))

    def search_then_count():
        idx.search(rng.normal(size=(10, 5)))
        return faiss.omp_get_max_threads()

    with ThreadPoolExecutor(1) as pool:  # a fresh thread: OpenMP's default there is every core
        assert pool.submit(search_then_count).result() == 1


def onehot_clusters(n, seed, fields=4, cats=500, k=5, pref=3, p_pref=0.8):
    """One-hot rows of ``fields`` categorical fields (``fields * cats`` features): a row of cluster c
    takes, in each field, one of c's ``pref`` categories with probability ``p_pref``, else any."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    prefs = np.random.default_rng(100).integers(0, cats, size=(k, fields, pref))
    c = rng.integers(0, k, n)
    liked = prefs[c[:, None], np.arange(fields)[None, :], rng.integers(0, pref, (n, fields))]
    cat = np.where(rng.random((n, fields)) < p_pref, liked, rng.integers(0, cats, (n, fields)))
    cols = (np.arange(fields) * cats + cat).ravel()
    X = sp.csr_matrix((np.ones(n * fields), (np.repeat(np.arange(n), fields), cols)), shape=(n, fields * cats))
    X.sum_duplicates()
    return X, c


def test_anchors_on_sketched_auto_scaled_one_hot_rows_separate_the_clusters():
    """Wide one-hot rows (2,000 features: the count sketch into 64 dimensions) keep their 1s under
    auto scaling, so k-means anchors in the sketch find the clusters the rows were drawn from;
    dividing by the standard deviation (the standard map) lets rare categories dominate instead."""
    from sklearn.metrics import adjusted_rand_score

    from fakes import FakeSource
    from streamfm.io.chunk import Chunk
    from streamfm.preprocess.scan import scan
    from streamfm.preprocess.standardize import Standardizer

    X, c = onehot_clusters(3000, seed=1)
    chunk = Chunk.from_scipy(X, np.zeros(X.shape[0]))
    stats = scan(FakeSource({"f": [chunk]}), task="regression")
    agreement = {}
    for mode in ("auto", "standard"):
        out = Standardizer.from_scan(stats, mode).transform(chunk)
        phi = coding_vectors(out.indptr, out.indices, out.data, out.n_features)
        assert phi.shape == (3000, SKETCH_DIM)
        Z = kmeans_anchors(phi, 5, seed=0)
        nearest = ((phi[:, None, :] - Z[None]) ** 2).sum(-1).argmin(1)
        purity = sum(np.bincount(c[nearest == j]).max() for j in np.unique(nearest)) / len(c)
        agreement[mode] = purity, adjusted_rand_score(c, nearest)
    purity, ari = agreement["auto"]
    assert purity > 0.7 and ari > 0.5, agreement  # chance: purity ~0.2, ARI ~0
    assert agreement["standard"][0] < purity - 0.3, agreement
