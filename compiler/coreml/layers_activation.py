"""Elementwise layers: ``activation`` (every ActivationParams variant), ``unary``,
the spec-4 unary math layers (``sin`` ... ``erf``, ``gelu``), ``clip`` and
``clampedReLU``.

:func:`apply_activation` is shared with the recurrent layers, whose gate
activations are ``ActivationParams`` messages too.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from kcc.coreml.registry import LayerContext, layer
from kcc.errors import RuntimeModelError


def _channel_param(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Broadcast a length-C (or length-1) parameter along axis -3 of ``x``."""
    if values.size == 1:
        return values.reshape(())
    if x.ndim < 3:
        raise RuntimeModelError(f"a per-channel activation parameter needs rank >= 3 input, got {x.shape}")
    return values.reshape(-1, 1, 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (np.tanh(0.5 * x) + 1.0)).astype(x.dtype)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x).astype(x.dtype)


_ACTIVATIONS: dict[str, Callable] = {
    "linear": lambda p, x, w: p.alpha * x + p.beta,
    "ReLU": lambda p, x, w: np.maximum(x, 0),
    "leakyReLU": lambda p, x, w: np.where(x >= 0, x, p.alpha * x),
    "thresholdedReLU": lambda p, x, w: np.where(x >= p.alpha, x, 0),     # the proto: x >= alpha keeps x
    "PReLU": lambda p, x, w: np.where(x >= 0, x, _channel_param(w(p.alpha), x) * x),
    "tanh": lambda p, x, w: np.tanh(x),
    "scaledTanh": lambda p, x, w: p.alpha * np.tanh(p.beta * x),
    "sigmoid": lambda p, x, w: _sigmoid(x),
    "sigmoidHard": lambda p, x, w: np.clip(p.alpha * x + p.beta, 0, 1),
    "ELU": lambda p, x, w: np.where(x >= 0, x, p.alpha * np.expm1(np.minimum(x, 0))),
    "softsign": lambda p, x, w: x / (1 + np.abs(x)),
    "softplus": lambda p, x, w: _softplus(x),
    "parametricSoftplus": lambda p, x, w: (
        _channel_param(w(p.alpha), x) * _softplus(_channel_param(w(p.beta), x) * x)),
}


def apply_activation(params, x: np.ndarray, decode=None) -> np.ndarray:
    """Apply one ``ActivationParams`` message to ``x`` (float32 in, float32 out)."""
    kind = params.WhichOneof("NonlinearityType")
    fn = _ACTIVATIONS.get(kind)
    if fn is None:
        raise RuntimeModelError(f"activation '{kind}' is not implemented by the kcc Core ML runtime")
    if decode is None:
        from kcc.coreml.weights import decode as decode
    return np.asarray(fn(getattr(params, kind), x, decode), dtype=np.float32)


@layer("activation")
def activation(p, inputs, ctx: LayerContext):
    return apply_activation(p, inputs[0], lambda w: ctx.weight(w, what="activation parameter"))


_UNARY = {
    "SQRT": lambda x, p, eps: np.sqrt(x),
    "RSQRT": lambda x, p, eps: 1.0 / np.sqrt(x + eps),
    "INVERSE": lambda x, p, eps: 1.0 / (x + eps),
    "POWER": lambda x, p, eps: np.power(x, p.alpha),
    "EXP": lambda x, p, eps: np.exp(x),
    "LOG": lambda x, p, eps: np.log(x),
    "ABS": lambda x, p, eps: np.abs(x),
    "THRESHOLD": lambda x, p, eps: np.maximum(x, p.alpha),
}


@layer("unary")
def unary(p, inputs, ctx: LayerContext):
    op = type(p).Operation.Name(p.type)
    scale = p.scale if p.scale != 0 else 1.0
    eps = p.epsilon if p.epsilon != 0 else 1e-6
    x = inputs[0] * np.float32(scale) + np.float32(p.shift)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _UNARY[op](x, p, np.float32(eps))


_erf = np.vectorize(math.erf, otypes=[np.float64])

_MATH = {
    "ceil": np.ceil, "floor": np.floor, "sign": np.sign,
    # NeuralNetwork.proto: "rounds the value to the nearest integer"; ties are left to the
    # compute unit (Apple, webmachinelearning/webnn#817: X.5 goes up or down by device). This
    # runtime rounds them away from zero (C's roundf, the CPU's behaviour); a model whose
    # numbers depend on ties is not portable, and kcc's emitter never writes this layer.
    "round": lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5),
    "exp2": np.exp2,
    "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh,
    "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
    "erf": lambda x: _erf(x),
}


def _math_layer(fn):
    def run(p, inputs, ctx: LayerContext):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(fn(inputs[0]), dtype=np.float32)
    return run


for _name, _fn in _MATH.items():
    layer(_name)(_math_layer(_fn))


_GELU = {
    "EXACT": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "TANH_APPROXIMATION": lambda x: 0.5 * x * (
        1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3))),
    "SIGMOID_APPROXIMATION": lambda x: x / (1.0 + np.exp(-1.702 * x)),
}


@layer("gelu")
def gelu(p, inputs, ctx: LayerContext):
    mode = type(p).GeluMode.Name(p.mode)
    return np.asarray(_GELU[mode](inputs[0].astype(np.float64)), dtype=np.float32)


@layer("clip")
def clip(p, inputs, ctx: LayerContext):
    return np.minimum(np.maximum(inputs[0], p.minVal), p.maxVal)


@layer("clampedReLU")
def clamped_relu(p, inputs, ctx: LayerContext):
    x = inputs[0]
    return np.minimum(np.float32(p.beta), np.where(x >= 0, x, np.float32(p.alpha) * x))
