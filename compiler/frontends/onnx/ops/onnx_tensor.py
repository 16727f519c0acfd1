"""ONNX data movement -> IR: Transpose, Reshape, Flatten, Pad, Slice, Squeeze, Gather, Split, ...

(Concat is a row of kcc.formats.onnx_ops, read by onnx_table.py.)
"""
from __future__ import annotations

import numpy as np

from kcc.frontends.onnx.registry import OnnxNodeContext, onnx_op
from kcc.ir import DTYPES, Value
from kcc.ops.shape_ops import static_reshape_spec


@onnx_op("Dropout")
def dropout(ctx: OnnxNodeContext) -> Value:
    if len(ctx.node.output) > 1 and ctx.node.output[1]:
        raise ctx.fail("Dropout's mask output is not supported")
    return ctx.op.identity(ctx.value(0))


@onnx_op("Transpose")
def transpose(ctx: OnnxNodeContext) -> Value:
    x = ctx.value(0)
    perm = ctx.attr("perm") or list(range(x.rank))[::-1]
    return ctx.op.transpose(x, perm=tuple(perm))


@onnx_op("Reshape")
def reshape(ctx: OnnxNodeContext) -> Value:
    """A target known now (ints, symbols of the input's own dims, one unknown) is the static reshape.

    Otherwise the target is computed at run time: ``reshape_to``, whose output dims
    come from the target's symbolic value.
    """
    x = ctx.value(0)
    target = ctx.shape_value(1)
    dims = ctx.dims(1) if target is None else target.type.value
    if dims is not None:
        if ctx.attr("allowzero", 0) and 0 in dims:
            raise ctx.fail("allowzero=1 with a 0 in the shape is not supported")
        spec = static_reshape_spec(x.shape, tuple(dims))
        if spec is not None:
            return ctx.op.reshape(x, shape=spec)
    if ctx.attr("allowzero", 0):
        raise ctx.fail("allowzero=1 with a shape computed at run time is not supported")
    return ctx.op.reshape_to(x, ctx.value(1))


@onnx_op("Flatten")
def flatten(ctx: OnnxNodeContext) -> Value:
    x = ctx.value(0)
    return ctx.op.flatten(x, axis=ctx.attr("axis", 1) % (x.rank + 1) if ctx.attr("axis", 1) < 0 else ctx.attr("axis", 1))


@onnx_op("Pad")
def pad(ctx: OnnxNodeContext) -> Value:
    x = ctx.value(0)
    pads = ctx.ints(1) if ctx.opset >= 11 else list(ctx.attr("pads"))
    value = float(ctx.const(2).ravel()[0]) if ctx.opset >= 11 and ctx.has(2) else float(ctx.attr("value", 0.0))
    if ctx.has(3):
        axes = [a % x.rank for a in ctx.ints(3)]
        full = [0] * (2 * x.rank)
        for k, a in enumerate(axes):
            full[a], full[a + x.rank] = pads[k], pads[k + len(axes)]
        pads = full
    mode = ctx.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise ctx.fail(f"pad mode {mode!r} is not supported")
    return ctx.op.pad(x, pads=tuple(pads), mode=mode, value=value)


