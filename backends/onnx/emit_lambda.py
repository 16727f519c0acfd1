"""ONNX emitters for the lambda ops whose operands ONNX takes as inputs: one_hot, cumsum, fill_like.

(argmax/argmin, comparisons, logic and where are rows of kcc.formats.onnx_ops.)
"""
from __future__ import annotations

import numpy as np
from onnx import helper as onnx_helper

from kcc.backends.onnx.context import OnnxContext, onnx_emitter
from kcc.errors import ConversionError
from kcc.formats.onnx_ops import ELEM_TYPES
from kcc.ir import DTYPES, Node


@onnx_emitter("one_hot")
def _one_hot(ctx: OnnxContext, node: Node) -> None:
    """OneHot(indices, depth, [off, on]); lower_onnx_one_hot made the indices int64."""
    a = node.attrs
    if node.inputs[0].dtype != "i64":
        raise ConversionError(f"one_hot node {node.name} has {node.inputs[0].dtype} indices; onnxruntime's OneHot "
                              "reads int64 (the ONNX target's lower_onnx_one_hot pass casts them)")
    depth = ctx.const(np.asarray(a["depth"], dtype=np.int64), f"{node.name}_depth")
    values = ctx.const(np.asarray([a["off_value"], a["on_value"]], dtype=DTYPES[a["dtype"]]), f"{node.name}_values")
    ctx.add("OneHot", [ctx.name(node.inputs[0]), depth, values], [ctx.out(node)], hint=node.name, axis=a["axis"])


@onnx_emitter("cumsum")
def _cumsum(ctx: OnnxContext, node: Node) -> None:
    a = node.attrs
    axis = ctx.const(np.asarray(a["axis"], dtype=np.int64), f"{node.name}_axis")
    ctx.add("CumSum", [ctx.name(node.inputs[0]), axis], [ctx.out(node)], hint=node.name,
            exclusive=int(a["exclusive"]), reverse=int(a["reverse"]))


@onnx_emitter("nonzero")
def _nonzero(ctx: OnnxContext, node: Node) -> None:
    """ONNX NonZero gives one row per axis, (rank, count); the IR's table is (count, rank)."""
    (rows,) = ctx.add("NonZero", [ctx.name(node.inputs[0])], hint=f"{node.name}_by_axis")
    ctx.add("Transpose", [rows], [ctx.out(node)], hint=node.name, perm=[1, 0])


@onnx_emitter("fill_like")
def _fill_like(ctx: OnnxContext, node: Node) -> None:
    """ConstantOfShape(Shape(x)): the fill keeps x's symbolic dims."""
    (shape,) = ctx.add("Shape", [ctx.name(node.inputs[0])], hint=f"{node.name}_shape")
    value = onnx_helper.make_tensor("value", ELEM_TYPES[node.attrs["dtype"]], [1], [node.attrs["value"]])
    ctx.add("ConstantOfShape", [shape], [ctx.out(node)], hint=node.name, value=value)
