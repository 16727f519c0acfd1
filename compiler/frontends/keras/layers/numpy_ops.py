"""Common keras.ops calls recorded in a functional graph: reductions, take, transpose, matmul, stack, split...

A functional model built with ``keras.ops`` calls records each as an
operation whose class is the op's (``Mean``, ``Take``, ``Matmul``...; module
``keras.src.ops.numpy`` or ``keras.src.ops.nn``). Its config holds the
op's attributes (``axis``, ``keepdims``); its first call argument is the
first operand and further positional ones are ``arg1``, ``arg2``... (tensors
reach the handler as keyword values, constants stay in ``ctx.call.kwargs``
as ``__numpy__`` / ``__tensor__`` entries or plain numbers).

The ops act on Keras's (channels-last) order, so each handler computes
between ``to_keras_layout`` and ``from_keras_layout`` (the layout pass
cancels the round trips). A configuration a handler does not express (a
reduction over the batch axis, ``Max(initial=...)``) goes to the fallback
chain, which traces the live op as it would any unknown layer.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.frontends.keras.fallback import lower_unknown_layer
from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.ir import DTYPES, Value
from kcc.layout import keras_shape

# keras.config.epsilon(): the default epsilon of ops.rms_normalization and ops.layer_normalization.
KERAS_BACKEND_EPSILON = 1e-7

_REDUCTIONS = {"Mean": "reduce_mean", "Sum": "reduce_sum", "Max": "reduce_max", "Min": "reduce_min",
               "Prod": "reduce_prod"}
_UNARY = {"Sqrt": "sqrt", "Absolute": "abs", "Abs": "abs", "Exp": "exp", "Log": "log", "Negative": "neg",
          "Square": "square", "Reciprocal": "reciprocal", "Sin": "sin", "Cos": "cos", "Floor": "floor",
          "Ceil": "ceil", "Sign": "sign", "Tanh": "tanh", "Erf": "erf", "Rsqrt": "rsqrt"}
_DTYPES = {"float32": "f32", "float16": "f16", "int32": "i32", "int64": "i64", "bool": "bool", "uint8": "u8",
           "int8": "i8"}


def _fallback(ctx: KerasLayerContext, tensors: list[Value], why: str) -> Any:
    """The fallback chain (a custom conversion function, then tracing) for what a handler does not express."""
    try:
        result = lower_unknown_layer(ctx, tensors)
    except Exception as e:
        raise ctx.fail(f"{why}, and converting it otherwise failed: {e}") from e
    if result is None:
        raise ctx.fail(f"{why}; pass custom_conversion_functions={{{ctx.layer.class_name!r}: fn}} to lower it")
    return result if len(result) > 1 else result[0]


def _keras_axes(ctx: KerasLayerContext, axis: Any, rank: int) -> tuple[int, ...] | None:
    """Keras axes (int, list or None = all) normalized; None when they include the batch axis."""
    axes = range(rank) if axis is None else ([axis] if isinstance(axis, int) else list(axis))
    out = tuple(sorted({int(a) % rank for a in axes}))
    return None if 0 in out else out


def constant_arg(ctx: KerasLayerContext, key: str, like: Value | None = None) -> np.ndarray | None:
    """A non-tensor call argument (``arg1``...) as an array: a number, a list, or a serialized array."""
    raw = ctx.call.kwargs.get(key)
    if raw is None:
        return None
    try:
        if isinstance(raw, dict) and raw.get("class_name") in ("__numpy__", "__tensor__"):
            cfg = raw.get("config") or {}
            arr = np.asarray(cfg.get("value"), dtype=cfg.get("dtype") or None)
        elif isinstance(raw, (int, float, list, tuple)) and not isinstance(raw, bool):
            arr = np.asarray(raw)
        else:
            raise TypeError("not a constant")
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"dtype {arr.dtype}")
    except (TypeError, ValueError) as e:
        raise ctx.fail(f"its argument {key}={str(raw)[:200]} is neither a tensor nor a numeric array ({e})") from None
    if like is not None and arr.dtype.kind == "f":
        arr = arr.astype(DTYPES[like.dtype])
    return arr


@keras_layer(*_REDUCTIONS)
def reduction(ctx: KerasLayerContext, x: Value) -> Value:
    """keras.ops.mean / sum / max / min / prod over Keras axes, with ``keepdims``."""
    axes = _keras_axes(ctx, ctx.get("axis"), x.rank)
    if axes is None or ctx.get("initial") is not None:
        return _fallback(ctx, [x], "it reduces over the batch axis or has an initial value")
    y = getattr(ctx.op, _REDUCTIONS[ctx.layer.class_name])(ctx.to_keras_layout(x), axes=axes,
                                                             keepdims=bool(ctx.get("keepdims", False)))
    return ctx.from_keras_layout(y)


@keras_layer(*_UNARY)
def unary(ctx: KerasLayerContext, x: Value) -> Value:
    """Elementwise keras.ops math: the same IR op in any layout."""
    return getattr(ctx.op, _UNARY[ctx.layer.class_name])(x)


@keras_layer("Cast")
def cast(ctx: KerasLayerContext, x: Value) -> Value:
    """keras.ops.cast(x, dtype): the IR cast (nothing when the dtype is already the one asked for)."""
    dtype = ctx.get("dtype")
    dtype = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype
    if dtype not in _DTYPES:
        raise ctx.fail(f"a cast to {dtype!r} is not supported (kcc casts to {sorted(_DTYPES)})")
    return x if _DTYPES[dtype] == x.dtype else ctx.op.cast(x, to=_DTYPES[dtype])


@keras_layer("Take")
def take(ctx: KerasLayerContext, x: Value, arg1: Value | None = None) -> Value:
    """keras.ops.take(x, indices, axis): a gather along a Keras axis; negative constant indices wrap."""
    axis = ctx.get("axis")
    if axis is None or int(axis) % x.rank == 0:
        return _fallback(ctx, [x] + ([arg1] if arg1 is not None else []),
                         "it takes from the flattened tensor or along the batch axis")
    axis = int(axis) % x.rank
    if arg1 is not None:
        idx = arg1 if arg1.dtype == "i64" else ctx.op.cast(arg1, to="i64")
        idx = ctx.to_keras_layout(idx)
    else:
        arr = constant_arg(ctx, "arg1")
        if arr is None or arr.dtype.kind not in "iu":
            raise ctx.fail(f"its indices {ctx.call.kwargs.get('arg1')!r} are not integers")
        dim = x.shape[ctx.axis(axis, x.rank)]
        if isinstance(dim, int):
            if ((arr < -dim) | (arr >= dim)).any():
                raise ctx.fail(f"indices {arr.tolist()} are out of range for axis {axis} of size {dim}")
            arr = np.where(arr < 0, arr + dim, arr)
        idx = ctx.const(arr.astype(np.int64), "indices")
    return ctx.from_keras_layout(ctx.op.gather(ctx.to_keras_layout(x), idx, axis=axis))


@keras_layer("Transpose")
def transpose(ctx: KerasLayerContext, x: Value) -> Value:
    """keras.ops.transpose(x, axes) in Keras order (``axes=None`` reverses, moving the batch: refused)."""
    axes = ctx.get("axes")
    perm = tuple(range(x.rank))[::-1] if axes is None else tuple(int(a) % x.rank for a in axes)
    if sorted(perm) != list(range(x.rank)):
        raise ctx.fail(f"axes {axes} are not a permutation of the input's {x.rank} axes")
    if perm[0] != 0:
        return _fallback(ctx, [x], f"axes {axes} move the batch axis")
    return ctx.from_keras_layout(ctx.op.transpose(ctx.to_keras_layout(x), perm=perm))


@keras_layer("Matmul")
def matmul(ctx: KerasLayerContext, a: Value, arg1: Value | None = None) -> Value:
    """keras.ops.matmul(a, b): numpy's batched product in Keras order (a constant ``b`` is a weight)."""
    if arg1 is not None:
        b = ctx.to_keras_layout(arg1)
    else:
        arr = constant_arg(ctx, "arg1", a)
        if arr is None or arr.ndim < 2:
            raise ctx.fail(f"its second operand {ctx.call.kwargs.get('arg1')!r} is not a matrix")
        b = ctx.const(arr, "b")
    if a.rank < 2 or b.rank < 2:
        raise ctx.fail(f"matmul of ranks {a.rank} and {b.rank}: kcc converts rank >= 2 operands")
    return ctx.from_keras_layout(ctx.op.matmul(ctx.to_keras_layout(a), b))


