"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot.

Inputs of equal rank share the IR layout, so elementwise merges need no layout
work; Concatenate maps its axis; Dot works in Keras order (batch_dot).
"""
from __future__ import annotations

from functools import reduce

from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.ir import Value
from kcc.layout import keras_shape

_BINARY = {"Add": "add", "Subtract": "sub", "Multiply": "mul", "Average": "add", "Maximum": "max",
           "Minimum": "min"}


def _inputs(ctx: KerasLayerContext, xs) -> list[Value]:
    xs = list(xs) if isinstance(xs, (list, tuple)) else [xs]
    if len({x.rank for x in xs}) != 1:
        raise ctx.fail(f"inputs of different ranks {[x.rank for x in xs]} are not supported; "
                       "reshape them to one rank first")
    return xs


@keras_layer(*_BINARY)
def elementwise(ctx: KerasLayerContext, xs, **kwargs: Value) -> Value:
    """add / sub / mul / max / min over the inputs (Average: sum * 1/n).

    Merge layers take a list; Keras 3's operator nodes of the same class names
    (``a + b`` in a functional model: keras.src.ops.numpy.Add) take ``(x1, arg1=x2)``."""
    if (ctx.layer.module or "").startswith("keras.src.ops"):
        return _operator(ctx, xs, kwargs)
    if kwargs:
        raise ctx.fail(f"unexpected call arguments {sorted(kwargs)}")
    xs = _inputs(ctx, xs)
    cls = ctx.layer.class_name
    if cls == "Subtract" and len(xs) != 2:
        raise ctx.fail(f"Subtract takes exactly 2 inputs, got {len(xs)}")
    op = getattr(ctx.op, _BINARY[cls])
    y = reduce(lambda a, b: op(a, b), xs)
    if cls == "Average":
        y = ctx.op.mul(y, ctx.op.scalar(1.0 / len(xs), y))
    return y


def _operator(ctx: KerasLayerContext, first, kwargs: dict) -> Value:
    """``x1 <op> x2`` from Keras 3 operator nodes: tensors, or scalar constants from the call."""
    raw = {k: v for k, v in ctx.call.kwargs.items()}
    operands = [first] + [kwargs.get(k, raw.get(k)) for k in sorted(raw)]
    if len(operands) != 2:
        raise ctx.fail(f"expected two operands, got {len(operands)}")
    like = next((v for v in operands if isinstance(v, Value)), None)
    if like is None:
        raise ctx.fail("no tensor operand")
    vals = []
    for v in operands:
        if isinstance(v, Value):
            vals.append(v)
        elif isinstance(v, (int, float)) or (hasattr(v, "__len__") and len(v) == 1):
            vals.append(ctx.op.scalar(float(v if isinstance(v, (int, float)) else v[0]), like))
        else:
            raise ctx.fail(f"constant operand {v!r} is not a scalar; only scalar constants are supported")
    if all(isinstance(v, Value) and not v.is_const for v in vals) and vals[0].rank != vals[1].rank:
        raise ctx.fail(f"operands of ranks {vals[0].rank} and {vals[1].rank} are not supported")
    return getattr(ctx.op, _BINARY[ctx.layer.class_name])(vals[0], vals[1])


@keras_layer("Concatenate")
def concatenate(ctx: KerasLayerContext, xs) -> Value:
    """concat on the mapped axis."""
    xs = _inputs(ctx, xs)
    return ctx.op.concat(*xs, axis=ctx.axis(int(ctx.get("axis", -1)), xs[0].rank))


def _l2_normalize(ctx: KerasLayerContext, x: Value, axis: int) -> Value:
    """Keras normalize(x, axis): x * rsqrt(max(sum(x^2), 1e-14))."""
    ss = ctx.op.reduce_sum(ctx.op.mul(x, x), axes=(axis,), keepdims=True)
    return ctx.op.mul(x, ctx.op.rsqrt(ctx.op.max(ss, ctx.op.scalar(1e-14, x))))


def _maybe_transpose(ctx: KerasLayerContext, x: Value, perm: tuple[int, ...]) -> Value:
    return x if perm == tuple(range(len(perm))) else ctx.op.transpose(x, perm=perm)


def _merge_dims(dims) -> int:
    out = 1
    for d in dims:
        if not isinstance(d, int):
            return -1
        out *= d
    return out


@keras_layer("Dot")
def dot(ctx: KerasLayerContext, xs) -> Value:
    """batch_dot in Keras order: (N, rest_x, K) @ (N, K, rest_y) -> (N, rest_x..., rest_y...)."""
    x, y = list(xs)
    axes = ctx.get("axes")
    ax, ay = (axes, axes) if isinstance(axes, int) else (int(axes[0]), int(axes[1]))
    ax, ay = ax % x.rank, ay % y.rank
    if ax == 0 or ay == 0:
        raise ctx.fail("Dot over the batch axis is not supported")
    if ctx.get("normalize", False):
        x = _l2_normalize(ctx, x, ctx.axis(ax, x.rank))
        y = _l2_normalize(ctx, y, ctx.axis(ay, y.rank))
    kx, ky = ctx.to_keras_layout(x), ctx.to_keras_layout(y)
    sx, sy = keras_shape(x), keras_shape(y)
    rest_x = [i for i in range(1, x.rank) if i != ax]
    rest_y = [i for i in range(1, y.rank) if i != ay]
    k = sx[ax]
    px = ctx.op.reshape(_maybe_transpose(ctx, kx, (0, *rest_x, ax)),
                        shape=(0, _merge_dims([sx[i] for i in rest_x]), k if isinstance(k, int) else -1))
    py = ctx.op.reshape(_maybe_transpose(ctx, ky, (0, ay, *rest_y)),
                        shape=(0, k if isinstance(k, int) else -1, _merge_dims([sy[i] for i in rest_y])))
    m = ctx.op.matmul(px, py)
    dims = [sx[i] for i in rest_x] + [sy[i] for i in rest_y]
    out_dims = tuple(d if isinstance(d, int) else -1 for d in dims) or (1,)
    return ctx.from_keras_layout(ctx.op.reshape(m, shape=(0,) + out_dims))
