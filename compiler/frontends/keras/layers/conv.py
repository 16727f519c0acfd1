"""Convolution layers: Conv, ConvTranspose, DepthwiseConv, SeparableConv (1D/2D/3D).

Weights are re-laid out once at import: Keras ``(*K, I, O)`` -> IR ``(O, I, *K)``;
transposed kernels ``(*K, O, I)`` -> ``(I, O, *K)``; depthwise ``(*K, C, M)`` ->
``(C*M, 1, *K)`` with ``group=C`` (output channel ``c*M + m``, TensorFlow's order).
"""
from __future__ import annotations

import numpy as np

from kcc.frontends.keras.layers.common import activate, as_tuple, check_channels_last, kernel_to_oihw, window_padding
from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.ir import Value


def _causal(ctx: KerasLayerContext, x: Value, kernel, dil) -> Value:
    """Left-pad the time axis by the receptive field; a valid conv follows."""
    if x.rank != 3:
        raise ctx.fail("padding='causal' is only defined for 1-D convolutions")
    return ctx.op.pad(x, pads=(0, 0, (kernel[0] - 1) * dil[0], 0, 0, 0))


def _bias(ctx: KerasLayerContext) -> Value | None:
    return ctx.const(ctx.weight("bias"), "bias") if ctx.get("use_bias", True) else None


def _window(ctx: KerasLayerContext, x: Value, kernel) -> tuple[Value, tuple, tuple, dict]:
    """Strides, dilations and IR padding attributes for a conv-like layer on ``x``."""
    check_channels_last(ctx)
    n = x.rank - 2
    strides = as_tuple(ctx.get("strides", 1), n)
    dil = as_tuple(ctx.get("dilation_rate", 1), n)
    padding = ctx.get("padding", "valid")
    if padding == "causal":
        x, padding = _causal(ctx, x, kernel, dil), "valid"
    return x, strides, dil, window_padding(ctx, x, kernel, strides, dil, padding)


@keras_layer("Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D", "Convolution3D")
def conv(ctx: KerasLayerContext, x: Value) -> Value:
    """conv (OIHW weights, groups, dilation, same/valid/causal padding) + activation."""
    kernel = as_tuple(ctx.get("kernel_size"), x.rank - 2)
    x, strides, dil, pad_attrs = _window(ctx, x, kernel)
    w = ctx.const(kernel_to_oihw(ctx.weight("kernel")), "kernel")
    y = ctx.op.conv(x, w, _bias(ctx), strides=strides, dilations=dil, group=int(ctx.get("groups", 1) or 1),
                    **pad_attrs)
    return activate(ctx, y)


def depthwise_weight(k: np.ndarray) -> np.ndarray:
    """Keras depthwise kernel (*K, C, M) -> IR grouped-conv weight (C*M, 1, *K)."""
    n = k.ndim - 2
    flat = k.reshape(k.shape[:n] + (-1,))                      # (*K, C*M), index c*M + m
    return np.transpose(flat, (n,) + tuple(range(n)))[:, None]


def _depthwise(ctx: KerasLayerContext, x: Value, key: str, bias: Value | None) -> Value:
    kernel = as_tuple(ctx.get("kernel_size"), x.rank - 2)
    x, strides, dil, pad_attrs = _window(ctx, x, kernel)
    k = ctx.weight(key)
    w = ctx.const(depthwise_weight(k), key)
    return ctx.op.conv(x, w, bias, strides=strides, dilations=dil, group=int(k.shape[-2]), **pad_attrs)


@keras_layer("DepthwiseConv1D", "DepthwiseConv2D")
def depthwise_conv(ctx: KerasLayerContext, x: Value) -> Value:
    return activate(ctx, _depthwise(ctx, x, "kernel", _bias(ctx)))


@keras_layer("SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D", "SeparableConvolution2D")
def separable_conv(ctx: KerasLayerContext, x: Value) -> Value:
    """Depthwise (no bias) then a 1x1 pointwise conv carrying the bias."""
    y = _depthwise(ctx, x, "depthwise_kernel", None)
    pw = ctx.const(kernel_to_oihw(ctx.weight("pointwise_kernel")), "pointwise_kernel")
    return activate(ctx, ctx.op.conv(y, pw, _bias(ctx)))


@keras_layer("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "Convolution1DTranspose",
             "Convolution2DTranspose", "Convolution3DTranspose")
def conv_transpose(ctx: KerasLayerContext, x: Value) -> Value:
    """Keras's output length, reached by cropping (pads) or zero-extending (output_padding) the full result.

    Full length is ``(in-1)*s + k_eff``; Keras wants ``in*s`` ('same'),
    ``in*s + max(k_eff - s, 0)`` ('valid'), or with output_padding ``op``:
    ``(in-1)*s + k_eff - 2*pad + op`` (pad = k_eff // 2 for 'same'). TensorFlow crops
    ``total // 2`` at the start. The difference never depends on ``in``, so the
    attributes are static even for unknown spatial sizes.
    """
    check_channels_last(ctx)
    n = x.rank - 2
    kernel = as_tuple(ctx.get("kernel_size"), n)
    strides = as_tuple(ctx.get("strides", 1), n)
    dil = as_tuple(ctx.get("dilation_rate", 1), n)
    padding = ctx.get("padding", "valid")
    if padding not in ("same", "valid"):
        raise ctx.fail(f"padding {padding!r} is not supported (use 'valid' or 'same')")
    out_pad = ctx.get("output_padding")
    out_pad = as_tuple(out_pad, n) if out_pad is not None else None
    begin, end, extra = [], [], []
    for i in range(n):
        k_eff = (kernel[i] - 1) * dil[i] + 1
        s = strides[i]
        if out_pad is None:
            # full - out, with full = (in-1)*s + k_eff
            diff = k_eff - s if padding == "same" else k_eff - s - max(k_eff - s, 0)
        else:
            pad = k_eff // 2 if padding == "same" else 0
            diff = 2 * pad - out_pad[i]
        total = max(diff, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
        extra.append(max(-diff, 0))
    if any(e >= max(s, d) for e, s, d in zip(extra, strides, dil)):
        raise ctx.fail(f"output_padding {out_pad} must be smaller than the strides {strides}")
    k = ctx.weight("kernel")                                   # (*K, O, I)
    w = ctx.const(np.transpose(k, (n + 1, n) + tuple(range(n))), "kernel")
    y = ctx.op.conv_transpose(x, w, _bias(ctx), strides=strides, dilations=dil, pads=tuple(begin + end),
                              output_padding=tuple(extra))
    return activate(ctx, y)
