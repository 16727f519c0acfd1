"""Core layers: Dense, Activation, Flatten, Embedding, Masking, Identity, InputLayer."""
from __future__ import annotations

from kcc.frontends.keras.activations import apply_keras_activation
from kcc.frontends.keras.layers.common import activate
from kcc.frontends.keras.layers.masking import check_mask_unused
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
    """Gather rows of the table; the new last (feature) axis is IR axis 1."""
    if ctx.get("mask_zero", False):
        check_mask_unused(ctx, "mask_zero=True")
    if not x.dtype.startswith("i"):
        x = ctx.op.cast(x, to="i64")
    table = ctx.const(ctx.weight("embeddings"), "embeddings")
    return ctx.from_keras_layout(ctx.op.gather(table, x, axis=0))


@keras_layer("Masking")
def masking(ctx: KerasLayerContext, x: Value) -> Value:
    """The values pass unchanged; the mask only matters to a layer that reads it (checked)."""
    check_mask_unused(ctx, f"mask_value={ctx.get('mask_value', 0.0)}")
    return ctx.op.identity(x)
