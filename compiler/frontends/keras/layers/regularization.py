"""Layers that do nothing at inference: they become identities, removed by fold_identity."""
from __future__ import annotations

from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.ir import Value


@keras_layer("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
             "GaussianDropout", "AlphaDropout", "ActivityRegularization")
def inference_identity(ctx: KerasLayerContext, x: Value) -> Value:
    """identity (removed by fold_identity)."""
    return ctx.op.identity(x)
