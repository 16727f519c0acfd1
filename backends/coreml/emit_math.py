"""Core ML emitters for elementwise math: binary ops, unary math functions, cast.

Rank-5 layout (specification 1): a tensor op tensor is an ``add`` /
``multiply`` / ``max`` / ``min`` layer; the layout has no subtract or divide
layer, so sub and div of two tensors (and a scalar divided by a tensor) negate
or invert one operand first, two layers for one IR op (the ND layout's
``subtractBroadcastable``/``divideBroadcastable`` are one). A scalar
constant rides in the layer's ``alpha`` or in a ``unary`` layer; a
per-channel or per-pixel constant becomes a ``bias`` or ``scale`` layer.
ND layout: the ``*Broadcastable`` layers (numpy broadcasting) with
``loadConstantND`` operands. ``_binary_rank5`` says which nodes have a rank-5
form (the layout analysis reads it).

Unary math is a row of kcc.formats.coreml_layers (UNARY: the legacy ``unary``
layer; MATH_LAYERS: the specification-4 layers). ``round``, a float-to-integer
``cast``, ``is_inf`` and ``min`` with a scalar were rewritten by
passes/lower_coreml_math.py before emission.
"""
from __future__ import annotations

import math

import numpy as np

from kcc.backends.coreml.context import CoremlContext, broadcast_const, const_chw, coreml_emitter, rank5_check
from kcc.backends.coreml.emit_activation import linear, unary, unary_op
from kcc.formats.coreml_layers import BROADCASTABLE, MATH_LAYERS, MATH_LAYERS_VERSION, UNARY
from kcc.ir import Node, Value
from kcc.passes.lower_coreml_math import is_integral

# ------------------------------------------------------------- constants
def const_shape_for(ctx: CoremlContext, c: np.ndarray, out: Value) -> tuple[np.ndarray, list[int]]:
    """A constant operand as a scale/bias parameter: values and a shape of [1], [C], [1,H,W] or [C,H,W]."""
    c = broadcast_const(c, out.rank)
    oc, oh, ow = ctx.chw(out)
    if c.size == 1:
        return c.reshape(1), [1]
    if c.shape[0] != 1:
        return c.reshape(-1), [-1]  # varies along the batch axis: the caller needs ND
    body = c.reshape(c.shape[1:]) if out.rank > 1 else c.reshape(1)
    if out.rank == 2:
        cc, ch, cw = body.shape[0], 1, 1
    elif out.rank == 3:
        cc, ch, cw = body.shape[0], 1, body.shape[1]
    else:
        cc, ch, cw = body.shape
    chw = body.reshape(cc, ch, cw)
    if (ch, cw) == (1, 1):
        return chw.reshape(-1), [cc]
    if cc == 1:
        return np.broadcast_to(chw, (1, oh, ow)).reshape(-1), [1, oh, ow]
    return np.broadcast_to(chw, (oc, oh, ow)).reshape(-1), [oc, oh, ow]


def scale_layer(ctx: CoremlContext, x: str, out: str, scale: np.ndarray | None, bias: np.ndarray | None,
                value: Value) -> None:
    """y = scale * x + bias with per-channel / per-pixel constants (``scale`` or ``bias`` layer)."""
    if scale is None:
        vals, shape = const_shape_for(ctx, bias, value)
        if shape == [-1]:
            ctx.need_nd(ctx._current, "a constant that varies along the batch axis")
        _, p = ctx.layer("bias", [x], out)
        p.shape.extend(shape)
        ctx.weights(p.bias, vals)
        return
    vals, shape = const_shape_for(ctx, scale, value)
    if shape == [-1]:
        ctx.need_nd(ctx._current, "a constant that varies along the batch axis")
    _, p = ctx.layer("scale", [x], out)
    p.shapeScale.extend(shape)
    ctx.weights(p.scale, vals)
    if bias is not None:
        bvals, bshape = const_shape_for(ctx, bias, value)
        p.hasBias = True
        p.shapeBias.extend(bshape)
        ctx.weights(p.bias, bvals)


