"""``resize``: nearest / bilinear resampling of the spatial axes.

TensorFlow's half-pixel conventions (what Keras's Resizing and UpSampling use):
bilinear samples at ``(o + 0.5) / scale - 0.5`` clamped to the edge, nearest
takes ``floor((o + 0.5) / scale)``.
"""
from __future__ import annotations

import math

import numpy as np

from kcc.errors import IRError
from kcc.tensor_type import TensorType
from kcc.ops.registry import Attr, OpDef, register_op
from kcc.ops.shapes import UNKNOWN


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
