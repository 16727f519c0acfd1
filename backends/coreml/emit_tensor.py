"""Core ML emitters for data movement and reductions.

Rank-5 layout: reshapes (also squeeze/unsqueeze) keep the batch axis and become
``reshape`` layers to the output's CHW form (row-major on CHW is row-major on
the IR's non-batch axes, since the CHW form only inserts unit axes);
transposes that keep the batch axis become ``permute``; concat and split on the
channel axis, pad on H/W and slices on C/H/W have legacy layers. Keras's
channels-last Flatten (``transpose`` to Keras order then ``flatten``) is one
``flatten`` layer in ``CHANNEL_LAST`` mode. Everything else uses the ND layers.

ND reshapes of values with dynamic dims (flexible.py): one varying dim is -1 in
``reshapeStatic``; with more, a reshape is ``rankPreservingReshape`` of the IR's
own spec (0 copies an input dim, as in the IR) and squeeze/unsqueeze are
``squeeze``/``expandDims``, so no layer carries a size.
"""
from __future__ import annotations



from kcc.backends.coreml.context import CoremlContext, const_chw, coreml_emitter, rank5_check
from kcc.backends.coreml.emit_activation import linear
from kcc.ir import Graph, Node, Value
from kcc.layout import to_keras_perm
from kcc.ops.shapes import norm_axes, norm_axis


def _nd(ctx: CoremlContext, node: Node, why: str, layer: str) -> None:
    ctx.need_nd(node, why)
    ctx.require(4, node, f"the {layer} layer")


@rank5_check("tile", "gather")
def _nd_only(ctx: CoremlContext, node: Node) -> str | None:
    return f"{node.op} (an ND layer)"


# ------------------------------------------------------------ reshapes
def _legacy_reshape(ctx: CoremlContext, x: Value, out: Value, dst: str) -> None:
    _, p = ctx.layer("reshape", [ctx.name(x)], dst)
    p.targetShape.extend(ctx.chw(out))
    p.mode = type(p).ReshapeOrder.Value("CHANNEL_FIRST")


def _keeps_batch(x: Value, out: Value) -> bool:
    return out.rank >= 2 and x.rank >= 2 and out.shape[0] == x.shape[0]


@rank5_check("reshape", "squeeze", "unsqueeze")
def _reshape_rank5(ctx: CoremlContext, node: Node) -> str | None:
    x, out = node.inputs[0], node.outputs[0]
    if not _keeps_batch(x, out):
        return f"{node.op} {x.type} -> {out.type} changes the batch axis"
    return ctx.chw_reason(x) or ctx.chw_reason(out)


@coreml_emitter("reshape", "squeeze", "unsqueeze")
def _reshape(ctx: CoremlContext, node: Node) -> None:
    x, out = node.inputs[0], node.outputs[0]
    if not ctx.nd:
        ctx.chw(x)
        _legacy_reshape(ctx, x, out, ctx.out(node))
        return
    _nd(ctx, node, f"{node.op} {x.type} -> {out.type} changes the batch axis or the rank beyond 4",
        "reshapeStatic")
    target, fixed = _nd_target(ctx, out)
    if not fixed and node.op in ("squeeze", "unsqueeze"):
        # Size-independent where the target is not: axes instead of a shape.
        _, p = ctx.layer("squeeze" if node.op == "squeeze" else "expandDims", [ctx.name(x)], ctx.out(node))
        p.axes.extend(norm_axes(node.attrs["axes"], out.rank if node.op == "unsqueeze" else x.rank))
        return
    if not fixed and node.op == "reshape" and x.rank >= 1 and out.rank >= 1:
        _rank_preserving_reshape(ctx, node)
        return
    _, p = ctx.layer("reshapeStatic", [ctx.name(x)], ctx.out(node))
    p.targetShape.extend(target)


def _rank_preserving_reshape(ctx: CoremlContext, node: Node) -> None:
    """The IR reshape's own spec (0 copies an input dim, -1 is inferred), size-independent:
    rankPreservingReshape reads both, at the larger of the two ranks (trailing unit axes
    added by expandDims before it, or removed by squeeze after it)."""
    x, out = node.inputs[0], node.outputs[0]
    spec = [int(d) for d in node.attrs["shape"]]
    src, dst = ctx.name(x), ctx.out(node)
    if out.rank > x.rank:
        src = ctx.tmp("expanded")
        _, p = ctx.layer("expandDims", [ctx.name(x)], src)
        p.axes.extend(range(x.rank, out.rank))
    if out.rank < x.rank:
        spec += [1] * (x.rank - out.rank)
        dst = ctx.tmp("unit_axes")
    _, p = ctx.layer("rankPreservingReshape", [src], dst)
    p.targetShape.extend(spec)
    if out.rank < x.rank:
        _, p = ctx.layer("squeeze", [dst], ctx.out(node))
        p.axes.extend(range(out.rank, x.rank))


