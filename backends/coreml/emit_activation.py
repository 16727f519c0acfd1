"""Core ML emitters for activations and softmax.

Every activation is written with ``ActivationParams`` and legacy ``unary`` /
``multiply`` layers where it can be (specification 1), so an activation never
forces the ND layout; only ``gelu`` needs a specification-4 layer.

``apply_activation(ctx, name, attrs, x, out, value)`` is shared with the emitters
of ops that carry a fused ``activation`` attribute.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from kcc.backends.coreml.context import CoremlContext, broadcast_const, coreml_emitter
from kcc.ir import Node, Value

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def act_layer(ctx: CoremlContext, kind: str, x: str, out: str, **fields: float) -> Any:
    """One ``activation`` layer of ActivationParams variant ``kind`` (e.g. ``"ReLU"``)."""
    _, p = ctx.layer("activation", [x], out)
    sub = getattr(p, kind)
    sub.SetInParent()
    for key, val in fields.items():
        setattr(sub, key, float(val))
    return sub


def linear(ctx: CoremlContext, x: str, out: str, alpha: float, beta: float = 0.0) -> None:
    act_layer(ctx, "linear", x, out, alpha=alpha, beta=beta)


def unary(ctx: CoremlContext, kind: str, x: str, out: str, alpha: float = 0.0, epsilon: float = 0.0) -> None:
    """A legacy ``unary`` layer: y = f(x) with f one of SQRT RSQRT INVERSE POWER EXP LOG ABS THRESHOLD."""
    _, p = ctx.layer("unary", [x], out)
    p.type = type(p).Operation.Value(kind)
    p.alpha = float(alpha)
    p.scale = 1.0
    p.shift = 0.0
    if epsilon:
        p.epsilon = float(epsilon)


def multiply(ctx: CoremlContext, a: str, b: str, out: str) -> None:
    ctx.layer("multiply", [a, b], out)


def clip(ctx: CoremlContext, x: str, out: str, lo: float, hi: float) -> None:
    """max(min(x, hi), lo) from THRESHOLD (max) and a negated THRESHOLD (min): specification 1."""
    has_lo, has_hi = math.isfinite(lo), math.isfinite(hi)
    if not has_lo and not has_hi:
        linear(ctx, x, out, 1.0)
        return
    cur = x
    if has_lo:
        nxt = out if not has_hi else ctx.tmp("lo")
        if lo == 0.0:
            act_layer(ctx, "ReLU", cur, nxt)
        else:
            unary(ctx, "THRESHOLD", cur, nxt, alpha=lo)
        cur = nxt
    if has_hi:
        neg, cut = ctx.tmp("neg"), ctx.tmp("negcut")
        linear(ctx, cur, neg, -1.0)
        unary(ctx, "THRESHOLD", neg, cut, alpha=-hi)
        linear(ctx, cut, out, -1.0)


def _prelu(ctx: CoremlContext, x: str, out: str, attrs: dict, value: Value, slope: Value | None) -> None:
    if slope is None or not slope.is_const:
        raise ctx.fail(ctx._current, "prelu needs a constant slope")
    s = broadcast_const(slope.const, value.rank)
    per_channel = s.ndim >= 2 and s.shape[0] == 1 and all(d == 1 for d in s.shape[2:])
    if s.size == 1 or (per_channel and (value.rank > 2 or not ctx.nd)):
        sub = act_layer(ctx, "PReLU", x, out)
        ctx.weights(sub.alpha, s.reshape(-1) if s.size > 1 else s.reshape(1))
        return
    # A slope that varies over other axes: max(x, 0) + slope * min(x, 0).
    pos, neg, negr = ctx.tmp("pos"), ctx.tmp("neg"), ctx.tmp("negrelu")
    act_layer(ctx, "ReLU", x, pos)
    linear(ctx, x, neg, -1.0)
    act_layer(ctx, "ReLU", neg, negr)          # -min(x, 0)
    scaled = ctx.tmp("scaled")
    from kcc.backends.coreml.emit_math import scale_by_const
    scale_by_const(ctx, negr, scaled, -s, value)
    ctx.layer("add", [pos, scaled], out)


def _gelu(ctx: CoremlContext, x: str, out: str, attrs: dict, value: Value, extra: Any) -> None:
    _, p = ctx.layer("gelu", [x], out)
    p.mode = type(p).GeluMode.Value("TANH_APPROXIMATION" if attrs.get("approximate") else "EXACT")
    ctx.require(4, ctx._current, "the gelu layer")


def _composite(*steps: tuple[str, dict[str, float]], times_input: bool = False):
    """A chain of activation layers, optionally multiplied by the input at the end."""
    def emit(ctx: CoremlContext, x: str, out: str, attrs: dict, value: Value, extra: Any) -> None:
        cur = x
        for i, (kind, fields) in enumerate(steps):
            last = i == len(steps) - 1 and not times_input
            nxt = out if last else ctx.tmp(kind)
            act_layer(ctx, kind, cur, nxt, **fields)
            cur = nxt
        if times_input:
            multiply(ctx, x, cur, out)
    return emit


def _simple(kind: str, **fixed: float):
    def emit(ctx, x, out, attrs, value, extra):
        act_layer(ctx, kind, x, out, **{k: attrs.get(k, v) for k, v in fixed.items()})
    return emit


# IR activation -> emitter(ctx, x_blob, out_blob, attrs, x_value, extra_input)
ACTIVATIONS: dict[str, Callable[..., None]] = {
    "relu": _simple("ReLU"),
    "leaky_relu": _simple("leakyReLU", alpha=0.2),
    "thresholded_relu": _simple("thresholdedReLU", alpha=1.0),
    "elu": _simple("ELU", alpha=1.0),
    "sigmoid": _simple("sigmoid"),
    "tanh": _simple("tanh"),
    "softsign": _simple("softsign"),
    "softplus": _simple("softplus"),
    "hard_sigmoid": _simple("sigmoidHard", alpha=1.0 / 6.0, beta=0.5),
    "scaled_tanh": _simple("scaledTanh", alpha=1.0, beta=1.0),
    "selu": _composite(("ELU", {"alpha": _SELU_ALPHA}), ("linear", {"alpha": _SELU_SCALE, "beta": 0.0})),
    "silu": _composite(("sigmoid", {}), times_input=True),
    "hard_silu": _composite(("sigmoidHard", {"alpha": 1.0 / 6.0, "beta": 0.5}), times_input=True),
    "mish": _composite(("softplus", {}), ("tanh", {}), times_input=True),
    "clip": lambda ctx, x, out, attrs, value, extra: clip(ctx, x, out, attrs["min"], attrs["max"]),
    "gelu": _gelu,
    "prelu": lambda ctx, x, out, attrs, value, extra: _prelu(ctx, x, out, attrs, value, extra),
}


def apply_activation(ctx: CoremlContext, name: str, attrs: dict, x: str, out: str, value: Value,
                     extra: Any = None) -> None:
    """Emit activation ``name`` from blob ``x`` into blob ``out``."""
    if name == "linear":
        linear(ctx, x, out, 1.0)
        return
    ACTIVATIONS[name](ctx, x, out, attrs, value, extra)


@coreml_emitter(*ACTIVATIONS)
def _activation(ctx: CoremlContext, node: Node) -> None:
    x = node.inputs[0]
    extra = node.inputs[1] if len(node.inputs) > 1 else None
    apply_activation(ctx, node.op, node.attrs, ctx.name(x), ctx.out(node), x, extra)


def _softmax_into(ctx: CoremlContext, node: Node, out: str) -> None:
    x = node.inputs[0]
    axis = node.attrs["axis"] % x.rank
    if not ctx.nd and axis == 1:
        ctx.layer("softmax", [ctx.name(x)], out)           # over C of the CHW blob
        return
    ctx.need_nd(node, f"softmax over axis {axis} (the rank-5 layout has a softmax over channels only)")
    _, p = ctx.layer("softmaxND", [ctx.name(x)], out)
    p.axis = axis
    ctx.require(4, node, "softmaxND")


@coreml_emitter("softmax")
def _softmax(ctx: CoremlContext, node: Node) -> None:
    _softmax_into(ctx, node, ctx.out(node))


@coreml_emitter("log_softmax")
def _log_softmax(ctx: CoremlContext, node: Node) -> None:
    tmp = ctx.tmp("softmax")
    _softmax_into(ctx, node, tmp)
    unary(ctx, "LOG", tmp, ctx.out(node))


__all__ = ["apply_activation", "act_layer", "linear", "unary", "multiply", "clip", "ACTIVATIONS"]