def scale_by_const(ctx: CoremlContext, x: str, out: str, c: np.ndarray, value: Value) -> None:
    """y = x * c for a constant ``c`` broadcasting against ``value`` (prelu's helper)."""
    if ctx.nd:
        _, p = ctx.layer("multiplyBroadcastable", [x, ctx.constant(c, ctx.tmp("c"))], out)
        ctx.require(4, ctx._current, "multiplyBroadcastable")
        return
    scale_layer(ctx, x, out, c, None, value)


# ------------------------------------------------------------- binary ops
_ND_BINARY = BROADCASTABLE


def _scalar_const(ctx: CoremlContext, node: Node, x: str, s: float, const_first: bool, out: str) -> bool:
    """x op s (or s op x) with a scalar constant; False when the rank-5 layout has no form."""
    op = node.op
    if op in ("add", "mul") or (op in ("sub", "div") and not const_first):
        if op == "sub":
            s, op = -s, "add"
        elif op == "div":
            s, op = 1.0 / s, "mul"
        _, p = ctx.layer("add" if op == "add" else "multiply", [x], out)
        p.alpha = float(s)
    elif op == "sub":
        linear(ctx, x, out, -1.0, s)
    elif op == "div":
        inv = ctx.tmp("inv")
        unary_op(ctx, "reciprocal", x, inv)
        _, p = ctx.layer("multiply", [inv], out)
        p.alpha = float(s)
    elif op == "max":
        unary(ctx, "THRESHOLD", x, out, alpha=s)
    elif op == "pow" and not const_first:
        unary(ctx, "POWER", x, out, alpha=s)
    elif op == "pow" and s > 0:
        _, p = ctx.layer("unary", [x], out)   # s ** x = exp(ln(s) * x)
        p.type = type(p).Operation.Value("EXP")
        p.scale = math.log(s)
    else:
        return False
    return True


def _tensor_const(ctx: CoremlContext, node: Node, x: str, c: np.ndarray, const_first: bool, out: str) -> bool:
    op, value = node.op, node.outputs[0]
    if op == "add":
        scale_layer(ctx, x, out, None, c, value)
    elif op == "sub":
        if const_first:
            scale_layer(ctx, x, out, -np.ones(1, np.float32), c, value)
        else:
            scale_layer(ctx, x, out, None, -c, value)
    elif op == "mul":
        scale_layer(ctx, x, out, c, None, value)
    elif op == "div" and not const_first:
        scale_layer(ctx, x, out, 1.0 / c, None, value)
    elif op == "div":
        inv = ctx.tmp("inv")
        unary_op(ctx, "reciprocal", x, inv)
        scale_layer(ctx, inv, out, c, None, value)
    elif op in ("max", "min"):
        full = np.broadcast_to(broadcast_const(c, value.rank), (1,) + ctx.dims(value)[1:])
        cb = ctx.constant(full, ctx.tmp("c"), chw=ctx.chw(value))
        ctx.layer(op, [x, cb], out)
    else:
        return False
    return True


def _legacy_broadcastable(ctx: CoremlContext, a: Value, b: Value, out: Value) -> bool:
    if a.name in ctx.seq and b.name in ctx.seq:   # two [T, N, C, 1, 1] sequences
        return a.shape == b.shape
    if any(ctx.chw_reason(v) is not None for v in (a, b, out)):
        return False
    so = ctx.chw(out)
    allowed = {so, (1, 1, 1), (so[0], 1, 1), (1, so[1], so[2])}
    return ctx.chw(a) in allowed and ctx.chw(b) in allowed


