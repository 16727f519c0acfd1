"""Neural-network ops on the channels-first IR layout: conv, pooling, dense, batch norm.

Window attributes are per spatial axis: ``kernel``, ``strides``, ``dilations``;
``pads`` holds all begin paddings then all end paddings (ONNX's order). With
``auto_pad="same"`` the padding is TensorFlow's 'same' (extra pixel at the end),
resolved on the concrete input size; frontends write explicit ``pads`` whenever
the spatial size is known, so ``same`` only remains for dynamic sizes.
"""
from __future__ import annotations

import string
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from kcc.errors import IRError
from kcc.ir import TensorType
from kcc.ops.activation import FUSABLE, apply_activation
from kcc.ops.registry import Attr, OpDef, register_op
from kcc.ops.shapes import spatial_out, window_pads

_PAD = ("none", "same")


def canonical_window(attrs: dict[str, Any]) -> dict[str, Any]:
    """Strides/dilations of all 1 and pads of all 0 are spelled ()."""
    for key, neutral in (("strides", 1), ("dilations", 1), ("pads", 0)):
        if key in attrs and attrs[key] and all(v == neutral for v in attrs[key]):
            attrs[key] = ()
    return attrs


def _windows(x: np.ndarray, kernel, strides, dilations, pads, auto_pad, fill: float) -> np.ndarray:
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
        "auto_pad": Attr("str", "none", _PAD),
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
        win = _windows(x, kernel, strides, dil, attrs["pads"], attrs["auto_pad"], 0.0)
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


class _Pool(OpDef):
    inputs = ("x",)
    attrs = {
        "kernel": Attr("ints"),
        "strides": Attr("ints", ()),
        "pads": Attr("ints", ()),
        "auto_pad": Attr("str", "none", _PAD),
    }

    def canonicalize(self, attrs):
        return canonical_window(attrs)

    def _window(self, attrs):
        n = len(attrs["kernel"])
        return attrs["kernel"], attrs["strides"] or (1,) * n, (1,) * n

    def infer(self, attrs, x):
        kernel, strides, dil = self._window(attrs)
        if x.rank != len(kernel) + 2:
            raise IRError(f"{self.name} with kernel {kernel} needs rank {len(kernel) + 2} input, got {x.shape}")
        out = spatial_out(x.shape, kernel, strides, dil, attrs["pads"], attrs["auto_pad"])
        return TensorType(x.shape[:2] + out, x.dtype)


@register_op
class MaxPool(_Pool):
    """Max over windows; padding never wins (it is -inf)."""

    name = "max_pool"

    def compute(self, attrs, x):
        kernel, strides, dil = self._window(attrs)
        win = _windows(x, kernel, strides, dil, attrs["pads"], attrs["auto_pad"], -np.inf)
        n = len(kernel)
        return win.max(axis=tuple(range(-n, 0)))


@register_op
class AvgPool(_Pool):
    """Mean over windows; ``count_include_pad=False`` divides by the real pixels only (Keras)."""

    name = "avg_pool"
    attrs = {**_Pool.attrs, "count_include_pad": Attr("bool", False)}

    def compute(self, attrs, x):
        kernel, strides, dil = self._window(attrs)
        n = len(kernel)
        axes = tuple(range(-n, 0))
        win = _windows(x, kernel, strides, dil, attrs["pads"], attrs["auto_pad"], 0.0)
        total = win.sum(axis=axes)
        if attrs["count_include_pad"]:
            return (total / float(np.prod(kernel))).astype(x.dtype)
        ones = np.ones((1, 1) + x.shape[2:], x.dtype)
        count = _windows(ones, kernel, strides, dil, attrs["pads"], attrs["auto_pad"], 0.0).sum(axis=axes)
        return (total / count).astype(x.dtype)


@register_op
class Dense(OpDef):
    """y = x . w + b contracting axis 1 (the channel axis); w: (in, out), b: (out,).

    For rank-2 x this is the usual matrix product; for rank > 2 (a Keras Dense
    on a sequence or image) axis 1 holds the features in the IR layout.
    """

    name = "dense"
    inputs = ("x", "w", "b?")
    attrs = {"activation": Attr("str", "linear", FUSABLE)}

    def infer(self, attrs, x, w, b):
        if x.rank < 2 or w.rank != 2:
            raise IRError(f"dense needs x of rank >= 2 and a 2-D w, got {x.shape} and {w.shape}")
        if isinstance(x.shape[1], int) and x.shape[1] != w.shape[0]:
            raise IRError(f"dense input has {x.shape[1]} features, weights expect {w.shape[0]}")
        if b is not None and b.shape != (w.shape[1],):
            raise IRError(f"bias shape {b.shape} != ({w.shape[1]},)")
        return TensorType((x.shape[0], w.shape[1]) + x.shape[2:], x.dtype)

    def compute(self, attrs, x, w, b):
        y = np.moveaxis(np.tensordot(x, w, axes=([1], [0])), -1, 1)
        if b is not None:
            y = y + b.reshape((1, -1) + (1,) * (x.ndim - 2))
        return apply_activation(attrs["activation"], y.astype(x.dtype, copy=False))


@register_op
class BatchNorm(OpDef):
    """Inference batch norm along axis 1: (x - mean) / sqrt(var + eps) * scale + bias."""

    name = "batch_norm"
    inputs = ("x", "scale", "bias", "mean", "var")
    attrs = {"epsilon": Attr("float", 1e-3)}

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
class MatMul(OpDef):
    """numpy matmul: batched over leading dims, contracting a's last and b's second-to-last."""

    name = "matmul"
    inputs = ("a", "b")

    def infer(self, attrs, a, b):
        from kcc.ops.shapes import broadcast
        if a.rank < 2 or b.rank < 2:
            raise IRError(f"matmul needs rank >= 2 operands, got {a.shape} and {b.shape}")
        ka, kb = a.shape[-1], b.shape[-2]
        if isinstance(ka, int) and isinstance(kb, int) and ka != kb:
            raise IRError(f"matmul inner dims differ: {a.shape} x {b.shape}")
        batch = broadcast(a.shape[:-2], b.shape[:-2])
        return TensorType(batch + (a.shape[-2], b.shape[-1]), a.dtype)

    def compute(self, attrs, a, b):
        return np.matmul(a, b)
