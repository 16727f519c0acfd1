"""NeuralNetwork indexing layers (specification 4+), spelled with existing IR ops.

``gatherND``, ``gatherAlongAxis``, ``scatter``, ``scatterND``, ``scatterAlongAxis``,
``sliceBySize``, ``reverseSeq`` and ``slidingWindows``. Index blobs are float
(Core ML blobs are float32); they are truncated to i64 as the runtime does, and a
negative index counts from the end of its axis (NeuralNetwork.proto: "negative
indexing is supported"), so every index goes through :func:`wrap` before use.
Indices outside ``[-D, D-1]`` are undefined in the proto; kcc's runtime and the IR
reference refuse them (numpy's ``take``), onnxruntime reports an error.

Why compositions and not IR ops of their own: every IR op must have a Core ML
emitter and an ONNX emitter, and ONNX's ScatterND/TopK need emitter logic beyond a
table row. Each layer here is a few IR ops that both targets already have:

* a gather is a 1-D ``gather`` from the flattened data at a flat position
  ``sum(index_j * stride_j)`` (:func:`flat_along`); the data's dims after the first
  must be static (the strides);
* a scatter works on the container as a ``(P, R)`` table of rows and the updates
  as ``(M, R)`` rows aimed at flat row numbers (:func:`scatter_rows`): ``hit[m, p]``
  says update m goes to row p. SCATTER_UPDATE takes, per row, the last update
  aimed at it (what the runtime does with repeated indices); the accumulating
  modes reduce ``where(hit, update, identity)`` over m and combine that with the
  container (ADD/SUB a sum, MUL/DIV a product, MAX/MIN an extreme). That costs
  ``M * P * R`` elements for the accumulating modes and needs a static container.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from kcc.frontends.coreml.nn_context import NNLayerContext, nn_layer
from kcc.ir import Value

# NeuralNetwork.proto ScatterMode, by number.
SCATTER_MODES = ("UPDATE", "ADD", "SUB", "MUL", "DIV", "MAX", "MIN")
_ACCUMULATE = {  # mode -> (reduction over the updates, its identity, combination with the container)
    "ADD": ("reduce_sum", 0.0, "add"), "SUB": ("reduce_sum", 0.0, "sub"),
    "MUL": ("reduce_prod", 1.0, "mul"), "DIV": ("reduce_prod", 1.0, "div"),
    "MAX": ("reduce_max", -np.inf, "max"), "MIN": ("reduce_min", np.inf, "min"),
}


# ------------------------------------------------------------ helpers
def as_index(ctx: NNLayerContext, v: Value) -> Value:
    """A float index blob as i64 (truncated toward zero, as the runtime's ``astype``)."""
    return v if v.dtype == "i64" else ctx.node("cast", [v], {"to": "i64"})


def static_dims(ctx: NNLayerContext, v: Value, axes: Sequence[int], what: str) -> list[int]:
    dims = [v.shape[a] for a in axes]
    if not all(isinstance(d, int) for d in dims):
        raise ctx.unsupported(f"{ctx.kind} on a {what} of shape {list(v.shape)} (it needs static dims on axes "
                              f"{list(axes)}; give the model's inputs fixed shapes)")
    return dims


def dims_of(ctx: NNLayerContext, v: Value, axes: Sequence[int]) -> Value:
    """The dims of ``v`` on ``axes`` as an i64 vector: a constant when static, else read from ``shape``."""
    dims = [v.shape[a] for a in axes]
    if all(isinstance(d, int) for d in dims):
        return ctx.const(np.asarray(dims, np.int64), "dims")
    return ctx.node("gather", [ctx.node("shape", [v]), ctx.const(np.asarray(list(axes), np.int64), "axes")])


def wrap(ctx: NNLayerContext, idx: Value, dims: Value) -> Value:
    """``idx + dims`` where ``idx < 0``: a negative index counts from the end."""
    negative = ctx.node("less", [idx, ctx.const(np.int64(0), "zero")])
    return ctx.node("where", [negative, ctx.node("add", [idx, dims]), idx])


def coords(ctx: NNLayerContext, like: Value, axis: int) -> Value:
    """Each position's coordinate along ``axis`` of ``like``'s shape (i64, broadcastable to it)."""
    d = like.shape[axis]
    if isinstance(d, int):
        return ctx.const(np.arange(d, dtype=np.int64).reshape([-1 if i == axis else 1 for i in range(like.rank)]),
                         "coords")
    ones = ctx.node("fill_like", [like], {"value": 1.0, "dtype": "i64"})
    return ctx.node("cumsum", [ones], {"axis": axis, "exclusive": True})


def strides(dims: Sequence[int]) -> list[int]:
    return [math.prod(dims[i + 1:]) for i in range(len(dims))]


def flat_along(ctx: NNLayerContext, data: Value, idx: Value, axis: int) -> Value:
    """The flat position in ``data`` of ``data[coords with idx on axis]`` for each entry of ``idx`` (i64)."""
    dims = static_dims(ctx, data, range(1, data.rank), "data")
    st = strides([1] + dims)
    total = None
    for j in range(data.rank):
        c = wrap(ctx, idx, dims_of(ctx, data, [axis])) if j == axis else coords(ctx, idx, j)
        term = c if st[j] == 1 else ctx.node("mul", [c, ctx.const(np.int64(st[j]), "stride")])
        total = term if total is None else ctx.node("add", [total, term])
    if total.shape != idx.shape:
        total = ctx.node("add", [total, ctx.node("fill_like", [idx], {"value": 0.0, "dtype": "i64"})])
    return total


def flat_nd(ctx: NNLayerContext, data: Value, indices: Value) -> Value:
    """The flat row of ``data`` viewed as ``(prod(dims[:k]), rest...)`` for each multi-index ``indices[..., :k]``."""
    k = indices.shape[-1]
    if not isinstance(k, int) or not 1 <= k <= data.rank:
        raise ctx.error(f"indices of shape {list(indices.shape)} for data of rank {data.rank}")
    dims = static_dims(ctx, data, range(1, k), "data") if k > 1 else []
    idx = wrap(ctx, as_index(ctx, indices), dims_of(ctx, data, range(k)))
    weights = ctx.const(np.asarray(strides([1] + dims), np.int64), "strides")
    return ctx.node("reduce_sum", [ctx.node("mul", [idx, weights])], {"axes": (idx.rank - 1,), "keepdims": False})


def flatten_table(ctx: NNLayerContext, data: Value, k: int) -> Value:
    """``data`` as ``(-1, *data.shape[k:])``."""
    rest = static_dims(ctx, data, range(k, data.rank), "data")
    return ctx.node("reshape", [data], {"shape": (-1, *rest)})


def scatter_rows(ctx: NNLayerContext, table: Value, rows_at: Value, rows: Value, mode: str) -> Value:
    """``table`` (P, R) with the ``rows`` (M, R) put at row numbers ``rows_at`` (M,) by ScatterMode ``mode``."""
    p = table.shape[0]
    hit = ctx.node("equal", [ctx.node("unsqueeze", [rows_at], {"axes": (1,)}),
                             ctx.const(np.arange(p, dtype=np.int64).reshape(1, p), "rows")])  # (M, P)
    if mode == "UPDATE":
        m = ctx.node("unsqueeze", [coords(ctx, rows_at, 0)], {"axes": (1,)})
        last = ctx.node("reduce_max", [ctx.node("where", [hit, m, ctx.const(np.int64(-1), "none")])],
                        {"axes": (0,), "keepdims": False})  # the last update aimed at each row, or -1
        found = ctx.node("greater_equal", [last, ctx.const(np.int64(0), "zero")])
        picked = ctx.node("gather", [rows, ctx.node("max", [last, ctx.const(np.int64(0), "zero")])], {"axis": 0})
        return ctx.node("where", [ctx.node("unsqueeze", [found], {"axes": (1,)}), picked, table])
    reduce, identity, combine = _ACCUMULATE[mode]
    spread = ctx.node("where", [ctx.node("unsqueeze", [hit], {"axes": (2,)}),
                                ctx.node("unsqueeze", [rows], {"axes": (1,)}),
                                ctx.const(np.float32(identity), "identity")])  # (M, P, R)
    return ctx.node(combine, [table, ctx.node(reduce, [spread], {"axes": (0,), "keepdims": False})])


def scatter_mode(ctx: NNLayerContext) -> str:
    mode = int(ctx.params.mode)
    if not 0 <= mode < len(SCATTER_MODES):
        raise ctx.error(f"unknown scatter mode {mode}")
    return SCATTER_MODES[mode]


def _float(ctx: NNLayerContext, v: Value) -> Value:
    return v if v.dtype == "f32" else ctx.node("cast", [v], {"to": "f32"})


# ------------------------------------------------------------ gathers
@nn_layer("gatherND")
def _gather_nd(ctx: NNLayerContext) -> Value:
    ctx.nd_only()
    data, indices = ctx.inputs[:2]
    k = indices.shape[-1]
    flat = flat_nd(ctx, data, indices)
    return ctx.node("gather", [flatten_table(ctx, data, k), flat], {"axis": 0})


@nn_layer("gatherAlongAxis")
def _gather_along_axis(ctx: NNLayerContext) -> Value:
    ctx.nd_only()
    data, indices = ctx.inputs[:2]
    axis = int(ctx.params.axis) % data.rank
    flat = flat_along(ctx, data, as_index(ctx, indices), axis)
    return ctx.node("gather", [ctx.node("reshape", [data], {"shape": (-1,)}), flat], {"axis": 0})


# ------------------------------------------------------------ scatters
def _scatter_table(ctx: NNLayerContext, container: Value, rows_at: Value, updates: Value, table: tuple[int, int],
                   shape: Sequence[int]) -> Value:
    """``container`` seen as the ``table`` (P, R), ``updates`` as (M, R) rows put at ``rows_at``; in ``shape``."""
    rows = ctx.node("reshape", [_float(ctx, updates)], {"shape": (-1, table[1])})
    out = scatter_rows(ctx, ctx.node("reshape", [container], {"shape": table}), rows_at, rows, scatter_mode(ctx))
    return ctx.node("reshape", [out], {"shape": tuple(shape)})


def _scatter_operands(ctx: NNLayerContext) -> tuple[Value, Value, Value, list[int]]:
    """container, indices, updates, and the container's (static) shape."""
    ctx.nd_only()
    container, indices, updates = ctx.inputs[:3]
    return container, indices, updates, static_dims(ctx, container, range(container.rank), "container")


@nn_layer("scatterND")
def _scatter_nd(ctx: NNLayerContext) -> Value:
    container, indices, updates, shape = _scatter_operands(ctx)
    k = indices.shape[-1]
    rows_at = ctx.node("reshape", [flat_nd(ctx, container, indices)], {"shape": (-1,)})
    return _scatter_table(ctx, container, rows_at, updates, (math.prod(shape[:k]), math.prod(shape[k:])), shape)


@nn_layer("scatter")
def _scatter(ctx: NNLayerContext) -> Value:
    """Along ``axis``: that axis moved to the front is the table's row number, the indices' axes the updates'."""
    container, indices, updates, shape = _scatter_operands(ctx)
    axis = int(ctx.params.axis) % container.rank
    perm = (axis, *(a for a in range(container.rank) if a != axis))
    moved = ctx.node("transpose", [container], {"perm": perm}) if axis else container
    p = shape[axis]
    rows_at = ctx.node("reshape", [wrap(ctx, as_index(ctx, indices), ctx.const(np.int64(p), "dim"))],
                       {"shape": (-1,)})
    q = indices.rank
    perm_u = (*range(axis, axis + q), *range(axis), *range(axis + q, updates.rank))
    u = ctx.node("transpose", [updates], {"perm": perm_u}) if perm_u != tuple(range(updates.rank)) else updates
    out = _scatter_table(ctx, moved, rows_at, u, (p, math.prod(shape) // p), [shape[a] for a in perm])
    return ctx.node("transpose", [out], {"perm": tuple(int(i) for i in np.argsort(perm))}) if axis else out


@nn_layer("scatterAlongAxis")
def _scatter_along_axis(ctx: NNLayerContext) -> Value:
    container, indices, updates, shape = _scatter_operands(ctx)
    axis = int(ctx.params.axis) % container.rank
    rows_at = ctx.node("reshape", [flat_along(ctx, container, as_index(ctx, indices), axis)], {"shape": (-1,)})
    return _scatter_table(ctx, container, rows_at, updates, (math.prod(shape), 1), shape)


# ------------------------------------------------------------ slices along one axis
@nn_layer("sliceBySize")
def _slice_by_size(ctx: NNLayerContext) -> Value:
    """``x[begin:begin+size]`` on ``axis``, ``begin`` a run-time blob: a gather of ``begin + arange(size)``."""
    ctx.nd_only()
    x, begin = ctx.inputs[:2]
    axis = int(ctx.params.axis) % x.rank
    start = ctx.node("reshape", [as_index(ctx, begin)], {"shape": ()})
    dim = ctx.node("reshape", [dims_of(ctx, x, [axis])], {"shape": ()})
    offsets = ctx.const(np.arange(int(ctx.params.size), dtype=np.int64), "offsets")
    return ctx.node("gather", [x, ctx.node("add", [wrap(ctx, start, dim), offsets])], {"axis": axis})


@nn_layer("reverseSeq")
def _reverse_seq(ctx: NNLayerContext) -> Value:
    """Per batch entry b, the first ``lengths[b]`` steps along ``sequenceAxis`` reversed (lengths past the axis: all).

    Source step of output step t: ``n - 1 - t`` for ``t < n``, else ``t``; then a gather along the axis.
    """
    ctx.nd_only()
    x, lengths = ctx.inputs[:2]
    p = ctx.params
    b, s = int(p.batchAxis) % x.rank, int(p.sequenceAxis) % x.rank
    n = ctx.node("reshape", [as_index(ctx, lengths)], {"shape": tuple(-1 if i == b else 1 for i in range(x.rank))})
    n = ctx.node("min", [n, dims_of(ctx, x, [s])])
    base = ctx.node("fill_like", [x], {"value": 0.0, "dtype": "i64"})
    t = coords(ctx, base, s)
    one = ctx.const(np.int64(1), "one")
    src = ctx.node("where", [ctx.node("less", [t, n]), ctx.node("sub", [ctx.node("sub", [n, one]), t]), t])
    flat = flat_along(ctx, x, ctx.node("add", [src, base]), s)
    return ctx.node("gather", [ctx.node("reshape", [x], {"shape": (-1,)}), flat], {"axis": 0})


@nn_layer("slidingWindows")
def _sliding_windows(ctx: NNLayerContext) -> Value:
    """Windows of ``windowSize`` every ``step`` along ``axis``: a gather of a constant ``(M, W)`` index table."""
    ctx.nd_only()
    x = ctx.x
    p = ctx.params
    axis = int(p.axis) % x.rank
    (length,) = static_dims(ctx, x, [axis], "input")
    w, step = int(p.windowSize), int(p.step) or 1
    if not 1 <= w <= length:
        raise ctx.error(f"windowSize {w} does not fit an axis of length {length}")
    m = (length - w) // step + 1
    table = np.arange(m, dtype=np.int64)[:, None] * step + np.arange(w, dtype=np.int64)[None, :]
    return ctx.node("gather", [x, ctx.const(table, "windows")], {"axis": axis})
