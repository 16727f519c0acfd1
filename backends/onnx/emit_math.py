"""ONNX emitters for activations, elementwise math and reductions."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from kcc.backends.onnx.context import OnnxContext, onnx_emitter
from kcc.ir import DTYPES, Node

# Activation name -> function emitting it on ONNX name ``x`` into ``out``.
ActivationEmitter = Callable[[OnnxContext, str, str, dict, str], None]


def _simple(op_type: str, **fixed) -> ActivationEmitter:
    def emit(ctx: OnnxContext, x: str, out: str, attrs: dict, dtype: str) -> None:
        ctx.add(op_type, [x], [out], **fixed, **{k: attrs[k] for k in attrs})
    return emit


def _scalar(ctx: OnnxContext, value: float, dtype: str, hint: str) -> str:
    return ctx.const(np.asarray(value, dtype=DTYPES[dtype]), hint)


def _clip(ctx, x, out, attrs, dtype):
    lo = _scalar(ctx, attrs["min"], dtype, "clip_min") if math.isfinite(attrs["min"]) else ""
    hi = _scalar(ctx, attrs["max"], dtype, "clip_max") if math.isfinite(attrs["max"]) else ""
    ctx.add("Clip", [x, lo, hi], [out])


def _silu(ctx, x, out, attrs, dtype):
    (s,) = ctx.add("Sigmoid", [x], hint="silu_sigmoid")
    ctx.add("Mul", [x, s], [out])


def _gelu(ctx, x, out, attrs, dtype):
    approx = attrs.get("approximate", False)
    if ctx.opset >= 20:
        ctx.add("Gelu", [x], [out], approximate="tanh" if approx else "none")
        return
    half = _scalar(ctx, 0.5, dtype, "half")
    one = _scalar(ctx, 1.0, dtype, "one")
    if approx:
        (x3,) = ctx.add("Mul", [x, x], hint="gelu_sq")
        (x3,) = ctx.add("Mul", [x3, x], hint="gelu_cube")
        (t,) = ctx.add("Mul", [x3, _scalar(ctx, 0.044715, dtype, "gelu_c")], hint="gelu_t")
        (t,) = ctx.add("Add", [x, t], hint="gelu_inner")
        (t,) = ctx.add("Mul", [t, _scalar(ctx, math.sqrt(2 / math.pi), dtype, "gelu_k")], hint="gelu_scaled")
        (t,) = ctx.add("Tanh", [t], hint="gelu_tanh")
    else:
        (t,) = ctx.add("Div", [x, _scalar(ctx, math.sqrt(2), dtype, "sqrt2")], hint="gelu_div")
        (t,) = ctx.add("Erf", [t], hint="gelu_erf")
    (t,) = ctx.add("Add", [t, one], hint="gelu_1p")
    (t,) = ctx.add("Mul", [x, t], hint="gelu_mul")
    ctx.add("Mul", [t, half], [out])


def _mish(ctx, x, out, attrs, dtype):
    if ctx.opset >= 18:
        ctx.add("Mish", [x], [out])
        return
    (sp,) = ctx.add("Softplus", [x], hint="mish_softplus")
    (t,) = ctx.add("Tanh", [sp], hint="mish_tanh")
    ctx.add("Mul", [x, t], [out])


def _scaled_tanh(ctx, x, out, attrs, dtype):
    (t,) = ctx.add("Mul", [x, _scalar(ctx, attrs["beta"], dtype, "beta")], hint="stanh_in")
    (t,) = ctx.add("Tanh", [t], hint="stanh")
    ctx.add("Mul", [t, _scalar(ctx, attrs["alpha"], dtype, "alpha")], [out])


ACTIVATIONS: dict[str, ActivationEmitter] = {
    "relu": _simple("Relu"),
    "leaky_relu": _simple("LeakyRelu"),
    "thresholded_relu": _simple("ThresholdedRelu"),
    "clip": _clip,
    "elu": _simple("Elu"),
    "selu": _simple("Selu", alpha=1.6732632423543772, gamma=1.0507009873554805),
    "sigmoid": _simple("Sigmoid"),
    "hard_sigmoid": _simple("HardSigmoid"),
    "tanh": _simple("Tanh"),
    "softplus": _simple("Softplus"),
    "softsign": _simple("Softsign"),
    "silu": _silu,
    "hard_silu": _simple("HardSwish"),
    "gelu": _gelu,
    "mish": _mish,
    "scaled_tanh": _scaled_tanh,
}


def emit_activation(ctx: OnnxContext, name: str, x: str, out: str, attrs: dict, dtype: str) -> None:
    ACTIVATIONS[name](ctx, x, out, attrs, dtype)


@onnx_emitter(*ACTIVATIONS)
def _activation(ctx: OnnxContext, node: Node) -> None:
    emit_activation(ctx, node.op, ctx.name(node.inputs[0]), ctx.out(node), dict(node.attrs), node.inputs[0].dtype)


@onnx_emitter("softmax", "log_softmax")
def _softmax(ctx: OnnxContext, node: Node) -> None:
    ctx.add({"softmax": "Softmax", "log_softmax": "LogSoftmax"}[node.op], ctx.ins(node), [ctx.out(node)],
            axis=node.attrs["axis"])


@onnx_emitter("prelu")
def _prelu(ctx: OnnxContext, node: Node) -> None:
    ctx.add("PRelu", ctx.ins(node), [ctx.out(node)])


_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "max": "Max", "min": "Min"}


@onnx_emitter(*_BINARY)
def _binary(ctx: OnnxContext, node: Node) -> None:
    ctx.add(_BINARY[node.op], ctx.ins(node), [ctx.out(node)])


_UNARY = {"neg": "Neg", "abs": "Abs", "sqrt": "Sqrt", "reciprocal": "Reciprocal", "exp": "Exp", "log": "Log",
          "sin": "Sin", "cos": "Cos", "tan": "Tan", "erf": "Erf", "floor": "Floor", "ceil": "Ceil",
          "round": "Round", "sign": "Sign", "identity": "Identity"}


@onnx_emitter(*_UNARY)
def _unary(ctx: OnnxContext, node: Node) -> None:
    ctx.add(_UNARY[node.op], ctx.ins(node), [ctx.out(node)])


@onnx_emitter("rsqrt")
def _rsqrt(ctx: OnnxContext, node: Node) -> None:
    (s,) = ctx.add("Sqrt", ctx.ins(node), hint=f"{node.name}_sqrt")
    ctx.add("Reciprocal", [s], [ctx.out(node)])


@onnx_emitter("square")
def _square(ctx: OnnxContext, node: Node) -> None:
    x = ctx.name(node.inputs[0])
    ctx.add("Mul", [x, x], [ctx.out(node)])


_ONNX_DTYPES = {"f16": 10, "f32": 1, "f64": 11, "i8": 3, "i32": 6, "i64": 7, "u8": 2, "bool": 9}


@onnx_emitter("cast")
def _cast(ctx: OnnxContext, node: Node) -> None:
    ctx.add("Cast", ctx.ins(node), [ctx.out(node)], to=_ONNX_DTYPES[node.attrs["to"]])


_REDUCE = {"reduce_mean": "ReduceMean", "reduce_sum": "ReduceSum", "reduce_max": "ReduceMax",
           "reduce_min": "ReduceMin", "reduce_prod": "ReduceProd"}


def emit_reduce(ctx: OnnxContext, op_type: str, x: str, out: str, axes, keepdims: bool) -> None:
    """Reduce with axes as an attribute or an input, whichever the opset wants."""
    axes_as_input = ctx.opset >= 18 or op_type == "ReduceSum"
    if axes_as_input:
        ctx.add(op_type, [x, ctx.ints(list(axes), "axes")], [out], keepdims=int(keepdims))
    else:
        ctx.add(op_type, [x], [out], axes=list(axes), keepdims=int(keepdims))


@onnx_emitter(*_REDUCE)
def _reduce(ctx: OnnxContext, node: Node) -> None:
    x = node.inputs[0]
    axes = [a % x.rank for a in node.attrs["axes"]]
    spatial = list(range(2, x.rank))
    if node.op in ("reduce_mean", "reduce_max") and axes == spatial and node.attrs["keepdims"] and x.rank > 2:
        ctx.add({"reduce_mean": "GlobalAveragePool", "reduce_max": "GlobalMaxPool"}[node.op], [ctx.name(x)],
                [ctx.out(node)])
        return
    emit_reduce(ctx, _REDUCE[node.op], ctx.name(x), ctx.out(node), axes, node.attrs["keepdims"])
