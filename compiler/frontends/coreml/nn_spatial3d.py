"""3-D NeuralNetwork layers (specification 5, ND blobs ``(N, C, D, H, W)``): ``convolution3d``,
``pooling3d``, ``globalPooling3d``.

Weights: ``(O, C/groups, kD, kH, kW)`` is the IR conv's ``w``; a deconvolution's
``(C, O/groups, kD, kH, kW)`` is conv_transpose's. ``CUSTOM`` padding gives
front/top/left and back/bottom/right amounts (the IR's begin-then-end order);
``SAME`` is TensorFlow's, resolved on the static sizes; ``VALID`` is none.
"""
from __future__ import annotations

from kcc.frontends.coreml.nn_context import NNLayerContext, nn_layer
from kcc.ir import Value


def _pads(ctx: NNLayerContext, p, x: Value, kernel, strides, dilations) -> tuple[int, ...]:
    kind = p.DESCRIPTOR.fields_by_name["paddingType"].enum_type.values_by_number[p.paddingType].name
    if kind == "CUSTOM":
        return (p.customPaddingFront, p.customPaddingTop, p.customPaddingLeft,
                p.customPaddingBack, p.customPaddingBottom, p.customPaddingRight)
    if kind == "VALID":
        return (0,) * 6
    sizes = x.shape[2:]
    if not all(isinstance(s, int) for s in sizes):
        raise ctx.unsupported(f"SAME padding on an input of unknown size {list(x.shape)}")
    begin, end = [], []
    for n, k, s, d in zip(sizes, kernel, strides, dilations):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return tuple(begin + end)


@nn_layer("convolution3d")
def _convolution3d(ctx: NNLayerContext) -> Value:
    p = ctx.params
    x = ctx.x
    kernel = (p.kernelDepth, p.kernelHeight, p.kernelWidth)
    strides = tuple(s or 1 for s in (p.strideDepth, p.strideHeight, p.strideWidth))
    dil = tuple(d or 1 for d in (p.dilationDepth, p.dilationHeight, p.dilationWidth))
    groups = int(p.nGroups) or 1
    b = ctx.const(ctx.weights(p.bias, (p.outputChannels,), "bias"), "b") if p.hasBias else None
    pads = _pads(ctx, p, x, kernel, strides, dil)
    if not p.isDeconvolution:
        w = ctx.weights(p.weights, (p.outputChannels, p.inputChannels // groups) + kernel, "weights")
        return ctx.node("conv", [x, ctx.const(w), b], {"strides": strides, "dilations": dil, "pads": pads,
                                                      "group": groups})
    w = ctx.weights(p.weights, (p.inputChannels, p.outputChannels // groups) + kernel, "weights")
    begin = pads[:3]
    full = [(n - 1) * s + (k - 1) * d + 1 for n, s, k, d in zip(x.shape[2:], strides, kernel, dil)]
    target = [int(v) for v in p.outputShape] or [f - b0 - e0 for f, b0, e0 in zip(full, begin, pads[3:])]
    crop = [f - b0 - t for f, b0, t in zip(full, begin, target)]
    return ctx.node("conv_transpose", [x, ctx.const(w), b],
                    {"strides": strides, "dilations": dil, "pads": tuple(begin) + tuple(max(c, 0) for c in crop),
                     "output_padding": tuple(max(-c, 0) for c in crop), "group": groups})


@nn_layer("pooling3d")
def _pooling3d(ctx: NNLayerContext) -> Value:
    p = ctx.params
    kernel = (p.kernelDepth, p.kernelHeight, p.kernelWidth)
    strides = tuple(s or 1 for s in (p.strideDepth, p.strideHeight, p.strideWidth))
    attrs = {"kernel": kernel, "strides": strides, "pads": _pads(ctx, p, ctx.x, kernel, strides, (1, 1, 1))}
    if type(p).PoolingType3D.Name(p.type) == "MAX":
        return ctx.node("max_pool", [ctx.x], attrs)
    return ctx.node("avg_pool", [ctx.x], {**attrs, "count_include_pad": not p.countExcludePadding})


@nn_layer("globalPooling3d")
def _global_pooling3d(ctx: NNLayerContext) -> Value:
    kind = type(ctx.params).GlobalPoolingType3D.Name(ctx.params.type)
    return ctx.node("reduce_max" if kind == "MAX" else "reduce_mean", [ctx.x], {"axes": (2, 3, 4), "keepdims": True})
