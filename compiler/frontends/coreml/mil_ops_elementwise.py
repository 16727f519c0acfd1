"""MIL elementwise ops (binary, unary, comparisons, logic) and reductions -> IR.

MIL's binary ops broadcast like numpy, as the IR's do. A few unary ops carry an
``epsilon`` (``inverse``: 1/(x+eps), default 1e-4; ``rsqrt``: 1/sqrt(x+eps),
default 1e-12; ``log``: log(x+eps), default 1e-45): the epsilon is an explicit
``add`` whenever it is not zero, so nothing of the op's meaning is dropped.
"""
from __future__ import annotations

import numpy as np

from kcc.frontends.coreml.mil_registry import MilOpContext, mil_op
from kcc.ir import Value

_BINARY = {"add": "add", "sub": "sub", "mul": "mul", "real_div": "div", "pow": "pow", "maximum": "max",
           "minimum": "min", "equal": "equal", "greater": "greater", "greater_equal": "greater_equal",
           "less": "less", "less_equal": "less_equal", "logical_and": "logical_and", "logical_or": "logical_or",
           "logical_xor": "logical_xor"}


def _binary(ir_op: str):
    def handler(ctx: MilOpContext) -> Value:
        return getattr(ctx.op, ir_op)(ctx.value("x"), ctx.value("y"))
    return handler


for _mil, _ir in _BINARY.items():
    mil_op(_mil)(_binary(_ir))


@mil_op("not_equal")
def not_equal(ctx: MilOpContext) -> Value:
    return ctx.op.logical_not(ctx.op.equal(ctx.value("x"), ctx.value("y")))


@mil_op("floor_div")
def floor_div(ctx: MilOpContext) -> Value:
    x, y = ctx.value("x"), ctx.value("y")
    if x.dtype.startswith("f"):
        return ctx.op.floor(ctx.op.div(x, y))
    # Integer floor division: through float32, exact for |values| < 2**24.
    q = ctx.op.floor(ctx.op.div(ctx.op.cast(x, to="f32"), ctx.op.cast(y, to="f32")))
    return ctx.op.cast(q, to=x.dtype)


@mil_op("mod")
def mod(ctx: MilOpContext) -> Value:
    """x - floor(x / y) * y (the sign of y, like Python and MIL)."""
    x, y = ctx.value("x"), ctx.value("y")
    return ctx.op.sub(x, ctx.op.mul(ctx.op.floor(ctx.op.div(x, y)), y))


_UNARY = {"abs": "abs", "ceil": "ceil", "cos": "cos", "exp": "exp", "floor": "floor", "round": "round",
          "sign": "sign", "sin": "sin", "sqrt": "sqrt", "square": "square", "tan": "tan", "atan": "atan", "tanh": "tanh",
          "logical_not": "logical_not", "erf": "erf", "identity": "identity"}


def _unary(ir_op: str):
    def handler(ctx: MilOpContext) -> Value:
        return getattr(ctx.op, ir_op)(ctx.value("x"))
    return handler


for _mil, _ir in _UNARY.items():
    mil_op(_mil)(_unary(_ir))


def _plus_epsilon(ctx: MilOpContext, default: float) -> Value:
    x = ctx.value("x")
    eps = float(ctx.scalar("epsilon", default))
    return ctx.op.add(x, ctx.like(eps, x)) if eps else x


@mil_op("inverse")
def inverse(ctx: MilOpContext) -> Value:
    return ctx.op.reciprocal(_plus_epsilon(ctx, 1e-4))


@mil_op("rsqrt")
def rsqrt(ctx: MilOpContext) -> Value:
    return ctx.op.rsqrt(_plus_epsilon(ctx, 1e-12))


@mil_op("log")
def log(ctx: MilOpContext) -> Value:
    return ctx.op.log(_plus_epsilon(ctx, 1e-45))


@mil_op("exp2")
def exp2(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    return ctx.op.exp(ctx.op.mul(x, ctx.like(np.log(2.0), x)))


@mil_op("clip")
def clip(ctx: MilOpContext) -> Value:
    return ctx.op.clip(ctx.value("x"), min=float(ctx.scalar("alpha")), max=float(ctx.scalar("beta")))


@mil_op("threshold")
def threshold(ctx: MilOpContext) -> Value:
    """max(x, alpha)."""
    x = ctx.value("x")
    return ctx.op.max(x, ctx.like(ctx.scalar("alpha"), x))


# ------------------------------------------------------------------ reductions

def _axes(ctx: MilOpContext, x: Value) -> list[int]:
    if not ctx.has("axes"):
        return list(range(x.rank))
    return [a % x.rank for a in ctx.ints("axes")]


def _reduce(ir_op: str):
    def handler(ctx: MilOpContext) -> Value:
        x = ctx.value("x")
        return getattr(ctx.op, ir_op)(x, axes=_axes(ctx, x), keepdims=bool(ctx.scalar("keep_dims", False)))
    return handler


for _mil, _ir in {"reduce_sum": "reduce_sum", "reduce_mean": "reduce_mean", "reduce_max": "reduce_max",
                  "reduce_min": "reduce_min", "reduce_prod": "reduce_prod"}.items():
    mil_op(_mil)(_reduce(_ir))


@mil_op("reduce_sum_square")
def reduce_sum_square(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    return ctx.op.reduce_sum(ctx.op.square(x), axes=_axes(ctx, x), keepdims=bool(ctx.scalar("keep_dims", False)))


@mil_op("reduce_l1_norm")
def reduce_l1_norm(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    return ctx.op.reduce_sum(ctx.op.abs(x), axes=_axes(ctx, x), keepdims=bool(ctx.scalar("keep_dims", False)))


@mil_op("reduce_l2_norm")
def reduce_l2_norm(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    s = ctx.op.reduce_sum(ctx.op.square(x), axes=_axes(ctx, x), keepdims=bool(ctx.scalar("keep_dims", False)))
    return ctx.op.sqrt(s)


@mil_op("reduce_log_sum")
def reduce_log_sum(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    return ctx.op.log(ctx.op.reduce_sum(x, axes=_axes(ctx, x), keepdims=bool(ctx.scalar("keep_dims", False))))


@mil_op("reduce_log_sum_exp")
def reduce_log_sum_exp(ctx: MilOpContext) -> Value:
    """log(sum(exp(x - m))) + m with m the max over the axes: no overflow."""
    x = ctx.value("x")
    axes, keep = _axes(ctx, x), bool(ctx.scalar("keep_dims", False))
    m = ctx.op.reduce_max(x, axes=axes, keepdims=True)
    s = ctx.op.log(ctx.op.reduce_sum(ctx.op.exp(ctx.op.sub(x, m)), axes=axes, keepdims=True))
    y = ctx.op.add(s, m)
    return y if keep else ctx.op.squeeze(y, axes=axes)


def _arg(ir_op: str):
    def handler(ctx: MilOpContext) -> Value:
        x = ctx.value("x")
        y = getattr(ctx.op, ir_op)(x, axis=int(ctx.scalar("axis", -1)) % x.rank,
                                   keepdims=bool(ctx.scalar("keep_dims", False)))
        want = ctx.out_type(0)
        return ctx.op.cast(y, to=want.dtype) if want is not None and want.dtype != y.dtype else y
    return handler


mil_op("reduce_argmax")(_arg("argmax"))
mil_op("reduce_argmin")(_arg("argmin"))
