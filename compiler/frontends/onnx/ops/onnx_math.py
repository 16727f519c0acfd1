"""ONNX elementwise math, activations, reductions, casts -> IR."""
from __future__ import annotations

import math

import numpy as np

from kcc.frontends.onnx.registry import OnnxNodeContext, ir_dtype, onnx_op
from kcc.ir import DTYPES, Value

# ONNX op -> IR op, for ops whose inputs and attributes map one to one.
_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow"}
_UNARY = {"Neg": "neg", "Abs": "abs", "Sqrt": "sqrt", "Reciprocal": "reciprocal", "Exp": "exp", "Log": "log",
          "Sin": "sin", "Cos": "cos", "Tan": "tan", "Erf": "erf", "Floor": "floor", "Ceil": "ceil",
          "Round": "round", "Sign": "sign", "Identity": "identity", "Relu": "relu", "Sigmoid": "sigmoid",
          "Tanh": "tanh", "Softplus": "softplus", "Softsign": "softsign", "HardSwish": "hard_silu",
          "Mish": "mish", "Selu": "selu"}
# ONNX op -> (IR op, {ONNX attribute: (IR attribute, ONNX default)})
_UNARY_ATTRS = {
    "LeakyRelu": ("leaky_relu", {"alpha": ("alpha", 0.01)}),
    "Elu": ("elu", {"alpha": ("alpha", 1.0)}),
    "ThresholdedRelu": ("thresholded_relu", {"alpha": ("alpha", 1.0)}),
    "HardSigmoid": ("hard_sigmoid", {"alpha": ("alpha", 0.2), "beta": ("beta", 0.5)}),
}
_SELU = (1.6732632423543772, 1.0507009873554805)


@onnx_op(*_BINARY)
def binary(ctx: OnnxNodeContext) -> Value:
    a, b = ctx.value(0), ctx.value(1)
    if ctx.node.op_type == "Pow" and b.dtype != a.dtype:
        b = ctx.op.cast(b, to=a.dtype)
    return getattr(ctx.op, _BINARY[ctx.node.op_type])(a, b)


@onnx_op("Max", "Min", "Sum", "Mean")
def variadic(ctx: OnnxNodeContext) -> Value:
    op = {"Max": "max", "Min": "min", "Sum": "add", "Mean": "add"}[ctx.node.op_type]
    xs = ctx.values()
    out = xs[0]
    for x in xs[1:]:
        out = getattr(ctx.op, op)(out, x)
    if ctx.node.op_type == "Mean" and len(xs) > 1:
        out = ctx.op.div(out, ctx.op.scalar(float(len(xs)), out))
    return out


@onnx_op(*_UNARY)
def unary(ctx: OnnxNodeContext) -> Value:
    op = _UNARY[ctx.node.op_type]
    if op == "selu" and (ctx.attr("alpha", _SELU[0]), ctx.attr("gamma", _SELU[1])) != _SELU:
        x = ctx.value(0)
        alpha, gamma = ctx.attr("alpha", _SELU[0]), ctx.attr("gamma", _SELU[1])
        return ctx.op.mul(ctx.op.elu(x, alpha=alpha), ctx.op.scalar(gamma, x))
    return getattr(ctx.op, op)(ctx.value(0))


@onnx_op(*_UNARY_ATTRS)
def unary_attrs(ctx: OnnxNodeContext) -> Value:
    op, table = _UNARY_ATTRS[ctx.node.op_type]
    return getattr(ctx.op, op)(ctx.value(0), **{ir: float(ctx.attr(k, d)) for k, (ir, d) in table.items()})


@onnx_op("Gelu")
def gelu(ctx: OnnxNodeContext) -> Value:
    return ctx.op.gelu(ctx.value(0), approximate=ctx.attr("approximate", "none") == "tanh")


@onnx_op("Clip")
def clip(ctx: OnnxNodeContext) -> Value:
    if ctx.opset < 11:
        lo, hi = ctx.attr("min", -math.inf), ctx.attr("max", math.inf)
    else:
        lo = float(ctx.const(1)) if ctx.has(1) else -math.inf
        hi = float(ctx.const(2)) if ctx.has(2) else math.inf
    return ctx.op.clip(ctx.value(0), min=float(lo), max=float(hi))


