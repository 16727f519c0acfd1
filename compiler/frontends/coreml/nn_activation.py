"""Activation-like NeuralNetwork layers, read through the Core ML emitter's own rows inverted.

``activation``, ``unary``, the specification-4 math layers (``sin``, ``floor``,
...), the broadcastable binaries, comparisons and logical layers are the rows of
:mod:`kcc.formats.coreml_layers` read backwards (``activation_for_layer`` and
the dicts inverted here), so the emitter and the frontend cannot drift apart.
Variants without a row get their IR spelling here: ``PReLU`` (per-channel
slopes), ``linear`` with other alpha/beta, ``parametricSoftplus``, the unary
``RSQRT``/``INVERSE`` with their epsilon, ``THRESHOLD`` and other powers,
``clip``, ``clampedReLU`` and ``gelu``.
"""
from __future__ import annotations

import numpy as np

from kcc.formats.coreml_layers import (BROADCASTABLE, COMPARISONS, LOGICAL, MATH_LAYERS, UNARY,
                                       activation_for_layer)
from kcc.frontends.coreml.nn_context import NNLayerContext, nn_layer
from kcc.ir import Value

_UNARY_ROWS = {(r.operation, r.alpha if r.operation == "POWER" else None): r.ir for r in UNARY.values()}
_BINARY_LAYERS = {layer: ir for ir, layer in {**BROADCASTABLE, **COMPARISONS, **LOGICAL}.items()}
_MATH = {layer: ir for ir, layer in MATH_LAYERS.items()}


def apply_activation(ctx: NNLayerContext, params, x: Value) -> Value:
    """The IR for one ``ActivationParams`` message applied to ``x``."""
    variant = params.WhichOneof("NonlinearityType")
    if variant is None:
        raise ctx.error("an activation with no type set")
    fields = getattr(params, variant)
    for row in activation_for_layer(variant):
        if all(np.float32(getattr(fields, k)) == np.float32(v) for k, v in row.fixed.items()):
            attrs = {ir: p.to_ir(getattr(fields, p.name)) for ir, p in row.params.items()}
            return ctx.node(row.ir, [x], attrs)
    if variant == "linear":
        return _affine(ctx, x, fields.alpha, fields.beta)
    if variant == "PReLU":
        slope = _per_channel_weights(ctx, fields.alpha, x, "PReLU alpha")
        return ctx.node("prelu", [x, ctx.const(ctx.per_channel(slope, x) if slope.size > 1 else slope.reshape(()),
                                               "alpha")])
    if variant == "parametricSoftplus":
        alpha = _per_channel_weights(ctx, fields.alpha, x, "parametricSoftplus alpha")
        beta = _per_channel_weights(ctx, fields.beta, x, "parametricSoftplus beta")
        shape = (lambda a: ctx.per_channel(a, x) if a.size > 1 else a.reshape(()))
        inner = ctx.node("mul", [x, ctx.const(shape(beta), "beta")])
        return ctx.node("mul", [ctx.node("softplus", [inner]), ctx.const(shape(alpha), "alpha")])
    raise ctx.unsupported(f"the activation {variant!r}")


def _per_channel_weights(ctx: NNLayerContext, w, x: Value, what: str) -> np.ndarray:
    """One value, or one per channel of ``x`` (a sub-byte quantized stream has padding past them)."""
    c = x.shape[ctx.channel_axis(x)]
    values = ctx.weights(w, None, what)
    return ctx.weights(w, (c,) if isinstance(c, int) and c > 1 and values.size >= c else (1,), what)


def _affine(ctx: NNLayerContext, x: Value, alpha: float, beta: float) -> Value:
    y = x if alpha == 1 else ctx.node("mul", [x, ctx.const(np.float32(alpha), "alpha")])
    return y if beta == 0 else ctx.node("add", [y, ctx.const(np.float32(beta), "beta")])


@nn_layer("activation")
def _activation(ctx: NNLayerContext) -> Value:
    return apply_activation(ctx, ctx.params, ctx.x)


