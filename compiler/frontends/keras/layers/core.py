"""Core layers: Dense, Activation, Flatten, Embedding, Masking, Identity, InputLayer."""
from __future__ import annotations

import numpy as np

from kcc.frontends.keras.activations import apply_keras_activation
from kcc.frontends.keras.layers.common import activate
from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.ir import Value


@keras_layer("Dense")
def dense(ctx: KerasLayerContext, x: Value) -> Value:
    """Dense on any rank: contracts Keras's last axis, which is IR axis 1."""
    w = ctx.const(ctx.weight("kernel"), "kernel")
    b = ctx.const(ctx.weight("bias"), "bias") if ctx.get("use_bias", True) else None
    return activate(ctx, ctx.op.dense(x, w, b))


@keras_layer("Activation")
def activation(ctx: KerasLayerContext, x: Value) -> Value:
    """The string activation's IR ops (activations.py)."""
    return apply_keras_activation(ctx.op, x, ctx.get("activation"), ctx.name, ctx.keras2)


@keras_layer("Flatten")
def flatten(ctx: KerasLayerContext, x: Value) -> Value:
    """Flatten in Keras's (channels-last) element order: transpose back, then flatten.

    The transpose is folded into a following Dense by fold_flatten_transpose.
    """
    if x.rank <= 2:
        return ctx.op.identity(x) if x.rank == 2 else ctx.op.reshape(x, shape=(0, 1))
    return ctx.op.flatten(ctx.to_keras_layout(x), axis=1)


@keras_layer("Identity", "InputLayer")
def identity(ctx: KerasLayerContext, x: Value) -> Value:
    """No-ops (an InputLayer only reaches a handler when called inside a model)."""
    return ctx.op.identity(x)


@keras_layer("Embedding")
def embedding(ctx: KerasLayerContext, x: Value) -> Value:
    """Gather rows of the table; the new last (feature) axis is IR axis 1.

    ``mask_zero=True`` attaches the Keras mask ``ids != 0`` (layers/masking.py).
    """
    if not x.dtype.startswith("i"):
        x = ctx.op.cast(x, to="i64")
    if ctx.get("mask_zero", False):
        ctx.set_mask(ctx.op.logical_not(ctx.op.equal(x, ctx.op.scalar(0, like=x))))
    table = ctx.const(ctx.weight("embeddings"), "embeddings")
    return ctx.from_keras_layout(ctx.op.gather(table, x, axis=0))


@keras_layer("Masking")
def masking(ctx: KerasLayerContext, x: Value) -> Value:
    """Keras's Masking: a step is kept where any feature differs from ``mask_value``.

    Kept steps pass unchanged, masked steps become 0 (``where``), and the step mask
    (Keras order: the input's axes but the last) is attached to the output.
    """
    value = ctx.get("mask_value", 0.0)
    if not isinstance(value, (int, float)):
        raise ctx.fail(f"mask_value={value!r} must be a number")
    differs = ctx.op.logical_not(ctx.op.equal(x, ctx.op.const(np.asarray(value, dtype=np.float32))))
    keep = ctx.op.greater(ctx.op.reduce_max(ctx.op.cast(differs, to="f32"), axes=(1,), keepdims=True),
                          ctx.op.const(np.zeros((), dtype=np.float32)))
    y = ctx.op.where(keep, x, ctx.op.const(np.zeros((), dtype=np.float32)))
    ctx.set_mask(ctx.from_keras_layout(ctx.op.squeeze(keep, axes=(1,))))
    return y