def _nd_target(ctx: CoremlContext, out: Value) -> tuple[list[int], bool]:
    """reshapeStatic's target: the concrete dims, with -1 for the one dim that varies with a flexible
    input axis; and whether that target holds at every size (two varying dims make it depend on the
    sizes: flexible.py then fixes them)."""
    dims = list(ctx.dims(out))
    varying = [i for i, d in enumerate(out.shape) if isinstance(d, str) and (d == "?" or d in ctx.dynamic)]
    if ctx.dynamic and len(varying) == 1:
        dims[varying[0]] = -1
    return dims, len(varying) <= 1 or not ctx.dynamic


def folds_into_flatten(graph: Graph, node: Node) -> bool:
    """A transpose to Keras order whose only reader is a flatten(axis=1): one CHANNEL_LAST flatten."""
    if node.op != "transpose":
        return False
    r = node.inputs[0].rank
    if r not in (3, 4) or node.attrs["perm"] != to_keras_perm(r):
        return False
    user = graph.single_user(node.outputs[0])
    return user is not None and user.op == "flatten" and user.attrs["axis"] == 1


@rank5_check("flatten")
def _flatten_rank5(ctx: CoremlContext, node: Node) -> str | None:
    x = node.inputs[0]
    if node.attrs["axis"] == 1 and x.rank <= 4:
        return None
    return f"flatten(axis={node.attrs['axis']}) of {x.type}"


@coreml_emitter("flatten")
def _flatten(ctx: CoremlContext, node: Node) -> None:
    x = node.inputs[0]
    producer = ctx.graph.producer(x)
    if not ctx.nd and node.attrs["axis"] == 1 and x.rank <= 4:
        mode = "CHANNEL_FIRST"
        if producer is not None and folds_into_flatten(ctx.graph, producer):
            x, mode = producer.inputs[0], "CHANNEL_LAST"
        if x.rank == 2:
            linear(ctx, ctx.name(x), ctx.out(node), 1.0)
            return
        _, p = ctx.layer("flatten", [ctx.name(x)], ctx.out(node))
        p.mode = type(p).FlattenOrder.Value(mode)
        return
    _nd(ctx, node, f"flatten(axis={node.attrs['axis']}) of {x.type}", "flattenTo2D")
    _, p = ctx.layer("flattenTo2D", [ctx.name(x)], ctx.out(node))
    p.axis = int(node.attrs["axis"])


def _permute_axes(rank: int, perm: tuple[int, ...]) -> list[int] | None:
    """Legacy permute ``axis`` over (Seq, C, H, W) for an IR transpose keeping the batch axis."""
    if perm[0] != 0:
        return None
    slot = {2: {1: 1}, 3: {1: 1, 2: 3}, 4: {1: 1, 2: 2, 3: 3}}[rank]
    axis: list[int | None] = [0, None, None, None]
    for j in range(1, rank):
        axis[slot[j]] = slot[perm[j]]
    spare = [s for s in (1, 2, 3) if s not in axis]
    return [a if a is not None else spare.pop(0) for a in axis]


def _transpose_form(ctx: CoremlContext, node: Node) -> str | None:
    """The rank-5 form of a transpose: "seq" (swap Seq and W), "fold" (into a flatten), "permute", or None."""
    x = node.inputs[0]
    perm = node.attrs["perm"]
    seq = x.name in ctx.seq or node.outputs[0].name in ctx.seq
    if seq:
        return "seq" if perm in ((2, 0, 1), (1, 2, 0)) else None
    if 2 <= x.rank <= 4:
        if folds_into_flatten(ctx.graph, node):
            return "fold"
        if _permute_axes(x.rank, perm) is not None:
            return "permute"
    return None


@rank5_check("transpose")
def _transpose_rank5(ctx: CoremlContext, node: Node) -> str | None:
    if _transpose_form(ctx, node) is not None:
        return None
    return f"transpose {node.attrs['perm']} of {node.inputs[0].type}"


