"""fold_keepdims_squeeze: reduce(keepdims) then squeeze of the same axes -> one reduction."""
from __future__ import annotations

from pass_helpers import check_rewrite, check_unchanged, graph_with


def test_global_pool_then_squeeze_is_one_reduction():
    g, op, x = graph_with(("N", 6, 5, 4))
    pooled = op.reduce_mean(x, axes=(2, 3), keepdims=True)
    g.set_outputs([op.squeeze(pooled, axes=(-2, -1))], ["y"])
    check_rewrite(g, "fold_keepdims_squeeze", "reduce_mean_squeeze", ["reduce_mean"])


def test_max_over_one_axis():
    g, op, x = graph_with(("N", 6, 5))
    g.set_outputs([op.squeeze(op.reduce_max(x, axes=(1,), keepdims=True), axes=(1,))], ["y"])
    check_rewrite(g, "fold_keepdims_squeeze", "reduce_max_squeeze", ["reduce_max"])


def test_other_axes_or_a_second_reader_are_left_alone():
    g, op, x = graph_with(("N", 6, 1, 4))
    kept = op.reduce_mean(x, axes=(3,), keepdims=True)      # (N, 6, 1, 1)
    partly = op.squeeze(kept, axes=(2,))                      # squeezes a non-reduced axis
    shared = op.reduce_sum(x, axes=(1,), keepdims=True)      # (N, 1, 1, 4), also an output
    g.set_outputs([partly, op.squeeze(shared, axes=(1,)), shared], ["a", "b", "c"])
    check_unchanged(g, "fold_keepdims_squeeze")