@onnx_op("Slice")
def slice_(ctx: OnnxNodeContext) -> Value:
    x = ctx.value(0)
    if ctx.opset < 10:
        starts, ends = list(ctx.attr("starts")), list(ctx.attr("ends"))
        axes, steps = list(ctx.attr("axes", range(len(starts)))), []
    elif not (ctx.is_const(1) and ctx.is_const(2)):
        return _slice_to(ctx, x)
    else:
        starts, ends = ctx.ints(1), ctx.ints(2)
        axes = ctx.ints(3) if ctx.has(3) else list(range(len(starts)))
        steps = ctx.ints(4) if ctx.has(4) else []
    big = 2 ** 62
    clamp = lambda v: max(min(v, big), -big)  # noqa: E731  (INT64 extremes mean "to the end")
    # numpy's slice end for a negative step past the front is None, not -1.
    ends = [None if (steps and steps[k] < 0 and e < -big // 2) else clamp(e) for k, e in enumerate(ends)]
    if any(e is None for e in ends):
        return _reverse_slice(ctx, x, [clamp(s) for s in starts], ends, axes, steps)
    return ctx.op.slice(x, starts=tuple(clamp(s) for s in starts), ends=tuple(ends), axes=tuple(axes),
                        steps=tuple(steps))


def _slice_to(ctx: OnnxNodeContext, x: Value) -> Value:
    """Starts or ends known only at run time (a position table cut to ``Shape(x)[1]``): ``slice_to``.

    Axes and steps must still be constants: they decide the output's rank and layout.
    """
    starts, ends = ctx.value(1), ctx.value(2)
    n = starts.shape[0] if starts.rank == 1 else None
    if not isinstance(n, int) or ends.rank != 1 or ends.shape[0] != n:
        raise ctx.fail(f"starts {starts.type} and ends {ends.type} must be 1-D of one static length")
    for i in (3, 4):
        if ctx.has(i) and not ctx.is_const(i):
            raise ctx.fail(f"input {i} ({'axes' if i == 3 else 'steps'}) must be a constant "
                           "(kcc needs it at conversion time)")
    axes = ctx.ints(3) if ctx.has(3) else list(range(n))
    steps = ctx.ints(4) if ctx.has(4) else []
    if starts.dtype != ends.dtype:
        ends = ctx.op.cast(ends, to=starts.dtype)
    return ctx.op.slice_to(x, starts, ends, axes=tuple(a % x.rank for a in axes), steps=tuple(steps))


def _reverse_slice(ctx: OnnxNodeContext, x: Value, starts, ends, axes, steps) -> Value:
    """A negative-step slice running to the front: the end is one before index 0, spelled -(size + 1)."""
    fixed = []
    for s, e, a in zip(starts, ends, axes):
        dim = x.shape[a]
        if e is None and not isinstance(dim, int):
            raise ctx.fail(f"a reversing slice of symbolic axis {a} is not supported")
        fixed.append(-(dim + 1) if e is None else e)
    return ctx.op.slice(x, starts=tuple(starts), ends=tuple(fixed), axes=tuple(axes), steps=tuple(steps))


def _axes(ctx: OnnxNodeContext) -> list[int] | None:
    if ctx.has(1):
        return ctx.ints(1)
    return ctx.attr("axes")


@onnx_op("Squeeze")
def squeeze(ctx: OnnxNodeContext) -> Value:
    x = ctx.value(0)
    axes = _axes(ctx)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    return ctx.op.squeeze(x, axes=tuple(axes))


@onnx_op("Unsqueeze")
def unsqueeze(ctx: OnnxNodeContext) -> Value:
    return ctx.op.unsqueeze(ctx.value(0), axes=tuple(_axes(ctx)))


@onnx_op("Tile")
def tile(ctx: OnnxNodeContext) -> Value:
    """Repeats known now: ``tile``. Repeats known only at run time (``tf.tile(mask, [batch, 1, 1])``) of
    size-1 axes: an ``expand`` (a repeat of a size-1 axis is a broadcast)."""
    x = ctx.value(0)
    known = ctx.inputs[1]
    if ctx.is_const(1) or (isinstance(known, Value) and known.is_const):
        return ctx.op.tile(x, repeats=tuple(ctx.ints(1)))
    reps = ctx.value(1)
    entries = reps.type.value or (None,) * x.rank
    if any(e != 1 and d != 1 for e, d in zip(entries, x.shape)):
        raise ctx.fail(f"repeats {list(entries)} computed at run time tile axes of size other than 1 "
                       f"(input shape {list(x.shape)}); give the model static input shapes")
    return ctx.op.expand(x, reps)


@onnx_op("Gather")
def gather(ctx: OnnxNodeContext) -> Value:
    x, idx = ctx.value(0), ctx.value(1)
    axis = ctx.attr("axis", 0)
    if idx.is_const and isinstance(x.shape[axis], int):
        # Negative constant indices count from the end; make them explicit.
        fixed = np.where(idx.const < 0, idx.const + x.shape[axis], idx.const)
        if (fixed != idx.const).any():
            idx = ctx.op.const(fixed.astype(idx.const.dtype))
    return ctx.op.gather(x, idx, axis=axis)


@onnx_op("Split")
def split(ctx: OnnxNodeContext) -> list[Value]:
    x = ctx.value(0)
    axis = ctx.attr("axis", 0) % x.rank
    n = len(ctx.node.output)
    if ctx.has(1):
        sizes = ctx.ints(1)
    elif ctx.attr("split"):
        sizes = list(ctx.attr("split"))
    else:
        dim = x.shape[axis]
        if not isinstance(dim, int):
            raise ctx.fail(f"an even split of symbolic axis {axis} is not supported")
        n = ctx.attr("num_outputs", n)
        size = -(-dim // n)
        sizes = [size] * (dim // size) + ([dim % size] if dim % size else [])
    out = ctx.op.split(x, axis=axis, sizes=tuple(sizes))
    return list(out) if isinstance(out, tuple) else [out]


@onnx_op("Expand")
def expand(ctx: OnnxNodeContext) -> Value:
    """Broadcast to a shape: a multiply by ones of a known shape (or shaped like the Shape's source),
    else the ``expand`` op on the shape computed at run time."""
    x = ctx.value(0)
    ones = _filled(ctx, 1, 1.0, x.dtype)
    return ctx.op.expand(x, ctx.value(1)) if ones is None else ctx.op.mul(x, ones)


@onnx_op("ConstantOfShape")
def constant_of_shape(ctx: OnnxNodeContext) -> Value:
    value = ctx.attr("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).ravel()
    dtype = {np.dtype(v): k for k, v in DTYPES.items()}.get(value.dtype)
    if dtype is None:
        raise ctx.fail(f"value of dtype {value.dtype} is not supported")
    filled = _filled(ctx, 0, float(value[0]), dtype)
    if filled is None:
        filled = ctx.op.expand(ctx.op.const(value.reshape(())), ctx.value(0))
    return filled


def _filled(ctx: OnnxNodeContext, i: int, value: float, dtype: str) -> Value | None:
    """A tensor of the shape held by input ``i``, filled with ``value`` (None: known only at run time)."""
    if ctx.shape_value(i) is not None:
        return None
    dims = ctx.dims(i)
    if all(isinstance(d, int) for d in dims):
        return ctx.op.const(np.full(dims, value, dtype=DTYPES[dtype]))
    source = ctx.shape_source(i)
    if source is None:
        return None
    return ctx.op.fill_like(source, value=value, dtype=dtype)
