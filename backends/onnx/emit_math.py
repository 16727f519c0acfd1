"""ONNX emitters for clip (bounds as inputs) and reductions (axes as attribute or input, by opset)."""
from __future__ import annotations

import math

import numpy as np

from kcc.backends.onnx.context import OnnxContext, onnx_emitter
from kcc.formats.onnx_ops import BY_IR, ROWS
from kcc.ir import DTYPES, Node


@onnx_emitter("clip")
def _clip(ctx: OnnxContext, node: Node) -> None:
    """Clip's bounds are inputs; an infinite bound is left out."""
    dt = DTYPES[node.inputs[0].dtype]
    lo, hi = node.attrs["min"], node.attrs["max"]
    ins = [ctx.name(node.inputs[0]),
           ctx.const(np.asarray(lo, dt), "clip_min") if math.isfinite(lo) else "",
           ctx.const(np.asarray(hi, dt), "clip_max") if math.isfinite(hi) else ""]
    ctx.add("Clip", ins, [ctx.out(node)], hint=node.name)


# The reductions (rows of kcc.formats.onnx_ops that name the ONNX op; this module writes the axes).
_REDUCE = tuple(r.ir for r in ROWS if r.ir.startswith("reduce_"))


def emit_reduce(ctx: OnnxContext, op_type: str, x: str, out: str, axes, keepdims: bool) -> None:
    """Reduce with axes as an attribute or an input, whichever the opset wants."""
    axes_as_input = ctx.opset >= 18 or op_type == "ReduceSum"
    if axes_as_input:
        ctx.add(op_type, [x, ctx.ints(list(axes), "axes")], [out], keepdims=int(keepdims))
    else:
        ctx.add(op_type, [x], [out], axes=list(axes), keepdims=int(keepdims))


@onnx_emitter(*_REDUCE)
def _reduce(ctx: OnnxContext, node: Node) -> None:
    """A mean/max over every spatial axis (keepdims) is GlobalAveragePool/GlobalMaxPool; else ReduceX."""
    x = node.inputs[0]
    axes = [a % x.rank for a in node.attrs["axes"]]
    spatial = list(range(2, x.rank))
    if node.op in ("reduce_mean", "reduce_max") and axes == spatial and node.attrs["keepdims"] and x.rank > 2:
        ctx.add({"reduce_mean": "GlobalAveragePool", "reduce_max": "GlobalMaxPool"}[node.op], [ctx.name(x)],
                [ctx.out(node)])
        return
    emit_reduce(ctx, BY_IR[node.op].onnx, ctx.name(x), ctx.out(node), axes, node.attrs["keepdims"])