@coreml_emitter("transpose")
def _transpose(ctx: CoremlContext, node: Node) -> None:
    x = node.inputs[0]
    perm = node.attrs["perm"]
    form = None if ctx.nd else _transpose_form(ctx, node)
    if form == "seq":
        _, p = ctx.layer("permute", [ctx.name(x)], ctx.out(node))   # swap Seq and W
        p.axis.extend([3, 1, 2, 0])
        return
    if form == "fold":
        return  # the flatten reads the transpose's input in CHANNEL_LAST order
    if form == "permute":
        _, p = ctx.layer("permute", [ctx.name(x)], ctx.out(node))
        p.axis.extend(_permute_axes(x.rank, perm))  # type: ignore[arg-type]
        return
    _nd(ctx, node, f"transpose {perm} of {x.type}", "transpose")
    _, p = ctx.layer("transpose", [ctx.name(x)], ctx.out(node))
    p.axes.extend(int(a) for a in perm)


# ------------------------------------------------------------ concat / split / slice / pad
@rank5_check("concat")
def _concat_rank5(ctx: CoremlContext, node: Node) -> str | None:
    out = node.outputs[0]
    axis = norm_axis(node.attrs["axis"], out.rank)
    why = f"concat on axis {axis} of {out.type}"
    if any(v.is_const and const_chw(v.const) is None for v in node.inputs):
        return why
    if out.name in ctx.seq and axis == 2:
        return None
    if axis == 1 and out.rank <= 4 and ctx.chw_reason(out) is None:
        return None
    return why


@coreml_emitter("concat")
def _concat(ctx: CoremlContext, node: Node) -> None:
    out = node.outputs[0]
    axis = norm_axis(node.attrs["axis"], out.rank)
    names = [ctx.name(v) for v in node.inputs]
    if not ctx.nd and out.name in ctx.seq and axis == 2:
        ctx.layer("concat", names, ctx.out(node))   # features are C of the [T, N, C, 1, 1] blobs
        return
    if not ctx.nd and axis == 1 and out.rank <= 4:
        ctx.chw(out)
        ctx.layer("concat", names, ctx.out(node))
        return
    _nd(ctx, node, f"concat on axis {axis} of {out.type}", "concatND")
    _, p = ctx.layer("concatND", names, ctx.out(node))
    p.axis = axis


_LEGACY_SLICE_AXIS = {(2, 1): "CHANNEL_AXIS", (3, 1): "CHANNEL_AXIS", (3, 2): "WIDTH_AXIS",
                      (4, 1): "CHANNEL_AXIS", (4, 2): "HEIGHT_AXIS", (4, 3): "WIDTH_AXIS"}


def _legacy_slice(ctx: CoremlContext, src: str, dst: str, rank: int, axis: int, start: int, stop: int,
                  step: int) -> None:
    _, p = ctx.layer("slice", [src], dst)
    p.axis = type(p).SliceAxis.Value(_LEGACY_SLICE_AXIS[(rank, axis)])
    p.startIndex, p.endIndex, p.stride = int(start), int(stop), int(step)


def _resolved_slices(node: Node, dims: tuple[int, ...]) -> list[tuple[int, int, int, int]]:
    """(axis, start, stop, step) per sliced axis, as non-negative numbers."""
    steps = node.attrs["steps"] or (1,) * len(node.attrs["axes"])
    out = []
    for s, e, a, st in zip(node.attrs["starts"], node.attrs["ends"], node.attrs["axes"], steps):
        a = norm_axis(a, len(dims))
        start, stop, step = slice(s, e, st).indices(dims[a])
        out.append((a, start, stop, step))
    return out


@rank5_check("slice")
def _slice_rank5(ctx: CoremlContext, node: Node) -> str | None:
    x = node.inputs[0]
    parts = _resolved_slices(node, ctx.dims(x))
    if all((x.rank, a) in _LEGACY_SLICE_AXIS and step > 0 for a, _, _, step in parts):
        return ctx.chw_reason(x)
    return f"slice on axes {node.attrs['axes']} of {x.type}"


