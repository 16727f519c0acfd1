"""Handlers for the ND NeuralNetwork layers (specification 4+, exact array mapping): a blob is the IR value.

Axes may be negative in the spec; they are made non-negative here against the
input's rank. ``batchedMatmul`` stores its weights as ``(C_out, C_in)``
(``weightMatrixSecondDimension`` rows): transposed into the IR matmul's right
operand ``(C_in, C_out)``.
"""
from __future__ import annotations

import numpy as np

from kcc.formats.coreml_layers import SHAPE_LAYERS
from kcc.frontends.coreml.nn_context import NNLayerContext, nn_layer
from kcc.ir import Value


def _axes(values, rank: int) -> tuple[int, ...]:
    return tuple(int(a) % rank for a in values)


@nn_layer("transpose")
def _transpose(ctx: NNLayerContext) -> Value:
    return ctx.node("transpose", [ctx.x], {"perm": _axes(ctx.params.axes, ctx.x.rank)})


@nn_layer("concatND")
def _concat_nd(ctx: NNLayerContext) -> Value:
    """``interleave`` (specification 5) alternates the inputs' entries: stacked after ``axis``, then merged."""
    axis = int(ctx.params.axis) % ctx.x.rank
    if not ctx.params.interleave:
        return ctx.node("concat", ctx.inputs, {"axis": axis})
    stacked = ctx.node("concat", [ctx.node("unsqueeze", [v], {"axes": (axis + 1,)}) for v in ctx.inputs],
                       {"axis": axis + 1})
    shape = list(ctx.x.shape)
    if not all(isinstance(d, int) for d in shape[axis + 1:]):
        raise ctx.unsupported(f"an interleaved concatND of shape {shape} (it needs static dims after the axis)")
    merged = (0,) * axis + (-1,) + tuple(shape[axis + 1:])
    return ctx.node("reshape", [stacked], {"shape": merged})


