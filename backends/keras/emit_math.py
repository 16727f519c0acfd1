"""Keras emitters for elementwise math, activations, softmax and reductions.

Activations become Keras's own layers (``Activation('relu')``, ``LeakyReLU``,
``ReLU(max_value=6)``, ``PReLU``, ``Softmax``); binary ops of two tensors of one
shape become merge layers (``Add``, ``Subtract``, ``Multiply``, ``Maximum``,
``Minimum``); everything else is one ``keras.ops`` call in the functional graph
(Keras serializes those as built-in operations: no Lambda, no custom class).
Elementwise ops work in whatever layout their output was given; constant
operands are re-laid out to match (context.py).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.backends.keras.context import KerasContext, keras_emitter
from kcc.ir import DTYPES, Node, Value
from kcc.ops.activation import HARD_SIGMOID_ALPHA, HARD_SIGMOID_BETA

# IR op -> Keras activation name (Activation layer), for ops whose IR meaning is Keras's default.
ACTIVATIONS: dict[str, str] = {
    "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "softplus": "softplus", "softsign": "softsign",
    "selu": "selu", "silu": "silu", "hard_silu": "hard_silu", "mish": "mish", "exp": "exponential",
}

# IR op -> keras.ops function name.
UNARY_OPS: dict[str, str] = {
    "neg": "negative", "abs": "absolute", "sqrt": "sqrt", "rsqrt": "rsqrt", "square": "square", "log": "log",
    "sin": "sin", "cos": "cos", "tan": "tan", "atan": "arctan", "erf": "erf", "floor": "floor", "ceil": "ceil", "round": "round",
    "sign": "sign", "is_inf": "isinf", "is_nan": "isnan", "logical_not": "logical_not",
    "asin": "arcsin", "acos": "arccos", "asinh": "arcsinh", "acosh": "arccosh", "atanh": "arctanh",
}

BINARY_OPS: dict[str, str] = {
    "add": "add", "sub": "subtract", "mul": "multiply", "div": "divide", "pow": "power", "max": "maximum",
    "min": "minimum", "equal": "equal", "greater": "greater", "greater_equal": "greater_equal", "less": "less",
    "less_equal": "less_equal", "logical_and": "logical_and", "logical_or": "logical_or",
    "logical_xor": "logical_xor",
}

# Binary ops with a Keras merge layer (two tensors of one shape).
MERGE_LAYERS: dict[str, str] = {"add": "Add", "sub": "Subtract", "mul": "Multiply", "max": "Maximum",
                                "min": "Minimum"}


def broadcast_add(ctx: KerasContext, a: Any, b: Any) -> Any:
    """a + b for operands of different shapes, as ``a - (-b)`` (exactly the same numbers, signed zeros too).

    keras.ops.add on TensorFlow (Keras 3.15, ``backend/tensorflow/numpy.py``) turns
    an add whose second operand has one non-1 dim into ``tf.nn.bias_add`` along the
    first operand's LAST (or second) axis whenever that dim's size matches, whatever
    axis it is on: (3, 1, 9) + (1, 9, 1) comes out (3, 1, 9). subtract has no such case.
    """
    if isinstance(b, np.ndarray):
        return ctx.ops.subtract(a, -b)
    if isinstance(a, np.ndarray):
        return ctx.ops.subtract(b, -a)
    return ctx.ops.subtract(a, ctx.ops.negative(b))


def operand(ctx: KerasContext, v: Value | None, out: Value) -> Any:
    """An elementwise operand in the output's layout: scalars stay Python numbers."""
    if v is not None and v.is_const and v.const.ndim == 0:
        return v.const.item()
    return ctx.get(v, ctx.perm(out), rank=out.rank)


@keras_emitter("identity")
def _identity(ctx: KerasContext, node: Node) -> None:
    ctx.put(node.output, ctx.get(node.inputs[0], ctx.perm(node.output)))


def _activation(ctx: KerasContext, node: Node, name: str) -> None:
    x, y = node.inputs[0], node.output
    layer = ctx.layers.Activation(name, name=ctx.name())
    ctx.put(y, layer(ctx.get(x, ctx.perm(y))))


def _register_activation(op: str, name: str) -> None:
    keras_emitter(op)(lambda ctx, node: _activation(ctx, node, name))


for _op, _name in ACTIVATIONS.items():
    _register_activation(_op, _name)


def _register_unary(op: str, fn: str) -> None:
    @keras_emitter(op)
    def emit(ctx: KerasContext, node: Node) -> None:
        y = node.output
        ctx.put(y, getattr(ctx.ops, fn)(ctx.get(node.inputs[0], ctx.perm(y))))


for _op, _fn in UNARY_OPS.items():
    _register_unary(_op, _fn)


