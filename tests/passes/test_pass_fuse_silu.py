"""fuse_silu: x*sigmoid(x) and the written-out sigmoid."""
from __future__ import annotations

from pass_helpers import c, check_rewrite, check_unchanged, graph_with


def test_x_times_sigmoid_x_becomes_silu():
    g, op, x = graph_with()
    g.set_outputs([op.mul(op.sigmoid(x), x)], ["y"])
    check_rewrite(g, "fuse_silu", "x_sigmoid_x", ["silu"])


def test_x_over_one_plus_exp_neg_x_becomes_silu():
    g, op, x = graph_with()
    g.set_outputs([op.div(x, op.add(c(op, 1.0), op.exp(op.neg(x))))], ["y"])
    check_rewrite(g, "fuse_silu", "x_over_1p_exp_neg", ["silu"])


def test_written_out_sigmoid_then_silu():
    g, op, x = graph_with()
    s = op.div(c(op, 1.0), op.add(op.exp(op.mul(x, c(op, -1.0))), c(op, 1.0)))
    g.set_outputs([op.mul(x, s)], ["y"])
    check_rewrite(g, "fuse_silu", "one_over_1p_exp_neg_times_x", ["silu"])


def test_reciprocal_form_is_sigmoid():
    g, op, x = graph_with()
    g.set_outputs([op.reciprocal(op.add(op.exp(op.neg(x)), c(op, 1.0)))], ["y"])
    check_rewrite(g, "fuse_silu", "reciprocal_sigmoid", ["sigmoid"])


def test_x_times_sigmoid_of_another_value_is_left_alone():
    g, op, x = graph_with()
    y = g.add_input("y", x.type)
    g.set_outputs([op.mul(x, op.sigmoid(y))], ["out"])
    check_unchanged(g, "fuse_silu")


def test_sigmoid_read_elsewhere_is_left_alone():
    g, op, x = graph_with()
    s = op.sigmoid(x)
    g.set_outputs([op.mul(x, s), s], ["y", "s"])
    check_unchanged(g, "fuse_silu")


def test_broadcasting_input_is_left_alone():
    # x * sigmoid(x) where x is a per-feature constant row: not a tensor to fuse over.
    g, op, x = graph_with()
    k = c(op, [[0.5] * 10])
    g.set_outputs([op.add(x, op.mul(k, op.sigmoid(k)))], ["y"])
    check_unchanged(g, "fuse_silu")
