"""Handlers for the rank-5 NeuralNetwork layers (specification 1-3): ``[Seq, Batch, C, H, W]`` blobs.

Weight relayouts, each stated once (NeuralNetwork.proto -> IR, kcc.ops):

* convolution ``(O, C/groups, kH, kW)`` is the IR conv's ``w`` as is;
  deconvolution ``(C, O/groups, kH, kW)`` is conv_transpose's ``w`` as is;
* innerProduct ``(O, C)`` -> dense ``w (C, O)``: transposed;
* batchnorm gamma/beta/mean/variance ``(C,)`` -> batch_norm's inputs.

Padding: ``valid`` gives explicit border amounts; ``same`` is TensorFlow's
(``BOTTOM_RIGHT_HEAVY``: the extra pixel at the end) or its mirror
(``TOP_LEFT_HEAVY``), resolved here on the static H and W into explicit pads.
"""
from __future__ import annotations

import math

import numpy as np

from kcc.frontends.coreml.nn_context import NNLayerContext, nn_layer
from kcc.frontends.coreml.nn_resize import interpolate
from kcc.ir import Value


def _static_hw(ctx: NNLayerContext, x: Value) -> tuple[int, int]:
    h, w = x.shape[-2], x.shape[-1]
    if not (isinstance(h, int) and isinstance(w, int)):
        raise ctx.unsupported(f"'same' padding on an input of unknown size {list(x.shape)}")
    return h, w


def _same_pads(size: int, k: int, s: int, d: int, top_left_heavy: bool) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    small, big = total // 2, total - total // 2
    return (big, small) if top_left_heavy else (small, big)


def _window_pads(ctx: NNLayerContext, p, x: Value, kernel, strides, dilations) -> tuple[int, ...]:
    """IR pads (top, left, bottom, right) of a convolution or pooling's padding message."""
    kind = p.WhichOneof("ConvolutionPaddingType")
    if kind == "same":
        heavy = p.same.asymmetryMode == 1
        h, w = _static_hw(ctx, x)
        ph = _same_pads(h, kernel[0], strides[0], dilations[0], heavy)
        pw = _same_pads(w, kernel[1], strides[1], dilations[1], heavy)
        return (ph[0], pw[0], ph[1], pw[1])
    b = list(p.valid.paddingAmounts.borderAmounts) if kind == "valid" else []
    if not b:
        return (0, 0, 0, 0)
    return (b[0].startEdgeSize, b[1].startEdgeSize, b[0].endEdgeSize, b[1].endEdgeSize)


