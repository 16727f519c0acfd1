"""ONNX shape arithmetic -> IR: Shape, Size, Range, Trilu, integer Mod.

The importer settles what it can at conversion time (importer.py, symbolic.py):
a ``Shape`` of static dims is a constant, one of symbolic dims a symbolic array.
These handlers run when a value is only known at run time; they build the IR
shape ops (kcc.ops.shape_ops), whose symbolic values keep the dims named.
(Reshape, Expand and ConstantOfShape are in onnx_tensor.py; Gather, Slice,
Concat, Unsqueeze, comparisons and Where on shape tensors are the ordinary handlers.)
"""
from __future__ import annotations

import numpy as np

from kcc.frontends.onnx.registry import OnnxNodeContext, onnx_op
from kcc.ir import DTYPES, Value


@onnx_op("Shape")
def shape(ctx: OnnxNodeContext) -> Value:
    x = ctx.value(0)
    s = ctx.op.shape(x)
    start, end = ctx.attr("start", 0), ctx.attr("end", None)
    if start == 0 and end is None:
        return s
    return ctx.op.slice(s, starts=(start,), ends=(x.rank if end is None else end,), axes=(0,))


@onnx_op("Size")
def size(ctx: OnnxNodeContext) -> Value:
    x = ctx.value(0)
    if all(isinstance(d, int) for d in x.shape):
        return ctx.op.const(np.asarray(int(np.prod(x.shape)), dtype=np.int64))
    return ctx.op.reduce_prod(ctx.op.shape(x), axes=(0,), keepdims=False)


@onnx_op("Range")
def range_(ctx: OnnxNodeContext) -> Value:
    start, limit, delta = (ctx.value(i) for i in range(3))
    return ctx.op.range(start, limit, delta)


def _dim(ctx: OnnxNodeContext, x: Value, axis: int) -> Value:
    """Dim ``axis`` of ``x`` as a 0-D i64 (a constant when static)."""
    d = x.shape[axis]
    if isinstance(d, int):
        return ctx.op.const(np.asarray(d, dtype=np.int64))
    named = None if ctx.dim_sources is None else ctx.dim_sources.dim(ctx.op, d, scalar=True)
    return named if named is not None else \
        ctx.op.gather(ctx.op.shape(x), ctx.op.const(np.asarray(axis, dtype=np.int64)), axis=0)


@onnx_op("Trilu")
def trilu(ctx: OnnxNodeContext) -> Value:
    """Keep x[..., i, j] where j - i >= k (upper) or j - i <= k (lower), zero elsewhere."""
    x = ctx.value(0)
    if x.rank < 2:
        raise ctx.fail(f"input of rank {x.rank}; Trilu needs rank >= 2")
    k = int(ctx.const(1).ravel()[0]) if ctx.has(1) else 0
    upper = bool(ctx.attr("upper", 1))
    rows, cols = x.shape[-2], x.shape[-1]
    if isinstance(rows, int) and isinstance(cols, int):
        ones = np.ones((rows, cols), dtype=bool)
        mask = ctx.op.const(np.triu(ones, k) if upper else np.tril(ones, k))
    else:
        zero, one = (ctx.op.const(np.asarray(v, dtype=np.int64)) for v in (0, 1))
        r = ctx.op.range(zero, _dim(ctx, x, x.rank - 2), one)
        c = r if rows == cols else ctx.op.range(zero, _dim(ctx, x, x.rank - 1), one)
        diff = ctx.op.sub(ctx.op.unsqueeze(c, axes=(0,)), ctx.op.unsqueeze(r, axes=(1,)))
        kk = ctx.op.const(np.asarray(k, dtype=np.int64))
        mask = ctx.op.greater_equal(diff, kk) if upper else ctx.op.less_equal(diff, kk)
    return ctx.op.where(mask, x, ctx.op.const(np.zeros((), dtype=DTYPES[x.dtype])))


@onnx_op("Mod")
def mod(ctx: OnnxNodeContext) -> Value:
    """Integer Mod from div/mul/sub: the remainder takes the divisor's sign (fmod=0) or the dividend's (fmod=1).

    TensorFlow's band-part masks (``ops.tril`` of a dynamic size) split a flat
    index into row and column with it. The IR's integer ``div`` truncates toward
    zero, so ``a - b * (a / b)`` is the dividend-signed remainder; fmod=0 adds
    ``b`` where that remainder is non-zero and its sign differs from ``b``'s.
    """
    a, b = ctx.value(0), ctx.value(1)
    if a.dtype not in ("i8", "i32", "i64", "u8") or b.dtype != a.dtype:
        raise ctx.fail(f"Mod of {a.dtype} and {b.dtype}: only integer Mod is supported")
    rem = ctx.op.sub(a, ctx.op.mul(b, ctx.op.div(a, b)))
    if ctx.attr("fmod", 0):
        return rem
    zero = ctx.op.const(np.zeros((), dtype=DTYPES[a.dtype]))
    signs_differ = ctx.op.logical_xor(ctx.op.less(rem, zero), ctx.op.less(b, zero))
    fix = ctx.op.logical_and(ctx.op.logical_not(ctx.op.equal(rem, zero)), signs_differ)
    return ctx.op.where(fix, ctx.op.add(rem, b), rem)
