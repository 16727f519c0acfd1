"""Core ML emitters for shape arithmetic: ``shape``, ``range``, ``expand``, ``reshape_to``, ``slice_to``.

These IR ops reach the emitter only where a dim stays dynamic (passes/fold_shapes.py
folds the rest), so each becomes the ND layer that reads a runtime tensor, as the
table ``kcc.formats.coreml_layers.SHAPE_LAYERS`` says (specification 4). Shape
tensors (IR i64) are float32 blobs in Core ML: every NeuralNetwork blob is, and
their entries are small integers, exact in float32. A 0-D IR value is a ``(1,)``
blob (Core ML has no rank 0), which is what rangeDynamic reads.

Where a layer's meaning is narrower than the IR op's:

* ``expand`` broadcasts both ways (ONNX Expand: ``expand(x(3, 1), [1, 4])`` is
  ``(3, 4)``); ``broadcastToDynamic`` gives exactly the target shape. It is used
  when the target's known entries (``TensorType.value``) show the two agree (the
  target is as long as ``x``'s rank, and no entry that may be 1 meets an axis of
  ``x`` longer than 1); otherwise the node is ``x + zeros(target)``
  (``fillDynamic`` then ``addBroadcastable``), which is numpy's two-way broadcast.
* ``reshape_to``: an entry 0 copies the input dim in the IR and means a zero-size
  axis in Core ML. A target with a known 0 entry is refused (fold_shapes turns the
  usual ones, all entries known, into a static ``reshape``); entries computed at
  run time are dims (at least 1), or -1.
* ``slice_to``: sliceDynamic reads one begin and one end entry per axis of
  ``x``; the IR op has them only for its ``axes``. The others are masked
  (``beginMasks``/``endMasks``: the whole axis), and the run-time bounds are
  padded to the rank (``concatND`` with zeros) and put in axis order (``gather``)
  where ``axes`` is not already ``0..k-1``; constant bounds are one constant
  blob, "to the end" clamped to 2**30 (a float32 blob holds INT64_MAX as a
  value no integer conversion keeps).
"""
from __future__ import annotations

import numpy as np

from kcc.backends.coreml.context import CoremlContext, coreml_emitter, rank5_check
from kcc.formats.coreml_layers import SHAPE_LAYERS, SHAPE_LAYERS_VERSION
from kcc.ir import Node, Value


@rank5_check(*SHAPE_LAYERS)
def _nd_only(ctx: CoremlContext, node: Node) -> str | None:
    return f"{node.op} ({SHAPE_LAYERS[node.op]} is an ND layer)"


def _layer(ctx: CoremlContext, node: Node, kind: str, inputs: list[str], out: str | None = None):
    ctx.need_nd(node, f"{node.op} ({kind})")
    ctx.require(SHAPE_LAYERS_VERSION, node, f"the {kind} layer")
    return ctx.layer(kind, inputs, out if out is not None else ctx.out(node))


@coreml_emitter("shape")
def _shape(ctx: CoremlContext, node: Node) -> None:
    _layer(ctx, node, SHAPE_LAYERS["shape"], [ctx.name(node.inputs[0])])


def _scalar(v: Value) -> float | None:
    return float(v.const.reshape(-1)[0]) if v.is_const else None


@coreml_emitter("range")
def _range(ctx: CoremlContext, node: Node) -> None:
    """rangeDynamic: the limit is its first input; a constant start and delta ride in its parameters."""
    start, limit, delta = node.inputs
    s, d = _scalar(start), _scalar(delta)
    if s is not None and d is not None:
        _, p = _layer(ctx, node, SHAPE_LAYERS["range"], [ctx.name(limit)])
        p.startValue, p.stepSizeValue = s, d
        return
    _layer(ctx, node, SHAPE_LAYERS["range"], [ctx.name(limit), ctx.name(start), ctx.name(delta)])


