"""NeuralNetwork ``topK`` and ``argSort`` (specification 4+), spelled with comparisons.

Both order the entries along one axis; equal values keep their index order
(kcc's runtime sorts stably, and ONNX TopK breaks ties by the lower index too).
Each entry's rank is the number of entries that come before it::

    rank[i] = #{j : x[j] > x[i]} + #{j < i : x[j] == x[i]}      (descending; < for ascending)

and the entry of rank r is found by comparing ``rank`` with ``r``. That is a few
IR ops with an ``n x n`` comparison per slice along the axis, and the IR (and so
every target) already has all of them: an IR sort op would need ONNX emitter
logic (TopK's K is an input and it has two outputs) and a Core ML emitter.
"""
from __future__ import annotations

import numpy as np

from kcc.frontends.coreml.nn_context import NNLayerContext, nn_layer
from kcc.frontends.coreml.nn_indexing import static_dims
from kcc.ir import Value


def _placed(array: np.ndarray, rank: int, axes: tuple[int, ...]) -> np.ndarray:
    """A constant whose dims sit on ``axes`` of a rank-``rank`` value (1 elsewhere)."""
    shape = [1] * rank
    for a, d in zip(axes, array.shape):
        shape[a] = d
    return array.reshape(shape)


def sorted_along(ctx: NNLayerContext, x: Value, axis: int, k: int, descending: bool) -> tuple[Value, Value]:
    """The first ``k`` entries of ``x`` sorted along ``axis`` (stable), and their indices (i64)."""
    (n,) = static_dims(ctx, x, [axis], "input")
    if not 1 <= k <= n:
        raise ctx.error(f"K = {k} is outside 1..{n}, the length of axis {axis}")
    r = x.rank + 1
    xi = ctx.node("unsqueeze", [x], {"axes": (axis + 1,)})   # x[i] on axis, j on axis + 1
    xj = ctx.node("unsqueeze", [x], {"axes": (axis,)})       # x[j] on axis + 1
    ahead = ctx.node("greater" if descending else "less", [xj, xi])
    earlier = ctx.const(_placed(np.tril(np.ones((n, n), bool), -1), r, (axis, axis + 1)), "earlier")  # j < i
    tie = ctx.node("logical_and", [ctx.node("equal", [xj, xi]), earlier])
    before = ctx.node("cast", [ctx.node("logical_or", [ahead, tie])], {"to": "f32"})
    rank = ctx.node("reduce_sum", [before], {"axes": (axis + 1,), "keepdims": False})  # exact small integers
    wanted = ctx.const(_placed(np.arange(k, dtype=np.float32), r, (axis + 1,)), "ranks")
    at = ctx.node("equal", [ctx.node("unsqueeze", [rank], {"axes": (axis + 1,)}), wanted])  # [.., i, r, ..]
    indices = ctx.node("argmax", [ctx.node("cast", [at], {"to": "f32"})], {"axis": axis, "keepdims": False})
    values = ctx.node("reduce_sum", [ctx.node("where", [at, xi, ctx.const(np.float32(0), "zero")])],
                      {"axes": (axis,), "keepdims": False})
    return values, indices


@nn_layer("topK")
def _top_k(ctx: NNLayerContext) -> list[Value]:
    ctx.nd_only()
    p = ctx.params
    x = ctx.x
    axis = int(p.axis) % x.rank
    if len(ctx.inputs) > 1:
        k_value = ctx.inputs[1]
        if not k_value.is_const:
            raise ctx.unsupported("topK whose K is a run-time input (the output shape would depend on a value)")
        k = int(np.asarray(k_value.const).reshape(-1)[0])
    else:
        k = int(p.K)
    values, indices = sorted_along(ctx, x, axis, k, descending=not p.useBottomK)
    return [values, ctx.node("cast", [indices], {"to": "f32"})]


@nn_layer("argSort")
def _arg_sort(ctx: NNLayerContext) -> Value:
    ctx.nd_only()
    x = ctx.x
    axis = int(ctx.params.axis) % x.rank
    (n,) = static_dims(ctx, x, [axis], "input")
    _, indices = sorted_along(ctx, x, axis, n, descending=bool(ctx.params.descending))
    return ctx.node("cast", [indices], {"to": "f32"})