@keras_layer("Squeeze")
def squeeze(ctx: KerasLayerContext, x: Value) -> Value:
    """keras.ops.squeeze(x, axis): drop unit Keras axes (``axis=None``: every static unit axis but the batch)."""
    kshape = list(keras_shape(x))
    axis = ctx.get("axis")
    if axis is None:
        axes = tuple(i for i, d in enumerate(kshape) if d == 1 and i > 0)
    else:
        axes = tuple(sorted({int(a) % x.rank for a in ([axis] if isinstance(axis, int) else axis)}))
    if 0 in axes:
        return _fallback(ctx, [x], "it squeezes the batch axis")
    for a in axes:
        if kshape[a] != 1 and isinstance(kshape[a], int):
            raise ctx.fail(f"axis {a} has size {kshape[a]}, not 1")
    y = ctx.to_keras_layout(x)
    if any(kshape[a] != 1 for a in axes):     # a dynamic dim Keras knew to be 1: say so with a reshape
        y = ctx.op.reshape(y, shape=tuple(0 if a not in axes else 1 for a in range(x.rank)))
    return ctx.from_keras_layout(ctx.op.squeeze(y, axes=axes))


@keras_layer("Stack")
def stack(ctx: KerasLayerContext, xs: Any) -> Value:
    """keras.ops.stack(tensors, axis): each unsqueezed at the new Keras axis, then one concat."""
    xs = list(xs) if isinstance(xs, (list, tuple)) else [xs]
    rank = xs[0].rank + 1
    axis = int(ctx.get("axis", 0)) % rank
    if axis == 0:
        return _fallback(ctx, xs, "it stacks along the batch axis")
    parts = [ctx.op.unsqueeze(ctx.to_keras_layout(x), axes=(axis,)) for x in xs]
    y = parts[0] if len(parts) == 1 else ctx.op.concat(*parts, axis=axis)
    return ctx.from_keras_layout(y)


