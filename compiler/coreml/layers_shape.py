"""Layers that move data without arithmetic: reshape/flatten/permute/concat/split
(legacy rank-5 and ND variants), squeeze/expandDims, tile, stack, transposes,
broadcasts and constant loads.
"""
from __future__ import annotations

import numpy as np

from kcc.coreml.registry import LayerContext, layer


def _reshape(x: np.ndarray, target, ctx: LayerContext, zero_copies: bool = False) -> np.ndarray:
    """Reshape with -1 inferred (and, if asked, 0 copying the input dimension)."""
    shape = [int(d) for d in target]
    if zero_copies:
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    try:
        return x.reshape(shape)
    except ValueError:
        raise ctx.error(f"cannot reshape an input of shape {list(x.shape)} to {shape}") from None


# ------------------------------------------------------------- legacy rank 5

@layer("reshape")
def reshape_legacy(p, inputs, ctx: LayerContext):
    """Rank-5 reshape of each [C, H, W] item (or of the whole sequence when the
    target has 4 entries); CHANNEL_LAST reorders through H, W, C."""
    x = inputs[0]
    if x.ndim != 5:
        raise ctx.error(f"needs a rank-5 input, got shape {list(x.shape)}")
    target = [int(d) for d in p.targetShape]
    channel_last = p.mode == type(p).CHANNEL_LAST
    s, b = x.shape[:2]
    if channel_last:
        x = x.transpose(0, 1, 3, 4, 2)
    if len(target) == 3:
        y = _reshape(x, [s, b, -1], ctx)
        out = [s, b] + target
    elif len(target) == 4:
        y = _reshape(x, [-1], ctx)
        out = [target[0], -1] + target[1:]
    else:
        raise ctx.error(f"targetShape must have 3 or 4 entries, got {target}")
    if channel_last:
        c, h, w = out[2:]
        y = _reshape(y, out[:2] + [h, w, c], ctx).transpose(0, 1, 4, 2, 3)
        return np.ascontiguousarray(y)
    return _reshape(y, out, ctx)


@layer("flatten")
def flatten(p, inputs, ctx: LayerContext):
    x = inputs[0]
    if p.mode == type(p).CHANNEL_LAST:
        x = np.moveaxis(x, -3, -1)
    return np.ascontiguousarray(x).reshape(x.shape[:-3] + (-1, 1, 1))


@layer("permute")
def permute(p, inputs, ctx: LayerContext):
    """axis indexes (Seq, C, H, W); the batch axis stays in place."""
    x = inputs[0]
    if x.ndim != 5:
        raise ctx.error(f"needs a rank-5 input, got shape {list(x.shape)}")
    axes = [int(a) for a in p.axis] or [0, 1, 2, 3]
    dims = [0, 2, 3, 4]
    order = [dims[axes[0]], 1] + [dims[a] for a in axes[1:]]
    return np.ascontiguousarray(x.transpose(order))


@layer("concat")
def concat(p, inputs, ctx: LayerContext):
    return np.concatenate(inputs, axis=-5 if p.sequenceConcat else -3)


@layer("split")
def split(p, inputs, ctx: LayerContext):
    return np.split(inputs[0], int(p.nOutputs) or len(ctx.layer.output), axis=-3)


@layer("sequenceRepeat")
def sequence_repeat(p, inputs, ctx: LayerContext):
    reps = int(p.nRepetitions) or 1
    return np.concatenate([inputs[0]] * reps, axis=-5)


@layer("slice")
def slice_legacy(p, inputs, ctx: LayerContext):
    """x[start:end:stride] along C, H or W, with Python's negative-index meaning."""
    x = inputs[0]
    axis = {0: -3, 1: -2, 2: -1}[int(p.axis)]
    index = [slice(None)] * x.ndim
    index[axis] = slice(int(p.startIndex), int(p.endIndex), int(p.stride) or 1)
    return x[tuple(index)]


@layer("loadConstant")
def load_constant(p, inputs, ctx: LayerContext):
    shape = [int(d) for d in p.shape]
    return ctx.weight(p.data, shape, "data").reshape([1, 1] + shape)


# ------------------------------------------------------------------------ ND

@layer("loadConstantND")
def load_constant_nd(p, inputs, ctx: LayerContext):
    return ctx.weight(p.data, [int(d) for d in p.shape], "data")


@layer("transpose")
def transpose(p, inputs, ctx: LayerContext):
    return np.ascontiguousarray(inputs[0].transpose([int(a) for a in p.axes]))


@layer("concatND")
def concat_nd(p, inputs, ctx: LayerContext):
    axis = int(p.axis)
    if p.interleave:
        stacked = np.stack(inputs, axis=axis + 1 if axis >= 0 else axis)
        shape = list(inputs[0].shape)
        shape[axis] *= len(inputs)
        return stacked.reshape(shape)
    return np.concatenate(inputs, axis=axis)


