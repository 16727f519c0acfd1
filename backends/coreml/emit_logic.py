"""Core ML emitters for comparisons, logic, where, cumsum and fill_like (specification 4, ND layout).

Core ML blobs are float: booleans are 1.0 / 0.0, which is what the comparison
and logical layers produce and what ``whereBroadcastable`` reads. A comparison
with a one-value constant holds it in the layer's ``alpha``. ``is_nan`` is
``notEqual(x, x)``; ``is_inf`` was rewritten as ``equal(|x|, inf)`` by
passes/lower_coreml_math.py. None of these layers exists in the rank-5 layout.
"""
from __future__ import annotations

import numpy as np

from kcc.backends.coreml.context import CoremlContext, coreml_emitter, rank5_check
from kcc.formats.coreml_layers import COMPARISONS, LOGICAL
from kcc.ir import Node
from kcc.ops.shapes import norm_axis

_BINARY = {**COMPARISONS, **LOGICAL}


_ND_ONLY = tuple(_BINARY) + ("logical_not", "is_nan", "where", "cumsum", "fill_like")


@rank5_check(*_ND_ONLY)
def _rank5(ctx: CoremlContext, node: Node) -> str | None:
    return f"{node.op} (comparison, logical and selection layers are ND layers)"


def _nd(ctx: CoremlContext, node: Node, layer: str) -> None:
    ctx.need_nd(node, f"{node.op} (the {layer} layer)")
    ctx.require(4, node, f"the {layer} layer")


@coreml_emitter(*_BINARY)
def _binary(ctx: CoremlContext, node: Node) -> None:
    _nd(ctx, node, _BINARY[node.op])
    a, b = node.inputs
    if (node.op in COMPARISONS and b.is_const and b.const.size == 1 and not a.is_const
            and node.outputs[0].shape == a.shape):
        _, p = ctx.layer(_BINARY[node.op], [ctx.name(a)], ctx.out(node))
        p.alpha = float(np.asarray(b.const).reshape(-1)[0])
        return
    ctx.layer(_BINARY[node.op], [ctx.name(v) for v in node.inputs], ctx.out(node))


@coreml_emitter("logical_not")
def _not(ctx: CoremlContext, node: Node) -> None:
    _nd(ctx, node, "logicalNot")
    ctx.layer("logicalNot", [ctx.name(node.inputs[0])], ctx.out(node))


@coreml_emitter("is_nan")
def _is_nan(ctx: CoremlContext, node: Node) -> None:
    _nd(ctx, node, "notEqual")
    x = ctx.name(node.inputs[0])
    ctx.layer("notEqual", [x, x], ctx.out(node))


@coreml_emitter("where")
def _where(ctx: CoremlContext, node: Node) -> None:
    _nd(ctx, node, "whereBroadcastable")
    ctx.layer("whereBroadcastable", [ctx.name(v) for v in node.inputs], ctx.out(node))


@coreml_emitter("cumsum")
def _cumsum(ctx: CoremlContext, node: Node) -> None:
    _nd(ctx, node, "cumSum")
    x = node.inputs[0]
    _, p = ctx.layer("cumSum", [ctx.name(x)], ctx.out(node))
    p.axis = norm_axis(node.attrs["axis"], x.rank)
    p.excludeFinalSum = bool(node.attrs["exclusive"])
    p.reverse = bool(node.attrs["reverse"])


@coreml_emitter("fill_like")
def _fill_like(ctx: CoremlContext, node: Node) -> None:
    _nd(ctx, node, "fillLike")
    _, p = ctx.layer("fillLike", [ctx.name(node.inputs[0])], ctx.out(node))
    p.value = float(node.attrs["value"])
