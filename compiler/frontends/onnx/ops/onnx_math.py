"""ONNX math that needs more than a renaming -> IR: Pow, variadic Max/Min/Sum/Mean, Selu, Clip, Softmax,
Cast, reductions, global pools, ArgMax/ArgMin, OneHot, IsInf, CumSum.

One-to-one ops (Relu, Add, Gelu, Greater, ...) are rows of kcc.formats.onnx_ops,
read by onnx_table.py.
"""
from __future__ import annotations

import math

import numpy as np

from kcc.formats.onnx_ops import BY_ONNX, ROWS, fixed_match, ir_attrs
from kcc.frontends.onnx.registry import OnnxNodeContext, ir_dtype, onnx_op
from kcc.ir import DTYPES, Value


@onnx_op("Pow")
def pow_(ctx: OnnxNodeContext) -> Value:
    """Pow with the exponent cast to the base's dtype (ONNX allows them to differ; the IR does not)."""
    a, b = ctx.value(0), ctx.value(1)
    if b.dtype != a.dtype:
        b = ctx.op.cast(b, to=a.dtype)
    return getattr(ctx.op, BY_ONNX["Pow"].ir)(a, b)


@onnx_op("Max", "Min", "Sum", "Mean")
def variadic(ctx: OnnxNodeContext) -> Value:
    """Any number of inputs -> a chain of binary ops (Mean: their sum over the count)."""
    op = {"Max": BY_ONNX["Max"].ir, "Min": BY_ONNX["Min"].ir, "Sum": "add", "Mean": "add"}[ctx.node.op_type]
    xs = ctx.values()
    out = xs[0]
    for x in xs[1:]:
        out = getattr(ctx.op, op)(out, x)
    if ctx.node.op_type == "Mean" and len(xs) > 1:
        out = ctx.op.div(out, ctx.op.scalar(float(len(xs)), out))
    return out


@onnx_op("Selu")
def selu(ctx: OnnxNodeContext) -> Value:
    """The IR's selu when alpha and gamma are its constants; else gamma * elu(x, alpha)."""
    row = BY_ONNX["Selu"]
    if fixed_match(row, ctx.attrs):
        return ctx.op.selu(ctx.value(0))
    x = ctx.value(0)
    alpha, gamma = (float(ctx.attr(k, v)) for k, v in row.fixed.items())
    return ctx.op.mul(ctx.op.elu(x, alpha=alpha), ctx.op.scalar(gamma, x))


@onnx_op("Clip")
def clip(ctx: OnnxNodeContext) -> Value:
    if ctx.opset < 11:
        lo, hi = ctx.attr("min", -math.inf), ctx.attr("max", math.inf)
    else:
        lo = float(ctx.const(1)) if ctx.has(1) else -math.inf
        hi = float(ctx.const(2)) if ctx.has(2) else math.inf
    return ctx.op.clip(ctx.value(0), min=float(lo), max=float(hi))


@onnx_op("Softmax", "LogSoftmax")
def softmax(ctx: OnnxNodeContext) -> Value:
    x = ctx.value(0)
    axis = ctx.attr("axis", -1 if ctx.opset >= 13 else 1)
    if ctx.opset < 13 and axis % x.rank != x.rank - 1:
        raise ctx.fail(f"opset {ctx.opset} {ctx.node.op_type} flattens from axis {axis}; only the last axis "
                       "is supported for opsets below 13")
    return getattr(ctx.op, BY_ONNX[ctx.node.op_type].ir)(x, axis=axis)


@onnx_op("Cast")
def cast(ctx: OnnxNodeContext) -> Value:
    x = ctx.value(0)
    to = ir_dtype(ctx.attr("to"), ctx.node.name or "Cast")
    return x if x.dtype == to else ctx.op.cast(x, to=to)


# ONNX reduction -> IR op: the table's rows, plus two that square first (and take the root).
_REDUCE = {**{r.onnx: r.ir for r in ROWS if r.ir.startswith("reduce_")},
           "ReduceSumSquare": "reduce_sum", "ReduceL2": "reduce_sum"}


@onnx_op(*_REDUCE)
def reduce(ctx: OnnxNodeContext) -> Value:
    x = ctx.value(0)
    kind = ctx.node.op_type
    if ctx.has(1):
        axes = ctx.ints(1)
    else:
        axes = ctx.attr("axes")
    if not axes:
        if ctx.attr("noop_with_empty_axes", 0):
            return ctx.op.identity(x)
        axes = list(range(x.rank))
    if kind in ("ReduceSumSquare", "ReduceL2"):
        x = ctx.op.mul(x, x)
    y = getattr(ctx.op, _REDUCE[kind])(x, axes=tuple(axes), keepdims=bool(ctx.attr("keepdims", 1)))
    return ctx.op.sqrt(y) if kind == "ReduceL2" else y


@onnx_op("GlobalAveragePool", "GlobalMaxPool")
def global_pool(ctx: OnnxNodeContext) -> Value:
    x = ctx.value(0)
    op = "reduce_mean" if ctx.node.op_type == "GlobalAveragePool" else "reduce_max"
    if x.rank < 3:
        raise ctx.fail(f"input {ctx.node.input[0]!r} has rank {x.rank}; {ctx.node.op_type} needs "
                       f"(N, C, spatial...) of rank >= 3: the file contradicts the ONNX spec")
    return getattr(ctx.op, op)(x, axes=tuple(range(2, x.rank)), keepdims=True)


@onnx_op("ArgMax", "ArgMin")
def arg(ctx: OnnxNodeContext) -> Value:
    if ctx.attr("select_last_index", 0):
        raise ctx.fail("select_last_index=1 is not supported")
    row = BY_ONNX[ctx.node.op_type]
    return getattr(ctx.op, row.ir)(ctx.value(0), **ir_attrs(row, ctx.attrs))


@onnx_op("OneHot")
def one_hot(ctx: OnnxNodeContext) -> Value:
    depth = int(np.asarray(ctx.const(1)).ravel()[0])
    values = ctx.const(2).ravel()
    idx = ctx.value(0)
    if idx.dtype not in ("i32", "i64", "i8", "u8"):
        idx = ctx.op.cast(idx, to="i64")
    dtype = {np.dtype(v): k for k, v in DTYPES.items()}.get(values.dtype, "f32")
    return ctx.op.one_hot(idx, depth=depth, axis=ctx.attr("axis", -1), off_value=float(values[0]),
                          on_value=float(values[1]), dtype=dtype)


@onnx_op("IsInf")
def is_inf(ctx: OnnxNodeContext) -> Value:
    x = ctx.value(0)
    pos, neg = ctx.attr("detect_positive", 1), ctx.attr("detect_negative", 1)
    if pos and neg:
        return ctx.op.is_inf(x)
    inf = ctx.op.scalar(float("inf") if pos else float("-inf"), x)
    return ctx.op.equal(x, inf) if (pos or neg) else ctx.op.logical_and(ctx.op.is_inf(x), ctx.op.is_nan(x))


@onnx_op("NonZero")
def non_zero(ctx: OnnxNodeContext) -> Value:
    """ONNX gives one row per axis, (rank, count); the IR's nonzero is (count, rank)."""
    idx = ctx.op.nonzero(ctx.value(0))
    return ctx.op.transpose(idx, perm=[1, 0])


@onnx_op("CumSum")
def cumsum(ctx: OnnxNodeContext) -> Value:
    axis = int(np.asarray(ctx.const(1)).ravel()[0])
    return ctx.op.cumsum(ctx.value(0), axis=axis, exclusive=bool(ctx.attr("exclusive", 0)),
                         reverse=bool(ctx.attr("reverse", 0)))