def _tensor_tensor(ctx: CoremlContext, node: Node, out: str) -> bool:
    a, b = node.inputs
    if node.op == "pow" or not _legacy_broadcastable(ctx, a, b, node.outputs[0]):
        return False
    na, nb = ctx.name(a), ctx.name(b)
    if node.op == "sub":
        neg = ctx.tmp("neg")
        linear(ctx, nb, neg, -1.0)
        ctx.layer("add", [na, neg], out)
    elif node.op == "div":
        inv = ctx.tmp("inv")
        unary_op(ctx, "reciprocal", nb, inv)
        ctx.layer("multiply", [na, inv], out)
    else:
        ctx.layer({"add": "add", "mul": "multiply", "max": "max", "min": "min"}[node.op], [na, nb], out)
    return True


@rank5_check(*_ND_BINARY)
def _binary_rank5(ctx: CoremlContext, node: Node) -> str | None:
    """Why ``node`` has no legacy (rank-5) form, or None; mirrors the three forms below."""
    a, b = node.inputs
    out = node.outputs[0]
    why = f"{node.op} of shapes {a.shape} and {b.shape} needs broadcasting layers"
    if a.is_const != b.is_const:
        c = a if a.is_const else b
        arr = np.asarray(c.const, dtype=np.float32)
        if arr.size == 1:
            s = float(arr.reshape(-1)[0])
            if node.op == "min" or (node.op == "pow" and a.is_const and not s > 0):
                return why
            return None
        if node.op in ("add", "sub", "mul", "div", "max", "min"):
            reason = ctx.chw_reason(out)
            if reason is not None:
                return reason
            if node.op not in ("max", "min") and broadcast_const(arr, out.rank).shape[0] != 1:
                return "a constant that varies along the batch axis"
            return None
        return why
    if a.is_const and any(const_chw(np.asarray(v.const)) is None for v in (a, b)):
        return why
    if node.op == "pow" or not _legacy_broadcastable(ctx, a, b, out):
        return why
    return None


@coreml_emitter(*_ND_BINARY)
def _binary(ctx: CoremlContext, node: Node) -> None:
    a, b = node.inputs
    out = ctx.out(node)
    if not ctx.nd:
        if a.is_const != b.is_const:
            c, x = (a, b) if a.is_const else (b, a)
            arr = np.asarray(c.const, dtype=np.float32)
            if arr.size == 1:
                done = _scalar_const(ctx, node, ctx.name(x), float(arr.reshape(-1)[0]), a.is_const, out)
            else:
                done = _tensor_const(ctx, node, ctx.name(x), arr, a.is_const, out)
        else:
            done = _tensor_tensor(ctx, node, out)
        if not done:
            ctx.need_nd(node, f"{node.op} of shapes {a.shape} and {b.shape} needs broadcasting layers")
        return
    ctx.layer(_ND_BINARY[node.op], [ctx.name(a), ctx.name(b)], out)
    ctx.require(4, node, _ND_BINARY[node.op])


# ------------------------------------------------------------- unary math
@coreml_emitter(*UNARY)
def _unary_math(ctx: CoremlContext, node: Node) -> None:
    unary_op(ctx, node.op, ctx.name(node.inputs[0]), ctx.out(node))


@coreml_emitter(*MATH_LAYERS)
def _math_layer(ctx: CoremlContext, node: Node) -> None:
    layer = MATH_LAYERS[node.op]
    ctx.layer(layer, [ctx.name(node.inputs[0])], ctx.out(node))
    ctx.require(MATH_LAYERS_VERSION, node, f"the {layer} layer")


@coreml_emitter("cast")
def _cast(ctx: CoremlContext, node: Node) -> None:
    """Core ML blobs are float: every cast is a copy.

    A float -> integer cast truncates; lower_coreml_math wrote the truncation
    (``sign(x) * floor(|x|)``) before it, so the copy is exact.
    """
    x = node.inputs[0]
    if not node.attrs["to"].startswith("f") and x.dtype.startswith("f") and not is_integral(ctx.graph, x):
        raise ctx.fail(node, "a float -> integer cast of a non-integral value: run the Core ML lowering "
                             "(lower_coreml_math) first")
    linear(ctx, ctx.name(x), ctx.out(node), 1.0)


__all__ = ["scale_layer", "scale_by_const", "const_shape_for"]
