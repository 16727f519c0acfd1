"""Keras emitters for ops that move data: transpose, reshape, flatten, squeeze/unsqueeze, concat, split, slice, pad, tile, matmul.

A matmul by a constant matrix (a rank > 2 input: the IR's dense contracts axis 1,
so lower_keras_dense leaves it) is a bias-free Dense, so the matrix is trainable.

``transpose`` composes the IR permutation with the layouts of its input and
output: when the layout pass made it the identity on Keras tensors (tf2onnx's
NCHW<->NHWC pairs) it emits nothing. Reshapes keep the batch axis with Keras's
``Reshape``/``Flatten`` layers; the layout pass hands them tensors whose data
order is the IR's (context.get inserts the one Permute when it is not).
"""
from __future__ import annotations

from kcc.backends.keras.context import KerasContext, inverse, keras_emitter
from kcc.backends.keras.emit_shape import (in_data_order, is_refined, matmul_refined, put_atoms, reshape_dynamic,
                                           reshape_to, static_reshape_ok, transpose_refined)
from kcc.ir import Node


@keras_emitter("reshape", "squeeze", "unsqueeze")
def _reshape(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    if (is_refined(ctx, x) or not static_reshape_ok(x, y)) and reshape_dynamic(ctx, node, x, y):
        return
    if node.op in ("squeeze", "unsqueeze") and not static_reshape_ok(x, y):
        # Size-1 axes only: squeeze / expand_dims work whatever the run-time dims are.
        t = ctx.get(x, ctx.ident(x))
        axes = tuple(a % (y.rank if node.op == "unsqueeze" else x.rank) for a in node.attrs["axes"])
        if node.op == "squeeze":
            t = ctx.ops.squeeze(t, axis=axes)
        else:
            for a in sorted(axes):
                t = ctx.ops.expand_dims(t, a)
        ctx.put(y, t, ctx.ident(y))
        return
    reshape_to(ctx, node, x, y)


@keras_emitter("flatten")
def _flatten(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    if node.attrs["axis"] == 1 and isinstance(x.shape[0], str) and not is_refined(ctx, x):
        _, t = in_data_order(ctx, x)
        ctx.put(y, ctx.layers.Flatten(name=ctx.name())(t), ctx.ident(y))
    else:
        reshape_to(ctx, node, x, y)


@keras_emitter("transpose")
def _transpose(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    if is_refined(ctx, x):
        return transpose_refined(ctx, node)
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
    if b.is_const and b.rank == 2 and not a.is_const and a.rank >= 2 and b.dtype.startswith("f"):
        # x @ W with a constant matrix on the last axis: a Dense without bias, so W is a trainable variable.
        layer = ctx.layers.Dense(b.shape[1], use_bias=False, name=ctx.name(), trainable=ctx.trainable)
        if is_refined(ctx, a):
            t, atoms = ctx.refined[a.name]
            if atoms[-1] == a.shape[-1]:
                out = ctx.call(layer, t, [ctx.weight(node, 1, "matrix")])
                put_atoms(ctx, y, out, tuple(atoms[:-1]) + (b.shape[1],))
                return
        ctx.put(y, ctx.call(layer, ctx.get(a, ctx.ident(a)), [ctx.weight(node, 1, "matrix")]), ctx.ident(y))
        return
    if (is_refined(ctx, a) or is_refined(ctx, b)) and matmul_refined(ctx, node):
        return
    ta = ctx.get(a, ctx.ident(a))
    tb = ctx.get(b, ctx.ident(b))
    ctx.put(y, ctx.ops.matmul(ta, tb), ctx.ident(y))
