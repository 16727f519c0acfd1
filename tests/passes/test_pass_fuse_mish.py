"""fuse_mish: x * tanh(softplus(x)) and the written-out softplus."""
from __future__ import annotations

from pass_helpers import c, check_rewrite, check_unchanged, graph_with


def test_x_tanh_softplus_becomes_mish():
    g, op, x = graph_with()
    g.set_outputs([op.mul(op.tanh(op.softplus(x)), x)], ["y"])
    check_rewrite(g, "fuse_mish", "x_tanh_softplus", ["mish"])


def test_written_out_softplus_then_mish():
    g, op, x = graph_with()
    sp = op.log(op.add(c(op, 1.0), op.exp(x)))
    g.set_outputs([op.mul(x, op.tanh(sp))], ["y"])
    check_rewrite(g, "fuse_mish", "log_1p_exp", ["mish"])


def test_other_value_or_shared_softplus_is_left_alone():
    g, op, x = graph_with()
    y = g.add_input("y", x.type)
    sp = op.softplus(x)
    other = op.mul(y, op.tanh(op.softplus(x)))     # gate of x applied to y
    g.set_outputs([other, op.mul(x, op.tanh(sp)), sp], ["a", "b", "s"])
    check_unchanged(g, "fuse_mish")