@onnx_op("PRelu")
def prelu(ctx: OnnxNodeContext) -> Value:
    return ctx.op.prelu(ctx.value(0), ctx.value(1))


@onnx_op("Softmax", "LogSoftmax")
def softmax(ctx: OnnxNodeContext) -> Value:
    x = ctx.value(0)
    axis = ctx.attr("axis", -1 if ctx.opset >= 13 else 1)
    if ctx.opset < 13 and axis % x.rank != x.rank - 1:
        raise ctx.fail(f"opset {ctx.opset} {ctx.node.op_type} flattens from axis {axis}; only the last axis "
                       "is supported for opsets below 13")
    op = "softmax" if ctx.node.op_type == "Softmax" else "log_softmax"
    return getattr(ctx.op, op)(x, axis=axis)


@onnx_op("Cast")
def cast(ctx: OnnxNodeContext) -> Value:
    x = ctx.value(0)
    to = ir_dtype(ctx.attr("to"), ctx.node.name or "Cast")
    return x if x.dtype == to else ctx.op.cast(x, to=to)


_REDUCE = {"ReduceMean": "reduce_mean", "ReduceSum": "reduce_sum", "ReduceMax": "reduce_max",
           "ReduceMin": "reduce_min", "ReduceProd": "reduce_prod", "ReduceSumSquare": "reduce_sum",
           "ReduceL2": "reduce_sum"}


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
    return getattr(ctx.op, op)(x, axes=tuple(range(2, x.rank)), keepdims=True)


@onnx_op("ArgMax", "ArgMin")
def arg(ctx: OnnxNodeContext) -> Value:
    if ctx.attr("select_last_index", 0):
        raise ctx.fail("select_last_index=1 is not supported")
    op = "argmax" if ctx.node.op_type == "ArgMax" else "argmin"
    return getattr(ctx.op, op)(ctx.value(0), axis=ctx.attr("axis", 0), keepdims=bool(ctx.attr("keepdims", 1)))


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


_COMPARE = {"Greater": "greater", "Less": "less", "Equal": "equal", "GreaterOrEqual": "greater_equal",
            "LessOrEqual": "less_equal", "And": "logical_and", "Or": "logical_or", "Xor": "logical_xor"}


@onnx_op(*_COMPARE)
def compare(ctx: OnnxNodeContext) -> Value:
    return getattr(ctx.op, _COMPARE[ctx.node.op_type])(ctx.value(0), ctx.value(1))


@onnx_op("Not")
def logical_not(ctx: OnnxNodeContext) -> Value:
    return ctx.op.logical_not(ctx.value(0))


@onnx_op("IsNaN")
def is_nan(ctx: OnnxNodeContext) -> Value:
    return ctx.op.is_nan(ctx.value(0))


@onnx_op("IsInf")
def is_inf(ctx: OnnxNodeContext) -> Value:
    x = ctx.value(0)
    pos, neg = ctx.attr("detect_positive", 1), ctx.attr("detect_negative", 1)
    if pos and neg:
        return ctx.op.is_inf(x)
    inf = ctx.op.scalar(float("inf") if pos else float("-inf"), x)
    return ctx.op.equal(x, inf) if (pos or neg) else ctx.op.logical_and(ctx.op.is_inf(x), ctx.op.is_nan(x))


@onnx_op("Where")
def where(ctx: OnnxNodeContext) -> Value:
    return ctx.op.where(ctx.value(0), ctx.value(1), ctx.value(2))


@onnx_op("CumSum")
def cumsum(ctx: OnnxNodeContext) -> Value:
    axis = int(np.asarray(ctx.const(1)).ravel()[0])
    return ctx.op.cumsum(ctx.value(0), axis=axis, exclusive=bool(ctx.attr("exclusive", 0)),
                         reverse=bool(ctx.attr("reverse", 0)))
