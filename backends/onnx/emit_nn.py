"""ONNX emitters for conv, conv_transpose, pooling, dense (Gemm), layer_norm and rms_norm.

Each is one ONNX node; window attributes are written out. The lowering passes
have already split off fused activations (lower_onnx_fused_activation), turned
a rank > 2 dense into a 1x1 conv (lower_onnx_dense) and written out a
layer_norm LayerNormalization cannot express (lower_onnx_layer_norm); a node
that reaches here in another form is refused, never emitted wrong.
"""
from __future__ import annotations

import numpy as np

from kcc.backends.onnx.context import OnnxContext, onnx_emitter
from kcc.errors import ConversionError
from kcc.formats.onnx_ops import RMS_NORMALIZATION_SINCE
from kcc.ir import DTYPES, Node


def _lowered(node: Node, ok: bool, what: str, lowering: str) -> None:
    if not ok:
        raise ConversionError(f"{node.op} node {node.name} has {what}, which ONNX {node.op} cannot express; "
                              f"the ONNX target's {lowering} pass rewrites it (run the target's pipeline first)")


def _no_activation(node: Node) -> None:
    act = node.attrs.get("activation", "linear")
    _lowered(node, act == "linear", f"a fused activation {act!r}", "lower_onnx_fused_activation")


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
    _no_activation(node)
    w = node.inputs[1]
    kernel = w.shape[2:]
    attrs = _window_attrs(node, kernel)
    attrs["dilations"] = list(node.attrs["dilations"] or (1,) * len(kernel))
    attrs["group"] = node.attrs["group"]
    inputs = [ctx.name(v) for v in node.inputs if v is not None]
    ctx.add("Conv", inputs, [ctx.out(node)], hint=node.name, **attrs)


@onnx_emitter("conv_transpose")
def _conv_transpose(ctx: OnnxContext, node: Node) -> None:
    w = node.inputs[1]
    n = w.rank - 2
    a = node.attrs
    attrs = {"kernel_shape": list(w.shape[2:]), "strides": list(a["strides"] or (1,) * n),
             "dilations": list(a["dilations"] or (1,) * n), "pads": list(a["pads"] or (0,) * (2 * n)),
             "group": a["group"]}
    if a["output_padding"]:
        attrs["output_padding"] = list(a["output_padding"])
    ins = [ctx.name(v) for v in node.inputs if v is not None]
    ctx.add("ConvTranspose", ins, [ctx.out(node)], hint=node.name, **attrs)


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
    """Gemm (rank-2 input; lower_onnx_dense made every other dense a 1x1 conv)."""
    _no_activation(node)
    x, w, b = node.inputs
    _lowered(node, x.rank == 2, f"a rank-{x.rank} input", "lower_onnx_dense")
    ins = [ctx.name(x), ctx.name(w)] + ([ctx.name(b)] if b is not None else [])
    ctx.add("Gemm", ins, [ctx.out(node)], hint=node.name)


@onnx_emitter("layer_norm")
def _layer_norm(ctx: OnnxContext, node: Node) -> None:
    """LayerNormalization over the trailing axes; an absent scale is a weight of ones."""
    x, scale, bias = node.inputs
    r = x.rank
    axes = tuple(sorted(a % r for a in node.attrs["axes"]))
    suffix = bool(axes) and axes == tuple(range(r - len(axes), r))
    _lowered(node, suffix, f"axes {axes} (not the trailing axes)", "lower_onnx_layer_norm")
    s = ctx.name(scale) if scale is not None else \
        ctx.const(np.ones([x.shape[a] for a in axes], DTYPES[x.dtype]), "ln_ones")
    ins = [ctx.name(x), s] + ([ctx.name(bias)] if bias is not None else [])
    ctx.add("LayerNormalization", ins, [ctx.out(node)], hint=node.name, axis=axes[0],
            epsilon=node.attrs["epsilon"])


@onnx_emitter("rms_norm")
def _rms_norm(ctx: OnnxContext, node: Node) -> None:
    """RMSNormalization (opset 23) over the trailing axes; an absent scale is a weight of ones."""
    x, scale = node.inputs
    r = x.rank
    axes = tuple(sorted(a % r for a in node.attrs["axes"]))
    suffix = bool(axes) and axes == tuple(range(r - len(axes), r))
    _lowered(node, suffix and ctx.opset >= RMS_NORMALIZATION_SINCE,
             f"axes {axes} at opset {ctx.opset} (RMSNormalization: trailing axes, opset {RMS_NORMALIZATION_SINCE})",
             "lower_onnx_rms_norm")
    s = ctx.name(scale) if scale is not None else \
        ctx.const(np.ones([x.shape[a] for a in axes], DTYPES[x.dtype]), "rms_ones")
    ctx.add("RMSNormalization", [ctx.name(x), s], [ctx.out(node)], hint=node.name, axis=axes[0],
            epsilon=node.attrs["epsilon"])
