"""Core ML emitters for activations and softmax: one IR op, one layer.

The IR op -> ``ActivationParams`` variant mapping is data, in
kcc.formats.coreml_layers.ACTIVATIONS (shared with a future Core ML frontend);
this module only writes the rows. Activations with no variant (selu, silu,
hard_silu, mish, clip, log_softmax, a prelu slope that is not per channel) were
rewritten by passes/lower_coreml_activations.py before emission. Every
activation is specification 1 and works in both layouts; ``gelu`` is its own
specification-4 layer.

``apply_activation(ctx, name, attrs, x, out, value)`` writes the activation
layer of a row for the ops that carry a fused ``activation`` attribute
(conv, dense).
"""
from __future__ import annotations

from typing import Any

from kcc.backends.coreml.context import CoremlContext, coreml_emitter, rank5_check
from kcc.formats.coreml_layers import ACTIVATIONS, UNARY
from kcc.ir import Node


def act_layer(ctx: CoremlContext, kind: str, x: str, out: str, **fields: float) -> Any:
    """One ``activation`` layer of ActivationParams variant ``kind`` (e.g. ``"ReLU"``)."""
    _, p = ctx.layer("activation", [x], out)
    return _set_variant(p, kind, fields)


def _set_variant(params: Any, kind: str, fields: dict[str, float]) -> Any:
    sub = getattr(params, kind)
    sub.SetInParent()
    for key, val in fields.items():
        setattr(sub, key, float(val))
    return sub


def set_activation(params: Any, name: str, attrs: dict) -> None:
    """Fill an ``ActivationParams`` message with the row of IR activation ``name`` (``linear``: identity).

    Shared by the ``activation`` layer and the gate activations of the recurrent layers.
    """
    row = ACTIVATIONS["identity" if name == "linear" else name]
    _set_variant(params, row.layer, row.fields(attrs))


def linear(ctx: CoremlContext, x: str, out: str, alpha: float, beta: float = 0.0) -> None:
    act_layer(ctx, "linear", x, out, alpha=alpha, beta=beta)


def unary(ctx: CoremlContext, kind: str, x: str, out: str, alpha: float = 0.0) -> None:
    """A legacy ``unary`` layer: y = f(x) with f one of SQRT RSQRT INVERSE POWER EXP LOG ABS THRESHOLD."""
    _, p = ctx.layer("unary", [x], out)
    p.type = type(p).Operation.Value(kind)
    p.alpha = float(alpha)
    p.scale = 1.0
    p.shift = 0.0


def unary_op(ctx: CoremlContext, ir_op: str, x: str, out: str) -> None:
    """The ``unary`` layer of IR op ``ir_op`` (a row of UNARY)."""
    row = UNARY[ir_op]
    unary(ctx, row.operation, x, out, alpha=row.alpha)


def apply_activation(ctx: CoremlContext, name: str, attrs: dict, x: str, out: str) -> None:
    """Write activation ``name`` (an IR op with a row, or ``linear``) from blob ``x`` into blob ``out``."""
    if name != "linear" and name not in ACTIVATIONS:
        raise ctx.fail(ctx._current, f"activation {name!r} has no Core ML ActivationParams form "
                                     f"(activations with one: {', '.join(sorted(ACTIVATIONS))})")
    _, p = ctx.layer("activation", [x], out)
    set_activation(p, name, attrs)


@coreml_emitter(*ACTIVATIONS)
def _activation(ctx: CoremlContext, node: Node) -> None:
    apply_activation(ctx, node.op, node.attrs, ctx.name(node.inputs[0]), ctx.out(node))


@coreml_emitter("prelu")
def _prelu(ctx: CoremlContext, node: Node) -> None:
    """ActivationPReLU: one slope, or one per channel (axis -3 of a rank >= 3 blob)."""
    x, slope = node.inputs
    if not slope.is_const:
        raise ctx.fail(node, "prelu needs a constant slope")
    s = slope.const.reshape(-1) if slope.const.size > 1 else slope.const.reshape(1)
    if not ctx.nd or x.rank > 2:
        sub = act_layer(ctx, "PReLU", ctx.name(x), ctx.out(node))
        ctx.weights(sub.alpha, s)
        return
    # ND rank 2 (N, C): channels on axis -3 need two unit axes around the layer.
    expanded, inner = ctx.tmp("4d_in"), ctx.tmp("4d_out")
    _, p = ctx.layer("expandDims", [ctx.name(x)], expanded)
    p.axes.extend([2, 3])
    ctx.weights(act_layer(ctx, "PReLU", expanded, inner).alpha, s)
    _, p = ctx.layer("squeeze", [inner], ctx.out(node))
    p.axes.extend([2, 3])
    ctx.require(4, node, "expandDims/squeeze around a rank-2 PReLU")


@coreml_emitter("gelu")
def _gelu(ctx: CoremlContext, node: Node) -> None:
    _, p = ctx.layer("gelu", [ctx.name(node.inputs[0])], ctx.out(node))
    p.mode = type(p).GeluMode.Value("TANH_APPROXIMATION" if node.attrs["approximate"] else "EXACT")
    ctx.require(4, node, "the gelu layer")


@rank5_check("softmax")
def _softmax_rank5(ctx: CoremlContext, node: Node) -> str | None:
    axis = node.attrs["axis"] % node.inputs[0].rank
    return None if axis == 1 else f"softmax over axis {axis} (the rank-5 layout has a softmax over channels only)"


@coreml_emitter("softmax")
def _softmax(ctx: CoremlContext, node: Node) -> None:
    x = node.inputs[0]
    if not ctx.nd:
        why = _softmax_rank5(ctx, node)
        if why is not None:
            ctx.need_nd(node, why)
        ctx.layer("softmax", [ctx.name(x)], ctx.out(node))           # over C of the CHW blob
        return
    _, p = ctx.layer("softmaxND", [ctx.name(x)], ctx.out(node))
    p.axis = node.attrs["axis"] % x.rank
    ctx.require(4, node, "softmaxND")


__all__ = ["apply_activation", "set_activation", "act_layer", "linear", "unary", "unary_op"]
