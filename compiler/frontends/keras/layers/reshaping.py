"""Reshaping layers: Reshape, Permute, RepeatVector, Cropping, ZeroPadding, UpSampling (1D/2D/3D).

Reshape and Permute are defined on Keras's channels-last order, so they lower as
to_keras_layout -> op -> from_keras_layout; cancel_transposes and
fold_layout_reshape remove the transposes in the common CNN cases (a reshape that
keeps the channel axis last, or only moves size-1 axes).
"""
from __future__ import annotations

from kcc.frontends.keras.layers.common import as_tuple, check_channels_last
from kcc.frontends.keras.layers.numpy_ops import reshape_op
from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.ir import Value

_BIG = 2**62


@keras_layer("Reshape")
def reshape(ctx: KerasLayerContext, x: Value) -> Value:
    """reshape in Keras order between layout transposes (folded when channels stay last)."""
    if ctx.get("target_shape") is None and ctx.get("newshape") is not None:
        return reshape_op(ctx, x)             # keras.ops.reshape: its shape includes the batch
    target = tuple(-1 if d is None else int(d) for d in ctx.get("target_shape"))
    y = ctx.op.reshape(ctx.to_keras_layout(x), shape=(0,) + target)
    return ctx.from_keras_layout(y)


@keras_layer("Permute")
def permute(ctx: KerasLayerContext, x: Value) -> Value:
    """transpose in Keras order; cancel_transposes composes the layout transposes."""
    dims = tuple(int(d) for d in ctx.get("dims"))
    y = ctx.op.transpose(ctx.to_keras_layout(x), perm=(0,) + dims)
    return ctx.from_keras_layout(y)


@keras_layer("RepeatVector")
def repeat_vector(ctx: KerasLayerContext, x: Value) -> Value:
    """(N, F) -> Keras (N, n, F), which is IR (N, F, n): no transpose."""
    n = int(ctx.get("n"))
    return ctx.op.tile(ctx.op.unsqueeze(x, axes=(2,)), repeats=(1, 1, n))


def _pairs(value, n: int) -> list[tuple[int, int]]:
    """Keras cropping/padding spec (int, (a, b), or per-axis pairs) -> n (begin, end) pairs."""
    if isinstance(value, int):
        return [(value, value)] * n
    value = list(value)
    if n == 1 and len(value) == 2 and all(isinstance(v, int) for v in value):
        return [(int(value[0]), int(value[1]))]
    out = []
    for v in value:
        out.append((int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1])))
    if len(out) != n:
        raise ValueError(f"expected {n} (begin, end) pairs, got {value}")
    return out


@keras_layer("Cropping1D", "Cropping2D", "Cropping3D")
def cropping(ctx: KerasLayerContext, x: Value) -> Value:
    """slice of the spatial axes."""
    check_channels_last(ctx)
    n = x.rank - 2
    pairs = _pairs(ctx.get("cropping"), n)
    axes = [2 + i for i, (a, b) in enumerate(pairs) if a or b]
    if not axes:
        return ctx.op.identity(x)
    return ctx.op.slice(x, starts=tuple(pairs[a - 2][0] for a in axes),
                        ends=tuple(-pairs[a - 2][1] if pairs[a - 2][1] else _BIG for a in axes), axes=tuple(axes))


@keras_layer("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D")
def zero_padding(ctx: KerasLayerContext, x: Value) -> Value:
    """pad of the spatial axes with zeros."""
    check_channels_last(ctx)
    pairs = _pairs(ctx.get("padding"), x.rank - 2)
    return ctx.op.pad(x, pads=(0, 0) + tuple(p[0] for p in pairs) + (0, 0) + tuple(p[1] for p in pairs))


@keras_layer("UpSampling1D", "UpSampling2D", "UpSampling3D")
def upsampling(ctx: KerasLayerContext, x: Value) -> Value:
    """Integer factors: nearest (Keras repeats) or bilinear (TF half-pixel), as ``resize`` by scales."""
    check_channels_last(ctx)
    n = x.rank - 2
    size = as_tuple(ctx.get("size", 2), n)
    mode = ctx.get("interpolation", "nearest")
    if mode not in ("nearest", "bilinear"):
        raise ctx.fail(f"interpolation={mode!r} is not supported (use 'nearest' or 'bilinear')")
    return ctx.op.resize(x, mode=mode, scales=tuple(float(s) for s in size))
