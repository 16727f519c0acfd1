"""fuse_leaky_relu: max(x, a*x) with 0 < a < 1 (and min(x, a*x) with a > 1)."""
from __future__ import annotations

import pytest

from pass_helpers import c, check_rewrite, check_unchanged, graph_with


def test_max_x_ax_becomes_leaky_relu():
    g, op, x = graph_with()
    g.set_outputs([op.max(op.mul(c(op, 0.2), x), x)], ["y"])
    out = check_rewrite(g, "fuse_leaky_relu", "max_x_ax", ["leaky_relu"])
    assert abs(out.nodes()[0].attrs["alpha"] - 0.2) < 1e-7


def test_min_x_ax_with_slope_above_one_becomes_leaky_relu():
    g, op, x = graph_with()
    g.set_outputs([op.min(x, op.mul(x, c(op, 3.0)))], ["y"])
    check_rewrite(g, "fuse_leaky_relu", "min_x_ax", ["leaky_relu"])


@pytest.mark.parametrize("slope", [1.5, 1.0, -0.1])
def test_max_with_slope_outside_zero_one_is_left_alone(slope):
    g, op, x = graph_with()
    g.set_outputs([op.max(x, op.mul(x, c(op, slope)))], ["y"])
    check_unchanged(g, "fuse_leaky_relu")


def test_other_value_or_per_channel_slope_is_left_alone():
    g, op, x = graph_with()
    y = g.add_input("y", x.type)
    a = op.max(x, op.mul(y, c(op, 0.2)))
    b = op.max(x, op.mul(x, c(op, [0.1 * i for i in range(10)])))
    g.set_outputs([a, b], ["a", "b"])
    check_unchanged(g, "fuse_leaky_relu")
