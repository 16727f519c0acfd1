"""Convolutions on the channels-first IR layout: ``conv`` and its adjoint ``conv_transpose``.

Window attributes are per spatial axis: ``kernel``, ``strides``, ``dilations``;
``pads`` holds all begin paddings then all end paddings (ONNX's order). With
``auto_pad="same"`` the padding is TensorFlow's 'same' (extra pixel at the end),
resolved on the concrete input size; frontends write explicit ``pads`` whenever
the spatial size is known, so ``same`` only remains for dynamic sizes. The
window helpers here are shared with pooling.py and conv_lstm.

* ``conv_transpose`` (ONNX ConvTranspose, TF conv_transpose):
  ``y[i*s + k*d - pad_begin] += x[i] * w[k]``; ``pads`` crop the full result,
  ``output_padding`` appends zeros at the end of each spatial axis.
"""
from __future__ import annotations

import itertools
import string
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from kcc.errors import IRError
from kcc.tensor_type import TensorType
from kcc.ops.activation import FUSABLE, apply_activation
from kcc.ops.registry import Attr, OpDef, register_op
from kcc.ops.shapes import UNKNOWN, spatial_out, window_pads

PAD_MODES = ("none", "same")


def canonical_window(attrs: dict[str, Any]) -> dict[str, Any]:
    """Strides/dilations of all 1 and pads of all 0 are spelled ()."""
    for key, neutral in (("strides", 1), ("dilations", 1), ("pads", 0)):
        if key in attrs and attrs[key] and all(v == neutral for v in attrs[key]):
            attrs[key] = ()
    return attrs


def sliding_windows(x: np.ndarray, kernel, strides, dilations, pads, auto_pad, fill: float) -> np.ndarray:
    """(N, C, *out, *kernel) view of the sliding windows of padded x."""
    n = len(kernel)
    pw = window_pads(x.shape, kernel, strides, dilations, pads, auto_pad)
    if any(p for pair in pw for p in pair):
        x = np.pad(x, [(0, 0), (0, 0)] + pw, constant_values=fill)
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    win = sliding_window_view(x, eff, axis=tuple(range(2, 2 + n)))
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) \
        + tuple(slice(None, None, d) for d in dilations)
    return win[index]


@register_op
class Conv(OpDef):
    """y = conv(x, w) + b, x: (N, C, *S), w: (O, C/group, *K), b: (O,).

    ``activation`` is a fused activation (``linear`` = none), set only by the
    fuse_activation pass for targets that have the fused form.
    """

    name = "conv"
    inputs = ("x", "w", "b?")
    attrs = {
        "strides": Attr("ints", ()),
        "dilations": Attr("ints", ()),
        "pads": Attr("ints", ()),
        "auto_pad": Attr("str", "none", PAD_MODES),
        "group": Attr("int", 1),
        "activation": Attr("str", "linear", FUSABLE),
    }

    def canonicalize(self, attrs):
        return canonical_window(attrs)

    @staticmethod
    def window(attrs: dict[str, Any], w_shape) -> tuple:
        n = len(w_shape) - 2
        kernel = tuple(int(k) for k in w_shape[2:])
        return kernel, attrs["strides"] or (1,) * n, attrs["dilations"] or (1,) * n

    def infer(self, attrs, x, w, b):
        if x.rank < 3 or w.rank != x.rank:
            raise IRError(f"conv needs x (N,C,*S) and w (O,C/g,*K) of equal rank, got {x.shape} and {w.shape}")
        g = attrs["group"]
        if isinstance(x.shape[1], int) and x.shape[1] != w.shape[1] * g:
            raise IRError(f"input has {x.shape[1]} channels, weights expect {w.shape[1]} x group {g}")
        if w.shape[0] % g:
            raise IRError(f"{w.shape[0]} output channels do not split into {g} groups")
        if b is not None and b.shape != (w.shape[0],):
            raise IRError(f"bias shape {b.shape} != ({w.shape[0]},)")
        kernel, strides, dil = self.window(attrs, w.shape)
        out = spatial_out(x.shape, kernel, strides, dil, attrs["pads"], attrs["auto_pad"])
        return TensorType((x.shape[0], w.shape[0]) + out, x.dtype)

    def compute(self, attrs, x, w, b):
        kernel, strides, dil = self.window(attrs, w.shape)
        win = sliding_windows(x, kernel, strides, dil, attrs["pads"], attrs["auto_pad"], 0.0)
        n = len(kernel)
        g = attrs["group"]
        N, C = x.shape[:2]
        O = w.shape[0]
        out_sp = win.shape[2:2 + n]
        win = win.reshape((N, g, C // g) + out_sp + kernel)
        wg = w.reshape((g, O // g, C // g) + kernel)
        sp, kl = string.ascii_lowercase[:n], string.ascii_lowercase[10:10 + n]
        y = np.einsum(f"NGC{sp}{kl},GOC{kl}->NGO{sp}", win, wg, optimize=True)
        y = y.reshape((N, O) + out_sp)
        if b is not None:
            y = y + b.reshape((1, O) + (1,) * n)
        return apply_activation(attrs["activation"], y.astype(x.dtype, copy=False))


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
