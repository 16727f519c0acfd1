"""Pooling layers."""
from __future__ import annotations

import numpy as np

from kcc.frontends.keras.layers.common import as_tuple, check_channels_last, window_padding
from kcc.frontends.keras.layers.masking import keras_mask
from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.ir import Value

_POOL_OPS = {
    "MaxPooling1D": "max_pool", "MaxPooling2D": "max_pool", "MaxPooling3D": "max_pool",
    "AveragePooling1D": "avg_pool", "AveragePooling2D": "avg_pool", "AveragePooling3D": "avg_pool",
    "MaxPool1D": "max_pool", "MaxPool2D": "max_pool", "MaxPool3D": "max_pool",
    "AvgPool1D": "avg_pool", "AvgPool2D": "avg_pool", "AvgPool3D": "avg_pool",
}


@keras_layer(*_POOL_OPS)
def pool(ctx: KerasLayerContext, x: Value) -> Value:
    """max_pool / avg_pool (avg excludes padding, as Keras does)."""
    check_channels_last(ctx)
    n = x.rank - 2
    kernel = as_tuple(ctx.get("pool_size"), n)
    strides = as_tuple(ctx.get("strides") or kernel, n)
    pad_attrs = window_padding(ctx, x, kernel, strides, (1,) * n, ctx.get("padding", "valid"))
    op = _POOL_OPS[ctx.layer.class_name]
    return getattr(ctx.op, op)(x, kernel=kernel, strides=strides, **pad_attrs)


_GLOBAL_CLASSES = [f"Global{k}Pooling{d}D" for k in ("Average", "Max") for d in (1, 2, 3)] + \
    [f"Global{k}Pool{d}D" for k in ("Avg", "Max") for d in (1, 2, 3)]


@keras_layer(*_GLOBAL_CLASSES)
def global_pool(ctx: KerasLayerContext, x: Value, mask: Value | None = None) -> Value:
    """Reduce the spatial axes (IR 2..); keepdims=True keeps them as size 1 (Keras (N,1,..,C) = IR (N,C,1,..)).

    GlobalAveragePooling1D reads the Keras mask (layers/masking.py): the mean over
    kept steps, sum(where(mask, x, 0)) / sum(mask), as Keras computes it (a fully
    masked row is 0/0, NaN, in Keras too).
    """
    check_channels_last(ctx)
    keepdims = bool(ctx.get("keepdims", False))
    if mask is not None:
        keep = ctx.op.unsqueeze(keras_mask(ctx, mask), axes=(1,))          # (N, 1, T) against IR (N, C, T)
        zero = ctx.op.const(np.zeros((), dtype=np.float32))
        total = ctx.op.reduce_sum(ctx.op.where(keep, x, zero), axes=(2,), keepdims=keepdims)
        count = ctx.op.reduce_sum(ctx.op.cast(keep, to="f32"), axes=(2,), keepdims=keepdims)
        return ctx.op.div(total, count)
    op = "reduce_max" if "Max" in ctx.layer.class_name else "reduce_mean"
    return getattr(ctx.op, op)(x, axes=tuple(range(2, x.rank)), keepdims=keepdims)
