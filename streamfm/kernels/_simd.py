"""One anchor's factor loops in vector registers: LLVM intrinsics for the numba kernels.

``fm_eval`` and ``fm_update`` (kernels/fm.py) sweep a row once per block of
4, then 2, then 1 factors; these intrinsics are those sweeps, written in
LLVM IR with the block's factors in one vector register (<4 x double> for 4
factors). Numba compiles the same loops written in Python to scalar code:
the accumulators of the evaluation live in memory or in scalar registers,
and LLVM's vectoriser does not pack them, however the loop is written.
``fastmath`` is not used: its reassociation would make the full-width and
CSR specialisations' results differ.

Layout: ``V`` is C-contiguous (m, p, C, r); the block of factors f0..f0+w of
output c of anchor i for feature j starts at the flat offset
``base + j * stride`` with base = ((i p) C + c) r + f0 and stride = C r.
A row is ``data[lo:hi]`` with its features ``indices[lo:hi]``, or
``indices`` None for a full-width row (feature j is ``data[lo + j]``); the
L2 weights ``reg`` are aligned with ``data`` (``reg[t]`` belongs to the
value ``data[t]``), so they need no feature index.

``V`` and the AdaGrad accumulators ``A`` may be float64 or float32 (the
hashed store's table, models/table.py): a float32 block is loaded as
``<w x float>``, widened to double, computed in double and narrowed when
stored, so the arithmetic is the float64 one on the stored values.

Arithmetic: the update computes, per factor, exactly the expression of the
scalar loop it replaces (``v - eta * (g x (s - v x) + (l2 reg_j) v)``): every lane is
IEEE arithmetic in the same order, so the results are the same bit for bit.
The evaluation sums per factor over the row in row order, as before; the
squared norms (for the FM's diagonal and the gradient norm) are summed per
factor over the row and then across factors, where the scalar loop summed
across factors first: the same sums in another order (equal to ~1e-15).
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._prefetch import emit_prefetch

_F64 = ir.DoubleType()
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)


def _is_real(dtype) -> bool:
    return dtype in (types.float64, types.float32)


def _load_vec(builder, arr, off, vec, dtype):
    """The ``vec.count`` values of ``arr`` from flat offset ``off``, as doubles."""
    if dtype == types.float64:
        return builder.load(builder.bitcast(builder.gep(arr.data, [off]), vec.as_pointer()), align=8)
    narrow = ir.VectorType(ir.FloatType(), vec.count)
    v = builder.load(builder.bitcast(builder.gep(arr.data, [off]), narrow.as_pointer()), align=4)
    return builder.fpext(v, vec)


def _store_vec(builder, value, arr, off, vec, dtype):
    """Store the doubles ``value`` into ``arr`` at flat offset ``off`` (narrowed for float32)."""
    if dtype == types.float64:
        builder.store(value, builder.bitcast(builder.gep(arr.data, [off]), vec.as_pointer()), align=8)
        return
    narrow = ir.VectorType(ir.FloatType(), vec.count)
    builder.store(builder.fptrunc(value, narrow), builder.bitcast(builder.gep(arr.data, [off]), narrow.as_pointer()),
                  align=4)


def _row_feature(context, builder, sig_indices, idx_ary, t, lo):
    """The feature index of row position ``t`` as i64: ``t - lo`` (full width) or ``indices[t]``."""
    if idx_ary is None:
        return builder.sub(t, lo)
    j = builder.load(builder.gep(idx_ary.data, [t]))
    return context.cast(builder, j, sig_indices.dtype, types.int64)


def _splat(builder, value, vec):
    out = ir.Constant(vec, ir.Undefined)
    for u in range(vec.count):
        out = builder.insert_element(out, value, ir.Constant(_I32, u))
    return out


def _check(V, data, indices):
    """The arrays the intrinsics read by raw pointer, element by element: C-contiguous float64 or
    float32 V, C-contiguous float64 data, C-contiguous integer indices (anything else fails to
    compile rather than read astray)."""
    if not (isinstance(V, types.Array) and V.layout == "C" and _is_real(V.dtype)):
        return False
    if not (isinstance(data, types.Array) and data.layout == "C" and data.dtype == types.float64
            and data.ndim == 1):
        return False
    return isinstance(indices, types.NoneType) or (
        isinstance(indices, types.Array) and indices.layout == "C" and isinstance(indices.dtype, types.Integer)
        and indices.ndim == 1)


def _make_eval(width):
    vec = ir.VectorType(_F64, width)

    @intrinsic
    def eval_block(typingctx, V, base, stride, data, lo, hi, indices, ahead):
        """Sums over the row of v = V_jf x_j for the block's factors: (s_f..., sum v x^2 ..., sum v^2 ...,
        sum v^2 x^2 ...), ``width`` values each.

        ``ahead`` >= 0: the flat offset of another anchor's V block (its feature 0), whose ``stride``
        values for each of the row's features are prefetched as the row is swept (kernels/_prefetch.py).
        """
        if not _check(V, data, indices):
            return None
        sig = types.UniTuple(types.float64, 4 * width)(V, base, stride, data, lo, hi, indices, ahead)
        dense = isinstance(indices, types.NoneType)

        def codegen(context, builder, sig, args):
            Va = context.make_array(sig.args[0])(context, builder, args[0])
            Da = context.make_array(sig.args[3])(context, builder, args[3])
            Ia = None if dense else context.make_array(sig.args[6])(context, builder, args[6])
            base_, stride_, lo_, hi_, ahead_ = (context.cast(builder, args[k], sig.args[k], types.int64)
                                                for k in (1, 2, 4, 5, 7))
            vdt = sig.args[0].dtype
            line = 64 // context.get_abi_sizeof(context.get_data_type(vdt))  # values per cache line
            zero = ir.Constant(vec, [0.0] * width)
            acc = [cgutils.alloca_once_value(builder, zero) for _ in range(4)]  # promoted to registers by LLVM
            with cgutils.for_range_slice(builder, lo_, hi_, ir.Constant(_I64, 1), inc=True) as (t, _):
                x = builder.load(builder.gep(Da.data, [t]))
                x2 = builder.fmul(x, x)
                j = _row_feature(context, builder, sig.args[6], Ia, t, lo_)
                with builder.if_then(builder.icmp_signed(">=", ahead_, ir.Constant(_I64, 0)), likely=False):
                    first = builder.add(ahead_, builder.mul(j, stride_))
                    last = builder.sub(builder.add(first, stride_), ir.Constant(_I64, 1))
                    with cgutils.for_range_slice(builder, first, last, ir.Constant(_I64, line), inc=True) as (u, _):
                        emit_prefetch(builder, builder.gep(Va.data, [u]))
                    emit_prefetch(builder, builder.gep(Va.data, [last]))
                off = builder.add(base_, builder.mul(j, stride_))
                vj = _load_vec(builder, Va, off, vec, vdt)
                x2v = _splat(builder, x2, vec)
                v = builder.fmul(vj, _splat(builder, x, vec))
                vv = builder.fmul(v, v)
                for a, term in zip(acc, (v, builder.fmul(v, x2v), vv, builder.fmul(vv, x2v))):
                    builder.store(builder.fadd(builder.load(a), term), a)
            lanes = []
            for a in acc:
                total = builder.load(a)
                lanes += [builder.extract_element(total, ir.Constant(_I32, u)) for u in range(width)]
            return context.make_tuple(builder, sig.return_type, lanes)

        return sig, codegen

    return eval_block


def _make_update(width):
    vec = ir.VectorType(_F64, width)

    @intrinsic
    def update_block(typingctx, V, base, stride, data, lo, hi, indices, s, s_off, g, eta, l2, reg):
        """V_jf <- V_jf - eta (g x_j (s_f - V_jf x_j) + (l2 reg_j) V_jf) for the block's factors, every
        feature of the row; s_f = ``s.ravel()[s_off + f]``, ``reg`` float64 the L2 weights, aligned with ``data``."""
        if not _check(V, data, indices):
            return None
        for a in (s, reg):
            if not (isinstance(a, types.Array) and a.layout == "C" and a.dtype == types.float64):
                return None
        sig = types.void(V, base, stride, data, lo, hi, indices, s, s_off, g, eta, l2, reg)
        dense = isinstance(indices, types.NoneType)

        def codegen(context, builder, sig, args):
            Va = context.make_array(sig.args[0])(context, builder, args[0])
            Da = context.make_array(sig.args[3])(context, builder, args[3])
            Ia = None if dense else context.make_array(sig.args[6])(context, builder, args[6])
            Sa = context.make_array(sig.args[7])(context, builder, args[7])
            base_, stride_, lo_, hi_, soff = (context.cast(builder, args[k], sig.args[k], types.int64)
                                              for k in (1, 2, 4, 5, 8))
            g_, eta_, l2_ = (context.cast(builder, args[k], sig.args[k], types.float64) for k in (9, 10, 11))
            Ra = context.make_array(sig.args[12])(context, builder, args[12])
            sv = builder.load(builder.bitcast(builder.gep(Sa.data, [soff]), vec.as_pointer()), align=8)
            etav = _splat(builder, eta_, vec)
            with cgutils.for_range_slice(builder, lo_, hi_, ir.Constant(_I64, 1), inc=True) as (t, _):
                x = builder.load(builder.gep(Da.data, [t]))
                gx = builder.fmul(g_, x)
                j = _row_feature(context, builder, sig.args[6], Ia, t, lo_)
                l2v = _splat(builder, builder.fmul(l2_, builder.load(builder.gep(Ra.data, [t]))), vec)
                off = builder.add(base_, builder.mul(j, stride_))
                v = _load_vec(builder, Va, off, vec, sig.args[0].dtype)
                # v - eta * (gx * (s - v * x) + (l2 * reg_j) * v), in the scalar loop's order
                resid = builder.fsub(sv, builder.fmul(v, _splat(builder, x, vec)))
                step = builder.fadd(builder.fmul(_splat(builder, gx, vec), resid), builder.fmul(l2v, v))
                _store_vec(builder, builder.fsub(v, builder.fmul(etav, step)), Va, off, vec, sig.args[0].dtype)
            return context.get_dummy_value()

        return sig, codegen

    return update_block


eval_block4, eval_block2, eval_block1 = (_make_eval(w) for w in (4, 2, 1))
update_block4, update_block2, update_block1 = (_make_update(w) for w in (4, 2, 1))


def _vsqrt(builder, value, vec):
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec]),
                                        f"llvm.sqrt.v{vec.count}f64")
    return builder.call(fn, [value])


def _check_ada(V, A, data, indices, s, reg, inv):
    """The AdaGrad sweeps' arrays, read by raw pointer: as ``_check`` for V and A, C-contiguous float64
    s and reg, and the scratch ``inv`` C-contiguous float64 or None."""
    if not (_check(V, data, indices) and _check(A, data, indices)):
        return False
    if not (isinstance(inv, types.NoneType) or (
            isinstance(inv, types.Array) and inv.layout == "C" and inv.dtype == types.float64)):
        return False
    return all(isinstance(a, types.Array) and a.layout == "C" and a.dtype == types.float64 for a in (s, reg))


def _ada_arrays(context, builder, sig, args, reg_at, inv_at):
    """(V, A, data, indices or None, s, reg, inv or None) of an AdaGrad sweep's arguments, as LLVM arrays:
    V, A, data, indices and s at positions 0, 1, 4, 7, 8 of both sweeps; reg and inv where each sweep has them."""
    def arr(k):
        if isinstance(sig.args[k], types.NoneType):
            return None
        return context.make_array(sig.args[k])(context, builder, args[k])

    return tuple(arr(k) for k in (0, 1, 4, 7, 8, reg_at, inv_at))


def _make_ada_accumulate(width):
    vec = ir.VectorType(_F64, width)

    @intrinsic
    def ada_accumulate_block(typingctx, V, A, base, stride, data, lo, hi, indices, s, s_off, g, l2, reg, eps,
                             inv, inv_off, inv_stride):
        """AdaGrad's first sweep over the row for the block's factors: with d = x_j (s_f - V_jf x_j)
        (df/dV_jf) and g_jf = g d + (l2 reg_j) V_jf, A_jf += g_jf^2, and 1 / sqrt(A_jf + eps) is kept
        in ``inv`` at ``inv_off + (t - lo) * inv_stride`` (``inv`` None: not kept); returns the
        block's sums over the row of d^2 / sqrt(A_jf + eps), ``width`` values."""
        if not _check_ada(V, A, data, indices, s, reg, inv):
            return None
        sig = types.UniTuple(types.float64, width)(V, A, base, stride, data, lo, hi, indices, s, s_off, g, l2,
                                                    reg, eps, inv, inv_off, inv_stride)
        keep = not isinstance(inv, types.NoneType)

        def codegen(context, builder, sig, args):
            Va, Aa, Da, Ia, Sa, Ra, Ka = _ada_arrays(context, builder, sig, args, 12, 14)
            base_, stride_, lo_, hi_, soff, koff, kstride = (
                context.cast(builder, args[k], sig.args[k], types.int64) for k in (2, 3, 5, 6, 9, 15, 16))
            g_, l2_, eps_ = (context.cast(builder, args[k], sig.args[k], types.float64) for k in (10, 11, 13))
            sv = builder.load(builder.bitcast(builder.gep(Sa.data, [soff]), vec.as_pointer()), align=8)
            gv_ = _splat(builder, g_, vec)
            epsv = _splat(builder, eps_, vec)
            one = _splat(builder, ir.Constant(_F64, 1.0), vec)
            acc = cgutils.alloca_once_value(builder, ir.Constant(vec, [0.0] * width))
            with cgutils.for_range_slice(builder, lo_, hi_, ir.Constant(_I64, 1), inc=True) as (t, _):
                x = builder.load(builder.gep(Da.data, [t]))
                xv = _splat(builder, x, vec)
                j = _row_feature(context, builder, sig.args[7], Ia, t, lo_)
                l2v = _splat(builder, builder.fmul(l2_, builder.load(builder.gep(Ra.data, [t]))), vec)
                off = builder.add(base_, builder.mul(j, stride_))
                v = _load_vec(builder, Va, off, vec, sig.args[0].dtype)
                # d = x * (s - v * x); gv = g * d + l2 * v; a = A + gv * gv, in the scalar loop's order
                d = builder.fmul(xv, builder.fsub(sv, builder.fmul(v, xv)))
                grad = builder.fadd(builder.fmul(gv_, d), builder.fmul(l2v, v))
                adt = sig.args[1].dtype
                a = builder.fadd(_load_vec(builder, Aa, off, vec, adt), builder.fmul(grad, grad))
                _store_vec(builder, a, Aa, off, vec, adt)
                if adt != types.float64:  # the step divides by the stored (narrowed) value, as a second sweep would
                    a = _load_vec(builder, Aa, off, vec, adt)
                iv = builder.fdiv(one, _vsqrt(builder, builder.fadd(a, epsv), vec))
                if keep:
                    koffset = builder.add(koff, builder.mul(builder.sub(t, lo_), kstride))
                    builder.store(iv, builder.bitcast(builder.gep(Ka.data, [koffset]), vec.as_pointer()), align=8)
                builder.store(builder.fadd(builder.load(acc), builder.fmul(builder.fmul(d, d), iv)), acc)
            total = builder.load(acc)
            lanes = [builder.extract_element(total, ir.Constant(_I32, u)) for u in range(width)]
            return context.make_tuple(builder, sig.return_type, lanes)

        return sig, codegen

    return ada_accumulate_block


