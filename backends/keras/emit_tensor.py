"""Keras emitters for ops that move data: transpose, reshape, flatten, squeeze/unsqueeze, concat, split, slice, pad, tile, matmul.

``transpose`` composes the IR permutation with the layouts of its input and
output: when the layout pass made it the identity on Keras tensors (tf2onnx's
NCHW<->NHWC pairs) it emits nothing. Reshapes keep the batch axis with Keras's
``Reshape``/``Flatten`` layers; the layout pass hands them tensors whose data
order is the IR's (context.get inserts the one Permute when it is not).
"""
from __future__ import annotations

from typing import Any

from kcc.backends.keras.context import KerasContext, inverse, keras_emitter
from kcc.ir import Node, Value
from kcc.passes.layout_channels_last import order_preserving


def _dims(shape: tuple) -> tuple[int, ...]:
    return tuple(-1 if isinstance(d, str) else int(d) for d in shape)


def _in_data_order(ctx: KerasContext, v: Value) -> tuple[tuple[int, ...], Any]:
    """``v`` held so that its row-major data is in IR order: its own layout when that moves only 1-axes."""
    perm = ctx.perm(v)
    if not order_preserving(v.shape, perm):
        perm = ctx.ident(v)
    return perm, ctx.get(v, perm)


def reshape_to(ctx: KerasContext, node: Node, x: Value, y: Value) -> None:
    """Reshape ``x`` to ``y``'s shape in ``y``'s layout (data order is preserved by both layouts)."""
    _, t = _in_data_order(ctx, x)
    out_perm = ctx.perm(y) if order_preserving(y.shape, ctx.perm(y)) else ctx.ident(y)
    shape = tuple(y.shape[p] for p in out_perm)
    if tuple(t.shape[1:]) == tuple(None if isinstance(d, str) else d for d in shape[1:]) \
            and x.shape[0] == y.shape[0]:
        ctx.put(y, t, out_perm)  # the Keras tensor already has this shape: no layer
        return
    if y.rank >= 1 and x.rank >= 1 and x.shape[0] == y.shape[0] and isinstance(y.shape[0], str) \
            and sum(isinstance(d, str) for d in shape[1:]) <= 1:
        t = ctx.layers.Reshape(_dims(shape[1:]), name=ctx.name())(t)
    else:
        t = ctx.ops.reshape(t, _dims(shape))
    ctx.put(y, t, out_perm)


@keras_emitter("reshape", "squeeze", "unsqueeze")
def _reshape(ctx: KerasContext, node: Node) -> None:
    reshape_to(ctx, node, node.inputs[0], node.output)


@keras_emitter("flatten")
def _flatten(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    if node.attrs["axis"] == 1 and isinstance(x.shape[0], str):
        _, t = _in_data_order(ctx, x)
        ctx.put(y, ctx.layers.Flatten(name=ctx.name())(t), ctx.ident(y))
    else:
        reshape_to(ctx, node, x, y)


@keras_emitter("transpose")
def _transpose(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    lin, lout = ctx.perm(x), ctx.perm(y)
    p = node.attrs["perm"]
    q = tuple(inverse(lin)[p[i]] for i in lout)
    ctx.put(y, ctx.transpose(ctx.get(x, lin), q), lout)


@keras_emitter("concat")
def _concat(ctx: KerasContext, node: Node) -> None:
    y = node.output
    perm = ctx.perm(y)
    axis = perm.index(node.attrs["axis"] % y.rank)
    parts = [ctx.get(v, perm) for v in node.inputs]
    if axis != 0 and not any(v.is_const for v in node.inputs):
        ctx.put(y, ctx.layers.Concatenate(axis=axis, name=ctx.name())(parts))
    else:
        ctx.put(y, ctx.ops.concatenate(parts, axis=axis))


@keras_emitter("split")
def _split(ctx: KerasContext, node: Node) -> None:
    x = node.inputs[0]
    perm = ctx.perm(x)
    axis = perm.index(node.attrs["axis"] % x.rank)
    bounds, total = [], 0
    for s in node.attrs["sizes"][:-1]:
        total += s
        bounds.append(total)
    parts = ctx.ops.split(ctx.get(x, perm), bounds, axis=axis)
    for v, t in zip(node.outputs, parts):
        ctx.put(v, t, perm)


@keras_emitter("slice")
def _slice(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    perm = ctx.perm(x)
    a = node.attrs
    index: list[slice] = [slice(None)] * x.rank
    for s, e, ax, st in zip(a["starts"], a["ends"], a["axes"], a["steps"] or (1,) * len(a["axes"])):
        index[perm.index(ax % x.rank)] = slice(s, e, st)
    ctx.put(y, ctx.get(x, perm)[tuple(index)], perm)


@keras_emitter("pad")
def _pad(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    perm = ctx.perm(x)
    p, r = node.attrs["pads"], x.rank
    width = [(p[a], p[a + r]) for a in perm]
    mode = {"constant": "constant", "reflect": "reflect", "edge": "edge"}[node.attrs["mode"]]
    kw = {"constant_values": node.attrs["value"]} if mode == "constant" else {}
    spatial = width[1:-1]
    if mode == "constant" and node.attrs["value"] == 0.0 and perm == ctx.cl(x) and 3 <= r <= 5 \
            and width[0] == (0, 0) and width[-1] == (0, 0):
        nd = {3: "1D", 4: "2D", 5: "3D"}[r]
        arg = spatial[0] if r == 3 else tuple(spatial)
        ctx.put(y, getattr(ctx.layers, f"ZeroPadding{nd}")(arg, name=ctx.name())(ctx.get(x, perm)), perm)
        return
    ctx.put(y, ctx.ops.pad(ctx.get(x, perm), width, mode=mode, **kw), perm)


@keras_emitter("tile")
def _tile(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    perm = ctx.perm(x)
    reps = [node.attrs["repeats"][a] for a in perm]
    ctx.put(y, ctx.ops.tile(ctx.get(x, perm), reps), perm)


@keras_emitter("matmul")
def _matmul(ctx: KerasContext, node: Node) -> None:
    a, b = node.inputs
    y = node.output
    ta = ctx.get(a, ctx.ident(a))
    tb = ctx.get(b, ctx.ident(b))
    ctx.put(y, ctx.ops.matmul(ta, tb), ctx.ident(y))
