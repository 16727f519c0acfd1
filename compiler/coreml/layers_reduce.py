"""Reductions: the legacy ``reduce`` layer (axes C/H/W combinations, dims kept),
the spec-4 ``reduce*`` layers (axes, keepDims, reduceAll) and argMax/argMin.
"""
from __future__ import annotations

import numpy as np

from kcc.coreml.registry import LayerContext, layer

_LEGACY_AXES = {"CHW": (-3, -2, -1), "HW": (-2, -1), "C": (-3,), "H": (-2,), "W": (-1,)}


_REDUCE = {
    "SUM": lambda x, a, k: np.sum(x, axis=a, keepdims=k),
    "AVG": lambda x, a, k: np.mean(x, axis=a, keepdims=k),
    "PROD": lambda x, a, k: np.prod(x, axis=a, keepdims=k),
    "SUMSQUARE": lambda x, a, k: np.sum(x * x, axis=a, keepdims=k),
    "L1": lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k),
    "L2": lambda x, a, k: np.sqrt(np.sum(x * x, axis=a, keepdims=k)),
    "MAX": lambda x, a, k: np.max(x, axis=a, keepdims=k),
    "MIN": lambda x, a, k: np.min(x, axis=a, keepdims=k),
    "LOGSUMEXP": lambda x, a, k: _logsumexp(x, a, k),
}


def _logsumexp(x, axis, keepdims):
    m = np.max(x, axis=axis, keepdims=True)
    y = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return y if keepdims else np.squeeze(y, axis=axis)


@layer("reduce")
def reduce_legacy(p, inputs, ctx: LayerContext):
    x = inputs[0]
    mode = type(p).ReduceOperation.Name(p.mode)
    axes = _LEGACY_AXES[type(p).ReduceAxis.Name(p.axis)]
    if mode == "ARGMAX":
        if len(axes) != 1:
            raise ctx.error("ARGMAX reduces along one axis (C, H or W) only")
        return np.argmax(x, axis=axes[0], keepdims=True).astype(np.float32)
    if mode == "LOGSUM":
        # sum of ln(x + epsilon), as ReduceLayerParams words it
        return np.sum(np.log(x + np.float32(p.epsilon or 1e-6)), axis=axes, keepdims=True)
    return _REDUCE[mode](x, axes, True)


_ND = {
    "reduceSum": "SUM", "reduceMean": "AVG", "reduceProd": "PROD", "reduceSumSquare": "SUMSQUARE",
    "reduceL1": "L1", "reduceL2": "L2", "reduceMax": "MAX", "reduceMin": "MIN",
    "reduceLogSumExp": "LOGSUMEXP",
}


def _nd_axes(p, x: np.ndarray):
    return None if p.reduceAll or not len(p.axes) else tuple(int(a) for a in p.axes)


def _reduce_nd_layer(mode: str):
    def run(p, inputs, ctx: LayerContext):
        x = inputs[0]
        y = _REDUCE[mode](x, _nd_axes(p, x), bool(p.keepDims))
        return np.asarray(y, dtype=np.float32).reshape(np.shape(y) or (1,))
    return run


for _name, _mode in _ND.items():
    layer(_name)(_reduce_nd_layer(_mode))


@layer("reduceLogSum")
def reduce_log_sum(p, inputs, ctx: LayerContext):
    x = inputs[0]
    y = np.log(np.sum(x, axis=_nd_axes(p, x), keepdims=bool(p.keepDims)))
    return np.asarray(y, dtype=np.float32).reshape(np.shape(y) or (1,))


def _arg_layer(fn):
    def run(p, inputs, ctx: LayerContext):
        x = inputs[0]
        axis = int(p.axis)
        y = fn(x, axis=axis, keepdims=not p.removeDim or x.ndim == 1)
        return y.astype(np.float32)
    return run


layer("argMax")(_arg_layer(np.argmax))
layer("argMin")(_arg_layer(np.argmin))
