"""MIL activations -> IR.

Most map one to one. The rest are written in IR ops so that dumps and
``--verify-each`` show them: ``relu6`` is ``clip(0, 6)``, ``clamped_relu`` is
``min(leaky_relu(x, alpha), beta)``, ``linear_activation`` is ``alpha*x + beta``,
``softplus_parametric`` is ``alpha * softplus(beta * x)`` per channel, and
``gelu(mode=SIGMOID_APPROXIMATION)`` is ``x * sigmoid(1.702 x)``.
"""
from __future__ import annotations

import numpy as np

from kcc.frontends.coreml.mil_registry import MilOpContext, mil_op
from kcc.ir import Value


def _same_name(ir_op: str):
    def handler(ctx: MilOpContext) -> Value:
        return getattr(ctx.op, ir_op)(ctx.value("x"))
    return handler


# tanh and erf are in mil_ops_elementwise (MIL lists them as elementwise unary ops).
for _name in ("relu", "sigmoid", "softsign", "softplus", "silu"):
    mil_op(_name)(_same_name(_name))


@mil_op("relu6")
def relu6(ctx: MilOpContext) -> Value:
    return ctx.op.clip(ctx.value("x"), min=0.0, max=6.0)


@mil_op("leaky_relu")
def leaky_relu(ctx: MilOpContext) -> Value:
    return ctx.op.leaky_relu(ctx.value("x"), alpha=float(ctx.scalar("alpha", 0.01)))


@mil_op("elu")
def elu(ctx: MilOpContext) -> Value:
    return ctx.op.elu(ctx.value("x"), alpha=float(ctx.scalar("alpha", 1.0)))


@mil_op("thresholded_relu")
def thresholded_relu(ctx: MilOpContext) -> Value:
    return ctx.op.thresholded_relu(ctx.value("x"), alpha=float(ctx.scalar("alpha", 1.0)))


@mil_op("sigmoid_hard")
def sigmoid_hard(ctx: MilOpContext) -> Value:
    return ctx.op.hard_sigmoid(ctx.value("x"), alpha=float(ctx.scalar("alpha", 0.2)),
                               beta=float(ctx.scalar("beta", 0.5)))


@mil_op("scaled_tanh")
def scaled_tanh(ctx: MilOpContext) -> Value:
    return ctx.op.scaled_tanh(ctx.value("x"), alpha=float(ctx.scalar("alpha", 1.0)),
                              beta=float(ctx.scalar("beta", 1.0)))


@mil_op("clamped_relu")
def clamped_relu(ctx: MilOpContext) -> Value:
    """min(beta, x if x >= 0 else alpha * x)."""
    x = ctx.value("x")
    y = ctx.op.leaky_relu(x, alpha=float(ctx.scalar("alpha", 0.0)))
    return ctx.op.min(y, ctx.like(ctx.scalar("beta", 6.0), x))


@mil_op("linear_activation")
def linear_activation(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    return ctx.op.add(ctx.op.mul(x, ctx.like(ctx.scalar("alpha"), x)), ctx.like(ctx.scalar("beta", 0.0), x))


def _per_channel(ctx: MilOpContext, param: str, x: Value) -> Value:
    """A (C,) MIL parameter as a constant broadcasting over x's axis 1 (shape (C, 1, ..., 1))."""
    a = np.asarray(ctx.const(param))
    return ctx.like(a.reshape((-1,) + (1,) * (x.rank - 2)), x)


@mil_op("prelu")
def prelu(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    return ctx.op.prelu(x, _per_channel(ctx, "alpha", x))


@mil_op("softplus_parametric")
def softplus_parametric(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    inner = ctx.op.softplus(ctx.op.mul(x, _per_channel(ctx, "beta", x)))
    return ctx.op.mul(inner, _per_channel(ctx, "alpha", x))


@mil_op("gelu")
def gelu(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    mode = str(ctx.scalar("mode", "EXACT"))
    if mode == "EXACT":
        return ctx.op.gelu(x, approximate=False)
    if mode == "TANH_APPROXIMATION":
        return ctx.op.gelu(x, approximate=True)
    if mode == "SIGMOID_APPROXIMATION":
        return ctx.op.mul(x, ctx.op.sigmoid(ctx.op.mul(x, ctx.like(1.702, x))))
    raise ctx.fail(f"unknown gelu mode {mode!r} (MIL has EXACT, TANH_APPROXIMATION, SIGMOID_APPROXIMATION)")


@mil_op("softmax")
def softmax(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    return ctx.op.softmax(x, axis=int(ctx.scalar("axis", -1)) % x.rank)
