"""Core ML emitters for conv, conv_transpose, pooling, dense, batch norm and matmul.

Convolution and pooling layers work on the last three axes ``[C, H, W]``; a 1-D
IR tensor ``(N, C, L)`` is the blob ``(C, 1, L)`` in the rank-5 layout, and in
the ND layout it gets a unit H axis inserted around the layer (``around4d``).
3-D convolution and pooling are specification-5 layers (ND layout).
Weights are IR ``OIHW`` already, Core ML's order for convolutions; dense
weights ``(in, out)`` are transposed to innerProduct's ``(out, in)``. Dense
with computed weights or of rank > 4 and batch norm of rank > 4 were rewritten
by passes/lower_coreml_axes.py (matmul; a 4-D reshape).

conv_transpose (1-D, 2-D) is a ``convolution`` with ``isDeconvolution`` and an
explicit ``outputShape``; the full result is cropped by ``valid`` padding
amounts (IR ``pads``). Dilation is folded into the kernel (zeros inserted),
which Core ML's deconvolution lacks. Specification 1; 3-D is
``convolution3d`` (specification 5).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from kcc.backends.coreml.context import CoremlContext, coreml_emitter, rank5_check
from kcc.backends.coreml.emit_activation import apply_activation
from kcc.ir import Node, Value


def around4d(ctx: CoremlContext, node: Node, x: Value, build: Callable[[str, str], None]) -> None:
    """Run ``build(in_blob, out_blob)`` on a rank-4-like blob and apply the node's fused activation.

    In the ND layout a rank-2 ``(N, C)`` or rank-3 ``(N, C, L)`` value gets unit
    axes inserted before the layer (``(N, C, 1, 1)``, ``(N, C, 1, L)``) and
    squeezed after; the rank-5 layout's CHW blobs need nothing.
    """
    out = ctx.out(node)
    act = node.attrs.get("activation", "linear")
    final = out if act == "linear" else ctx.tmp("preact")
    if ctx.nd and x.rank in (2, 3):
        axes = [2, 3] if x.rank == 2 else [2]
        expanded, inner = ctx.tmp("4d_in"), ctx.tmp("4d_out")
        _, p = ctx.layer("expandDims", [ctx.name(x)], expanded)
        p.axes.extend(axes)
        build(expanded, inner)
        _, p = ctx.layer("squeeze", [inner], final)
        p.axes.extend(axes)
    else:
        build(ctx.name(x), final)
    if act != "linear":
        apply_activation(ctx, act, {}, final, out)


def _borders(params, pads_hw: list[tuple[int, int]]) -> None:
    for begin, end in pads_hw:
        edge = params.borderAmounts.add()
        edge.startEdgeSize = int(begin)
        edge.endEdgeSize = int(end)


def _hw(values: tuple[int, ...], fill: int) -> list[int]:
    """A 1-D window attribute as (H, W) = (fill, value); 2-D as is."""
    return [fill, int(values[0])] if len(values) == 1 else [int(v) for v in values]


def _pad_pairs(node: Node, n: int) -> list[tuple[int, int]]:
    pads = node.attrs.get("pads") or (0,) * (2 * n)
    pairs = [(pads[i], pads[i + n]) for i in range(n)]
    return [(0, 0)] + pairs if n == 1 else pairs


def _set_padding(ctx: CoremlContext, p, node: Node, n: int) -> None:
    if node.attrs.get("auto_pad") == "same":
        p.same.asymmetryMode = type(p.same).SamePaddingMode.Value("BOTTOM_RIGHT_HEAVY")
    else:
        p.valid.SetInParent()
        _borders(p.valid.paddingAmounts, _pad_pairs(node, n))


@rank5_check("conv", "conv_transpose", "max_pool", "avg_pool")
def _window_rank5(ctx: CoremlContext, node: Node) -> str | None:
    n = node.inputs[0].rank - 2
    return f"{n}-D {node.op} (specification-5 3-D layers are ND layers)" if n == 3 else None


@coreml_emitter("conv")
def _conv(ctx: CoremlContext, node: Node) -> None:
    x, w, b = node.inputs
    n = x.rank - 2
    if n == 3:
        _conv3d(ctx, node)
        return
    if not w.is_const or (b is not None and not b.is_const):
        raise ctx.fail(node, "a convolution with computed weights has no Core ML NeuralNetwork form")
    if n not in (1, 2):
        raise ctx.fail(node, f"{n}-D convolution is not supported")
    weights = w.const.reshape(w.shape[:2] + (1,) * (3 - n) + w.shape[2:]) if n == 1 else w.const

    def build(inp: str, out: str) -> None:
        _, p = ctx.layer("convolution", [inp], out)
        p.outputChannels = int(w.shape[0])
        p.kernelChannels = int(w.shape[1])
        p.nGroups = int(node.attrs["group"])
        p.kernelSize.extend(_hw(tuple(w.shape[2:]), 1))
        p.stride.extend(_hw(node.attrs["strides"] or (1,) * n, 1))
        p.dilationFactor.extend(_hw(node.attrs["dilations"] or (1,) * n, 1))
        _set_padding(ctx, p, node, n)
        ctx.weights(p.weights, weights)
        if b is not None:
            p.hasBias = True
            ctx.weights(p.bias, b.const)

    around4d(ctx, node, x, build)


def _conv3d(ctx: CoremlContext, node: Node) -> None:
    x, w, b = node.inputs
    ctx.need_nd(node, "3-D convolution")
    _, p = ctx.layer("convolution3d", [ctx.name(x)], ctx.out(node) if node.attrs["activation"] == "linear"
                     else ctx.tmp("preact"))
    p.outputChannels = int(w.shape[0])
    p.inputChannels = int(x.shape[1])
    p.nGroups = int(node.attrs["group"])
    p.kernelDepth, p.kernelHeight, p.kernelWidth = (int(k) for k in w.shape[2:])
    p.strideDepth, p.strideHeight, p.strideWidth = node.attrs["strides"] or (1, 1, 1)
    p.dilationDepth, p.dilationHeight, p.dilationWidth = node.attrs["dilations"] or (1, 1, 1)
    pad3d(p, node)
    ctx.weights(p.weights, w.const)
    if b is not None:
        p.hasBias = True
        ctx.weights(p.bias, b.const)
    ctx.require(5, node, "the convolution3d layer")
    if node.attrs["activation"] != "linear":
        apply_activation(ctx, node.attrs["activation"], {}, _last_output(ctx), ctx.out(node))


def _last_output(ctx: CoremlContext) -> str:
    return ctx.network.layers[-1].output[0]


def pad3d(p, node: Node, pads: tuple[int, ...] | None = None) -> None:
    """3-D padding: SAME, or CUSTOM amounts from the IR ``pads`` (front, top, left, back, bottom, right)."""
    values = p.DESCRIPTOR.fields_by_name["paddingType"].enum_type.values_by_name
    if pads is None and node.attrs.get("auto_pad") == "same":
        p.paddingType = values["SAME"].number
        return
    p.paddingType = values["CUSTOM"].number
    pads = pads if pads is not None else (node.attrs.get("pads") or (0,) * 6)
    (p.customPaddingFront, p.customPaddingTop, p.customPaddingLeft,
     p.customPaddingBack, p.customPaddingBottom, p.customPaddingRight) = (int(v) for v in pads)


_POOL_TYPES = {"max_pool": "MAX", "avg_pool": "AVERAGE"}


@coreml_emitter("max_pool", "avg_pool")
def _pool(ctx: CoremlContext, node: Node) -> None:
    x = node.inputs[0]
    kernel = node.attrs["kernel"]
    n = len(kernel)
    if n == 3:
        _pool3d(ctx, node)
        return

    def build(inp: str, out: str) -> None:
        _, p = ctx.layer("pooling", [inp], out)
        p.type = type(p).PoolingType.Value(_POOL_TYPES[node.op])
        p.kernelSize.extend(_hw(kernel, 1))
        p.stride.extend(_hw(node.attrs["strides"] or (1,) * n, 1))
        _set_padding(ctx, p, node, n)
        if node.op == "avg_pool":
            p.avgPoolExcludePadding = not node.attrs["count_include_pad"]

    around4d(ctx, node, x, build)


def _pool3d(ctx: CoremlContext, node: Node) -> None:
    x = node.inputs[0]
    ctx.need_nd(node, "3-D pooling")
    _, p = ctx.layer("pooling3d", [ctx.name(x)], ctx.out(node))
    p.type = type(p).PoolingType3D.Value(_POOL_TYPES[node.op])
    p.kernelDepth, p.kernelHeight, p.kernelWidth = node.attrs["kernel"]
    p.strideDepth, p.strideHeight, p.strideWidth = node.attrs["strides"] or (1, 1, 1)
    pad3d(p, node)
    if node.op == "avg_pool":
        p.countExcludePadding = not node.attrs["count_include_pad"]
    ctx.require(5, node, "the pooling3d layer")


# ------------------------------------------------------------- conv_transpose
def _dilate(w: np.ndarray, dil: tuple[int, ...]) -> np.ndarray:
    if all(d == 1 for d in dil):
        return w
    k = w.shape[2:]
    out = np.zeros(w.shape[:2] + tuple((kk - 1) * d + 1 for kk, d in zip(k, dil)), w.dtype)
    out[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dil)] = w
    return out


@coreml_emitter("conv_transpose")
def _conv_transpose(ctx: CoremlContext, node: Node) -> None:
    x, w, b = node.inputs
    n = x.rank - 2
    if not w.is_const or (b is not None and not b.is_const):
        raise ctx.fail(node, "a transposed convolution with computed weights has no Core ML form")
    if n == 3:
        _conv_transpose3d(ctx, node)
        return
    if n not in (1, 2):
        raise ctx.fail(node, f"{n}-D transposed convolution has no Core ML NeuralNetwork layer")
    strides = node.attrs["strides"] or (1,) * n
    dil = node.attrs["dilations"] or (1,) * n
    pads = node.attrs["pads"] or (0,) * (2 * n)
    weights = _dilate(w.const, dil)
    if n == 1:
        weights = weights.reshape(weights.shape[:2] + (1,) + weights.shape[2:])
    kernel = weights.shape[2:]
    group = node.attrs["group"]
    out_dims = ctx.dims(node.outputs[0])[2:]
    hw_out = [1] + list(out_dims) if n == 1 else list(out_dims)
    hw_stride = [1] + list(strides) if n == 1 else list(strides)
    begins = [0] + [pads[0]] if n == 1 else [pads[0], pads[1]]

    def build(inp: str, out: str) -> None:
        _, p = ctx.layer("convolution", [inp], out)
        p.isDeconvolution = True
        p.outputChannels = int(w.shape[1] * group)
        p.kernelChannels = int(w.shape[0])
        p.nGroups = int(group)
        p.kernelSize.extend(int(k) for k in kernel)
        p.stride.extend(hw_stride)
        p.dilationFactor.extend([1, 1])
        p.valid.SetInParent()
        for begin in begins:  # crop at the start; outputShape fixes the end (output_padding included)
            edge = p.valid.paddingAmounts.borderAmounts.add()
            edge.startEdgeSize, edge.endEdgeSize = int(begin), 0
        p.outputShape.extend(int(d) for d in hw_out)
        ctx.weights(p.weights, weights)
        if b is not None:
            p.hasBias = True
            ctx.weights(p.bias, b.const)

    around4d(ctx, node, x, build)


def _conv_transpose3d(ctx: CoremlContext, node: Node) -> None:
    """convolution3d with isDeconvolution (specification 5): crop at the start, outputShape at the end."""
    x, w, b = node.inputs
    ctx.need_nd(node, "3-D transposed convolution")
    weights = _dilate(w.const, node.attrs["dilations"] or (1, 1, 1))
    _, p = ctx.layer("convolution3d", [ctx.name(x)], ctx.out(node))
    p.isDeconvolution = True
    p.inputChannels = int(w.shape[0])
    p.outputChannels = int(w.shape[1] * node.attrs["group"])
    p.nGroups = int(node.attrs["group"])
    p.kernelDepth, p.kernelHeight, p.kernelWidth = (int(k) for k in weights.shape[2:])
    p.strideDepth, p.strideHeight, p.strideWidth = node.attrs["strides"] or (1, 1, 1)
    p.dilationDepth = p.dilationHeight = p.dilationWidth = 1
    begins = tuple((node.attrs["pads"] or (0,) * 6)[:3])
    pad3d(p, node, begins + (0, 0, 0))
    p.outputShape.extend(int(d) for d in ctx.dims(node.outputs[0])[2:])
    ctx.weights(p.weights, weights)
    if b is not None:
        p.hasBias = True
        ctx.weights(p.bias, b.const)
    ctx.require(5, node, "the convolution3d layer")


@coreml_emitter("dense")
def _dense(ctx: CoremlContext, node: Node) -> None:
    """Rank 2: innerProduct. Rank 3-4 (features on axis 1): a 1x1 convolution.

    Computed weights and rank > 4 were rewritten as matmul by lower_coreml_axes.
    """
    x, w, b = node.inputs
    if not w.is_const or (b is not None and not b.is_const) or x.rank > 4:
        raise ctx.fail(node, "dense with computed weights or on a rank > 4 tensor reaches the emitter: "
                             "run the Core ML lowering (lower_coreml_axes) first")
    cin, cout = (int(d) for d in w.shape)
    if x.rank == 2:
        def build_ip(inp: str, out: str) -> None:
            _, p = ctx.layer("innerProduct", [inp], out)
            p.inputChannels, p.outputChannels = cin, cout
            ctx.weights(p.weights, np.ascontiguousarray(w.const.T))
            if b is not None:
                p.hasBias = True
                ctx.weights(p.bias, b.const)
        _with_activation(ctx, node, x, build_ip)
        return

    def build(inp: str, out: str) -> None:
        _, p = ctx.layer("convolution", [inp], out)
        p.outputChannels, p.kernelChannels, p.nGroups = cout, cin, 1
        p.kernelSize.extend([1, 1])
        p.stride.extend([1, 1])
        p.valid.SetInParent()
        ctx.weights(p.weights, np.ascontiguousarray(w.const.T).reshape(cout, cin, 1, 1))
        if b is not None:
            p.hasBias = True
            ctx.weights(p.bias, b.const)

    around4d(ctx, node, x, build)


def _with_activation(ctx: CoremlContext, node: Node, x: Value, build: Callable[[str, str], None]) -> None:
    out = ctx.out(node)
    act = node.attrs.get("activation", "linear")
    final = out if act == "linear" else ctx.tmp("preact")
    build(ctx.name(x), final)
    if act != "linear":
        apply_activation(ctx, act, {}, final, out)


@coreml_emitter("batch_norm")
def _batch_norm(ctx: CoremlContext, node: Node) -> None:
    x, scale, bias, mean, var = node.inputs
    if not all(v.is_const for v in (scale, bias, mean, var)):
        raise ctx.fail(node, "batch norm parameters must be constants")
    if x.rank > 4:
        raise ctx.fail(node, f"batch norm of rank {x.rank} reaches the emitter: run the Core ML lowering "
                             f"(lower_coreml_axes) first")

    def build(inp: str, out: str) -> None:
        _, p = ctx.layer("batchnorm", [inp], out)
        p.channels = int(x.shape[1])
        p.epsilon = float(node.attrs["epsilon"])
        ctx.weights(p.gamma, scale.const)
        ctx.weights(p.beta, bias.const)
        ctx.weights(p.mean, mean.const)
        ctx.weights(p.variance, var.const)

    around4d(ctx, node, x, build)


@rank5_check("matmul")
def _matmul_rank5(ctx: CoremlContext, node: Node) -> str | None:
    return "matmul (batchedMatmul is an ND layer)"


@coreml_emitter("matmul")
def _matmul(ctx: CoremlContext, node: Node) -> None:
    """batchedMatmul: a constant rank-2 ``b`` rides in the layer's weights, else two inputs."""
    a, b = node.inputs
    ctx.need_nd(node, "matmul (batchedMatmul)")
    if b.is_const and b.rank == 2 and a.rank >= 2:
        _, p = ctx.layer("batchedMatmul", [ctx.name(a)], ctx.out(node))
        p.weightMatrixFirstDimension, p.weightMatrixSecondDimension = (int(d) for d in b.shape)
        ctx.weights(p.weights, np.ascontiguousarray(b.const.T))   # [X1, X2] is stored column-major
    else:
        ctx.layer("batchedMatmul", [ctx.name(a), ctx.name(b)], ctx.out(node))
    ctx.require(4, node, "batchedMatmul")
