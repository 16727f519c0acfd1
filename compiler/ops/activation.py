"""Activation ops: unary, shape-preserving, float in -> float out.

Each entry of ``_UNARY`` declares one op: name, attributes, numpy formula.
Parameterless ones can also be *fused* into a conv/dense producer's
``activation`` attribute (see FUSABLE and passes/fuse_activation.py).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from kcc.tensor_type import TensorType
from kcc.ops.registry import Attr, OpDef, register_op
from kcc.ops.shapes import norm_axis


def _erf(x: np.ndarray) -> np.ndarray:
    # Vectorized math.erf; exact to float64 rounding.
    return np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64)).astype(x.dtype)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(np.zeros_like(x), x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Split by sign so neither branch overflows.
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


# The activations' constants, declared once: the attribute defaults below use
# them, and frontends, passes and backends import them instead of retyping them.
HARD_SIGMOID_ALPHA = 1.0 / 6.0   # Keras 3: hard_sigmoid(x) = relu6(x + 3) / 6
HARD_SIGMOID_BETA = 0.5
HARD_SIGMOID_ALPHA_KERAS2 = 0.2  # Keras 2 / tf.keras files (and ONNX HardSigmoid's default)
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805
LEAKY_RELU_ALPHA = 0.2           # Keras's leaky_relu default
GELU_TANH_COEFF = 0.044715       # gelu(approximate=True): tanh(sqrt(2/pi) * (x + c * x**3))

# name -> (attributes, formula(x, attrs))
_UNARY: dict[str, tuple[dict[str, Attr], Callable[[np.ndarray, dict[str, Any]], np.ndarray]]] = {
    "relu": ({}, lambda x, a: np.maximum(x, 0)),
    "leaky_relu": ({"alpha": Attr("float", LEAKY_RELU_ALPHA)}, lambda x, a: np.where(x >= 0, x, a["alpha"] * x)),
    "thresholded_relu": ({"alpha": Attr("float", 1.0)}, lambda x, a: np.where(x > a["alpha"], x, 0)),
    "clip": ({"min": Attr("float", float("-inf")), "max": Attr("float", float("inf"))},
             lambda x, a: np.clip(x, a["min"], a["max"])),
    "elu": ({"alpha": Attr("float", 1.0)}, lambda x, a: np.where(x > 0, x, a["alpha"] * np.expm1(np.minimum(x, 0)))),
    "selu": ({}, lambda x, a: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0)))),
    "sigmoid": ({}, lambda x, a: _sigmoid(x)),
    "hard_sigmoid": ({"alpha": Attr("float", HARD_SIGMOID_ALPHA), "beta": Attr("float", HARD_SIGMOID_BETA)},
                     lambda x, a: np.clip(a["alpha"] * x + a["beta"], 0, 1)),
    "tanh": ({}, lambda x, a: np.tanh(x)),
    "softplus": ({}, lambda x, a: _softplus(x)),
    "softsign": ({}, lambda x, a: x / (1 + np.abs(x))),
    "silu": ({}, lambda x, a: x * _sigmoid(x)),
    "hard_silu": ({}, lambda x, a: x * np.clip(HARD_SIGMOID_ALPHA * x + HARD_SIGMOID_BETA, 0, 1)),
    "gelu": ({"approximate": Attr("bool", False)},
             lambda x, a: (0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + GELU_TANH_COEFF * x ** 3))))
             if a["approximate"] else 0.5 * x * (1 + _erf(x / math.sqrt(2)))),
    "mish": ({}, lambda x, a: x * np.tanh(_softplus(x))),
    "scaled_tanh": ({"alpha": Attr("float", 1.0), "beta": Attr("float", 1.0)},
                    lambda x, a: a["alpha"] * np.tanh(a["beta"] * x)),
}

# Activations a producer may carry in its ``activation`` attribute: the
# parameterless ones (a fused form has nowhere to keep parameters).
FUSABLE: tuple[str, ...] = ("linear",) + tuple(sorted(k for k, (attrs, _) in _UNARY.items() if not attrs))


def apply_activation(name: str, x: np.ndarray) -> np.ndarray:
    """Apply a fused activation by name (``linear`` is the identity)."""
    if name == "linear":
        return x
    return _UNARY[name][1](x, {}).astype(x.dtype, copy=False)


def _declare_unary(op_name: str, op_attrs: dict[str, Attr], fn: Callable[[np.ndarray, dict[str, Any]], np.ndarray]) -> None:
    class _Unary(OpDef):
        name = op_name
        attrs = op_attrs

        def infer(self, attrs: dict[str, Any], x: TensorType) -> TensorType:
            return x

        def compute(self, attrs: dict[str, Any], x: np.ndarray) -> np.ndarray:
            return np.asarray(fn(x, attrs)).astype(x.dtype, copy=False)

    _Unary.__name__ = _Unary.__qualname__ = "".join(p.title() for p in op_name.split("_"))
    register_op(_Unary)


for _name, (_attrs, _fn) in _UNARY.items():
    _declare_unary(_name, _attrs, _fn)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@register_op
class Softmax(OpDef):
    """softmax along ``axis`` (axis 1 is the channel axis in the IR layout)."""

    name = "softmax"
    attrs = {"axis": Attr("int", 1)}

    def infer(self, attrs, x):
        norm_axis(attrs["axis"], x.rank)
        return x

    def compute(self, attrs, x):
        return _softmax(x, attrs["axis"]).astype(x.dtype)


@register_op
class LogSoftmax(OpDef):
    name = "log_softmax"
    attrs = {"axis": Attr("int", 1)}

    def infer(self, attrs, x):
        norm_axis(attrs["axis"], x.rank)
        return x

    def compute(self, attrs, x):
        ax = attrs["axis"]
        s = x - x.max(axis=ax, keepdims=True)
        return (s - np.log(np.exp(s).sum(axis=ax, keepdims=True))).astype(x.dtype)


@register_op
class PRelu(OpDef):
    """x if x >= 0 else slope * x; ``slope`` broadcasts against x (numpy rules)."""

    name = "prelu"
    inputs = ("x", "slope")

    def infer(self, attrs, x, slope):
        from kcc.ops.shapes import broadcast
        if broadcast(x.shape, slope.shape) != x.shape:
            from kcc.errors import IRError
            raise IRError(f"prelu slope {slope.shape} does not broadcast to {x.shape}")
        return x

    def compute(self, attrs, x, slope):
        return np.where(x >= 0, x, slope * x).astype(x.dtype)