def _register_binary(op: str, fn: str) -> None:
    @keras_emitter(op)
    def emit(ctx: KerasContext, node: Node) -> None:
        a, b = node.inputs
        y = node.output
        merge = MERGE_LAYERS.get(op)
        if merge and not a.is_const and not b.is_const and a.shape == b.shape == y.shape:
            layer = getattr(ctx.layers, merge)(name=ctx.name())
            ctx.put(y, layer([ctx.get(a, ctx.perm(y)), ctx.get(b, ctx.perm(y))]))
            return
        ta, tb = operand(ctx, a, y), operand(ctx, b, y)
        if op == "add" and a.shape != b.shape and not isinstance(ta, (float, int, bool)) \
                and not isinstance(tb, (float, int, bool)) and y.dtype.startswith("f"):
            ctx.put(y, broadcast_add(ctx, ta, tb))
        elif not isinstance(ta, (float, int, bool)) or not isinstance(tb, (float, int, bool)):
            ctx.put(y, getattr(ctx.ops, fn)(ta, tb))
        else:
            ctx.fail(node, "both operands are constants (constant folding should have removed it)")


for _op, _fn in BINARY_OPS.items():
    _register_binary(_op, _fn)


@keras_emitter("reciprocal")
def _reciprocal(ctx: KerasContext, node: Node) -> None:
    ctx.put(node.output, ctx.ops.divide(1.0, ctx.get(node.inputs[0], ctx.perm(node.output))))