@nn_layer("splitND")
def _split_nd(ctx: NNLayerContext) -> list[Value]:
    p = ctx.params
    axis = int(p.axis) % ctx.x.rank
    n = len(ctx.layer.output)
    sizes = tuple(int(s) for s in p.splitSizes)
    if not sizes:
        sizes = (ctx.x.shape[axis] // n,) * n
    return list(ctx.node("split", [ctx.x], {"axis": axis, "sizes": sizes}, n_outputs=n))


@nn_layer("squeeze")
def _squeeze(ctx: NNLayerContext) -> Value:
    p = ctx.params
    axes = _axes(p.axes, ctx.x.rank) if not p.squeezeAll else tuple(i for i, d in enumerate(ctx.x.shape) if d == 1)
    return ctx.node("squeeze", [ctx.x], {"axes": axes})


@nn_layer("expandDims")
def _expand_dims(ctx: NNLayerContext) -> Value:
    rank = ctx.x.rank + len(ctx.params.axes)
    return ctx.node("unsqueeze", [ctx.x], {"axes": tuple(sorted(_axes(ctx.params.axes, rank)))})


@nn_layer("reshapeStatic")
def _reshape_static(ctx: NNLayerContext) -> Value:
    return ctx.node("reshape", [ctx.x], {"shape": tuple(int(d) for d in ctx.params.targetShape)})


@nn_layer("flattenTo2D")
def _flatten_2d(ctx: NNLayerContext) -> Value:
    return ctx.node("flatten", [ctx.x], {"axis": int(ctx.params.axis) % (ctx.x.rank + 1)})


@nn_layer("softmaxND")
def _softmax_nd(ctx: NNLayerContext) -> Value:
    return ctx.node("softmax", [ctx.x], {"axis": int(ctx.params.axis) % ctx.x.rank})


@nn_layer("batchedMatmul")
def _batched_matmul(ctx: NNLayerContext) -> Value:
    p = ctx.params
    if p.int8DynamicQuantize:
        raise ctx.unsupported("batchedMatmul with int8DynamicQuantize")
    a = ctx.x
    if p.transposeA:
        a = ctx.node("transpose", [a], {"perm": tuple(range(a.rank - 2)) + (a.rank - 1, a.rank - 2)})
    if len(ctx.inputs) > 1:
        b = ctx.inputs[1]
        if p.transposeB:
            b = ctx.node("transpose", [b], {"perm": tuple(range(b.rank - 2)) + (b.rank - 1, b.rank - 2)})
        return ctx.node("matmul", [a, b])
    w = ctx.weights(p.weights, (p.weightMatrixSecondDimension, p.weightMatrixFirstDimension), "weights").T
    y = ctx.node("matmul", [a, ctx.const(np.ascontiguousarray(w))])
    if p.hasBias:
        y = ctx.node("add", [y, ctx.const(ctx.weights(p.bias, (p.weightMatrixSecondDimension,), "bias"), "b")])
    return y


@nn_layer("layerNormalization")
def _layer_norm(ctx: NNLayerContext) -> Value:
    p = ctx.params
    shape = tuple(int(d) for d in p.normalizedShape)
    # In a rank-5 model the normalized dims are the trailing ones of the (C, H, W) blob.
    x = ctx.x if ctx.nd else ctx.as4(ctx.x)
    axes = tuple(range(x.rank - len(shape), x.rank))
    gamma = ctx.const(ctx.weights(p.gamma, shape, "gamma"), "gamma")
    beta = ctx.const(ctx.weights(p.beta, shape, "beta"), "beta")
    return ctx.node("layer_norm", [x, gamma, beta], {"axes": axes, "epsilon": float(np.float32(p.eps))})


@nn_layer("loadConstantND")
def _load_constant_nd(ctx: NNLayerContext) -> Value:
    shape = [int(d) for d in ctx.params.shape]
    return ctx.const(ctx.weights(ctx.params.data, shape, "data"), "data")


@nn_layer("sliceStatic")
def _slice_static(ctx: NNLayerContext) -> Value:
    p = ctx.params
    starts, ends, axes, steps = [], [], [], []
    for i, d in enumerate(ctx.x.shape):
        b, e = int(p.beginIds[i]), int(p.endIds[i])
        s = int(p.strides[i]) if len(p.strides) else 1
        if len(p.beginMasks) and p.beginMasks[i]:
            b = 0 if s > 0 else -1
        if len(p.endMasks) and p.endMasks[i]:
            e = np.iinfo(np.int64).max if s > 0 else np.iinfo(np.int64).min
        if len(p.squeezeMasks) and p.squeezeMasks[i]:
            e = b + 1 if b != -1 else np.iinfo(np.int64).max
        if (b, e, s) == (0, np.iinfo(np.int64).max, 1) or (isinstance(d, int) and (b, e, s) == (0, d, 1)):
            continue
        starts.append(b), ends.append(e), axes.append(i), steps.append(s)
    y = ctx.node("slice", [ctx.x], {"starts": tuple(starts), "ends": tuple(ends), "axes": tuple(axes),
                                    "steps": tuple(steps)}) if axes else ctx.node("identity", [ctx.x])
    squeeze = tuple(i for i, m in enumerate(p.squeezeMasks) if m)
    return ctx.node("squeeze", [y], {"axes": squeeze}) if squeeze else y


def constant_operand(ctx: NNLayerContext, i: int, what: str) -> list[int] | None:
    """The integer entries of optional input ``i`` (None when absent); a run-time one is refused, naming ``what``."""
    if len(ctx.inputs) <= i:
        return None
    v = ctx.inputs[i]
    if not v.is_const:
        raise ctx.unsupported(f"{ctx.kind} with its {what} from the run-time blob {ctx.layer.input[i]!r} (the "
                              f"output's shape would depend on a value; kcc's IR fixes shapes when converting)")
    return [int(a) for a in np.asarray(v.const).reshape(-1)]


@nn_layer("tile")
def _tile(ctx: NNLayerContext) -> Value:
    """Repeats per axis (a second input overrides ``reps``); fewer than the rank apply to the last axes."""
    reps = constant_operand(ctx, 1, "repetitions") or [int(r) for r in ctx.params.reps]
    return ctx.node("tile", [ctx.x], {"repeats": (1,) * (ctx.x.rank - len(reps)) + tuple(reps)})


@nn_layer("reverse")
def _reverse(ctx: NNLayerContext) -> Value:
    axes = tuple(i for i, r in enumerate(ctx.params.reverseDim) if r)
    n = len(axes)
    return ctx.node("slice", [ctx.x], {"starts": (-1,) * n, "ends": (np.iinfo(np.int64).min,) * n, "axes": axes,
                                       "steps": (-1,) * n})


@nn_layer("whereBroadcastable")
def _where(ctx: NNLayerContext) -> Value:
    cond = ctx.node("logical_not", [ctx.node("equal", [ctx.inputs[0], ctx.const(np.float32(0), "zero")])])
    return ctx.node("where", [cond, ctx.inputs[1], ctx.inputs[2]])


@nn_layer("gather")
def _gather(ctx: NNLayerContext) -> Value:
    idx = ctx.node("cast", [ctx.inputs[1]], {"to": "i64"})
    return ctx.node("gather", [ctx.x, idx], {"axis": int(ctx.params.axis) % ctx.x.rank})


@nn_layer("argMax", "argMin")
def _arg(ctx: NNLayerContext) -> Value:
    p = ctx.params
    y = ctx.node(ctx.kind.lower(), [ctx.x], {"axis": int(p.axis) % ctx.x.rank, "keepdims": not p.removeDim})
    return ctx.node("cast", [y], {"to": "f32"})


@nn_layer("cumSum")
def _cumsum(ctx: NNLayerContext) -> Value:
    p = ctx.params
    axis = (constant_operand(ctx, 1, "axis") or [int(p.axis)])[0]
    return ctx.node("cumsum", [ctx.x], {"axis": axis % ctx.x.rank, "exclusive": bool(p.excludeFinalSum),
                                        "reverse": bool(p.reverse)})


@nn_layer("whereNonZero")
def _where_non_zero(ctx: NNLayerContext) -> Value:
    """One row of indices per non-zero entry: a row count known only at run time (the IR's "?")."""
    return ctx.node("cast", [ctx.node("nonzero", [ctx.x])], {"to": "f32"})


@nn_layer("fillLike")
def _fill_like(ctx: NNLayerContext) -> Value:
    return ctx.node("fill_like", [ctx.x], {"value": float(ctx.params.value)})


@nn_layer("oneHot")
def _one_hot(ctx: NNLayerContext) -> Value:
    """NeuralNetwork.proto: an index outside [0, size) gives all ``offValue`` (-1 too, where the IR's
    one_hot counts from the end), so a negative index is moved to ``size``, which the IR leaves all off."""
    p = ctx.params
    depth = (constant_operand(ctx, 1, "vector size") or [int(p.oneHotVectorSize)])[0]
    idx = ctx.node("cast", [ctx.x], {"to": "i64"})
    negative = ctx.node("less", [idx, ctx.const(np.int64(0), "zero")])
    idx = ctx.node("where", [negative, ctx.const(np.int64(depth), "size"), idx])
    return ctx.node("one_hot", [idx], {"depth": depth, "axis": int(p.axis),
                                       "on_value": float(p.onValue), "off_value": float(p.offValue)})


_ND_REDUCE = {"reduceSum": "reduce_sum", "reduceMean": "reduce_mean", "reduceProd": "reduce_prod",
              "reduceMax": "reduce_max", "reduceMin": "reduce_min"}


@nn_layer(*_ND_REDUCE)
def _reduce_nd(ctx: NNLayerContext) -> Value:
    p = ctx.params
    axes = tuple(range(ctx.x.rank)) if p.reduceAll else _axes(p.axes, ctx.x.rank)
    return ctx.node(_ND_REDUCE[ctx.kind], [ctx.x], {"axes": axes, "keepdims": bool(p.keepDims)})


@nn_layer("constantPad")
def _constant_pad(ctx: NNLayerContext) -> Value:
    p = ctx.params
    amounts = constant_operand(ctx, 1, "pad amounts") or [int(a) for a in p.padAmounts]
    begins, ends = amounts[0::2], amounts[1::2]
    if p.padToGivenOutputSizeMode:  # a non-zero amount is the output size wanted on its side of the axis
        dims = [d for d in ctx.x.shape]
        if not all(isinstance(d, int) for d in dims):
            raise ctx.unsupported(f"constantPad to a given output size on a blob of shape {dims}")
        begins = [max(b - n, 0) if b else 0 for b, n in zip(begins, dims)]
        ends = [max(e - n, 0) if e else 0 for e, n in zip(ends, dims)]
    return ctx.node("pad", [ctx.x], {"pads": tuple(begins) + tuple(ends), "mode": "constant",
                                     "value": float(p.value)})


@nn_layer("copy")
def _copy(ctx: NNLayerContext) -> Value:
    return ctx.node("identity", [ctx.x])


@nn_layer("stack")
def _stack(ctx: NNLayerContext) -> Value:
    axis = int(ctx.params.axis) % (ctx.x.rank + 1)
    return ctx.node("concat", [ctx.node("unsqueeze", [v], {"axes": (axis,)}) for v in ctx.inputs], {"axis": axis})


@nn_layer("embeddingND")
def _embedding_nd(ctx: NNLayerContext) -> Value:
    """Indices ``(..., 1)`` -> ``(..., E)``; weights ``(E, vocab)``."""
    p = ctx.params
    w = ctx.weights(p.weights, (p.embeddingSize, p.vocabSize), "weights").T
    if p.hasBias:
        w = w + ctx.weights(p.bias, (p.embeddingSize,), "bias")
    idx = ctx.node("cast", [ctx.node("squeeze", [ctx.x], {"axes": (ctx.x.rank - 1,)})], {"to": "i64"})
    return ctx.node("gather", [ctx.const(np.ascontiguousarray(w, dtype=np.float32)), idx], {"axis": 0})


@nn_layer("fillStatic")
def _fill_static(ctx: NNLayerContext) -> Value:
    shape = tuple(int(d) for d in ctx.params.targetShape)
    return ctx.const(np.full(shape, ctx.params.value, np.float32), "fill")


@nn_layer("broadcastToStatic")
def _broadcast_static(ctx: NNLayerContext) -> Value:
    shape = tuple(int(d) for d in ctx.params.targetShape)
    return ctx.node("add", [ctx.x, ctx.const(np.zeros(shape, np.float32), "zeros")])


@nn_layer("broadcastToLike")
def _broadcast_like(ctx: NNLayerContext) -> Value:
    return ctx.node("add", [ctx.x, ctx.node("fill_like", [ctx.inputs[1]], {"value": 0.0})])


# ------------------------------------------------------------ shape layers
# The rows of kcc.formats.coreml_layers.SHAPE_LAYERS read back. Core ML blobs are float32, so a
# shape tensor leaves getShape as f32 (the IR's i64 cast) and enters expand / reshape_to as i64;
# rangeDynamic's (1,) operands become the IR range's 0-D ones. broadcastToDynamic is one-way, a
# case of the IR expand's two-way broadcast.
def _index(ctx: NNLayerContext, v: Value) -> Value:
    return ctx.node("cast", [v], {"to": "i64"})


@nn_layer(SHAPE_LAYERS["shape"])
def _get_shape(ctx: NNLayerContext) -> Value:
    return ctx.node("cast", [ctx.node("shape", [ctx.x])], {"to": "f32"})


@nn_layer(SHAPE_LAYERS["range"])
def _range_dynamic(ctx: NNLayerContext) -> Value:
    p = ctx.params

    def operand(i: int, default: float) -> Value:
        if i < len(ctx.inputs):
            return ctx.node("reshape", [ctx.inputs[i]], {"shape": ()})
        return ctx.const(np.float32(default), "range")

    return ctx.node("range", [operand(1, p.startValue), operand(0, 0.0), operand(2, p.stepSizeValue)])


@nn_layer(SHAPE_LAYERS["expand"])
def _broadcast_dynamic(ctx: NNLayerContext) -> Value:
    return ctx.node("expand", [ctx.x, _index(ctx, ctx.inputs[1])])


@nn_layer(SHAPE_LAYERS["reshape_to"])
def _reshape_dynamic(ctx: NNLayerContext) -> Value:
    return ctx.node("reshape_to", [ctx.x, _index(ctx, ctx.inputs[1])])


@nn_layer(SHAPE_LAYERS["slice_to"])
def _slice_dynamic(ctx: NNLayerContext) -> Value:
    """Run-time begin (and end) per axis of the input: ``slice_to`` on every axis.

    A masked entry is the whole axis (from the front, or from the back for a
    negative stride), put in with ``where`` against the run-time bounds; strides
    and masks given as run-time inputs (the 4th to 7th) and squeeze masks (an axis
    whose length only the run time knows cannot be squeezed in the IR) are refused.
    """
    p, x = ctx.params, ctx.x
    r = x.rank
    flags = lambda values: [bool(v) for v in values] if len(values) == r else [False] * r  # noqa: E731
    if len(ctx.inputs) > 3 or any(flags(p.squeezeMasks)):
        raise ctx.unsupported(f"sliceDynamic with {len(ctx.inputs)} inputs and squeeze masks "
                              f"{list(p.squeezeMasks)} (run-time strides or masks, squeezed axes)")
    strides = [int(s) for s in p.strides] or [1] * r
    big = 2 ** 62

    def bounds(v: Value, masks: list[bool], whole: list[int]) -> Value:
        v = _index(ctx, ctx.node("reshape", [v], {"shape": (r,)}))
        if not any(masks):
            return v
        return ctx.node("where", [ctx.const(np.asarray(masks)), ctx.const(np.asarray(whole, np.int64)), v])

    begin = bounds(ctx.inputs[1], flags(p.beginMasks), [0 if s > 0 else -1 for s in strides])
    if len(ctx.inputs) > 2:
        end = bounds(ctx.inputs[2], flags(p.endMasks), [big if s > 0 else -big for s in strides])
    else:
        ends = [(big if s > 0 else -big) if m else int(e)
                for e, m, s in zip(list(p.endIds) or [0] * r, flags(p.endMasks), strides)]
        end = ctx.const(np.asarray(ends, np.int64))
    return ctx.node("slice_to", [x, begin, end], {"axes": tuple(range(r)), "steps": tuple(strides)})


@nn_layer("fillDynamic")
def _fill_dynamic(ctx: NNLayerContext) -> Value:
    """A constant broadcast to the runtime shape of its input (the emitter's two-way expand uses it)."""
    return ctx.node("expand", [ctx.const(np.float32(ctx.params.value), "fill"), _index(ctx, ctx.x)])


@nn_layer("rankPreservingReshape")
def _rank_preserving_reshape(ctx: NNLayerContext) -> Value:
    """0 copies the input dim and one -1 is inferred, as the IR reshape's own spec."""
    return ctx.node("reshape", [ctx.x], {"shape": tuple(int(d) for d in ctx.params.targetShape)})


@nn_layer("rangeStatic")
def _range_static(ctx: NNLayerContext) -> Value:
    """``arange(start, end, step)`` of the parameters: a constant (float32, as the layer computes it)."""
    p = ctx.params
    if p.stepSizeValue == 0:
        raise ctx.error("stepSizeValue is 0")
    return ctx.const(np.arange(p.startValue, p.endValue, p.stepSizeValue, dtype=np.float32), "range")


@nn_layer("reshapeLike")
def _reshape_like(ctx: NNLayerContext) -> Value:
    """The first input in the shape of the second: a static reshape, or ``reshape_to`` its run-time shape."""
    ctx.nd_only()
    x, like = ctx.inputs[:2]
    if all(isinstance(d, int) for d in like.shape):
        return ctx.node("reshape", [x], {"shape": tuple(like.shape)})
    return ctx.node("reshape_to", [x, ctx.node("shape", [like])])


def _band(ctx: NNLayerContext, keep) -> Value:
    """``x`` with the entries of its last two axes outside ``keep(rows - cols)`` set to 0."""
    ctx.nd_only()
    x = ctx.x
    if x.rank < 2 or not all(isinstance(d, int) for d in x.shape[-2:]):
        raise ctx.unsupported(f"{ctx.kind} on a blob of shape {list(x.shape)} (it needs static last two dims)")
    m, n = x.shape[-2:]
    diff = np.arange(m)[:, None] - np.arange(n)[None, :]
    return ctx.node("where", [ctx.const(keep(diff)), x, ctx.const(np.float32(0), "zero")])


@nn_layer("matrixBandPart")
def _matrix_band_part(ctx: NNLayerContext) -> Value:
    """Keeps ``numLower`` sub- and ``numUpper`` super-diagonals (a negative count keeps them all)."""
    lo, up = int(ctx.params.numLower), int(ctx.params.numUpper)
    return _band(ctx, lambda d: ((lo < 0) | (d <= lo)) & ((up < 0) | (-d <= up)))


@nn_layer("lowerTriangular")
def _lower_triangular(ctx: NNLayerContext) -> Value:
    """``tril(x, k)``: entries with ``col - row <= k``."""
    k = int(ctx.params.k)
    return _band(ctx, lambda d: -d <= k)


@nn_layer("upperTriangular")
def _upper_triangular(ctx: NNLayerContext) -> Value:
    """``triu(x, k)``: entries with ``col - row >= k``."""
    k = int(ctx.params.k)
    return _band(ctx, lambda d: -d >= k)