@coreml_emitter("slice")
def _slice(ctx: CoremlContext, node: Node) -> None:
    x = node.inputs[0]
    dims = ctx.dims(x)
    parts = _resolved_slices(node, dims)
    if not ctx.nd and all((x.rank, a) in _LEGACY_SLICE_AXIS and step > 0 for a, _, _, step in parts):
        ctx.chw(x)
        src = ctx.name(x)
        for i, (a, start, stop, step) in enumerate(parts):
            dst = ctx.out(node) if i == len(parts) - 1 else ctx.tmp(f"slice{i}")
            _legacy_slice(ctx, src, dst, x.rank, a, start, stop, step)
            src = dst
        if not parts:
            linear(ctx, src, ctx.out(node), 1.0)
        return
    _nd(ctx, node, f"slice on axes {node.attrs['axes']} of {x.type}", "sliceStatic")
    begin, end, strides = [0] * x.rank, list(dims), [1] * x.rank
    src = ctx.name(x)
    backwards = [a for a, _, _, step in parts if step < 0]
    for a, start, stop, step in parts:
        if step < 0:  # after reversing the axis, index i is dim-1-i
            start, stop, step = dims[a] - 1 - start, dims[a] - 1 - stop, -step
        begin[a], end[a], strides[a] = start, stop, step
    whole = begin == [0] * x.rank and end == list(dims) and strides == [1] * x.rank
    if backwards:
        rev = ctx.out(node) if whole else ctx.tmp("reversed")
        _, p = ctx.layer("reverse", [src], rev)
        p.reverseDim.extend(a in backwards for a in range(x.rank))
        if whole:
            return
        src = rev
    _, p = ctx.layer("sliceStatic", [src], ctx.out(node))
    p.beginIds.extend(begin)
    p.endIds.extend(end)
    p.strides.extend(strides)
    p.beginMasks.extend([False] * x.rank)
    p.endMasks.extend([False] * x.rank)


@rank5_check("split")
def _split_rank5(ctx: CoremlContext, node: Node) -> str | None:
    x = node.inputs[0]
    axis = norm_axis(node.attrs["axis"], x.rank)
    if (x.rank, axis) in _LEGACY_SLICE_AXIS:
        return ctx.chw_reason(x)
    return f"split on axis {axis} of {x.type}"


@coreml_emitter("split")
def _split(ctx: CoremlContext, node: Node) -> None:
    x = node.inputs[0]
    axis = norm_axis(node.attrs["axis"], x.rank)
    sizes = node.attrs["sizes"]
    if not ctx.nd and (x.rank, axis) in _LEGACY_SLICE_AXIS:
        ctx.chw(x)
        start = 0
        for i, size in enumerate(sizes):
            _legacy_slice(ctx, ctx.name(x), ctx.out(node, i), x.rank, axis, start, start + size, 1)
            start += size
        return
    _nd(ctx, node, f"split on axis {axis} of {x.type}", "splitND")
    _, p = ctx.layer("splitND", [ctx.name(x)], [ctx.out(node, i) for i in range(len(sizes))])
    p.axis = axis
    p.numSplits = len(sizes)
    p.splitSizes.extend(int(s) for s in sizes)


_PAD_MODES = {"constant": "constant", "reflect": "reflection", "edge": "replication"}


def _spatial_only(node: Node) -> bool:
    r, pads = node.inputs[0].rank, node.attrs["pads"]
    return r in (3, 4) and tuple(pads[0:2]) == (0, 0) and tuple(pads[r:r + 2]) == (0, 0) and min(pads) >= 0


@rank5_check("pad")
def _pad_rank5(ctx: CoremlContext, node: Node) -> str | None:
    return None if _spatial_only(node) else f"pad {node.attrs['pads']} of {node.inputs[0].type}"


@coreml_emitter("pad")
def _pad(ctx: CoremlContext, node: Node) -> None:
    x = node.inputs[0]
    r = x.rank
    pads = node.attrs["pads"]
    pairs = [(pads[i], pads[i + r]) for i in range(r)]
    mode = node.attrs["mode"]
    spatial_only = r in (3, 4) and pairs[0] == (0, 0) and pairs[1] == (0, 0) and min(pads) >= 0
    if spatial_only and (not ctx.nd or r == 4):
        hw = pairs[2:] if r == 4 else [(0, 0)] + pairs[2:]
        _, p = ctx.layer("padding", [ctx.name(x)], ctx.out(node))
        kind = getattr(p, _PAD_MODES[mode])
        kind.SetInParent()
        if mode == "constant":
            p.constant.value = float(node.attrs["value"])
        for begin, end in hw:
            edge = p.paddingAmounts.borderAmounts.add()
            edge.startEdgeSize, edge.endEdgeSize = int(begin), int(end)
        return
    _nd(ctx, node, f"pad {pads} of {x.type}", "constantPad")
    if mode != "constant" or min(pads) < 0:
        raise ctx.fail(node, f"{mode} padding of non-spatial axes (or cropping) has no Core ML form")
    _, p = ctx.layer("constantPad", [ctx.name(x)], ctx.out(node))
    p.value = float(node.attrs["value"])
    p.padAmounts.extend(int(v) for pair in pairs for v in pair)


