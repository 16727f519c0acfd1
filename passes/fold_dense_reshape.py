"""fold_dense_reshape: a traced Dense on a sequence (flatten, 2-D product, reshape back) -> one matmul on the last axis.

TensorFlow's ``tensordot`` (Keras's Dense and EinsumDense on rank >= 3 inputs,
traced through tf2onnx) flattens every axis but the last, multiplies, and
reshapes back to a shape it reads at run time::

    %flat: f32[?,16] = reshape(%x) {shape=(-1, 16)}              # x: f32[N,T,16]
    %d: f32[?,32] = dense(%flat, %w, %b)
    %s: i64[3] = cast(concat(gather(cast(shape(%x)), [0, 1]), [32]))
    %y: f32[N,T,32] = reshape_to(%d, %s)

After::

    %m: f32[N,T,32] = matmul(%x, %w)
    %y: f32[N,T,32] = add(%m, %b)

The runtime shape must be, entry by entry, the leading dims of the very tensor
that was flattened (read through shape/gather/concat/cast, so it holds whatever
those dims are at run time, even unnamed ones) followed by static sizes whose
product is the dense's width; a static tail other than the width becomes a
static reshape with 0 (copy) for the leading dims, which is then exact. With
batch and sequence dynamic this removes about six shape nodes and one dynamic
reshape per dense, and the 2-D round trip. The same holds with static shapes,
where the reshape back is a plain ``reshape``. It runs first, on the shape
computations as traced; fold_shapes, next, removes the ones left unread.

Not folded: a dense with a fused activation, a runtime shape built from another
tensor or from arithmetic on dims, a flatten that is not ``(-1, width)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kcc.ir import Graph, Node, Value
from kcc.ops.shapes import UNKNOWN
from kcc.passes.base import RewritePass, register_pass
from kcc.pattern import RewriteRule

_INT = ("i32", "i64")


def shape_entries(graph: Graph, v: Value) -> list[Any] | None:
    """Entries of a 1-D integer tensor: ints, or ``(x, axis)`` for "dim ``axis`` of ``x`` at run time"; else None."""
    if v.is_const:
        c = np.asarray(v.const)
        return [int(e) for e in c.reshape(-1)] if c.ndim == 1 and c.dtype.kind in "iu" else None
    node = graph.producer(v)
    if node is None:
        return None
    if node.op == "cast" and node.inputs[0].dtype in _INT and v.dtype in _INT:
        return shape_entries(graph, node.inputs[0])
    if node.op == "shape":
        return [(node.inputs[0], i) for i in range(node.inputs[0].rank)]
    if node.op == "concat" and node.attrs["axis"] in (0, -1):
        parts = [shape_entries(graph, x) for x in node.inputs]
        return None if any(p is None for p in parts) else [e for p in parts for e in p]
    if node.op == "gather" and node.attrs["axis"] == 0 and node.inputs[1].is_const:
        idx = np.asarray(node.inputs[1].const)
        source = shape_entries(graph, node.inputs[0])
        if source is None or idx.ndim != 1 or any(not -len(source) <= i < len(source) for i in idx):
            return None
        return [source[int(i)] for i in idx]
    return None


def _is_dim(entry: Any, x: Value, axis: int) -> bool:
    """Whether a shape entry is dim ``axis`` of ``x``: read from x at run time, its static size, or its symbol."""
    if isinstance(entry, tuple):
        return entry[0] is x and entry[1] == axis
    return entry == x.shape[axis] and entry != UNKNOWN


def _contracted(x: Value, k: int) -> int | None:
    """q such that x's trailing dims from axis q are static and multiply to ``k`` (the flatten's width)."""
    size = 1
    for q in range(x.rank - 1, 0, -1):
        if not isinstance(x.shape[q], int):
            return None
        size *= x.shape[q]
        if size == k:
            return q
        if size > k:
            return None
    return None


def _plan(graph: Graph, x: Value, w: Value, s: Value, flat: Node, root: Node) -> tuple[int, int, tuple[int, ...]] | str:
    """(p, q, tail): x's dims from q contract with w; the output is x's first p dims then the static ``tail``.

    Else the reason not to fold.
    """
    width = w.shape[1]
    target = flat.attrs["shape"]
    q = _contracted(x, target[1]) if len(target) == 2 and target[0] == -1 else None
    if x.rank < 3 or q is None or q < 1:
        return "the flatten is not (-1, k) with k the product of trailing dims of a rank >= 3 tensor"
    entries = list(root.outputs[0].shape) if s is None else shape_entries(graph, s)
    if entries is None:
        return "the runtime shape is not read from dims and constants"
    p = 0
    while p < len(entries) and p < q and _is_dim(entries[p], x, p):
        p += 1
    tail = entries[p:]
    if p == 0 or not all(isinstance(e, int) and e > 0 for e in tail) or int(np.prod(tail, dtype=np.int64)) != width:
        return "the runtime shape is not the flattened tensor's leading dims and the dense's width"
    if any(d != 1 for d in x.shape[p:q]):
        return "the flattened tensor has non-unit dims the shape does not keep"
    out = tuple(x.shape[:p]) + tuple(tail)
    if root.outputs[0].shape != out:
        return f"the reshape's type {root.outputs[0].shape} is not {out}"
    return p, q, tuple(tail)


def _flattened(graph: Graph, f: Value) -> tuple[Value, Node] | None:
    """(x, the reshape node) when ``f`` is ``reshape(x)``; the reshape may feed other denses too (q, k, v)."""
    node = graph.producer(f)
    return (node.inputs[0], node) if node is not None and node.op == "reshape" else None


def _check(graph, f, w, dense, root, s=None, b=None):
    if dense.attrs["activation"] != "linear":
        return f"the dense has a fused {dense.attrs['activation']}"
    source = _flattened(graph, f)
    if source is None:
        return "the dense's input is not a reshape"
    plan = _plan(graph, source[0], w, s, source[1], root)
    return plan if isinstance(plan, str) else None


def _rewrite(op, f, w, dense, root, s=None, b=None):
    x, flat = _flattened(op.graph, f)
    p, q, tail = _plan(op.graph, x, w, s, flat, root)
    if q != x.rank - 1:
        x = op.reshape(x, shape=(0,) * q + (flat.attrs["shape"][1],))
    y = op.matmul(x, w)
    if b is not None:
        y = op.add(y, b)
    if tuple(y.shape) != tuple(x.shape[:p]) + tail:
        y = op.reshape(y, shape=(0,) * p + tail)
    return y


RULES = [
    RewriteRule("tensordot", lambda op, f, w, s, b: op.reshape_to(op.dense(f, w, b, _capture="dense"), s,
                                                                  _capture="root"), _rewrite, _check),
    RewriteRule("tensordot_no_bias", lambda op, f, w, s: op.reshape_to(op.dense(f, w, None, _capture="dense"), s,
                                                                       _capture="root"), _rewrite, _check),
    # Static shapes (or ones fold_shapes resolved): the reshape back has a spec, not a runtime shape.
    RewriteRule("tensordot_static", lambda op, f, w, b: op.reshape(op.dense(f, w, b, _capture="dense"),
                                                                   _capture="root"), _rewrite, _check),
    RewriteRule("tensordot_static_no_bias", lambda op, f, w: op.reshape(op.dense(f, w, None, _capture="dense"),
                                                                        _capture="root"), _rewrite, _check),
]


@register_pass
@dataclass
class FoldDenseReshape(RewritePass):
    name = "fold_dense_reshape"
    rules = RULES
