"""The hashed parameter store's addressing and every store's initial factors, as numba functions.

Each (FM index i, feature j) pair has a fixed 64-bit key ``pair_key(i, j)``
(splitmix64 of ``i * K ^ j``: the same on every run and platform). The
hashed store (models/table.py) keeps one row of W and V (and of AdaGrad's
accumulators) per slot of a table of 2^bits rows; the pair's slot is the
key's top ``bits`` bits, and its *tag* the key's low 32 bits (never 0).

The tag is also what the initial factors derive from: V's initial value
for the pair, output c and factor f is ``sigma * N(0, 1)``, the normal
deviate drawn (Box-Muller) from splitmix64 outputs of (seed, tag, c r + f).
The exact store fills every pair's factors so, eagerly; the hashed store
fills a slot's the first time a pair touches it and records that pair's tag
in ``tags`` (0: untouched), so an untouched slot costs no memory page, the
initial values do not depend on the order rows arrive in, and when no two
pairs share a slot the two stores hold the same model. A touch whose tag
differs from the slot's is a collision (counted).

The kernels of kernels/llfm.py take the table as ``(shift, tags, dirty,
sigma, skey)``: ``touch_row`` computes a row's slots per neighbour and
``fm_args`` hands them to the FM functions of kernels/fm.py in place of
feature indices.

``dirty`` (uint8 per slot) records the slots training changed: bit
``DIRTY_CHECKPOINT`` until the next checkpoint writes them, bit
``DIRTY_ROUND`` until an engine's merge collects them.
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

from ._prefetch import prefetch_span

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)
_S30, _S27, _S31, _S32, _S11 = (np.uint64(v) for v in (30, 27, 31, 32, 11))
_ONE = np.uint64(1)
_TWO_PI = 2.0 * np.pi
_INV53 = 1.0 / 9007199254740992.0  # 2^-53

DIRTY_CHECKPOINT = 1
DIRTY_ROUND = 2
DIRTY = DIRTY_CHECKPOINT | DIRTY_ROUND


@njit(cache=True, nogil=True, inline="always")
def splitmix64(x):
    """One step of splitmix64 (Steele, Lea, Flood 2014): a bijective 64-bit mix."""
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, nogil=True, inline="always")
def pair_key(i, j):
    """The 64-bit key of FM i's feature j."""
    return splitmix64(np.uint64(i) * _GOLDEN ^ np.uint64(j))


@njit(cache=True, nogil=True, inline="always")
def key_slot(key, shift):
    """The slot of a key in a table of 2^(64 - shift) rows (``shift`` a uint64)."""
    return np.int64(key >> shift)


@njit(cache=True, nogil=True, inline="always")
def key_tag(key):
    """The pair's tag: the key's low 32 bits, 1 for 0 (0 marks an untouched slot)."""
    t = np.uint32(key & _LOW32)
    return t if t != 0 else np.uint32(1)


@njit(cache=True, nogil=True)
def _seed_key(seed):
    return splitmix64(splitmix64(np.uint64(seed)) ^ np.uint64(0x5EED))


def seed_key(seed: int) -> np.uint64:
    """The initial factors' stream of a model seed (a NumPy uint64, so numba types it as one)."""
    return np.uint64(_seed_key(seed))


@njit(cache=True, nogil=True, inline="always")
def initial_factor(skey, tag, u):
    """Value u (= c r + f) of the initial factors of the pair with ``tag``: a standard normal deviate
    from two splitmix64 outputs (Box-Muller)."""
    base = splitmix64(skey ^ (np.uint64(tag) << _S32))
    a = splitmix64(base + np.uint64(2 * u))
    b = splitmix64(base + np.uint64(2 * u + 1))
    u1 = (np.float64(a >> _S11) + 0.5) * _INV53  # (0, 1): the log is finite
    u2 = np.float64(b >> _S11) * _INV53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(_TWO_PI * u2)


@njit(cache=True, nogil=True)
def fill_initial_factors(V, sigma, skey, first_fm):
    """The exact store's V (n, p, C, r), FMs ``first_fm`` .. ``first_fm + n - 1``: every pair's
    initial factors, eagerly (the values the hashed store gives a slot on its first touch)."""
    n, p, C, r = V.shape
    for a in range(n):
        for j in range(p):
            tag = key_tag(pair_key(first_fm + a, j))
            for c in range(C):
                for f in range(r):
                    V[a, j, c, f] = sigma * initial_factor(skey, tag, c * r + f)


@njit(cache=True, nogil=True)
def initial_rows(tags, C, r, sigma, skey):
    """The initial factors (n, C, r) of slots first touched by the pairs of ``tags`` (n,)."""
    out = np.empty((tags.shape[0], C, r))
    for s in range(tags.shape[0]):
        for c in range(C):
            for f in range(r):
                out[s, c, f] = sigma * initial_factor(skey, tags[s], c * r + f)
    return out