@keras_emitter("gelu")
def _gelu(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    if node.attrs["approximate"]:
        ctx.put(y, ctx.ops.gelu(ctx.get(x, ctx.perm(y)), approximate=True))
    else:
        ctx.put(y, ctx.layers.Activation("gelu", name=ctx.name())(ctx.get(x, ctx.perm(y))))


@keras_emitter("elu")
def _elu(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    if node.attrs["alpha"] == 1.0:
        ctx.put(y, ctx.layers.Activation("elu", name=ctx.name())(ctx.get(x, ctx.perm(y))))
    else:
        ctx.put(y, ctx.ops.elu(ctx.get(x, ctx.perm(y)), alpha=node.attrs["alpha"]))


@keras_emitter("leaky_relu")
def _leaky_relu(ctx: KerasContext, node: Node) -> None:
    layer = ctx.layers.LeakyReLU(negative_slope=node.attrs["alpha"], name=ctx.name())
    ctx.put(node.output, layer(ctx.get(node.inputs[0], ctx.perm(node.output))))


@keras_emitter("hard_sigmoid")
def _hard_sigmoid(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    t = ctx.get(x, ctx.perm(y))
    a, b = node.attrs["alpha"], node.attrs["beta"]
    if abs(a - HARD_SIGMOID_ALPHA) < 1e-9 and abs(b - HARD_SIGMOID_BETA) < 1e-9:
        ctx.put(y, ctx.layers.Activation("hard_sigmoid", name=ctx.name())(t))
    else:
        ctx.put(y, ctx.ops.clip(ctx.ops.add(ctx.ops.multiply(t, a), b), 0.0, 1.0))


@keras_emitter("clip")
def _clip(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    lo, hi = node.attrs["min"], node.attrs["max"]
    t = ctx.get(x, ctx.perm(y))
    if lo == 0.0:
        kw = {} if hi == float("inf") else {"max_value": hi}
        ctx.put(y, ctx.layers.ReLU(name=ctx.name(), **kw)(t))
    else:
        ctx.put(y, ctx.ops.clip(t, lo, hi))


@keras_emitter("thresholded_relu")
def _thresholded_relu(ctx: KerasContext, node: Node) -> None:
    t = ctx.get(node.inputs[0], ctx.perm(node.output))
    ctx.put(node.output, ctx.ops.where(ctx.ops.greater(t, node.attrs["alpha"]), t, 0.0))


@keras_emitter("scaled_tanh")
def _scaled_tanh(ctx: KerasContext, node: Node) -> None:
    t = ctx.get(node.inputs[0], ctx.perm(node.output))
    ctx.put(node.output, ctx.ops.multiply(ctx.ops.tanh(ctx.ops.multiply(t, node.attrs["beta"])),
                                          node.attrs["alpha"]))


@keras_emitter("prelu")
def _prelu(ctx: KerasContext, node: Node) -> None:
    x, slope, y = node.inputs[0], node.inputs[1], node.output
    perm = ctx.perm(y)
    if not slope.is_const:
        ctx.put(y, ctx.ops.where(ctx.ops.greater_equal(ctx.get(x, perm), 0.0), ctx.get(x, perm),
                                 ctx.ops.multiply(ctx.get(x, perm), operand(ctx, slope, y))))
        return
    alpha = ctx.get(slope, perm, rank=y.rank).astype(np.float32)[0]
    shared = tuple(i + 1 for i, d in enumerate(alpha.shape) if d == 1 and y.shape[perm[i + 1]] != 1)
    full = tuple(1 if i + 1 in shared else y.shape[perm[i + 1]] for i in range(y.rank - 1))
    layer = ctx.layers.PReLU(shared_axes=list(shared) or None, name=ctx.name(), trainable=ctx.trainable)
    ctx.put(y, ctx.call(layer, ctx.get(x, perm), [np.broadcast_to(alpha, full)]))


@keras_emitter("softmax")
def _softmax(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    perm = ctx.perm(y)
    layer = ctx.layers.Softmax(axis=ctx.axis(x, node.attrs["axis"], perm), name=ctx.name())
    ctx.put(y, layer(ctx.get(x, perm)))


@keras_emitter("log_softmax")
def _log_softmax(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    perm = ctx.perm(y)
    ctx.put(y, ctx.ops.log_softmax(ctx.get(x, perm), axis=ctx.axis(x, node.attrs["axis"], perm)))


@keras_emitter("cumsum")
def _cumsum(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    if node.attrs["exclusive"] or node.attrs["reverse"]:
        ctx.fail(node, "an exclusive or reversed cumulative sum")
    perm = ctx.perm(y)
    ctx.put(y, ctx.ops.cumsum(ctx.get(x, perm), axis=ctx.axis(x, node.attrs["axis"], perm)))


@keras_emitter("cast")
def _cast(ctx: KerasContext, node: Node) -> None:
    y = node.output
    ctx.put(y, ctx.ops.cast(ctx.get(node.inputs[0], ctx.perm(y)), str(DTYPES[node.attrs["to"]])))


@keras_emitter("fill_like")
def _fill_like(ctx: KerasContext, node: Node) -> None:
    y = node.output
    ctx.put(y, ctx.ops.full_like(ctx.get(node.inputs[0], ctx.perm(y)), node.attrs["value"],
                                 dtype=str(DTYPES[node.attrs["dtype"]])))


@keras_emitter("where")
def _where(ctx: KerasContext, node: Node) -> None:
    y = node.output
    c, a, b = (operand(ctx, v, y) for v in node.inputs)
    ctx.put(y, ctx.ops.where(c, a, b))


_REDUCE = {"reduce_mean": "mean", "reduce_sum": "sum", "reduce_max": "max", "reduce_min": "min",
           "reduce_prod": "prod"}


def reduced_perm(perm: tuple[int, ...], axes: set[int], keepdims: bool) -> tuple[int, ...]:
    """The permutation a reduction's result is held in, given its input's."""
    if keepdims:
        return perm
    kept = [a for a in perm if a not in axes]
    return tuple(sorted(kept).index(a) for a in kept)


def _register_reduce(op: str, fn: str) -> None:
    @keras_emitter(op)
    def emit(ctx: KerasContext, node: Node) -> None:
        x, y = node.inputs[0], node.output
        axes = {a % x.rank for a in (node.attrs["axes"] or range(x.rank))}
        keep = node.attrs["keepdims"]
        perm = ctx.perm(x)
        kaxes = tuple(sorted(perm.index(a) for a in axes))
        if op == "reduce_mean" and kaxes == tuple(range(1, x.rank - 1)) and 3 <= x.rank <= 5:
            # The Keras tensor's spatial axes, whatever the IR calls them: global average pooling.
            nd = {3: "1D", 4: "2D", 5: "3D"}[x.rank]
            layer = getattr(ctx.layers, f"GlobalAveragePooling{nd}")(keepdims=keep, name=ctx.name())
            ctx.put(y, layer(ctx.get(x, perm)), reduced_perm(perm, axes, keep))
            return
        t = getattr(ctx.ops, fn)(ctx.get(x, perm), axis=kaxes, keepdims=keep)
        ctx.put(y, t, reduced_perm(perm, axes, keep))


for _op, _fn in _REDUCE.items():
    _register_reduce(_op, _fn)


def _register_arg(op: str, fn: str) -> None:
    @keras_emitter(op)
    def emit(ctx: KerasContext, node: Node) -> None:
        x, y = node.inputs[0], node.output
        perm = ctx.perm(x)
        axis = node.attrs["axis"] % x.rank
        t = getattr(ctx.ops, fn)(ctx.get(x, perm), axis=perm.index(axis), keepdims=node.attrs["keepdims"])
        t = ctx.ops.cast(t, str(DTYPES[y.dtype]))
        ctx.put(y, t, reduced_perm(perm, {axis}, node.attrs["keepdims"]))


_register_arg("argmax", "argmax")
_register_arg("argmin", "argmin")


@keras_emitter("nonzero")
def _nonzero(ctx: KerasContext, node: Node) -> None:
    """keras.ops.nonzero gives one index vector per axis; stacked on axis 1 they are the IR's
    (count, rank) table. The indices are of the IR's axis order, so x is taken in it."""
    x, y = node.inputs[0], node.output
    rows = ctx.ops.stack(ctx.ops.nonzero(ctx.get(x, ctx.ident(x))), axis=1)
    ctx.put(y, ctx.ops.cast(rows, "int64"), ctx.ident(y))


@keras_emitter("one_hot")
def _one_hot(ctx: KerasContext, node: Node) -> None:
    idx, y = node.inputs[0], node.output
    a = node.attrs
    t = ctx.ops.one_hot(ctx.get(idx, ctx.ident(idx)), a["depth"], axis=a["axis"], dtype=str(DTYPES[a["dtype"]]))
    if (a["on_value"], a["off_value"]) != (1.0, 0.0):
        t = ctx.ops.add(ctx.ops.multiply(t, a["on_value"] - a["off_value"]), a["off_value"])
    ctx.put(y, t, ctx.ident(y))
