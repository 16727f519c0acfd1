"""fuse_square: x*x and pow(x, 2)."""
from __future__ import annotations

from pass_helpers import c, check_rewrite, check_unchanged, graph_with


def test_x_times_x_becomes_square():
    g, op, x = graph_with()
    g.set_outputs([op.add(op.mul(x, x), x)], ["y"])
    check_rewrite(g, "fuse_square", "mul_self", ["square", "add"])


def test_pow_two_becomes_square():
    g, op, x = graph_with()
    g.set_outputs([op.pow(x, c(op, 2.0))], ["y"])
    check_rewrite(g, "fuse_square", "pow_2", ["square"])


def test_x_times_y_and_pow_three_are_left_alone():
    g, op, x = graph_with()
    y = g.add_input("y", x.type)
    g.set_outputs([op.mul(x, y), op.pow(x, c(op, 3.0))], ["a", "b"])
    check_unchanged(g, "fuse_square")
