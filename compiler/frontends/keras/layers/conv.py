"""Convolution layers."""
from __future__ import annotations

from kcc.frontends.keras.layers.common import activate, as_tuple, check_channels_last, kernel_to_oihw, window_padding
from kcc.frontends.keras.registry import LayerContext, keras_layer
from kcc.ir import Value


@keras_layer("Conv1D", "Conv2D", "Conv3D")
def conv(ctx: LayerContext, x: Value) -> Value:
    check_channels_last(ctx)
    n = x.rank - 2
    kernel = as_tuple(ctx.get("kernel_size"), n)
    strides = as_tuple(ctx.get("strides", 1), n)
    dil = as_tuple(ctx.get("dilation_rate", 1), n)
    padding = ctx.get("padding", "valid")
    if padding == "causal":
        # Left-pad the time axis by the receptive field, then a valid conv.
        x = ctx.op.pad(x, pads=(0, 0, (kernel[0] - 1) * dil[0], 0, 0, 0))
        padding = "valid"
    pad_attrs = window_padding(ctx, x, kernel, strides, dil, padding)
    w = ctx.const(kernel_to_oihw(ctx.weight("kernel")), "kernel")
    b = ctx.const(ctx.weight("bias"), "bias") if ctx.get("use_bias", True) else None
    y = ctx.op.conv(x, w, b, strides=strides, dilations=dil, group=int(ctx.get("groups", 1) or 1), **pad_attrs)
    return activate(ctx, y)
