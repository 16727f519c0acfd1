"""Elementwise math: binary ops with numpy broadcasting, and unary math functions."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kcc.errors import IRError
from kcc.tensor_type import DTYPES, TensorType
from kcc.ops.activation import _erf
from kcc.ops.registry import Attr, OpDef, register_op
from kcc.ops.shapes import broadcast

# name -> (numpy function, commutative)
_BINARY: dict[str, tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], bool]] = {
    "add": (np.add, True),
    "sub": (np.subtract, False),
    "mul": (np.multiply, True),
    "div": (np.divide, False),
    "pow": (np.power, False),
    "max": (np.maximum, True),
    "min": (np.minimum, True),
}


def _declare_binary(op_name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], comm: bool) -> None:
    class _Binary(OpDef):
        name = op_name
        inputs = ("a", "b")
        commutative = comm

        def infer(self, attrs: dict[str, Any], a: TensorType, b: TensorType) -> TensorType:
            if a.dtype != b.dtype:
                raise IRError(f"{op_name} of {a.dtype} and {b.dtype}: insert a cast")
            return TensorType(broadcast(a.shape, b.shape), a.dtype)

        def compute(self, attrs: dict[str, Any], a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.asarray(fn(a, b)).astype(a.dtype, copy=False)

    _Binary.__name__ = _Binary.__qualname__ = op_name.title()
    register_op(_Binary)


for _name, (_fn, _comm) in _BINARY.items():
    _declare_binary(_name, _fn, _comm)

_UNARY_MATH: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "neg": np.negative,
    "abs": np.abs,
    "sqrt": np.sqrt,
    "rsqrt": lambda x: 1.0 / np.sqrt(x),
    "reciprocal": lambda x: 1.0 / x,
    "square": np.square,
    "exp": np.exp,
    "log": np.log,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "atan": np.arctan,
    "erf": _erf,
    "floor": np.floor,
    "ceil": np.ceil,
    "round": np.round,  # half to even, like TensorFlow and ONNX
    "sign": np.sign,
}


def _declare_unary_math(op_name: str, fn: Callable[[np.ndarray], np.ndarray]) -> None:
    class _UnaryMath(OpDef):
        name = op_name

        def infer(self, attrs: dict[str, Any], x: TensorType) -> TensorType:
            return x

        def compute(self, attrs: dict[str, Any], x: np.ndarray) -> np.ndarray:
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.asarray(fn(x)).astype(x.dtype, copy=False)

    _UnaryMath.__name__ = _UnaryMath.__qualname__ = op_name.title()
    register_op(_UnaryMath)


for _name, _fn in _UNARY_MATH.items():
    _declare_unary_math(_name, _fn)


@register_op
class Cast(OpDef):
    name = "cast"
    attrs = {"to": Attr("str", choices=tuple(DTYPES))}

    def infer(self, attrs, x):
        return TensorType(x.shape, attrs["to"])

    def compute(self, attrs, x):
        return x.astype(DTYPES[attrs["to"]])
