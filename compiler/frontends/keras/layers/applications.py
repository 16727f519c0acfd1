"""Layers keras.applications defines for itself, keyed by class name like built-ins.

ConvNeXt's ``LayerScale`` (keras.src.applications.convnext) is ``x * gamma`` with a
per-channel ``gamma``: small, fixed by Keras's own source, so it is a handler here
rather than a custom-layer route. InceptionResNetV2's ``CustomScaleLayer`` likewise
(``inputs[0] + inputs[1] * scale``); traced generically it would work in Keras order
and leave two Transposes per block.
"""
from __future__ import annotations

import numpy as np

from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.ir import Value


@keras_layer("LayerScale")
def layer_scale(ctx: KerasLayerContext, x: Value) -> Value:
    """x * gamma per channel (ConvNeXt)."""
    # Keras names the variable "gamma" in files but "variable" in memory (add_weight has no name).
    names = list(ctx.layer.weights)
    gamma = np.asarray(ctx.weight("gamma" if ctx.has_weight("gamma") or len(names) != 1 else names[0]), np.float32)
    return ctx.op.mul(x, ctx.const(gamma.reshape((-1,) + (1,) * (x.rank - 2)), "gamma"))


@keras_layer("CustomScaleLayer")
def custom_scale(ctx: KerasLayerContext, xs) -> Value:
    """inputs[0] + inputs[1] * scale (InceptionResNetV2's residual scaling; elementwise, so layout-free)."""
    xs = list(xs) if isinstance(xs, (list, tuple)) else [xs]
    if len(xs) != 2 or xs[0].rank != xs[1].rank:
        raise ctx.fail(f"expects two inputs of equal rank, got {len(xs)}")
    return ctx.op.add(xs[0], ctx.op.mul(xs[1], ctx.op.scalar(float(ctx.get("scale")), xs[1])))
