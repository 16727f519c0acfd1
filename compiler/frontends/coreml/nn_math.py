"""NeuralNetwork math layers (specification 4) with no one-to-one IR op, spelled with IR ops.

* ``tanh`` is the IR's tanh; ``sinh = (e^x - e^-x) / 2``, ``cosh = (e^x + e^-x) / 2``,
  ``exp2 = 2^x``;
* ``round``: Core ML's runtime rounds halves away from zero
  (``sign(x) * floor(|x| + 0.5)``), not to even as the IR's ``round`` does;
* ``floorDivBroadcastable = floor(a / b)``, ``modBroadcastable = a - floor(a / b) * b``
  (numpy's ``mod``: the sign of ``b``);
* ``reduceL1``, ``reduceL2``, ``reduceSumSquare``, ``reduceLogSum``,
  ``reduceLogSumExp`` from reduce_sum / reduce_max.
"""
from __future__ import annotations

import numpy as np

from kcc.frontends.coreml.nn_context import NNLayerContext, nn_layer
from kcc.ir import Value


def _c(ctx: NNLayerContext, v: float) -> Value:
    return ctx.const(np.float32(v), "c")


@nn_layer("tanh")
def _tanh(ctx: NNLayerContext) -> Value:
    return ctx.node("tanh", [ctx.x])


@nn_layer("sinh", "cosh")
def _hyperbolic(ctx: NNLayerContext) -> Value:
    e, em = ctx.node("exp", [ctx.x]), ctx.node("exp", [ctx.node("neg", [ctx.x])])
    s = ctx.node("sub" if ctx.kind == "sinh" else "add", [e, em])
    return ctx.node("mul", [s, _c(ctx, 0.5)])


@nn_layer("exp2")
def _exp2(ctx: NNLayerContext) -> Value:
    return ctx.node("pow", [_c(ctx, 2.0), ctx.x])


@nn_layer("round")
def _round(ctx: NNLayerContext) -> Value:
    mag = ctx.node("floor", [ctx.node("add", [ctx.node("abs", [ctx.x]), _c(ctx, 0.5)])])
    return ctx.node("mul", [ctx.node("sign", [ctx.x]), mag])


@nn_layer("floorDivBroadcastable", "modBroadcastable")
def _floor_div_mod(ctx: NNLayerContext) -> Value:
    a, b = ctx.inputs[:2]
    q = ctx.node("floor", [ctx.node("div", [a, b])])
    return q if ctx.kind == "floorDivBroadcastable" else ctx.node("sub", [a, ctx.node("mul", [q, b])])


@nn_layer("reduceL1", "reduceL2", "reduceSumSquare", "reduceLogSum", "reduceLogSumExp")
def _reduce_composed(ctx: NNLayerContext) -> Value:
    p = ctx.params
    x = ctx.x
    axes = tuple(range(x.rank)) if p.reduceAll else tuple(int(a) % x.rank for a in p.axes)
    kw = {"axes": axes, "keepdims": bool(p.keepDims)}
    if ctx.kind == "reduceL1":
        return ctx.node("reduce_sum", [ctx.node("abs", [x])], kw)
    if ctx.kind in ("reduceL2", "reduceSumSquare"):
        s = ctx.node("reduce_sum", [ctx.node("square", [x])], kw)
        return ctx.node("sqrt", [s]) if ctx.kind == "reduceL2" else s
    if ctx.kind == "reduceLogSum":
        return ctx.node("log", [ctx.node("reduce_sum", [x], kw)])
    m = ctx.node("reduce_max", [x], {"axes": axes, "keepdims": True})
    s = ctx.node("reduce_sum", [ctx.node("exp", [ctx.node("sub", [x, m])])], {"axes": axes, "keepdims": True})
    y = ctx.node("add", [ctx.node("log", [s]), m])
    return y if p.keepDims else ctx.node("squeeze", [y], {"axes": axes})
