"""More channels-first NN ops: transposed conv, layer norm over any axes, image resize.

* ``conv_transpose``: the adjoint of ``conv`` (ONNX ConvTranspose, TF conv_transpose):
  ``y[i*s + k*d - pad_begin] += x[i] * w[k]``; ``pads`` crop the full result,
  ``output_padding`` appends zeros at the end of each spatial axis.
* ``layer_norm``: ``(x - mean) / sqrt(var + eps) * scale + bias`` over ``axes``; scale
  and bias hold the normalized dims in axis order. Kept as one op because ONNX
  (LayerNormalization) and Core ML have native forms when the axes are a suffix.
* ``resize``: nearest / bilinear resampling of the spatial axes with TensorFlow's
  half-pixel conventions (what Keras's Resizing and UpSampling use):
  bilinear samples at ``(o + 0.5) / scale - 0.5`` clamped to the edge, nearest
  takes ``floor((o + 0.5) / scale)``.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from kcc.errors import IRError
from kcc.ir import TensorType
from kcc.ops.nn import canonical_window
from kcc.ops.registry import Attr, OpDef, register_op
from kcc.ops.shapes import UNKNOWN, norm_axes


@register_op
class ConvTranspose(OpDef):
    """x: (N, C, *S), w: (C, O/group, *K), b: (O,)."""

    name = "conv_transpose"
    inputs = ("x", "w", "b?")
    attrs = {
        "strides": Attr("ints", ()),
        "dilations": Attr("ints", ()),
        "pads": Attr("ints", ()),
        "output_padding": Attr("ints", ()),
        "group": Attr("int", 1),
    }

    def canonicalize(self, attrs):
        attrs = canonical_window(attrs)
        if attrs["output_padding"] and all(v == 0 for v in attrs["output_padding"]):
            attrs["output_padding"] = ()
        return attrs

    @staticmethod
    def geometry(attrs, w_shape):
        n = len(w_shape) - 2
        kernel = tuple(int(k) for k in w_shape[2:])
        return (kernel, attrs["strides"] or (1,) * n, attrs["dilations"] or (1,) * n,
                attrs["pads"] or (0,) * (2 * n), attrs["output_padding"] or (0,) * n)

    def infer(self, attrs, x, w, b):
        if x.rank < 3 or w.rank != x.rank:
            raise IRError(f"conv_transpose needs x (N,C,*S) and w (C,O/g,*K), got {x.shape} and {w.shape}")
        if isinstance(x.shape[1], int) and x.shape[1] != w.shape[0]:
            raise IRError(f"input has {x.shape[1]} channels, weights expect {w.shape[0]}")
        kernel, strides, dil, pads, opad = self.geometry(attrs, w.shape)
        n = len(kernel)
        out = []
        for i in range(n):
            d = x.shape[2 + i]
            out.append(UNKNOWN if not isinstance(d, int) else
                       (d - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 + opad[i] - pads[i] - pads[i + n])
        o = w.shape[1] * attrs["group"]
        if b is not None and b.shape != (o,):
            raise IRError(f"bias shape {b.shape} != ({o},)")
        return TensorType((x.shape[0], o) + tuple(out), x.dtype)

    def compute(self, attrs, x, w, b):
        kernel, strides, dil, pads, opad = self.geometry(attrs, w.shape)
        n, g = len(kernel), attrs["group"]
        N, C = x.shape[:2]
        og = w.shape[1]
        sp = x.shape[2:]
        full = [(sp[i] - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 + opad[i] for i in range(n)]
        y = np.zeros((N, g, og) + tuple(full), np.float64)
        xg = x.reshape((N, g, C // g) + sp).astype(np.float64)
        wg = w.reshape((g, C // g, og) + kernel).astype(np.float64)
        for k in itertools.product(*(range(kk) for kk in kernel)):
            contrib = np.einsum("NGC...,GCO->NGO...", xg, wg[(Ellipsis,) + k])
            index = (slice(None),) * 3 + tuple(
                slice(k[i] * dil[i], k[i] * dil[i] + (sp[i] - 1) * strides[i] + 1, strides[i]) for i in range(n))
            y[index] += contrib
        y = y.reshape((N, g * og) + tuple(full))
        crop = (slice(None), slice(None)) + tuple(slice(pads[i], full[i] - pads[i + n]) for i in range(n))
        y = y[crop]
        if b is not None:
            y = y + b.reshape((1, -1) + (1,) * n)
        return y.astype(x.dtype)


@register_op
class LayerNorm(OpDef):
    """Normalize over ``axes``; ``scale``/``bias`` have the normalized dims' shape (in axis order)."""

    name = "layer_norm"
    inputs = ("x", "scale?", "bias?")
    attrs = {"axes": Attr("ints"), "epsilon": Attr("float", 1e-5)}

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


def _resize_axis(x: np.ndarray, axis: int, out: int, scale: float, mode: str) -> np.ndarray:
    size = x.shape[axis]
    o = np.arange(out, dtype=np.float64)
    if mode == "nearest":
        idx = np.minimum(np.floor((o + 0.5) / scale), size - 1).astype(np.int64)
        return np.take(x, idx, axis=axis)
    c = (o + 0.5) / scale - 0.5
    lo = np.floor(c)
    frac = c - lo
    lo_i = np.clip(lo, 0, size - 1).astype(np.int64)
    hi_i = np.clip(lo + 1, 0, size - 1).astype(np.int64)
    shape = [1] * x.ndim
    shape[axis] = out
    frac = frac.reshape(shape)
    return np.take(x, lo_i, axis=axis) * (1 - frac) + np.take(x, hi_i, axis=axis) * frac


@register_op
class Resize(OpDef):
    """Resample spatial axes 2.. to ``sizes`` (static), or by ``scales`` (for unknown sizes)."""

    name = "resize"
    attrs = {"mode": Attr("str", "nearest", ("nearest", "bilinear")), "sizes": Attr("ints", ()),
             "scales": Attr("floats", ())}

    def infer(self, attrs, x):
        n = x.rank - 2
        sizes, scales = attrs["sizes"], attrs["scales"]
        if bool(sizes) == bool(scales):
            raise IRError("resize needs exactly one of sizes and scales")
        if len(sizes or scales) != n:
            raise IRError(f"resize of {n} spatial axes got {sizes or scales}")
        if sizes:
            return TensorType(x.shape[:2] + tuple(sizes), x.dtype)
        out = tuple(int(math.floor(d * s + 1e-9)) if isinstance(d, int) else
                    (d if s == 1 else UNKNOWN) for d, s in zip(x.shape[2:], scales))
        return TensorType(x.shape[:2] + out, x.dtype)

    def compute(self, attrs, x):
        y = x.astype(np.float64)
        n = x.ndim - 2
        for i in range(n):
            size = x.shape[2 + i]
            if attrs["sizes"]:
                out = attrs["sizes"][i]
                scale = out / size
            else:
                scale = attrs["scales"][i]
                out = int(math.floor(size * scale + 1e-9))
            if out != size or scale != 1:
                y = _resize_axis(y, 2 + i, out, scale, attrs["mode"])
        return y.astype(x.dtype)