@coreml_emitter("tile")
def _tile(ctx: CoremlContext, node: Node) -> None:
    _nd(ctx, node, "tile", "tile")
    _, p = ctx.layer("tile", [ctx.name(node.inputs[0])], ctx.out(node))
    p.reps.extend(int(r) for r in node.attrs["repeats"])


@coreml_emitter("gather")
def _gather(ctx: CoremlContext, node: Node) -> None:
    x, idx = node.inputs
    _nd(ctx, node, "gather", "gather")
    indices = ctx.name(idx)
    # A scalar index drops the axis; Core ML has no rank 0 and holds its index as a (1,) blob, which
    # keeps it. Equal only where the result is 0-D, itself a (1,) blob: one entry of a 1-D shape tensor.
    if idx.is_const and idx.rank == 0 and x.rank != 1:
        raise ctx.fail(node, "gather with a scalar index: use a slice")
    _, p = ctx.layer("gather", [ctx.name(x), indices], ctx.out(node))
    p.axis = norm_axis(node.attrs["axis"], x.rank)


# ------------------------------------------------------------ reductions
_LEGACY_REDUCE_MODE = {"reduce_mean": "AVG", "reduce_sum": "SUM", "reduce_max": "MAX", "reduce_min": "MIN",
                       "reduce_prod": "PROD"}
_ND_REDUCE = {"reduce_mean": "reduceMean", "reduce_sum": "reduceSum", "reduce_max": "reduceMax",
              "reduce_min": "reduceMin", "reduce_prod": "reduceProd"}
# (IR rank, reduced IR axes) -> legacy axis over the CHW blob
_LEGACY_REDUCE_AXES = {
    (2, (1,)): "C", (3, (1,)): "C", (3, (2,)): "W", (3, (1, 2)): "CHW",
    (4, (1,)): "C", (4, (2,)): "H", (4, (3,)): "W", (4, (2, 3)): "HW", (4, (1, 2, 3)): "CHW",
}


@rank5_check(*_LEGACY_REDUCE_MODE)
def _reduce_rank5(ctx: CoremlContext, node: Node) -> str | None:
    x, out = node.inputs[0], node.outputs[0]
    axes = norm_axes(node.attrs["axes"], x.rank)
    if (x.rank, axes) in _LEGACY_REDUCE_AXES and out.rank >= 2:
        return ctx.chw_reason(x) or ctx.chw_reason(out)
    return f"{node.op} over axes {axes} of {x.type}"


@coreml_emitter(*_LEGACY_REDUCE_MODE)
def _reduce(ctx: CoremlContext, node: Node) -> None:
    x, out = node.inputs[0], node.outputs[0]
    axes = norm_axes(node.attrs["axes"], x.rank)
    key = (x.rank, axes)
    if not ctx.nd and key in _LEGACY_REDUCE_AXES and out.rank >= 2:
        cw = ctx.chw(x)
        kept = tuple(1 if slot in _LEGACY_REDUCE_AXES[key] else d for slot, d in zip("CHW", cw))
        same = kept == ctx.chw(out)
        dst = ctx.out(node) if same else ctx.tmp("reduced")
        _, p = ctx.layer("reduce", [ctx.name(x)], dst)
        p.mode = type(p).ReduceOperation.Value(_LEGACY_REDUCE_MODE[node.op])
        p.axis = type(p).ReduceAxis.Value(_LEGACY_REDUCE_AXES[key])
        if not same:
            _, r = ctx.layer("reshape", [dst], ctx.out(node))
            r.targetShape.extend(ctx.chw(out))
        return
    _nd(ctx, node, f"{node.op} over axes {axes} of {x.type}", _ND_REDUCE[node.op])
    _, p = ctx.layer(_ND_REDUCE[node.op], [ctx.name(x)], ctx.out(node))
    p.axes.extend(axes)
    p.keepDims = bool(node.attrs["keepdims"])


__all__ = ["folds_into_flatten"]

