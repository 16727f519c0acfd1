"""fold_shapes on ``slice_to``: the static ``slice`` once its bounds are known, left alone while they need the run time."""
from __future__ import annotations

import numpy as np

from pass_helpers import check_rewrite, check_unchanged, graph_with

TABLE = np.random.default_rng(0).standard_normal((12, 8)).astype(np.float32)


def _i64(op, v):
    return op.const(np.asarray(v, dtype=np.int64))


def _positions(op, x):
    """x + table[0:shape(x)[1]]."""
    t = op.gather(op.shape(x), _i64(op, [1]), axis=0)
    return op.add(x, op.slice_to(op.const(TABLE), _i64(op, [0]), t, axes=(0,)))


def test_static_length_makes_the_table_cut_a_static_slice():
    g, op, x = graph_with((2, 5, 8))
    g.set_outputs([_positions(op, x)], ["y"])
    after = check_rewrite(g, "fold_shapes", "slice_to_static_length", ["slice", "add"])
    (cut,) = [n for n in after.nodes() if n.op == "slice"]
    assert (cut.attrs["starts"], cut.attrs["ends"], cut.attrs["axes"]) == ((0,), (5,), (0,))


def test_the_axis_own_symbol_as_end_keeps_the_whole_axis():
    """x[:, 0:T] of x: f32[N,T,8] is a slice of the whole axis (the next round of the pass drops it)."""
    g, op, x = graph_with(("N", "T", 8))
    t = op.gather(op.shape(x), _i64(op, [1]), axis=0)
    g.set_outputs([op.relu(op.slice_to(x, _i64(op, [0]), t, axes=(1,)))], ["y"])
    after = check_rewrite(g, "fold_shapes", "slice_to_own_symbol", ["slice", "relu"])
    (cut,) = [n for n in after.nodes() if n.op == "slice"]
    assert cut.attrs["ends"] == (2 ** 62,) and cut.output.type == x.type


def test_a_symbolic_length_stays_dynamic():
    g, op, x = graph_with(("N", "T", 8))
    g.set_outputs([_positions(op, x)], ["y"])
    check_unchanged(g, "fold_shapes")
