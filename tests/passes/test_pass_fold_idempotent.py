"""fold_idempotent: abs/neg/square chains and same-dtype casts."""
from __future__ import annotations

from pass_helpers import c, check_rewrite, check_unchanged, graph_with


def test_unary_chains_fold():
    g, op, x = graph_with()
    a = op.abs(op.abs(x))
    b = op.square(op.neg(x))
    n = op.neg(op.neg(op.sin(x)))
    g.set_outputs([op.add(op.add(a, b), n)], ["y"])
    check_rewrite(g, "fold_idempotent", "chains", ["sin", "abs", "square", "add", "add"])


def test_same_dtype_cast_goes():
    g, op, x = graph_with()
    g.set_outputs([op.exp(op.cast(x, to="f32"))], ["y"])
    check_rewrite(g, "fold_idempotent", "cast_same", ["exp"])


def test_real_cast_and_shared_inner_value_stay():
    g, op, x = graph_with()
    inner = op.abs(x)
    g.set_outputs([op.cast(x, to="f16"), op.abs(inner), inner], ["a", "b", "c"])
    check_unchanged(g, "fold_idempotent")


def test_neutral_arithmetic_goes():
    # tf.nn.silu traces as x * sigmoid(1.0 * x)
    g, op, x = graph_with()
    y = op.div(op.sub(op.add(op.mul(c(op, 1.0), x), c(op, 0.0)), c(op, 0.0)), c(op, 1.0))
    g.set_outputs([op.mul(x, op.sigmoid(op.pow(y, c(op, 1.0))))], ["y"])
    check_rewrite(g, "fold_idempotent", "neutral_arith", ["sigmoid", "mul"])


def test_neutral_constant_that_broadcasts_stays():
    g, op, x = graph_with(("N", 1))
    g.set_outputs([op.mul(x, c(op, [1.0] * 10)), op.add(x, c(op, 0.5))], ["a", "b"])
    check_unchanged(g, "fold_idempotent")
