"""A software prefetch for numba kernels: LLVM's ``llvm.prefetch`` intrinsic.

With many anchors (m in the thousands) the parameters outgrow the caches and
each neighbour's FM evaluation starts with cache misses on its W and V
blocks (about 4.8 KB per anchor at p = 54, rank 10). The neighbours of a row
are known before their evaluation starts, so the kernel asks for a later
one's block while it computes the current one, feature
by feature, inside the evaluation's own sweeps of the row (its W in the
sweep for W, its V in the sweep for the first block of factors: see
kernels/_simd.py), spread over them rather than in one burst. (A burst of ~75 prefetches at the start of an
evaluation fills the core's queue of outstanding misses and stalls it until
they come back. Measured in a bare evaluate-and-update loop, dense 54-feature
rows, rank 10, 13 neighbours a row: per neighbour at m = 4096, 1.04-1.06 us
spread against 1.37 in a burst and 1.35 with none; at m = 64, where the
blocks are in cache, 0.97 against 1.04 and 0.93.) ``prefetch_anchor``, the
burst, serves the first neighbours of a row, before any evaluation runs.
A prefetch is only a hint: it changes no value (the kernel tests compare
results, not timings).
"""
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_LINE = 8  # float64 values per 64-byte cache line


def emit_prefetch(builder, ptr):
    """Emit a prefetch of the cache line holding ``ptr`` (LLVM IR, for the intrinsics here and in _simd.py)."""
    ptr = builder.bitcast(ptr, ir.IntType(8).as_pointer())
    # the intrinsic is overloaded on its pointer type: "p0" with opaque
    # pointers (newer llvmlite), "p0i8" with typed ones
    name = "llvm.prefetch.p0" if getattr(ptr.type, "is_opaque", False) else "llvm.prefetch.p0i8"
    i32 = ir.IntType(32)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32]), name)
    # read (0), keep in all cache levels (3), data cache (1)
    builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])


@intrinsic
def _prefetch(typingctx, arr, i):
    """Prefetch the cache line holding ``arr.ravel()[i]`` (C-contiguous ``arr``) for reading."""
    if not isinstance(arr, types.Array) or not isinstance(i, types.Integer):
        return None
    sig = types.void(arr, i)

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        emit_prefetch(builder, builder.gep(ary.data, [args[1]]))
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def prefetch_span(arr, first, n):
    """Ask for the lines of ``arr.ravel()[first:first + n]`` (C-contiguous ``arr``, n >= 1)."""
    last = first + n - 1
    u = first
    while u < last:
        _prefetch(arr, u)
        u += _LINE
    _prefetch(arr, last)


@njit(cache=True, nogil=True, inline="always")
def prefetch_anchor(i, lo, hi, indices, W, V):
    """Ask for the parts of anchor i's W and V (C-contiguous) that the row ``lo:hi`` reads.

    A full-width row (``indices`` None, or a row of all p features) reads
    all of W[i] and V[i]; a sparse row reads one (C,) slice of W and one
    (C, r) slice of V per feature.
    """
    p = W.shape[1]
    cW = W.shape[2]
    cV = V.shape[2] * V.shape[3]
    if indices is None or hi - lo == p:
        prefetch_span(W, i * p * cW, p * cW)
        prefetch_span(V, i * p * cV, p * cV)
        return
    for t in range(lo, hi):
        j = indices[t]
        prefetch_span(W, (i * p + j) * cW, cW)
        prefetch_span(V, (i * p + j) * cV, cV)
