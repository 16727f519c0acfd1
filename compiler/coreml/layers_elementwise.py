"""Elementwise layers over several inputs.

Legacy (rank-5 era) layers ``add``, ``multiply``, ``average``, ``max``, ``min``
take one or more inputs with "limited broadcasting" ([B,1,1,1] against [B,C,H,W]);
numpy broadcasting is a superset and agrees wherever Core ML accepts the shapes.
The spec-4 ``*Broadcastable`` layers, comparisons and logical layers use numpy
broadcasting rules, which are exactly theirs. Booleans are float 1.0 / 0.0.
"""
from __future__ import annotations

from functools import reduce

import numpy as np

from kcc.coreml.registry import LayerContext, layer


def _fold(fn, inputs):
    return reduce(fn, inputs[1:], inputs[0])


@layer("add")
def add(p, inputs, ctx: LayerContext):
    if len(inputs) == 1:
        return inputs[0] + np.float32(p.alpha)
    return _fold(np.add, inputs)


@layer("multiply")
def multiply(p, inputs, ctx: LayerContext):
    if len(inputs) == 1:
        return inputs[0] * np.float32(p.alpha)
    return _fold(np.multiply, inputs)


@layer("average")
def average(p, inputs, ctx: LayerContext):
    return _fold(np.add, inputs) / np.float32(len(inputs))


@layer("max")
def maximum(p, inputs, ctx: LayerContext):
    return _fold(np.maximum, inputs)


@layer("min")
def minimum(p, inputs, ctx: LayerContext):
    return _fold(np.minimum, inputs)



_BINARY = {
    "addBroadcastable": np.add,
    "subtractBroadcastable": np.subtract,
    "multiplyBroadcastable": np.multiply,
    "divideBroadcastable": np.divide,
    "maxBroadcastable": np.maximum,
    "minBroadcastable": np.minimum,
    "powBroadcastable": np.power,
    "modBroadcastable": np.mod,
    "floorDivBroadcastable": lambda a, b: np.floor(a / b),
}


def _binary_layer(fn):
    def run(p, inputs, ctx: LayerContext):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(fn(inputs[0], inputs[1]), dtype=np.float32)
    return run


for _name, _fn in _BINARY.items():
    layer(_name)(_binary_layer(_fn))


_COMPARE = {
    "equal": np.equal, "notEqual": np.not_equal,
    "lessThan": np.less, "lessEqual": np.less_equal,
    "greaterThan": np.greater, "greaterEqual": np.greater_equal,
}


def _compare_layer(fn):
    def run(p, inputs, ctx: LayerContext):
        other = inputs[1] if len(inputs) > 1 else np.float32(p.alpha)
        return fn(inputs[0], other).astype(np.float32)
    return run


for _name, _fn in _COMPARE.items():
    layer(_name)(_compare_layer(_fn))


_LOGICAL = {
    "logicalAnd": np.logical_and, "logicalOr": np.logical_or, "logicalXor": np.logical_xor,
}


def _logical_layer(fn):
    def run(p, inputs, ctx: LayerContext):
        return fn(inputs[0] != 0, inputs[1] != 0).astype(np.float32)
    return run


for _name, _fn in _LOGICAL.items():
    layer(_name)(_logical_layer(_fn))


@layer("logicalNot")
def logical_not(p, inputs, ctx: LayerContext):
    return (inputs[0] == 0).astype(np.float32)


@layer("whereBroadcastable")
def where(p, inputs, ctx: LayerContext):
    cond, a, b = inputs
    return np.where(cond != 0, a, b).astype(np.float32)


@layer("dot")
def dot(p, inputs, ctx: LayerContext):
    """Dot product over axis -3 of two [..., C, 1, 1] blobs -> [..., 1, 1, 1]."""
    a, b = inputs
    if p.cosineSimilarity:
        a = a / np.sqrt(np.sum(a * a, axis=-3, keepdims=True))
        b = b / np.sqrt(np.sum(b * b, axis=-3, keepdims=True))
    return np.sum(a * b, axis=-3, keepdims=True)
