"""fold_shapes: shape computations settled by the known dims; reshape_to/expand/slice that need no run time."""
from __future__ import annotations

import numpy as np

from kcc.interpreter import run
from pass_helpers import apply_pass, check_rewrite, check_unchanged, graph_with


def _i64(op, v):
    return op.const(np.asarray(v, dtype=np.int64))


def _heads(op, x):
    """reshape_to(x, concat(shape(x)[0:2], [2, -1])): split the last axis into 2 heads."""
    s = op.shape(x)
    nt = op.slice(s, starts=(0,), ends=(2,), axes=(0,))
    return op.reshape_to(x, op.concat(nt, _i64(op, [2, -1]), axis=0))


def test_static_dims_fold_the_whole_shape_computation():
    g, op, x = graph_with((2, 5, 8))
    g.set_outputs([op.relu(_heads(op, x))], ["y"])
    check_rewrite(g, "fold_shapes", "static_heads", ["reshape", "relu"])


def test_symbolic_target_of_own_dims_is_the_static_reshape():
    g, op, x = graph_with(("N", "T", 8))
    y = _heads(op, x)
    assert y.shape == ("N", "T", 2, 4)
    g.set_outputs([op.relu(y)], ["y"])
    after = check_rewrite(g, "fold_shapes", "symbolic_heads", ["reshape", "relu"])
    (reshape,) = [n for n in after.nodes() if n.op == "reshape"]
    assert reshape.attrs["shape"] == (0, 0, 2, -1)


def test_static_axis_of_a_symbolic_tensor_folds_to_a_constant():
    # (N, 6) * shape(x)[1]: the gathered dim is static, so it is a constant; the mask stays dynamic.
    g, op, x = graph_with(("N", 6))
    s = op.shape(x)
    six = op.cast(op.gather(s, _i64(op, 1), axis=0), to="f32")
    g.set_outputs([op.mul(x, six)], ["y"])
    check_rewrite(g, "fold_shapes", "static_axis", ["mul"])


def test_causal_mask_of_static_length_is_a_constant_and_positions_expand_away():
    g, op, x = graph_with((2, 4, 4))
    s = op.shape(x)
    r = op.range(_i64(op, 0), op.gather(s, _i64(op, 1), axis=0), _i64(op, 1))
    future = op.greater(op.unsqueeze(r, axes=(0,)), op.unsqueeze(r, axes=(1,)))
    masked = op.where(future, op.const(np.float32(-1e9)), x)
    g.set_outputs([op.softmax(masked, axis=-1)], ["y"])
    check_rewrite(g, "fold_shapes", "static_causal_mask", ["where", "softmax"])


def test_expand_to_own_dims_and_whole_slices_are_their_input():
    g, op, x = graph_with(("N", "T"))
    s = op.shape(x)
    same = op.expand(x, op.concat(_i64(op, [1]), op.gather(s, _i64(op, [1])), axis=0))
    whole = op.slice(same, starts=(0, 0), ends=(1000000000, 1000000000), axes=(0, 1), steps=(1, 1))
    g.set_outputs([op.relu(whole)], ["y"])
    check_rewrite(g, "fold_shapes", "noop_expand_slice", ["relu"])


def test_dynamic_reshapes_and_real_broadcasts_are_left_alone():
    g, op, x = graph_with(("N", "T", 8))
    s = op.shape(x)
    # (T, N, 8): two symbolic dims move, only the run time knows the target.
    swapped = op.reshape_to(x, op.concat(op.gather(s, _i64(op, [1, 0])), _i64(op, [8]), axis=0))
    assert swapped.shape == ("T", "N", 8)
    # positions (1, T) broadcast to (N, T): a real broadcast.
    r = op.range(_i64(op, 0), op.gather(s, _i64(op, 1), axis=0), _i64(op, 1))
    pos = op.expand(op.unsqueeze(r, axes=(0,)), op.gather(s, _i64(op, [0, 1])))
    part = op.slice(x, starts=(1,), ends=(1000000000,), axes=(1,))  # drops a row: not whole
    g.set_outputs([swapped, pos, part], ["a", "b", "c"])
    check_unchanged(g, "fold_shapes")
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32)}
    got = run(g, feeds)
    np.testing.assert_array_equal(got["a"],
                                  feeds["x"].reshape(5, 2, 8))
    np.testing.assert_array_equal(got["b"], np.broadcast_to(np.arange(5), (2, 5)))


def test_large_constant_results_are_not_materialized():
    g, op, x = graph_with((2, 3))
    big = op.range(_i64(op, 0), _i64(op, 100000), _i64(op, 1))
    g.set_outputs([op.add(op.cast(big, to="f32"), op.const(np.float32(1.0)))], ["y"])
    assert not apply_pass("fold_shapes", g, max_elements=4096)
    assert g.op_types() == ["range", "cast", "add"]