@nn_layer("convolution")
def _convolution(ctx: NNLayerContext) -> Value:
    p = ctx.params
    x = ctx.as4(ctx.x)
    kernel = tuple(p.kernelSize) or (3, 3)
    strides = tuple(p.stride) or (1, 1)
    dil = tuple(p.dilationFactor) or (1, 1)
    groups = int(p.nGroups) or 1
    if len(ctx.inputs) > 1:
        if p.isDeconvolution:
            raise ctx.unsupported("a deconvolution whose weights come from a second input")
        # The weights blob holds (O, C/groups, kH, kW) in row-major order, as the stored weights do.
        w = ctx.node("reshape", [ctx.inputs[1]], {"shape": (int(p.outputChannels), -1) + kernel})
        b = ctx.const(ctx.weights(p.bias, (p.outputChannels,), "bias"), "b") if p.hasBias else None
        pads = _window_pads(ctx, p, x, kernel, strides, dil)
        return ctx.node("conv", [x, w, b], {"strides": strides, "dilations": dil, "pads": pads, "group": groups})
    if p.isDeconvolution:
        w = ctx.weights(p.weights, (p.kernelChannels, p.outputChannels // groups) + kernel, "weights")
    else:
        w = ctx.weights(p.weights, (p.outputChannels, p.kernelChannels) + kernel, "weights")
    b = ctx.const(ctx.weights(p.bias, (p.outputChannels,), "bias"), "b") if p.hasBias else None
    if not p.isDeconvolution:
        pads = _window_pads(ctx, p, x, kernel, strides, dil)
        return ctx.node("conv", [x, ctx.const(w), b], {"strides": strides, "dilations": dil, "pads": pads,
                                                      "group": groups})
    return _deconvolution(ctx, p, x, w, b, kernel, strides, dil, groups)


def _deconvolution(ctx, p, x, w, b, kernel, strides, dil, groups) -> Value:
    h, wd = _static_hw(ctx, x)
    full = [(n - 1) * s + (k - 1) * d + 1 for n, s, k, d in zip((h, wd), strides, kernel, dil)]
    kind = p.WhichOneof("ConvolutionPaddingType")
    if kind == "same":
        target = [n * s for n, s in zip((h, wd), strides)]
        begin = [max(f - t, 0) // 2 for f, t in zip(full, target)]
    else:
        pads = _window_pads(ctx, p, x, kernel, strides, dil)
        begin = [pads[0], pads[1]]
        target = [f - pads[i] - pads[i + 2] for i, f in enumerate(full)]
    if len(p.outputShape):
        target = [int(d) for d in p.outputShape]
    end, extra = [], []
    for f, t, bg in zip(full, target, begin):
        crop = f - bg - t
        end.append(max(crop, 0))
        extra.append(max(-crop, 0))
    return ctx.node("conv_transpose", [x, ctx.const(w), b],
                    {"strides": strides, "dilations": dil, "pads": tuple(begin) + tuple(end),
                     "output_padding": tuple(extra), "group": groups})


@nn_layer("pooling")
def _pooling(ctx: NNLayerContext) -> Value:
    p = ctx.params
    x = ctx.as4(ctx.x)
    kind = type(p).PoolingType.Name(p.type)
    if kind == "L2":
        return _l2_pooling(ctx, p, x)
    if p.globalPooling:
        return ctx.node("reduce_max" if kind == "MAX" else "reduce_mean", [x], {"axes": (2, 3), "keepdims": True})
    attrs = _pool_window(ctx, p, x)
    if kind == "MAX":
        return ctx.node("max_pool", [x], attrs)
    return ctx.node("avg_pool", [x], {**attrs, "count_include_pad": not p.avgPoolExcludePadding})


def _pool_window(ctx: NNLayerContext, p, x: Value) -> dict:
    """The IR pooling attributes (kernel, strides, explicit pads) of a pooling layer's window and padding."""
    kernel = tuple(p.kernelSize) or (3, 3)
    strides = tuple(p.stride) or (1, 1)
    padding = p.WhichOneof("PoolingPaddingType")
    if padding == "includeLastPixel":
        h, w = _static_hw(ctx, x)
        sym = list(p.includeLastPixel.paddingAmounts) or [0, 0]
        pads = [sym[0], sym[1], sym[0], sym[1]]
        for i, n in enumerate((h, w)):
            out = math.ceil((n + 2 * sym[i] - kernel[i]) / strides[i]) + 1
            if sym[i] and (out - 1) * strides[i] >= n + sym[i]:
                out -= 1  # the last window must start inside the image or its left padding
            pads[i + 2] += max((out - 1) * strides[i] + kernel[i] - (n + 2 * sym[i]), 0)
        pads = tuple(pads)
    elif padding == "same":
        h, w = _static_hw(ctx, x)
        ph = _same_pads(h, kernel[0], strides[0], 1, p.same.asymmetryMode == 1)
        pw = _same_pads(w, kernel[1], strides[1], 1, p.same.asymmetryMode == 1)
        pads = (ph[0], pw[0], ph[1], pw[1])
    else:
        b = list(p.valid.paddingAmounts.borderAmounts)
        pads = (b[0].startEdgeSize, b[1].startEdgeSize, b[0].endEdgeSize, b[1].endEdgeSize) if b else (0, 0, 0, 0)
    return {"kernel": kernel, "strides": strides, "pads": pads}


def _l2_pooling(ctx: NNLayerContext, p, x: Value) -> Value:
    """``sqrt(sum of x^2 over the window)`` (padding adds nothing): ``k_h * k_w`` times an average pool of
    x^2 that counts the padding."""
    squares = ctx.node("square", [x])
    if p.globalPooling:
        return ctx.node("sqrt", [ctx.node("reduce_sum", [squares], {"axes": (2, 3), "keepdims": True})])
    attrs = _pool_window(ctx, p, x)
    mean = ctx.node("avg_pool", [squares], {**attrs, "count_include_pad": True})
    area = attrs["kernel"][0] * attrs["kernel"][1]
    return ctx.node("sqrt", [ctx.node("mul", [mean, ctx.const(np.float32(area), "window")])])


@nn_layer("innerProduct")
def _inner_product(ctx: NNLayerContext) -> Value:
    p = ctx.params
    if p.int8DynamicQuantize:
        raise ctx.unsupported("innerProduct with int8DynamicQuantize")
    w = ctx.weights(p.weights, (p.outputChannels, p.inputChannels), "weights").T
    b = ctx.const(ctx.weights(p.bias, (p.outputChannels,), "bias"), "b") if p.hasBias else None
    x = ctx.x
    if x.rank == 4 and tuple(x.shape[2:]) != (1, 1):  # a [C, H, W] blob: its C*H*W features, CHW order
        x = ctx.node("flatten", [x], {"axis": 1})
    elif ctx.nd and x.rank in (1, 3):  # ND: the last axis
        y = ctx.node("matmul", [x, ctx.const(np.ascontiguousarray(w))])
        return ctx.node("add", [y, b]) if b is not None else y
    x = ctx.channels(x)
    if x.rank == 2:
        return ctx.node("dense", [x, ctx.const(np.ascontiguousarray(w)), b])
    y = ctx.node("matmul", [x, ctx.const(np.ascontiguousarray(w))])  # (S, N, C) @ (C, O)
    y = ctx.node("add", [y, b]) if b is not None else y
    return ctx.node("unsqueeze", [y], {"axes": (3, 4)})


@nn_layer("batchnorm")
def _batchnorm(ctx: NNLayerContext) -> Value:
    p = ctx.params
    c = int(p.channels)
    gamma, beta = ctx.weights(p.gamma, (c,), "gamma"), ctx.weights(p.beta, (c,), "beta")
    x = ctx.x
    if p.computeMeanVar:
        # Instance: each sample's statistics over H, W; else over every axis but C (batch included).
        c_axis = ctx.channel_axis(x)
        axes = tuple(range(c_axis + 1, x.rank)) if p.instanceNormalization else \
            tuple(a for a in range(x.rank) if a != c_axis)
        mean = ctx.node("reduce_mean", [x], {"axes": axes, "keepdims": True})
        d = ctx.node("sub", [x, mean])
        var = ctx.node("reduce_mean", [ctx.node("square", [d])], {"axes": axes, "keepdims": True})
        y = ctx.node("mul", [d, ctx.node("rsqrt", [ctx.node("add", [var, ctx.const(np.float32(p.epsilon or 1e-5))])])])
        y = ctx.node("mul", [y, ctx.const(ctx.per_channel(gamma, x), "gamma")])
        return ctx.node("add", [y, ctx.const(ctx.per_channel(beta, x), "beta")])
    mean, var = ctx.weights(p.mean, (c,), "mean"), ctx.weights(p.variance, (c,), "variance")
    if x.rank == 5:
        x = ctx.as4(x)
    return ctx.node("batch_norm", [x] + [ctx.const(a, n) for a, n in ((gamma, "gamma"), (beta, "beta"),
                                                                       (mean, "mean"), (var, "var"))],
                    {"epsilon": float(np.float32(p.epsilon))})


@nn_layer("flatten")
def _flatten(ctx: NNLayerContext) -> Value:
    x = ctx.x
    if x.rank == 2:
        return ctx.node("identity", [x])
    x = ctx.as4(x)
    if ctx.params.mode == 1:  # CHANNEL_LAST: H, W, C order
        x = ctx.node("transpose", [x], {"perm": (0, 2, 3, 1)})
    return ctx.node("flatten", [x], {"axis": 1})


@nn_layer("softmax")
def _softmax(ctx: NNLayerContext) -> Value:
    x = ctx.x
    return ctx.node("softmax", [x], {"axis": ctx.channel_axis(x)})


@nn_layer("permute")
def _permute(ctx: NNLayerContext) -> Value:
    """``axis`` permutes [Seq, C, H, W]; Batch stays in place (IR axis 1 of the rank-5 form)."""
    where = {0: 0, 1: 2, 2: 3, 3: 4}
    perm = (where[ctx.params.axis[0]], 1) + tuple(where[a] for a in ctx.params.axis[1:])
    return ctx.shrink(ctx.node("transpose", [ctx.as5(ctx.x)], {"perm": perm}))


@nn_layer("concat")
def _concat(ctx: NNLayerContext) -> Value:
    xs = ctx.aligned(ctx.inputs)
    if ctx.params.sequenceConcat:
        return ctx.shrink(ctx.node("concat", [ctx.as5(v) for v in xs], {"axis": 0}))
    return ctx.node("concat", xs, {"axis": ctx.channel_axis(xs[0])})


@nn_layer("split")
def _split(ctx: NNLayerContext) -> list[Value]:
    x = ctx.x
    axis = ctx.channel_axis(x)
    n = len(ctx.layer.output)
    c = x.shape[axis]
    if not isinstance(c, int) or c % n:
        raise ctx.error(f"cannot split {c} channels into {n} equal outputs")
    return list(ctx.node("split", [x], {"axis": axis, "sizes": (c // n,) * n}, n_outputs=n))


def _nary(ctx: NNLayerContext, op: str) -> Value:
    xs = ctx.aligned(ctx.inputs)
    y = xs[0]
    for v in xs[1:]:
        y = ctx.node(op, [y, v])
    return y


@nn_layer("add", "multiply")
def _add_multiply(ctx: NNLayerContext) -> Value:
    op = "add" if ctx.kind == "add" else "mul"
    if len(ctx.inputs) == 1:
        return ctx.node(op, [ctx.x, ctx.const(np.float32(ctx.params.alpha), "alpha")])
    return _nary(ctx, op)


@nn_layer("max", "min")
def _max_min(ctx: NNLayerContext) -> Value:
    return _nary(ctx, ctx.kind)


@nn_layer("average")
def _average(ctx: NNLayerContext) -> Value:
    return ctx.node("mul", [_nary(ctx, "add"), ctx.const(np.float32(1.0 / len(ctx.inputs)), "inv_n")])


def _chw_const(ctx: NNLayerContext, array: np.ndarray, shape) -> np.ndarray:
    shape = [int(d) for d in shape] or [1]
    array = array.reshape(shape)
    return array.reshape((-1, 1, 1)) if len(shape) == 1 else array


@nn_layer("scale")
def _scale(ctx: NNLayerContext) -> Value:
    p = ctx.params
    x = ctx.as4(ctx.x)
    s = ctx.weights(p.scale, list(p.shapeScale) or [1], "scale")
    y = ctx.node("mul", [x, ctx.const(_chw_const(ctx, s, p.shapeScale), "scale")])
    if p.hasBias:
        bias = ctx.weights(p.bias, list(p.shapeBias) or [1], "bias")
        y = ctx.node("add", [y, ctx.const(_chw_const(ctx, bias, p.shapeBias), "bias")])
    return y


@nn_layer("bias")
def _bias(ctx: NNLayerContext) -> Value:
    b = ctx.weights(ctx.params.bias, list(ctx.params.shape) or [1], "bias")
    return ctx.node("add", [ctx.as4(ctx.x), ctx.const(_chw_const(ctx, b, ctx.params.shape), "bias")])


@nn_layer("loadConstant")
def _load_constant(ctx: NNLayerContext) -> Value:
    shape = [int(d) for d in ctx.params.shape]
    return ctx.const(ctx.weights(ctx.params.data, shape, "data").reshape([1] + shape), "data")


@nn_layer("reshape")
def _reshape(ctx: NNLayerContext) -> Value:
    p = ctx.params
    target = [int(d) for d in p.targetShape]
    if len(target) == 4:
        if target[0] != 1:
            raise ctx.unsupported("a reshape into a sequence axis")
        target = target[1:]
    x = ctx.as4(ctx.x)
    if p.mode == 1:  # CHANNEL_LAST
        hwc = ctx.node("reshape", [ctx.node("transpose", [x], {"perm": (0, 2, 3, 1)})],
                       {"shape": (0, target[1], target[2], target[0])})
        return ctx.node("transpose", [hwc], {"perm": (0, 3, 1, 2)})
    return ctx.node("reshape", [x], {"shape": (0, *target)})


@nn_layer("padding")
def _padding(ctx: NNLayerContext) -> Value:
    p = ctx.params
    x = ctx.x if ctx.nd else ctx.as4(ctx.x)
    b = list(p.paddingAmounts.borderAmounts)
    (t, bt), (l, r) = ((b[0].startEdgeSize, b[0].endEdgeSize), (b[1].startEdgeSize, b[1].endEdgeSize)) if b \
        else ((0, 0), (0, 0))
    lead = (0,) * (x.rank - 2)
    kind = p.WhichOneof("PaddingType")
    mode = {"constant": "constant", "reflection": "reflect", "replication": "edge"}[kind]
    attrs = {"pads": lead + (t, l) + lead + (bt, r), "mode": mode}
    if kind == "constant":
        attrs["value"] = float(p.constant.value)
    return ctx.node("pad", [x], attrs)


@nn_layer("upsample")
def _upsample(ctx: NNLayerContext) -> Value:
    """Integer nearest-neighbour factors are the IR's resize; fractional factors and bilinear modes are
    written per axis with constant indices (NeuralNetwork.proto's LinearUpsampleMode grids)."""
    p = ctx.params
    x = ctx.as4(ctx.x)
    h, w = _static_hw(ctx, x)
    fractional = len(p.fractionalScalingFactor) == 2
    factors = [float(f) for f in p.fractionalScalingFactor] if fractional else \
        [float(f) for f in (list(p.scalingFactor) or [1, 1])]
    out = [int(math.floor(n * f)) for n, f in zip((h, w), factors)]
    if p.mode == 0 and not fractional:
        return ctx.node("resize", [x], {"mode": "nearest", "sizes": tuple(out)})
    y = x
    for axis, n, o, f in ((2, h, out[0], factors[0]), (3, w, out[1], factors[1])):
        if p.mode == 0:
            rows = np.minimum(np.floor(np.arange(o) / f).astype(np.int64), n - 1)
            y = ctx.node("gather", [y, ctx.const(rows, "rows")], {"axis": axis})
        else:
            y = interpolate(ctx, y, axis, _upsample_grid(n, o, int(p.linearUpsampleMode)))
    return y


def _upsample_grid(size: int, out: int, mode: int) -> np.ndarray:
    """LinearUpsampleMode DEFAULT (0), ALIGN_CORNERS_TRUE (1), ALIGN_CORNERS_FALSE (2) grid points (float64)."""
    i = np.arange(out, dtype=np.float64)
    if mode == 2:
        spacing = size / out
        return np.clip(i * spacing + 0.5 * spacing - 0.5, 0, size - 1)
    if out == 1:
        return np.zeros(1)
    spacing = (size - 1) / (out - 1) if mode == 1 else (size - size / out) / (out - 1)
    return np.clip(i * spacing, 0, size - 1)


@nn_layer("slice")
def _slice(ctx: NNLayerContext) -> Value:
    p = ctx.params
    x = ctx.as4(ctx.x)
    axis = {0: 1, 1: 2, 2: 3}[int(p.axis)]
    end = int(p.endIndex)
    size = x.shape[axis]
    if end < 0 and isinstance(size, int):
        end += size
    return ctx.node("slice", [x], {"starts": (int(p.startIndex),), "ends": (end,), "axes": (axis,),
                                   "steps": (int(p.stride) or 1,)})


_REDUCE_AXES = {0: (1, 2, 3), 1: (2, 3), 2: (1,), 3: (2,), 4: (3,)}  # CHW HW C H W


@nn_layer("reduce")
def _reduce(ctx: NNLayerContext) -> Value:
    p = ctx.params
    x = ctx.as4(ctx.x)
    mode = type(p).ReduceOperation.Name(p.mode)
    axes = _REDUCE_AXES[int(p.axis)]
    kw = {"axes": axes, "keepdims": True}
    simple = {"SUM": "reduce_sum", "AVG": "reduce_mean", "PROD": "reduce_prod", "MAX": "reduce_max",
              "MIN": "reduce_min"}
    if mode in simple:
        return ctx.node(simple[mode], [x], kw)
    if mode == "SUMSQUARE":
        return ctx.node("reduce_sum", [ctx.node("square", [x])], kw)
    if mode == "L1":
        return ctx.node("reduce_sum", [ctx.node("abs", [x])], kw)
    if mode == "L2":
        return ctx.node("sqrt", [ctx.node("reduce_sum", [ctx.node("square", [x])], kw)])
    if mode == "LOGSUM":
        return ctx.node("log", [ctx.node("reduce_sum", [x], kw)])
    raise ctx.unsupported(f"reduce mode {mode}")


@nn_layer("l2normalize")
def _l2normalize(ctx: NNLayerContext) -> Value:
    x = ctx.as4(ctx.x)
    ss = ctx.node("reduce_sum", [ctx.node("square", [x])], {"axes": (1, 2, 3), "keepdims": True})
    eps = ctx.const(np.float32(ctx.params.epsilon or 1e-6), "eps")
    return ctx.node("mul", [x, ctx.node("rsqrt", [ctx.node("add", [ss, eps])])])


@nn_layer("mvn")
def _mvn(ctx: NNLayerContext) -> Value:
    p = ctx.params
    x = ctx.as4(ctx.x)
    kw = {"axes": (1, 2, 3) if p.acrossChannels else (2, 3), "keepdims": True}
    y = ctx.node("sub", [x, ctx.node("reduce_mean", [x], kw)])
    if not p.normalizeVariance:
        return y
    var = ctx.node("reduce_mean", [ctx.node("square", [y])], kw)
    return ctx.node("mul", [y, ctx.node("rsqrt", [ctx.node("add", [var, ctx.const(np.float32(p.epsilon or 1e-6))])])])


@nn_layer("embedding")
def _embedding(ctx: NNLayerContext) -> Value:
    p = ctx.params
    w = ctx.weights(p.weights, (p.outputChannels, p.inputDim), "weights").T  # (vocab, O)
    if p.hasBias:
        w = w + ctx.weights(p.bias, (p.outputChannels,), "bias")
    idx = ctx.node("cast", [ctx.channels(ctx.x)], {"to": "i64"})  # (N, 1) indices
    y = ctx.node("gather", [ctx.const(np.ascontiguousarray(w, dtype=np.float32)), idx], {"axis": 0})  # (N, 1, O)
    return ctx.node("squeeze", [y], {"axes": (y.rank - 2,)})


@nn_layer("dot")
def _dot(ctx: NNLayerContext) -> Value:
    """Sum over C of ``a * b`` (each L2-normalized with ``cosineSimilarity``): a ``[1, 1, 1]`` blob."""
    a, b = ctx.aligned(ctx.inputs[:2])
    axis = ctx.channel_axis(a)
    kw = {"axes": (axis,), "keepdims": True}
    if ctx.params.cosineSimilarity:
        a, b = (ctx.node("mul", [v, ctx.node("rsqrt", [ctx.node("reduce_sum", [ctx.node("square", [v])], kw)])])
                for v in (a, b))
    return ctx.node("reduce_sum", [ctx.node("mul", [a, b])], kw)


@nn_layer("crop")
def _crop(ctx: NNLayerContext) -> Value:
    p = ctx.params
    x = ctx.as4(ctx.x)
    h, w = _static_hw(ctx, x)
    if len(ctx.inputs) > 1:
        oh, ow = (list(p.offset) + [0, 0])[:2]
        rh, rw = _static_hw(ctx, ctx.inputs[1])
        starts, ends = (oh, ow), (oh + rh, ow + rw)
    else:
        b = list(p.cropAmounts.borderAmounts)
        t, bt, l, r = (b[0].startEdgeSize, b[0].endEdgeSize, b[1].startEdgeSize, b[1].endEdgeSize) if b \
            else (0, 0, 0, 0)
        starts, ends = (t, l), (h - bt, w - r)
    return ctx.node("slice", [x], {"starts": starts, "ends": ends, "axes": (2, 3), "steps": (1, 1)})


@nn_layer("sequenceRepeat")
def _sequence_repeat(ctx: NNLayerContext) -> Value:
    n = int(ctx.params.nRepetitions) or 1
    x = ctx.as5(ctx.x)
    return ctx.shrink(ctx.node("tile", [x], {"repeats": (n, 1, 1, 1, 1)}))


@nn_layer("reorganizeData")
def _reorganize_data(ctx: NNLayerContext) -> Value:
    """SPACE_TO_DEPTH, DEPTH_TO_SPACE (block-major channels) and PIXEL_SHUFFLE (channel-major), as reshapes."""
    p = ctx.params
    x = ctx.as4(ctx.x)
    bs = int(p.blockSize)
    c, (h, w) = x.shape[1], _static_hw(ctx, x)
    mode = type(p).ReorganizationType.Name(p.mode)
    if mode == "SPACE_TO_DEPTH":
        split, perm, final = (0, c, h // bs, bs, w // bs, bs), (0, 3, 5, 1, 2, 4), (0, c * bs * bs, h // bs, w // bs)
    elif mode == "DEPTH_TO_SPACE":
        split, perm, final = (0, bs, bs, c // (bs * bs), h, w), (0, 3, 4, 1, 5, 2), (0, c // (bs * bs), h * bs, w * bs)
    else:
        split, perm, final = (0, c // (bs * bs), bs, bs, h, w), (0, 1, 4, 2, 5, 3), (0, c // (bs * bs), h * bs, w * bs)
    y = ctx.node("transpose", [ctx.node("reshape", [x], {"shape": split})], {"perm": perm})
    return ctx.node("reshape", [y], {"shape": final})


@nn_layer("lrn")
def _lrn(ctx: NNLayerContext) -> Value:
    """``x / (k + alpha/n * sum of x^2 over n channels) ** beta``: the window sum is a 3-D convolution of ones."""
    p = ctx.params
    x = ctx.as4(ctx.x)
    n = int(p.localSize)
    before = (n - 1) // 2
    sq = ctx.node("unsqueeze", [ctx.node("square", [x])], {"axes": (1,)})  # (N, 1, C, H, W)
    ones = ctx.const(np.ones((1, 1, n, 1, 1), np.float32), "window")
    window = ctx.node("squeeze", [ctx.node("conv", [sq, ones], {"pads": (before, 0, 0, n - 1 - before, 0, 0)})],
                      {"axes": (1,)})
    base = ctx.node("add", [ctx.node("mul", [window, ctx.const(np.float32(p.alpha / n), "alpha")]),
                            ctx.const(np.float32(p.k or 1.0), "k")])
    return ctx.node("mul", [x, ctx.node("pow", [base, ctx.const(np.float32(-p.beta), "beta")])])
