"""The one-to-one ONNX emitters: each row of kcc.formats.onnx_ops is one ONNX node per IR node.

The importer reads the same rows the other way (kcc.frontends.onnx.ops.onnx_table).
A row whose ONNX op is newer than the target opset has no form here: the
lowering passes (passes/lower_onnx_*.py) rewrite such ops first.
"""
from __future__ import annotations

from kcc.backends.onnx.context import OnnxContext, onnx_emitter
from kcc.errors import ConversionError
from kcc.formats.onnx_ops import BY_IR, ROWS, onnx_attrs
from kcc.ir import Node


@onnx_emitter(*(r.ir for r in ROWS if r.emitted))
def emit_row(ctx: OnnxContext, node: Node) -> None:
    row = BY_IR[node.op]
    if ctx.opset < row.since:
        raise ConversionError(
            f"IR op {node.op} of node {node.name} is ONNX {row.onnx}, which needs opset >= {row.since} "
            f"(emitting {ctx.opset}); run the ONNX target's pipeline with opset={ctx.opset} first, whose "
            f"lowering passes rewrite it")
    ctx.add(row.onnx, ctx.ins(node), [ctx.out(node)], hint=node.name, **onnx_attrs(row, node.attrs))