def _make_ada_step(width):
    vec = ir.VectorType(_F64, width)

    @intrinsic
    def ada_step_block(typingctx, V, A, base, stride, data, lo, hi, indices, s, s_off, g, eta, l2, reg, eps,
                       inv, inv_off, inv_stride):
        """AdaGrad's step for the block's factors, every feature of the row:
        V_jf <- V_jf - eta (g x_j (s_f - V_jf x_j) + (l2 reg_j) V_jf) i_jf, with i_jf = 1 / sqrt(A_jf + eps)
        read from ``inv`` as ``ada_accumulate_block`` kept it, or (``inv`` None) computed again."""
        if not _check_ada(V, A, data, indices, s, reg, inv):
            return None
        sig = types.void(V, A, base, stride, data, lo, hi, indices, s, s_off, g, eta, l2, reg, eps, inv, inv_off,
                         inv_stride)
        keep = not isinstance(inv, types.NoneType)

        def codegen(context, builder, sig, args):
            Va, Aa, Da, Ia, Sa, Ra, Ka = _ada_arrays(context, builder, sig, args, 13, 15)
            base_, stride_, lo_, hi_, soff, koff, kstride = (
                context.cast(builder, args[k], sig.args[k], types.int64) for k in (2, 3, 5, 6, 9, 16, 17))
            g_, eta_, l2_, eps_ = (context.cast(builder, args[k], sig.args[k], types.float64)
                                   for k in (10, 11, 12, 14))
            sv = builder.load(builder.bitcast(builder.gep(Sa.data, [soff]), vec.as_pointer()), align=8)
            etav = _splat(builder, eta_, vec)
            epsv = _splat(builder, eps_, vec)
            one = _splat(builder, ir.Constant(_F64, 1.0), vec)
            with cgutils.for_range_slice(builder, lo_, hi_, ir.Constant(_I64, 1), inc=True) as (t, _):
                x = builder.load(builder.gep(Da.data, [t]))
                xv = _splat(builder, x, vec)
                gx = _splat(builder, builder.fmul(g_, x), vec)
                j = _row_feature(context, builder, sig.args[7], Ia, t, lo_)
                l2v = _splat(builder, builder.fmul(l2_, builder.load(builder.gep(Ra.data, [t]))), vec)
                off = builder.add(base_, builder.mul(j, stride_))
                v = _load_vec(builder, Va, off, vec, sig.args[0].dtype)
                if keep:
                    koffset = builder.add(koff, builder.mul(builder.sub(t, lo_), kstride))
                    iv = builder.load(builder.bitcast(builder.gep(Ka.data, [koffset]), vec.as_pointer()), align=8)
                else:
                    a = _load_vec(builder, Aa, off, vec, sig.args[1].dtype)
                    iv = builder.fdiv(one, _vsqrt(builder, builder.fadd(a, epsv), vec))
                # v - eta * (gx * (s - v * x) + l2 * v) * iv, in the scalar loop's order
                step = builder.fadd(builder.fmul(gx, builder.fsub(sv, builder.fmul(v, xv))), builder.fmul(l2v, v))
                _store_vec(builder, builder.fsub(v, builder.fmul(builder.fmul(etav, step), iv)), Va, off, vec,
                           sig.args[0].dtype)
            return context.get_dummy_value()

        return sig, codegen

    return ada_step_block


ada_accumulate_block4, ada_accumulate_block2, ada_accumulate_block1 = (_make_ada_accumulate(w) for w in (4, 2, 1))
ada_step_block4, ada_step_block2, ada_step_block1 = (_make_ada_step(w) for w in (4, 2, 1))
