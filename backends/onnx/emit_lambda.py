"""ONNX emitters for the ops of compiler/ops/lambda_ops.py (what traced Lambda bodies need)."""
from __future__ import annotations

import numpy as np
from onnx import helper as onnx_helper

from kcc.backends.onnx.context import OnnxContext, onnx_emitter
from kcc.ir import DTYPES, Node

_ONNX_ELEM = {"f16": 10, "f32": 1, "f64": 11, "i8": 3, "i32": 6, "i64": 7, "u8": 2, "bool": 9}


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


_COMPARE = {"greater": "Greater", "less": "Less", "equal": "Equal", "greater_equal": "GreaterOrEqual",
            "less_equal": "LessOrEqual", "logical_and": "And", "logical_or": "Or", "logical_xor": "Xor",
            "logical_not": "Not", "is_nan": "IsNaN", "is_inf": "IsInf", "where": "Where"}


@onnx_emitter(*_COMPARE)
def _compare(ctx: OnnxContext, node: Node) -> None:
    ctx.add(_COMPARE[node.op], ctx.ins(node), [ctx.out(node)], hint=node.name)


@onnx_emitter("cumsum")
def _cumsum(ctx: OnnxContext, node: Node) -> None:
    a = node.attrs
    axis = ctx.const(np.asarray(a["axis"], dtype=np.int64), f"{node.name}_axis")
    ctx.add("CumSum", [ctx.name(node.inputs[0]), axis], [ctx.out(node)], hint=node.name,
            exclusive=int(a["exclusive"]), reverse=int(a["reverse"]))


@onnx_emitter("fill_like")
def _fill_like(ctx: OnnxContext, node: Node) -> None:
    (shape,) = ctx.add("Shape", [ctx.name(node.inputs[0])], hint=f"{node.name}_shape")
    value = onnx_helper.make_tensor("value", _ONNX_ELEM[node.attrs["dtype"]], [1], [node.attrs["value"]])
    ctx.add("ConstantOfShape", [shape], [ctx.out(node)], hint=node.name, value=value)
