"""fuse_hard_silu: x*relu6(x+3)/6 and x*hard_sigmoid(x)."""
from __future__ import annotations

from pass_helpers import apply_pass, c, check_rewrite, check_unchanged, graph_with, scaled_inputs


def _relu6_x3(op, x):
    return op.clip(op.add(x, c(op, 3.0)), min=0.0, max=6.0)


def test_x_relu6_div6_becomes_hard_silu():
    g, op, x = graph_with()
    g.set_outputs([op.div(op.mul(x, _relu6_x3(op, x)), c(op, 6.0))], ["y"])
    check_rewrite(g, "fuse_hard_silu", "x_relu6_div6", ["hard_silu"], feeds=scaled_inputs(g, 4.0))


def test_x_relu6_times_sixth_becomes_hard_silu():
    g, op, x = graph_with()
    g.set_outputs([op.mul(c(op, 1 / 6), op.mul(_relu6_x3(op, x), x))], ["y"])
    check_rewrite(g, "fuse_hard_silu", "x_relu6_mul6th", ["hard_silu"], feeds=scaled_inputs(g, 4.0))


def test_x_hard_sigmoid_becomes_hard_silu():
    g, op, x = graph_with()
    g.set_outputs([op.mul(op.hard_sigmoid(x, alpha=1 / 6, beta=0.5), x)], ["y"])
    check_rewrite(g, "fuse_hard_silu", "x_hard_sigmoid", ["hard_silu"], feeds=scaled_inputs(g, 4.0))


def test_min_max_spelling_after_fuse_clip():
    g, op, x = graph_with()
    r6 = op.min(op.max(op.add(x, c(op, 3.0)), c(op, 0.0)), c(op, 6.0))
    g.set_outputs([op.mul(x, op.div(r6, c(op, 6.0)))], ["y"])
    apply_pass("fuse_clip", g)
    assert g.op_types() == ["hard_sigmoid", "mul"]
    check_rewrite(g, "fuse_hard_silu", "after_fuse_clip", ["hard_silu"], feeds=scaled_inputs(g, 4.0))


def test_keras2_hard_sigmoid_and_other_constants_are_left_alone():
    g, op, x = graph_with()
    a = op.mul(x, op.hard_sigmoid(x, alpha=0.2, beta=0.5))
    b = op.div(op.mul(x, op.clip(op.add(x, c(op, 2.0)), min=0.0, max=6.0)), c(op, 6.0))
    y = g.add_input("y", x.type)
    d = op.mul(x, op.hard_sigmoid(y, alpha=1 / 6, beta=0.5))
    g.set_outputs([a, b, d], ["a", "b", "d"])
    check_unchanged(g, "fuse_hard_silu")
