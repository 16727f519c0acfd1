"""Core ML emitters for argmax/argmin, one_hot and nonzero (specification-4 ND layers)."""
from __future__ import annotations

from kcc.backends.coreml.context import CoremlContext, coreml_emitter, rank5_check
from kcc.ir import Node
from kcc.ops.shapes import norm_axis


@rank5_check("argmax", "argmin", "one_hot", "nonzero")
def _rank5(ctx: CoremlContext, node: Node) -> str | None:
    return f"{node.op} (an ND layer)"


@coreml_emitter("argmax", "argmin")
def _arg(ctx: CoremlContext, node: Node) -> None:
    x = node.inputs[0]
    ctx.need_nd(node, node.op)
    _, p = ctx.layer("argMax" if node.op == "argmax" else "argMin", [ctx.name(x)], ctx.out(node))
    p.axis = norm_axis(node.attrs["axis"], x.rank)
    p.removeDim = not node.attrs["keepdims"]
    ctx.require(4, node, f"the {node.op} layer")


@coreml_emitter("one_hot")
def _one_hot(ctx: CoremlContext, node: Node) -> None:
    idx = node.inputs[0]
    ctx.need_nd(node, "one_hot")
    _, p = ctx.layer("oneHot", [ctx.name(idx)], ctx.out(node))
    p.oneHotVectorSize = int(node.attrs["depth"])
    p.axis = norm_axis(node.attrs["axis"], idx.rank + 1)
    p.onValue = float(node.attrs["on_value"])
    p.offValue = float(node.attrs["off_value"])
    ctx.require(4, node, "the oneHot layer")


@coreml_emitter("nonzero")
def _nonzero(ctx: CoremlContext, node: Node) -> None:
    """whereNonZero: the (count, rank) table of indices (as floats, like every Core ML array)."""
    ctx.need_nd(node, "nonzero")
    ctx.layer("whereNonZero", [ctx.name(node.inputs[0])], ctx.out(node))
    ctx.require(4, node, "the whereNonZero layer")