def one_way(x: Value, target: Value) -> bool:
    """Whether broadcasting ``x`` to ``target``'s entries is numpy's one-way broadcast_to (see above)."""
    entries = getattr(target.type, "value", None)
    n = target.shape[0]
    if entries is None or not isinstance(n, int) or n < x.rank:
        return False
    for dim, entry in zip(x.shape, entries[n - x.rank:]):
        maybe_one = entry == 1 or isinstance(entry, str)      # a symbol may be 1 at run time
        if maybe_one and dim != 1 and entry != dim:
            return False
    return True


@coreml_emitter("expand")
def _expand(ctx: CoremlContext, node: Node) -> None:
    x, target = node.inputs
    if one_way(x, target):
        _layer(ctx, node, SHAPE_LAYERS["expand"], [ctx.name(x), ctx.name(target)])
        return
    zeros = ctx.tmp("zeros")
    _, p = _layer(ctx, node, "fillDynamic", [ctx.name(target)], zeros)
    p.value = 0.0
    _layer(ctx, node, "addBroadcastable", [ctx.name(x), zeros])


@coreml_emitter("reshape_to")
def _reshape_to(ctx: CoremlContext, node: Node) -> None:
    x, target = node.inputs
    entries = getattr(target.type, "value", None)
    if entries is not None and 0 in entries:
        raise ctx.fail(node, f"reshape_to target {list(entries)} copies input dims (entries 0), which Core ML's "
                             f"reshapeDynamic reads as zero-size axes; give the inputs fixed shapes with "
                             f"input_name_shape_dict")
    _layer(ctx, node, SHAPE_LAYERS["reshape_to"], [ctx.name(x), ctx.name(target)])


# Largest slice bound written to a blob: exact in float32 and int32, past any axis.
_BOUND = 2 ** 30


def _per_axis(ctx: CoremlContext, node: Node, bounds: Value, axes: tuple[int, ...], rank: int, hint: str) -> str:
    """The blob of ``bounds`` (one entry per sliced axis) as one entry per axis of the input, in axis order."""
    k = len(axes)
    if bounds.is_const:
        # One constant in axis order; "to the end" (INT64_MAX and the like) clamped to what a float32 blob holds.
        entries = np.zeros(rank)
        for a, v in zip(axes, bounds.const.reshape(-1).tolist()):
            entries[a] = max(min(v, _BOUND), -_BOUND)
        return ctx.constant(entries, f"slice_{hint}")
    src = ctx.name(bounds)
    if k < rank:
        padded = ctx.tmp(f"{hint}_padded")
        _, p = _layer(ctx, node, "concatND", [src, ctx.constant(np.zeros(rank - k), "slice_pad")], padded)
        p.axis = 0
        src = padded
    order = [axes.index(a) if a in axes else k for a in range(rank)]
    if order == list(range(rank)):
        return src
    ordered = ctx.tmp(f"{hint}_by_axis")
    _, p = _layer(ctx, node, "gather", [src, ctx.constant(np.asarray(order), "slice_order")], ordered)
    p.axis = 0
    return ordered


@coreml_emitter("slice_to")
def _slice_to(ctx: CoremlContext, node: Node) -> None:
    x, starts, ends = node.inputs
    axes = tuple(a % x.rank for a in node.attrs["axes"])
    steps = dict(zip(axes, node.attrs["steps"] or (1,) * len(axes)))
    begin = _per_axis(ctx, node, starts, axes, x.rank, "begin")
    end = _per_axis(ctx, node, ends, axes, x.rank, "end")
    _, p = _layer(ctx, node, SHAPE_LAYERS["slice_to"], [ctx.name(x), begin, end])
    p.strides.extend(steps.get(a, 1) for a in range(x.rank))
    p.beginMasks.extend(a not in axes for a in range(x.rank))
    p.endMasks.extend(a not in axes for a in range(x.rank))
    p.squeezeMasks.extend([False] * x.rank)
