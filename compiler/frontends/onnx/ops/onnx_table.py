"""The one-to-one ONNX handlers: each importable row of kcc.formats.onnx_ops, read from ONNX to IR.

The ONNX emitter writes the same rows the other way (kcc.backends.onnx.emit_table):
one IR node per ONNX node, attributes renamed and converted, an omitted one
taking ONNX's default. Rows marked ``imported=False`` have handlers of their own
(onnx_math.py, onnx_nn.py, onnx_tensor.py) that still take the IR op from the row.
"""
from __future__ import annotations

from kcc.formats.onnx_ops import BY_ONNX, ROWS, ir_attrs
from kcc.frontends.onnx.registry import OnnxNodeContext, onnx_op
from kcc.ir import Value


def import_row(ctx: OnnxNodeContext) -> Value:
    """The IR op of the node's row, on the node's inputs, with its attributes in IR spelling."""
    row = BY_ONNX[ctx.node.op_type]
    try:
        attrs = ir_attrs(row, ctx.attrs)
    except KeyError as e:
        raise ctx.fail(f"attribute {e.args[0]!r} is required") from None
    return getattr(ctx.op, row.ir)(*ctx.values(), **attrs)


onnx_op(*(r.onnx for r in ROWS if r.imported))(import_row)
