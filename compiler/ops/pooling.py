"""Pooling on the channels-first IR layout: ``max_pool`` and ``avg_pool`` (window attributes as in conv.py)."""
from __future__ import annotations

import numpy as np

from kcc.errors import IRError
from kcc.tensor_type import TensorType
from kcc.ops.conv import PAD_MODES, canonical_window, sliding_windows
from kcc.ops.registry import Attr, OpDef, register_op
from kcc.ops.shapes import spatial_out


class _Pool(OpDef):
    inputs = ("x",)
    attrs = {
        "kernel": Attr("ints"),
        "strides": Attr("ints", ()),
        "pads": Attr("ints", ()),
        "auto_pad": Attr("str", "none", PAD_MODES),
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
        win = sliding_windows(x, kernel, strides, dil, attrs["pads"], attrs["auto_pad"], -np.inf)
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
        win = sliding_windows(x, kernel, strides, dil, attrs["pads"], attrs["auto_pad"], 0.0)
        total = win.sum(axis=axes)
        if attrs["count_include_pad"]:
            return (total / float(np.prod(kernel))).astype(x.dtype)
        ones = np.ones((1, 1) + x.shape[2:], x.dtype)
        count = sliding_windows(ones, kernel, strides, dil, attrs["pads"], attrs["auto_pad"], 0.0).sum(axis=axes)
        return (total / count).astype(x.dtype)
