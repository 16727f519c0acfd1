"""The keras.ops calls Keras records in a functional graph when it computes masks.

Building a functional model, Keras runs each layer's ``compute_mask`` on symbolic
tensors, and a layer whose ``call`` takes ``mask=`` (GlobalAveragePooling1D,
Softmax, LSTM...) is recorded with that mask as an explicit call argument. The
ops that computed it become operations of the graph (and of its ``.keras``
config, module ``keras.src.ops.numpy``):

    Embedding(mask_zero)   NotEqual(ids, 0)
    Masking(v)             Any(NotEqual(x, v), axis=-1)
    Add, Multiply...       LogicalOr(m1, m2)
    Concatenate            ExpandDims, ZerosLike / OnesLike, LogicalOr, Concatenate, Any

(``Concatenate`` the op has the layer's class name and meaning: the layer's
handler serves it.) These handlers lower them. The ops act in Keras order, so a
rank >= 3 operand is transposed to Keras order and the result back to the IR
layout; for the rank-2 ``(batch, steps)`` masks these are no-ops.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.ir import DTYPES, Value

_BINARY = {"NotEqual": "equal", "Equal": "equal", "LogicalAnd": "logical_and", "LogicalOr": "logical_or"}


def _operand(ctx: KerasLayerContext, x: Value, other: Any) -> Value:
    """The second operand: a tensor (Keras order), or a Python number as a scalar of ``x``'s dtype."""
    if isinstance(other, Value):
        return ctx.to_keras_layout(other)
    if isinstance(other, bool) or not isinstance(other, (int, float)):
        raise ctx.fail(f"its second operand {other!r} is neither a tensor nor a number")
    return ctx.op.const(np.asarray(other, dtype=DTYPES[x.dtype]))


@keras_layer(*_BINARY)
def binary_mask_op(ctx: KerasLayerContext, x: Value, arg1: Value | None = None) -> Value:
    """keras.ops.not_equal / equal / logical_and / logical_or with numpy broadcasting, in Keras order."""
    other = arg1 if arg1 is not None else ctx.call.kwargs.get("arg1", ctx.call.kwargs.get("x2"))
    if other is None:
        raise ctx.fail("it has no second operand")
    a = ctx.to_keras_layout(x)
    b = _operand(ctx, a, other)
    cls = ctx.layer.class_name
    if cls.startswith("Logical"):
        a = a if a.dtype == "bool" else ctx.op.cast(a, to="bool")
        b = b if b.dtype == "bool" else ctx.op.cast(b, to="bool")
    elif a.dtype != b.dtype:
        raise ctx.fail(f"it compares a {a.dtype} tensor with a {b.dtype} one")
    y = getattr(ctx.op, _BINARY[cls])(a, b)
    if cls == "NotEqual":
        y = ctx.op.logical_not(y)
    return ctx.from_keras_layout(y)


@keras_layer("Any")
def any_op(ctx: KerasLayerContext, x: Value) -> Value:
    """keras.ops.any(x, axis, keepdims): a max of the 0/1 values over ``axis``, compared with 0."""
    k = ctx.to_keras_layout(x)
    axis = ctx.get("axis")
    axes = tuple(range(k.rank)) if axis is None else \
        tuple(a % k.rank for a in (axis if isinstance(axis, (list, tuple)) else [axis]))
    values = ctx.op.cast(k, to="f32")
    y = ctx.op.greater(ctx.op.reduce_max(values, axes=axes, keepdims=bool(ctx.get("keepdims", False))),
                       ctx.op.const(np.zeros((), dtype=np.float32)))
    return ctx.from_keras_layout(y)


@keras_layer("ExpandDims")
def expand_dims_op(ctx: KerasLayerContext, x: Value) -> Value:
    """keras.ops.expand_dims(x, axis): a new size-1 axis (negative axes count from the new rank)."""
    k = ctx.to_keras_layout(x)
    axis = int(ctx.get("axis"))
    return ctx.from_keras_layout(ctx.op.unsqueeze(k, axes=(axis % (k.rank + 1),)))


@keras_layer("ZerosLike", "OnesLike")
def fill_like_op(ctx: KerasLayerContext, x: Value) -> Value:
    """keras.ops.zeros_like / ones_like; the dtype is the config's, else the input's."""
    dtype = ctx.get("dtype")
    dtype = {"bool": "bool", "float32": "f32", "int32": "i32", "int64": "i64"}.get(dtype, x.dtype) \
        if isinstance(dtype, str) else x.dtype
    value = 1.0 if ctx.layer.class_name == "OnesLike" else 0.0
    y = ctx.op.fill_like(x if x.dtype.startswith("f") else ctx.op.cast(x, to="f32"), value=value)
    return y if dtype == "f32" else ctx.op.cast(y, to=dtype)
