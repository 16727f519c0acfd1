"""ONNX emitters for the ops traced Lambda bodies need: one_hot, argmax, argmin."""
from __future__ import annotations

import numpy as np

from kcc.backends.onnx.context import OnnxContext, onnx_emitter
from kcc.ir import DTYPES, Node


@onnx_emitter("one_hot")
def _one_hot(ctx: OnnxContext, node: Node) -> None:
    a = node.attrs
    depth = ctx.const(np.asarray(a["depth"], dtype=np.int64), f"{node.name}_depth")
    values = ctx.const(np.asarray([a["off_value"], a["on_value"]], dtype=DTYPES[a["dtype"]]), f"{node.name}_values")
    idx = ctx.name(node.inputs[0])
    if node.inputs[0].dtype != "i64":
        # onnxruntime implements OneHot for int64 indices with float/int64 outputs, not int32 indices.
        (idx,) = ctx.add("Cast", [idx], hint=f"{node.name}_i64", to=7)
    ctx.add("OneHot", [idx, depth, values], [ctx.out(node)], hint=node.name, axis=a["axis"])


@onnx_emitter("argmax", "argmin")
def _arg(ctx: OnnxContext, node: Node) -> None:
    ctx.add({"argmax": "ArgMax", "argmin": "ArgMin"}[node.op], ctx.ins(node), [ctx.out(node)], hint=node.name,
            axis=node.attrs["axis"], keepdims=int(node.attrs["keepdims"]))
