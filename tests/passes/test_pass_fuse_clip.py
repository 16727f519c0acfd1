"""fuse_clip: max/min by scalars, clip chains (relu6), hard_sigmoid."""
from __future__ import annotations

from pass_helpers import c, check_rewrite, check_unchanged, graph_with, scaled_inputs


def test_min_max_zero_six_becomes_relu6_clip():
    g, op, x = graph_with()
    g.set_outputs([op.min(op.max(x, c(op, 0.0)), c(op, 6.0))], ["y"])
    out = check_rewrite(g, "fuse_clip", "min_max_0_6", ["clip"], feeds=scaled_inputs(g, 5.0))
    assert out.nodes()[0].attrs == {"min": 0.0, "max": 6.0}


def test_clip_by_value_order_max_of_min():
    g, op, x = graph_with()
    g.set_outputs([op.max(c(op, -1.0), op.min(x, c(op, 2.5)))], ["y"])
    out = check_rewrite(g, "fuse_clip", "max_min_general", ["clip"], feeds=scaled_inputs(g, 3.0))
    assert out.nodes()[0].attrs == {"min": -1.0, "max": 2.5}


def test_max_zero_is_relu_and_relu_relu_merges():
    g, op, x = graph_with()
    g.set_outputs([op.relu(op.relu(op.max(x, c(op, 0.0))))], ["y"])
    check_rewrite(g, "fuse_clip", "relu_chain", ["relu"])


def test_relu6_over_six_of_x_plus_three_is_hard_sigmoid():
    g, op, x = graph_with()
    r6 = op.clip(op.add(x, c(op, 3.0)), min=0.0, max=6.0)
    g.set_outputs([op.div(r6, c(op, 6.0))], ["y"])
    out = check_rewrite(g, "fuse_clip", "relu6_div6", ["hard_sigmoid"], feeds=scaled_inputs(g, 5.0))
    assert abs(out.nodes()[0].attrs["alpha"] - 1 / 6) < 1e-7 and out.nodes()[0].attrs["beta"] == 0.5


def test_clip_of_affine_is_hard_sigmoid():
    # Keras 3 TF backend: clip(x / 6 + 0.5, 0, 1), clip_by_value as max(min(., 1), 0).
    g, op, x = graph_with()
    t = op.add(op.div(x, c(op, 6.0)), c(op, 0.5))
    g.set_outputs([op.max(op.min(t, c(op, 1.0)), c(op, 0.0))], ["y"])
    check_rewrite(g, "fuse_clip", "clip_affine", ["hard_sigmoid"], feeds=scaled_inputs(g, 5.0))


def test_per_channel_bound_empty_interval_and_wrong_divisor_are_left_alone():
    g, op, x = graph_with()
    a = op.max(x, c(op, [0.1 * i for i in range(10)]))             # not one scalar
    b = op.clip(op.clip(x, min=2.0, max=3.0), min=4.0, max=5.0)    # empty interval
    d = op.div(op.clip(op.add(x, c(op, 3.0)), min=0.0, max=6.0), c(op, 5.0))  # /5 after relu6
    g.set_outputs([a, b, d], ["a", "b", "d"])
    check_unchanged(g, "fuse_clip")


def test_inner_value_read_elsewhere_is_left_alone():
    g, op, x = graph_with()
    m = op.max(x, c(op, 0.5))
    clipped = op.clip(m, min=0.0, max=6.0)
    g.set_outputs([clipped, op.max(m, m)], ["y", "m"])
    # max(x, 0.5) itself becomes a clip, but the chain must not merge past the shared value.
    assert g.op_types() == ["max", "clip", "max"]
    from pass_helpers import apply_pass
    apply_pass("fuse_clip", g)
    assert g.op_types() == ["clip", "clip", "max"]