@keras_layer("Split")
def split(ctx: KerasLayerContext, x: Value) -> list[Value]:
    """keras.ops.split(x, indices_or_sections, axis): equal sections or cut points along a static Keras axis."""
    axis = int(ctx.get("axis", 0)) % x.rank
    dim = x.shape[ctx.axis(axis, x.rank)]
    spec = ctx.get("indices_or_sections")
    if axis == 0 or not isinstance(dim, int):
        return _fallback(ctx, [x], "it splits the batch axis or an axis of unknown size")
    if isinstance(spec, int):
        if spec <= 0 or dim % spec:
            raise ctx.fail(f"{dim} does not split into {spec} equal sections")
        sizes = [dim // spec] * spec
    else:
        cuts = [0] + [min(max(int(c) % dim if int(c) < 0 else int(c), 0), dim) for c in spec] + [dim]
        sizes = [max(b - a, 0) for a, b in zip(cuts, cuts[1:])]
        if any(s == 0 for s in sizes):
            raise ctx.fail(f"cut points {spec} make an empty piece of axis {axis} (size {dim})")
    outs = ctx.op.split(ctx.to_keras_layout(x), axis=axis, sizes=tuple(sizes))
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return [ctx.from_keras_layout(o) for o in outs]


@keras_layer("RMSNorm")
def rms_norm_op(ctx: KerasLayerContext, x: Value, scale: Value | None = None) -> Value:
    """keras.ops.rms_normalization(x, scale, axis, epsilon): the ``rms_norm`` op on the Keras last axis."""
    axes = _keras_axes(ctx, ctx.get("axis", -1), x.rank)
    eps = ctx.get("epsilon")
    eps = KERAS_BACKEND_EPSILON if eps is None else float(eps)
    s = scale
    if s is None and ctx.call.kwargs.get("scale") is not None:
        s = ctx.const(constant_arg(ctx, "scale", x), "scale")
    if axes != (x.rank - 1,) or (s is not None and (not s.is_const or s.rank != 1)):
        return _fallback(ctx, [x] + ([scale] if scale is not None else []),
                         "it normalizes other than the last axis or with a computed scale")
    y = ctx.op.rms_norm(ctx.to_keras_layout(x), s, axes=(x.rank - 1,), epsilon=eps)
    return ctx.from_keras_layout(y)


@keras_layer("LayerNorm")
def layer_norm_op(ctx: KerasLayerContext, x: Value, arg1: Value | None = None, arg2: Value | None = None) -> Value:
    """keras.ops.layer_normalization(x, gamma, beta, axis, epsilon) on the Keras last axis."""
    axes = _keras_axes(ctx, ctx.get("axis", -1), x.rank)
    eps = ctx.get("epsilon")
    eps = KERAS_BACKEND_EPSILON if eps is None else float(eps)
    params = [arg1, arg2]
    for i, key in ((0, "arg1"), (1, "arg2")):
        if params[i] is None and ctx.call.kwargs.get(key) is not None:
            params[i] = ctx.const(constant_arg(ctx, key, x), key)
    ok = axes == (x.rank - 1,) and not ctx.get("rms_scaling", False) \
        and all(p is None or (p.is_const and p.rank == 1) for p in params)
    if not ok:
        return _fallback(ctx, [x] + [p for p in (arg1, arg2) if p is not None],
                         "it normalizes other than the last axis, with rms_scaling, or with computed parameters")
    y = ctx.op.layer_norm(ctx.to_keras_layout(x), params[0], params[1], axes=(x.rank - 1,), epsilon=eps)
    return ctx.from_keras_layout(y)


def reshape_op(ctx: KerasLayerContext, x: Value) -> Value:
    """keras.ops.reshape(x, newshape), recorded with the ``Reshape`` layer's class name.

    ``newshape`` includes the batch axis; kcc keeps the batch whole, so it must
    be -1 (or the input's own static batch) with every other dim given: the
    batch is then copied (0) and the rest is the Reshape layer's target.
    """
    shape = [int(d) for d in ctx.get("newshape")]
    batch = x.shape[0]
    if not shape or (shape[0] != -1 and shape[0] != batch) or -1 in shape[1:]:
        return _fallback(ctx, [x], f"newshape {tuple(shape)} does not keep the batch axis whole with every other "
                                   f"dim given")
    y = ctx.op.reshape(ctx.to_keras_layout(x), shape=(0,) + tuple(shape[1:]))
    return ctx.from_keras_layout(y)