@njit(cache=True, nogil=True, inline="always")
def touch_slot(i, j, shift, tags, dirty, V, sigma, skey):
    """The slot of FM i's feature j in the table, touched by training; returns (slot, collided).

    A slot no pair has touched gets this pair's tag and initial factors (V
    of shape (1, S, C, r); its W and accumulators are zero). The slot is
    marked dirty. Prediction uses ``key_slot`` alone and writes nothing: an
    untouched slot reads as zero (an unseen pair adds nothing to the
    output), and a model loaded read-only predicts.
    """
    key = pair_key(i, j)
    s = key_slot(key, shift)
    tag = key_tag(key)
    old = tags[s]
    dirty[s] = DIRTY
    if old == 0:
        tags[s] = tag
        C = V.shape[2]
        r = V.shape[3]
        for c in range(C):
            for f in range(r):
                V[0, s, c, f] = sigma * initial_factor(skey, tag, c * r + f)
        return s, False
    return s, old != tag


@njit(cache=True, nogil=True)
def touch_features(fm, indices, n_values, shift, tags, dirty, V, sigma, skey, slots):
    """``touch_slot`` of FM ``fm`` for every value of a chunk: feature ``indices[t]`` (or, ``indices``
    None, feature ``t % n_values``: full-width rows of ``n_values`` features) into ``slots[t]``;
    returns the collisions. The ``fm`` method's per-chunk remapping in training."""
    collisions = 0
    for t in range(slots.shape[0]):
        j = t % n_values if indices is None else indices[t]
        s, hit = touch_slot(fm, j, shift, tags, dirty, V, sigma, skey)
        slots[t] = s
        collisions += hit
    return collisions


@njit(cache=True, nogil=True)
def feature_slots(fm, indices, n_values, shift, slots):
    """``touch_features``' slots without touching them (prediction)."""
    for t in range(slots.shape[0]):
        j = t % n_values if indices is None else indices[t]
        slots[t] = key_slot(pair_key(fm, j), shift)


def fm_args(table, a, i, lo, hi, indices, data, b, Ab, reg, slots):
    """Neighbour a's (FM i's) arguments of the kernels/fm.py functions: ``(i, lo, hi, indices, data,
    b, Ab, reg)`` as given for the exact store; for the hashed one FM 0 of the table, the row's
    slots ``slots[a, :nnz]``, and views of the row's values, weights and FM i's biases. (An
    overload: the two stores' tuples have different types, chosen by ``table``'s type.)"""


@overload(fm_args, jit_options={"nogil": True})
def _fm_args(table, a, i, lo, hi, indices, data, b, Ab, reg, slots):
    if isinstance(table, types.NoneType):
        def exact(table, a, i, lo, hi, indices, data, b, Ab, reg, slots):
            return i, lo, hi, indices, data, b, Ab, reg
        return exact

    def hashed(table, a, i, lo, hi, indices, data, b, Ab, reg, slots):
        n = hi - lo
        return 0, 0, n, slots[a, :n], data[lo:hi], b[i:i + 1], Ab[i:i + 1], reg[lo:hi]
    return hashed


@njit(cache=True, nogil=True)
def touch_row(k, ids, lo, hi, indices, table, W, V, slots):
    """The hashed store in training: each of the k neighbours' slots for the row into ``slots[a, :nnz]``
    (``touch_slot``: a new slot gets its initial factors), their lines requested
    (kernels/_prefetch.py); returns the collisions."""
    shift, tags, dirty, sigma, skey = table
    C = V.shape[2]
    r = V.shape[3]
    hits = 0
    for a in range(k):
        for t in range(lo, hi):
            j = t - lo if indices is None else indices[t]
            s, hit = touch_slot(ids[a], j, shift, tags, dirty, V, sigma, skey)
            slots[a, t - lo] = s
            hits += hit
            prefetch_span(W, s * C, C)
            prefetch_span(V, s * C * r, C * r)
    return hits


@njit(cache=True, nogil=True)
def row_slots(k, ids, lo, hi, indices, shift, W, V, slots):
    """``touch_row``'s slots in prediction: computed and requested, nothing written."""
    C = V.shape[2]
    r = V.shape[3]
    for a in range(k):
        for t in range(lo, hi):
            j = t - lo if indices is None else indices[t]
            s = key_slot(pair_key(ids[a], j), shift)
            slots[a, t - lo] = s
            prefetch_span(W, s * C, C)
            prefetch_span(V, s * C * r, C * r)


@njit(cache=True, nogil=True)
def slot_buffer(table, indptr, Kmax):
    """The hashed store's per-row slots, (Kmax, longest row); a stand-in for the exact store."""
    if table is None:
        return np.zeros((1, 1), np.int64)
    longest = 0
    for row in range(indptr.shape[0] - 1):
        longest = max(longest, indptr[row + 1] - indptr[row])
    return np.zeros((Kmax, longest), np.int64)
