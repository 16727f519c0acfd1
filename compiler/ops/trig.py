"""Inverse trigonometric and inverse hyperbolic functions: asin, acos, asinh, acosh, atanh.

Elementwise, float in and out, with numpy's (and ONNX's) meaning: outside the
domain (``|x| > 1`` for asin/acos/atanh, ``x < 1`` for acosh) the result is NaN,
and ``atanh(+-1)`` is ``+-inf``. They come from Core ML's specification-4 math
layers of the same names (kcc.formats.coreml_layers.MATH_LAYERS) and are ONNX
Asin/Acos/Asinh/Acosh/Atanh (kcc.formats.onnx_ops).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from kcc.ops.elementwise import _declare_unary_math

INVERSE_TRIG: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "asin": np.arcsin,
    "acos": np.arccos,
    "asinh": np.arcsinh,
    "acosh": np.arccosh,
    "atanh": np.arctanh,
}

for _name, _fn in INVERSE_TRIG.items():
    _declare_unary_math(_name, _fn)
