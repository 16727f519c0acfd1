"""Core ML emitters for comparisons, logic, where, cumsum and fill_like (specification 4, ND layout).

Core ML blobs are float: booleans are 1.0 / 0.0, which is what the comparison
and logical layers produce and what ``whereBroadcastable`` reads.
``is_nan`` is ``x != x``; ``is_inf`` is ``|x| == inf``.
"""
from __future__ import annotations

from kcc.backends.coreml.context import CoremlContext, coreml_emitter
from kcc.backends.coreml.emit_activation import unary
from kcc.ir import Node
from kcc.ops.shapes import norm_axis

_BINARY = {"greater": "greaterThan", "less": "lessThan", "equal": "equal", "greater_equal": "greaterEqual",
           "less_equal": "lessEqual", "logical_and": "logicalAnd", "logical_or": "logicalOr",
           "logical_xor": "logicalXor"}


def _nd(ctx: CoremlContext, node: Node, layer: str) -> None:
    ctx.need_nd(node, f"{node.op} (the {layer} layer)")
    ctx.require(4, node, f"the {layer} layer")


@coreml_emitter(*_BINARY)
def _binary(ctx: CoremlContext, node: Node) -> None:
    _nd(ctx, node, _BINARY[node.op])
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


@coreml_emitter("is_inf")
def _is_inf(ctx: CoremlContext, node: Node) -> None:
    _nd(ctx, node, "equal")
    a = ctx.tmp("abs")
    unary(ctx, "ABS", ctx.name(node.inputs[0]), a)
    _, p = ctx.layer("equal", [a], ctx.out(node))
    p.alpha = float("inf")


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
