"""Layers keras.applications defines for itself, keyed by class name like built-ins.

ConvNeXt's ``LayerScale`` (keras.src.applications.convnext) is ``x * gamma`` with a
per-channel ``gamma``: small, fixed by Keras's own source, so it is a handler here
rather than a custom-layer route.
"""
from __future__ import annotations

import numpy as np

from kcc.frontends.keras.registry import LayerContext, keras_layer
from kcc.ir import Value


@keras_layer("LayerScale")
def layer_scale(ctx: LayerContext, x: Value) -> Value:
    # Keras names the variable "gamma" in files but "variable" in memory (add_weight has no name).
    names = list(ctx.layer.weights)
    gamma = np.asarray(ctx.weight("gamma" if ctx.has_weight("gamma") or len(names) != 1 else names[0]), np.float32)
    return ctx.op.mul(x, ctx.const(gamma.reshape((-1,) + (1,) * (x.rank - 2)), "gamma"))
