"""Normalizations: inference ``batch_norm`` on the channel axis and ``layer_norm`` over any axes.

* ``batch_norm``: ``(x - mean) / sqrt(var + eps) * scale + bias`` along axis 1.
* ``layer_norm``: the same with the statistics taken over ``axes``; scale and
  bias hold the normalized dims in axis order. Kept as one op because ONNX
  (LayerNormalization) and Core ML have native forms when the axes are a suffix.
* ``rms_norm``: ``x / sqrt(mean(x^2 over axes) + eps) * scale`` (no centring;
  Keras's RMSNormalization and ``ops.rms_normalization``). One op because ONNX
  opset 23 has RMSNormalization over a suffix of axes; passes/lower_rms_norm.py
  writes the formula for older opsets and Core ML.

The default epsilons are declared once here (Keras's BatchNormalization default,
ONNX's LayerNormalization default).
"""
from __future__ import annotations

import numpy as np

from kcc.errors import IRError
from kcc.ops.registry import Attr, OpDef, register_op
from kcc.ops.shapes import norm_axes

BATCH_NORM_EPSILON = 1e-3
LAYER_NORM_EPSILON = 1e-5
RMS_NORM_EPSILON = 1e-6          # Keras's RMSNormalization default (ONNX's is 1e-5)


@register_op
class BatchNorm(OpDef):
    """Inference batch norm along axis 1: (x - mean) / sqrt(var + eps) * scale + bias."""

    name = "batch_norm"
    inputs = ("x", "scale", "bias", "mean", "var")
    attrs = {"epsilon": Attr("float", BATCH_NORM_EPSILON)}

    def infer(self, attrs, x, scale, bias, mean, var):
        c = x.shape[1]
        for t in (scale, bias, mean, var):
            if t.rank != 1 or (isinstance(c, int) and t.shape[0] != c):
                raise IRError(f"batch_norm parameters must be ({c},), got {t.shape}")
        return x

    def compute(self, attrs, x, scale, bias, mean, var):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        inv = scale / np.sqrt(var + attrs["epsilon"])
        return ((x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)).astype(x.dtype)


@register_op
class LayerNorm(OpDef):
    """Normalize over ``axes``; ``scale``/``bias`` have the normalized dims' shape (in axis order)."""

    name = "layer_norm"
    inputs = ("x", "scale?", "bias?")
    attrs = {"axes": Attr("ints"), "epsilon": Attr("float", LAYER_NORM_EPSILON)}

    def canonicalize(self, attrs):
        return attrs

    def infer(self, attrs, x, scale, bias):
        axes = norm_axes(attrs["axes"], x.rank)
        want = tuple(x.shape[a] for a in axes)
        for t in (scale, bias):
            if t is not None and (t.rank != len(want) or any(isinstance(a, int) and a != b
                                                              for a, b in zip(want, t.shape))):
                raise IRError(f"layer_norm parameter shape {t.shape} != normalized dims {want}")
        return x

    @staticmethod
    def param_shape(axes, rank, p):
        shape = [1] * rank
        for a, d in zip(axes, p.shape):
            shape[a] = d
        return p.reshape(shape)

    def compute(self, attrs, x, scale, bias):
        axes = norm_axes(attrs["axes"], x.ndim)
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=axes, keepdims=True)
        var = ((x64 - mean) ** 2).mean(axis=axes, keepdims=True)
        y = (x64 - mean) / np.sqrt(var + attrs["epsilon"])
        if scale is not None:
            y = y * self.param_shape(axes, x.ndim, scale)
        if bias is not None:
            y = y + self.param_shape(axes, x.ndim, bias)
        return y.astype(x.dtype)


@register_op
class RmsNorm(OpDef):
    """``x / sqrt(mean(x * x, axes) + epsilon) * scale``; ``scale`` has the normalized dims' shape (axis order).

    An all-zero row gives 0 (0 / sqrt(epsilon)). The reference computes in float64.
    """

    name = "rms_norm"
    inputs = ("x", "scale?")
    attrs = {"axes": Attr("ints"), "epsilon": Attr("float", RMS_NORM_EPSILON)}

    def infer(self, attrs, x, scale):
        axes = norm_axes(attrs["axes"], x.rank)
        want = tuple(x.shape[a] for a in axes)
        if scale is not None and (scale.rank != len(want) or any(
                isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(want, scale.shape))):
            raise IRError(f"rms_norm scale shape {scale.shape} != normalized dims {want}")
        return x

    def compute(self, attrs, x, scale):
        axes = norm_axes(attrs["axes"], x.ndim)
        x64 = x.astype(np.float64)
        y = x64 / np.sqrt((x64 * x64).mean(axis=axes, keepdims=True) + attrs["epsilon"])
        if scale is not None:
            y = y * LayerNorm.param_shape(axes, x.ndim, scale)
        return y.astype(x.dtype)