@nn_layer("unary")
def _unary(ctx: NNLayerContext) -> Value:
    p = ctx.params
    op = type(p).Operation.Name(p.type)
    scale = p.scale or 1.0  # an unset scale (0) means 1 (NeuralNetwork.proto)
    x = _affine(ctx, ctx.x, scale, p.shift) if (scale, p.shift) != (1.0, 0.0) else ctx.x
    ir = _UNARY_ROWS.get((op, float(p.alpha) if op == "POWER" else None))
    if ir is not None:
        return ctx.node(ir, [x])
    eps = np.float32(p.epsilon or 1e-6)
    if op == "RSQRT":
        return ctx.node("rsqrt", [ctx.node("add", [x, ctx.const(eps, "eps")])])
    if op == "INVERSE":
        return ctx.node("reciprocal", [ctx.node("add", [x, ctx.const(eps, "eps")])])
    if op == "POWER":
        return ctx.node("pow", [x, ctx.const(np.float32(p.alpha), "alpha")])
    if op == "THRESHOLD":
        return ctx.node("max", [x, ctx.const(np.float32(p.alpha), "alpha")])
    raise ctx.unsupported(f"the unary operation {op}")


@nn_layer(*_MATH)
def _math(ctx: NNLayerContext) -> Value:
    return ctx.node(_MATH[ctx.kind], [ctx.x])


@nn_layer(*_BINARY_LAYERS)
def _binary(ctx: NNLayerContext) -> Value:
    ir = _BINARY_LAYERS[ctx.kind]
    if len(ctx.inputs) == 1:  # a comparison with the layer's alpha
        return ctx.node(ir, [ctx.x, ctx.const(np.float32(ctx.params.alpha), "alpha")])
    a, b = ctx.aligned(ctx.inputs[:2])
    if ctx.kind in LOGICAL.values():
        a, b = (_as_bool(ctx, v) for v in (a, b))
        return ctx.node("cast", [ctx.node(ir, [a, b])], {"to": "f32"})
    y = ctx.node(ir, [a, b])
    return ctx.node("cast", [y], {"to": "f32"}) if y.dtype == "bool" else y


def _as_bool(ctx: NNLayerContext, v: Value) -> Value:
    if v.dtype == "bool":
        return v
    zero = ctx.const(np.float32(0), "zero")
    return ctx.node("logical_not", [ctx.node("equal", [v, zero])])


@nn_layer("logicalNot")
def _logical_not(ctx: NNLayerContext) -> Value:
    return ctx.node("cast", [ctx.node("equal", [ctx.x, ctx.const(np.float32(0), "zero")])], {"to": "f32"})


@nn_layer("notEqual")
def _not_equal(ctx: NNLayerContext) -> Value:
    b = ctx.inputs[1] if len(ctx.inputs) > 1 else ctx.const(np.float32(ctx.params.alpha), "alpha")
    eq = ctx.node("equal", ctx.aligned([ctx.x, b]) if len(ctx.inputs) > 1 else [ctx.x, b])
    return ctx.node("cast", [ctx.node("logical_not", [eq])], {"to": "f32"})


@nn_layer("clip")
def _clip(ctx: NNLayerContext) -> Value:
    return ctx.node("clip", [ctx.x], {"min": float(ctx.params.minVal), "max": float(ctx.params.maxVal)})


@nn_layer("clampedReLU")
def _clamped_relu(ctx: NNLayerContext) -> Value:
    """``min(beta, x if x >= 0 else alpha * x)``."""
    p = ctx.params
    y = ctx.node("leaky_relu", [ctx.x], {"alpha": float(p.alpha)}) if p.alpha else ctx.node("relu", [ctx.x])
    return ctx.node("min", [y, ctx.const(np.float32(p.beta), "beta")])


@nn_layer("gelu")
def _gelu(ctx: NNLayerContext) -> Value:
    mode = type(ctx.params).GeluMode.Name(ctx.params.mode)
    if mode == "SIGMOID_APPROXIMATION":
        return ctx.node("mul", [ctx.x, ctx.node("sigmoid", [ctx.node("mul", [ctx.x, ctx.const(np.float32(1.702))])])])
    return ctx.node("gelu", [ctx.x], {"approximate": mode == "TANH_APPROXIMATION"})
