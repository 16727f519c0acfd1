"""ONNX emitters for conv, pooling, dense, batch norm and matmul."""
from __future__ import annotations

import numpy as np

from kcc.backends.onnx.context import OnnxContext, onnx_emitter
from kcc.backends.onnx.emit_math import emit_activation
from kcc.ir import Node


def _finish(ctx: OnnxContext, node: Node, produce) -> None:
    """Emit the op into the node's output, or into a temporary then its fused activation."""
    act = node.attrs.get("activation", "linear")
    if act == "linear":
        produce(ctx.out(node))
        return
    tmp = ctx.fresh(f"{node.name}_preact")
    produce(tmp)
    emit_activation(ctx, act, tmp, ctx.out(node), {}, node.outputs[0].dtype)


def _window_attrs(node: Node, kernel) -> dict:
    n = len(kernel)
    attrs = {"kernel_shape": list(kernel), "strides": list(node.attrs.get("strides") or (1,) * n)}
    if node.attrs.get("auto_pad") == "same":
        attrs["auto_pad"] = "SAME_UPPER"
    else:
        attrs["pads"] = list(node.attrs.get("pads") or (0,) * (2 * n))
    return attrs


@onnx_emitter("conv")
def _conv(ctx: OnnxContext, node: Node) -> None:
    w = node.inputs[1]
    kernel = w.shape[2:]
    attrs = _window_attrs(node, kernel)
    attrs["dilations"] = list(node.attrs["dilations"] or (1,) * len(kernel))
    attrs["group"] = node.attrs["group"]
    inputs = [ctx.name(v) for v in node.inputs if v is not None]
    _finish(ctx, node, lambda out: ctx.add("Conv", inputs, [out], hint=node.name, **attrs))


@onnx_emitter("max_pool", "avg_pool")
def _pool(ctx: OnnxContext, node: Node) -> None:
    attrs = _window_attrs(node, node.attrs["kernel"])
    if node.op == "avg_pool":
        attrs["count_include_pad"] = int(node.attrs["count_include_pad"])
        ctx.add("AveragePool", ctx.ins(node), [ctx.out(node)], hint=node.name, **attrs)
    else:
        ctx.add("MaxPool", ctx.ins(node), [ctx.out(node)], hint=node.name, **attrs)


@onnx_emitter("dense")
def _dense(ctx: OnnxContext, node: Node) -> None:
    """Rank 2: Gemm. Rank > 2 (features on axis 1): a 1x1 Conv, which needs no transpose."""
    x, w, b = node.inputs
    if x.rank == 2:
        ins = [ctx.name(x), ctx.name(w)] + ([ctx.name(b)] if b is not None else [])
        _finish(ctx, node, lambda out: ctx.add("Gemm", ins, [out], hint=node.name))
        return
    if not w.is_const:
        wt = ctx.add("Transpose", [ctx.name(w)], perm=[1, 0], hint=f"{node.name}_wt")[0]
        wk = ctx.add("Reshape", [wt, ctx.ints(list(w.shape[::-1]) + [1] * (x.rank - 2), "shape")],
                     hint=f"{node.name}_wk")[0]
    else:
        wk = ctx.const(np.ascontiguousarray(w.const.T).reshape(w.shape[::-1] + (1,) * (x.rank - 2)),
                       f"{w.name}_1x1")
    ins = [ctx.name(x), wk] + ([ctx.name(b)] if b is not None else [])
    _finish(ctx, node, lambda out: ctx.add("Conv", ins, [out], hint=node.name, kernel_shape=[1] * (x.rank - 2)))


@onnx_emitter("batch_norm")
def _batch_norm(ctx: OnnxContext, node: Node) -> None:
    ctx.add("BatchNormalization", ctx.ins(node), [ctx.out(node)], hint=node.name, epsilon=node.attrs["epsilon"])


@onnx_emitter("matmul")
def _matmul(ctx: OnnxContext, node: Node) -> None:
    ctx.add("MatMul", ctx.ins(node), [ctx.out(node)], hint=node.name)
