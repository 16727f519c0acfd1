"""Activation layers: ReLU, LeakyReLU, PReLU, ELU, Softmax, ThresholdedReLU."""
from __future__ import annotations

import numpy as np

from kcc.frontends.keras.activations import keras_relu
from kcc.frontends.keras.layers.normalization import ir_axes
from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.layout import to_ir_perm
from kcc.ir import DTYPES, Value


@keras_layer("ReLU")
def relu(ctx: KerasLayerContext, x: Value) -> Value:
    """relu / leaky_relu / thresholded_relu, capped by min for max_value."""
    mv = ctx.get("max_value")
    return keras_relu(ctx.op, x, float(ctx.get("negative_slope", 0.0) or 0.0),
                      None if mv is None else float(mv), float(ctx.get("threshold", 0.0) or 0.0))


@keras_layer("LeakyReLU")
def leaky_relu(ctx: KerasLayerContext, x: Value) -> Value:
    """leaky_relu with negative_slope."""
    slope = ctx.get("negative_slope", ctx.get("alpha", 0.3))
    return ctx.op.leaky_relu(x, alpha=float(slope))


@keras_layer("ELU")
def elu(ctx: KerasLayerContext, x: Value) -> Value:
    """elu with alpha."""
    return ctx.op.elu(x, alpha=float(ctx.get("alpha", 1.0)))


@keras_layer("ThresholdedReLU")
def thresholded_relu(ctx: KerasLayerContext, x: Value) -> Value:
    """thresholded_relu with theta (tf.keras files)."""
    return ctx.op.thresholded_relu(x, alpha=float(ctx.get("theta", 1.0)))


@keras_layer("PReLU")
def prelu(ctx: KerasLayerContext, x: Value) -> Value:
    """alpha has the Keras input shape without batch (shared axes are 1): re-laid out to IR order."""
    alpha = ctx.weight("alpha").astype(np.float32)
    a = alpha.reshape((1,) + alpha.shape)
    a = np.transpose(a, to_ir_perm(a.ndim))
    return ctx.op.prelu(x, ctx.const(a, "alpha"))


@keras_layer("Softmax")
def softmax(ctx: KerasLayerContext, x: Value, mask: Value | None = None) -> Value:
    """One axis: the softmax op. Several: exp(x - max) / sum, over all of them.

    With a mask (explicit, or the Keras mask of the input), as Keras's Softmax:
    masked inputs are replaced by -1e9, masked outputs set to 0. The mask
    broadcasts against the input from the right (numpy rules, in Keras order).
    """
    keep = None
    if mask is not None:
        m = ctx.to_keras_layout(mask)
        if m.rank > x.rank:
            raise ctx.fail(f"its mask has rank {m.rank}, more than its rank-{x.rank} input")
        m = m if m.dtype == "bool" else ctx.op.greater(m, ctx.op.const(np.asarray(0.5, dtype=DTYPES[m.dtype])))
        if m.rank < x.rank:
            m = ctx.op.unsqueeze(m, axes=tuple(range(x.rank - m.rank)))
        keep = ctx.from_keras_layout(m)
        x = ctx.op.where(keep, x, ctx.op.const(np.asarray(-1e9, dtype=np.float32)))
    axes = ir_axes(ctx, ctx.get("axis", -1), x.rank)
    if len(axes) == 1:
        y = ctx.op.softmax(x, axis=axes[0])
    else:
        axes = tuple(sorted(axes))
        e = ctx.op.exp(ctx.op.sub(x, ctx.op.reduce_max(x, axes=axes, keepdims=True)))
        y = ctx.op.div(e, ctx.op.reduce_sum(e, axes=axes, keepdims=True))
    return y if keep is None else ctx.op.where(keep, y, ctx.op.const(np.zeros((), dtype=np.float32)))
