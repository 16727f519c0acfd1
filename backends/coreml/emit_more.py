"""Core ML emitters for conv_transpose, layer_norm, resize, argmax/argmin and one_hot.

* conv_transpose (1-D, 2-D): a ``convolution`` with ``isDeconvolution`` and an
  explicit ``outputShape``; the full result is cropped by ``valid`` padding
  amounts (IR ``pads``). Dilation is folded into the kernel (zeros inserted),
  which Core ML's deconvolution lacks. Specification 1.
* layer_norm: over every non-batch axis, or over the spatial axes, it is ``mvn``
  plus a ``scale`` layer (specification 1); over other axes the ND
  ``layerNormalization`` (the axes moved last with transposes when needed).
* resize: integer nearest upsampling is ``upsample`` (spec 1), integer bilinear
  ``upsample`` with ``ALIGN_CORNERS_FALSE`` (TensorFlow's half-pixel rule;
  spec 4); any other size is exact resampling matrices applied with
  ``batchedMatmul`` along each spatial axis (ND).
"""
from __future__ import annotations

import numpy as np

from kcc.backends.coreml.context import CoremlContext, coreml_emitter
from kcc.backends.coreml.emit_math import scale_layer
from kcc.backends.coreml.emit_nn import around4d, pad3d
from kcc.ir import Node
from kcc.ops.nn_more import LayerNorm
from kcc.ops.registry import get_op
from kcc.ops.shapes import norm_axes, norm_axis


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


# ------------------------------------------------------------- layer_norm
def _params(node: Node, axes: tuple[int, ...], rank: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    scale, bias = node.inputs[1], node.inputs[2]
    if (scale is not None and not scale.is_const) or (bias is not None and not bias.is_const):
        return None, None
    s = LayerNorm.param_shape(axes, rank, scale.const) if scale is not None else None
    b = LayerNorm.param_shape(axes, rank, bias.const) if bias is not None else None
    return s, b


@coreml_emitter("layer_norm")
def _layer_norm(ctx: CoremlContext, node: Node) -> None:
    x = node.inputs[0]
    r = x.rank
    axes = norm_axes(node.attrs["axes"], r)
    eps = float(node.attrs["epsilon"])
    scale, bias = _params(node, axes, r)
    has_params = node.inputs[1] is not None or node.inputs[2] is not None
    all_axes = axes == tuple(range(1, r))
    spatial = axes == tuple(range(2, r)) and r in (3, 4)
    if not ctx.nd and r <= 4 and (all_axes or spatial) and (scale is not None or bias is not None
                                                            or not has_params):
        ctx.chw(x)
        normed = ctx.tmp("mvn") if has_params else ctx.out(node)
        _, p = ctx.layer("mvn", [ctx.name(x)], normed)
        p.acrossChannels = all_axes
        p.normalizeVariance = True
        p.epsilon = eps
        if has_params:
            if scale is None:
                scale_layer(ctx, normed, ctx.out(node), None, bias, x)
            else:
                scale_layer(ctx, normed, ctx.out(node), scale, bias, x)
        return
    ctx.need_nd(node, f"layer normalization over axes {axes} of {x.type}")
    if scale is None and has_params:
        raise ctx.fail(node, "layer normalization with computed scale/bias has no Core ML form")
    dims = ctx.dims(x)
    rest = [a for a in range(r) if a not in axes]
    perm = rest + list(axes)
    src = ctx.name(x)
    moved = perm != list(range(r))
    if moved:
        src2 = ctx.tmp("norm_last")
        _, p = ctx.layer("transpose", [src], src2)
        p.axes.extend(perm)
        src = src2
    norm_shape = [dims[a] for a in axes]
    target = ctx.tmp("normed") if moved else ctx.out(node)
    _, p = ctx.layer("layerNormalization", [src], target)
    p.normalizedShape.extend(norm_shape)
    p.eps = eps
    gamma = node.inputs[1].const if node.inputs[1] is not None else np.ones(norm_shape, np.float32)
    beta = node.inputs[2].const if node.inputs[2] is not None else np.zeros(norm_shape, np.float32)
    ctx.weights(p.gamma, gamma)
    ctx.weights(p.beta, beta)
    if moved:
        _, p = ctx.layer("transpose", [target], ctx.out(node))
        p.axes.extend(int(i) for i in np.argsort(perm))
    ctx.require(4, node, "the layerNormalization layer")


# ------------------------------------------------------------- resize
def _factors(node: Node, ctx: CoremlContext) -> list[float]:
    x, out = node.inputs[0], node.outputs[0]
    return [o / i for o, i in zip(ctx.dims(out)[2:], ctx.dims(x)[2:])]


def _resampling_matrix(size: int, out: int, mode: str) -> np.ndarray:
    """A (out, size) matrix: the IR's resize along one axis, as a linear map (the op resizes an identity)."""
    eye = np.eye(size, dtype=np.float32).reshape(size, 1, size)       # (N=size, C=1, L=size)
    y = get_op("resize").compute({"mode": mode, "sizes": (out,), "scales": ()}, eye)
    return np.ascontiguousarray(y[:, 0, :].T, dtype=np.float32)


@coreml_emitter("resize")
def _resize(ctx: CoremlContext, node: Node) -> None:
    x = node.inputs[0]
    mode = node.attrs["mode"]
    factors = _factors(node, ctx)
    integer = all(f >= 1 and float(f).is_integer() for f in factors)
    if integer and x.rank in (3, 4):
        hw = [1.0] + factors if x.rank == 3 else factors

        def build(inp: str, out: str) -> None:
            _, p = ctx.layer("upsample", [inp], out)
            p.scalingFactor.extend(int(f) for f in hw)
            if mode == "nearest":
                p.mode = type(p).InterpolationMode.Value("NN")
            else:
                p.mode = type(p).InterpolationMode.Value("BILINEAR")
                p.linearUpsampleMode = type(p).LinearUpsampleMode.Value("ALIGN_CORNERS_FALSE")
                ctx.require(4, node, "upsample with linearUpsampleMode")

        around4d(ctx, node, x, build)
        return
    ctx.need_nd(node, f"resize by factors {factors}")
    dims_in, dims_out = ctx.dims(x), ctx.dims(node.outputs[0])
    src = ctx.name(x)
    r = x.rank
    axes = [a for a in range(2, r) if dims_in[a] != dims_out[a]]
    for k, a in enumerate(axes):
        last = k == len(axes) - 1
        perm = [i for i in range(r) if i != a] + [a]
        moved = ctx.tmp(f"axis{a}_last")
        _, p = ctx.layer("transpose", [src], moved)
        p.axes.extend(perm)
        mat = _resampling_matrix(dims_in[a], dims_out[a], mode)
        mm = ctx.tmp(f"axis{a}_resized")
        _, p = ctx.layer("batchedMatmul", [moved], mm)
        p.weightMatrixFirstDimension, p.weightMatrixSecondDimension = dims_in[a], dims_out[a]
        ctx.weights(p.weights, np.ascontiguousarray(mat))   # [X1, X2] column-major == mat (X2, X1) row-major
        dst = ctx.out(node) if last else ctx.tmp(f"axis{a}_back")
        _, p = ctx.layer("transpose", [mm], dst)
        p.axes.extend(int(i) for i in np.argsort(perm))
        src = dst
    ctx.require(4, node, "batchedMatmul resampling")


# ------------------------------------------------------------- argmax / one_hot
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