@layer("splitND")
def split_nd(p, inputs, ctx: LayerContext):
    x = inputs[0]
    axis = int(p.axis)
    if len(p.splitSizes):
        return np.split(x, np.cumsum([int(s) for s in p.splitSizes])[:-1], axis=axis)
    return np.split(x, int(p.numSplits) or len(ctx.layer.output), axis=axis)


@layer("stack")
def stack(p, inputs, ctx: LayerContext):
    return np.stack(inputs, axis=int(p.axis))


@layer("tile")
def tile(p, inputs, ctx: LayerContext):
    x = inputs[0]
    reps = inputs[1].astype(np.int64).reshape(-1).tolist() if len(inputs) > 1 else [int(r) for r in p.reps]
    return np.tile(x, [1] * (x.ndim - len(reps)) + reps)


@layer("squeeze")
def squeeze(p, inputs, ctx: LayerContext):
    x = inputs[0]
    if x.ndim == 1:
        return x
    if p.squeezeAll:
        y = np.squeeze(x)
    else:
        y = np.squeeze(x, axis=tuple(int(a) for a in p.axes))
    return y.reshape(1) if y.ndim == 0 else y


@layer("expandDims")
def expand_dims(p, inputs, ctx: LayerContext):
    x = inputs[0]
    axes = [int(a) for a in p.axes]
    rank = x.ndim + len(axes)
    return np.expand_dims(x, tuple(a + rank if a < 0 else a for a in axes))


@layer("flattenTo2D")
def flatten_to_2d(p, inputs, ctx: LayerContext):
    x = inputs[0]
    axis = int(p.axis)
    axis = axis + x.ndim if axis < 0 else axis
    return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)


@layer("reshapeStatic")
def reshape_static(p, inputs, ctx: LayerContext):
    return _reshape(inputs[0], p.targetShape, ctx)


@layer("reshapeLike")
def reshape_like(p, inputs, ctx: LayerContext):
    return _reshape(inputs[0], inputs[1].shape, ctx)


@layer("reshapeDynamic")
def reshape_dynamic(p, inputs, ctx: LayerContext):
    return _reshape(inputs[0], inputs[1].astype(np.int64).reshape(-1), ctx)


@layer("rankPreservingReshape")
def rank_preserving_reshape(p, inputs, ctx: LayerContext):
    return _reshape(inputs[0], p.targetShape, ctx, zero_copies=True)


@layer("getShape")
def get_shape(p, inputs, ctx: LayerContext):
    return np.asarray(inputs[0].shape, dtype=np.float32)


@layer("fillLike")
def fill_like(p, inputs, ctx: LayerContext):
    return np.full(inputs[0].shape, p.value, dtype=np.float32)


@layer("fillStatic")
def fill_static(p, inputs, ctx: LayerContext):
    return np.full([int(d) for d in p.targetShape], p.value, dtype=np.float32)


@layer("fillDynamic")
def fill_dynamic(p, inputs, ctx: LayerContext):
    return np.full(inputs[0].astype(np.int64).reshape(-1).tolist(), p.value, dtype=np.float32)


def _broadcast(x: np.ndarray, shape, ctx: LayerContext) -> np.ndarray:
    try:
        return np.ascontiguousarray(np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(shape))))
    except ValueError:
        raise ctx.error(f"cannot broadcast shape {list(x.shape)} to {list(shape)}") from None


@layer("broadcastToLike")
def broadcast_to_like(p, inputs, ctx: LayerContext):
    return _broadcast(inputs[0], inputs[1].shape, ctx)


@layer("broadcastToStatic")
def broadcast_to_static(p, inputs, ctx: LayerContext):
    return _broadcast(inputs[0], [int(d) for d in p.targetShape], ctx)


@layer("broadcastToDynamic")
def broadcast_to_dynamic(p, inputs, ctx: LayerContext):
    return _broadcast(inputs[0], inputs[1].astype(np.int64).reshape(-1).tolist(), ctx)


@layer("constantPad")
def constant_pad(p, inputs, ctx: LayerContext):
    x = inputs[0]
    amounts = (inputs[1].astype(np.int64).reshape(-1).tolist() if len(inputs) > 1
               else [int(a) for a in p.padAmounts])
    if len(amounts) != 2 * x.ndim:
        raise ctx.error(f"padAmounts has {len(amounts)} entries for a rank-{x.ndim} input")
    widths = [(amounts[2 * i], amounts[2 * i + 1]) for i in range(x.ndim)]
    if p.padToGivenOutputSizeMode:
        # A positive amount is the wanted output size on its side of the axis.
        widths = [(max(b - n, 0) if b else 0, max(a - n, 0) if a else 0)
                  for (b, a), n in zip(widths, x.shape)]
    return np.pad(x, widths, mode="constant", constant_values=p.value)


@layer("reverse")
def reverse(p, inputs, ctx: LayerContext):
    x = inputs[0]
    axes = tuple(i for i, flag in enumerate(p.reverseDim) if flag)
    return np.flip(x, axis=axes) if axes else x


@layer("copy")
def copy(p, inputs, ctx: LayerContext):
    return inputs[0].copy()
