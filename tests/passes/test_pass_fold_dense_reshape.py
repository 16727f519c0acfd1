"""fold_dense_reshape: tensordot's flatten / 2-D dense / runtime reshape back -> a matmul on the last axis.

Graphs are written the way tf2onnx traces Keras's Dense and EinsumDense on a
sequence, with batch and length symbolic (N, T) and every static size different.
The shape computations the rewrite leaves unread stay for fold_shapes (next in
the pipeline) to remove; ``_LEFT`` spells them.
"""
from __future__ import annotations

import numpy as np
import pytest

from pass_helpers import c, check_rewrite, check_unchanged, graph_with
from kcc.interpreter import run, seeded_inputs
from kcc.testing import assert_close


# The flatten and one runtime shape (shape, cast, gather, concat, cast), now unread.
_SHAPE_NODES = ["shape", "cast", "gather", "concat", "cast"]
_LEFT = ["reshape"] + _SHAPE_NODES


def _w(*shape):
    return np.random.default_rng(sum(shape)).normal(size=shape).astype(np.float32) * 0.3


def _i64(op, values):
    return op.const(np.asarray(values, dtype=np.int64))


def _runtime_shape(op, x, keep: int, tail, via_int32: bool = True):
    """concat(gather(shape(x), [0 .. keep-1]), tail), with tf2onnx's int32 casts around it."""
    s = op.shape(x)
    if via_int32:
        s = op.cast(s, to="i32")
    lead = op.gather(s, op.const(np.arange(keep, dtype=s.dtype == "i32" and np.int32 or np.int64)), axis=0)
    out = op.concat(lead, op.const(np.asarray(tail, dtype=np.int32 if via_int32 else np.int64)), axis=0)
    return op.cast(out, to="i64") if via_int32 else out


def _tensordot(op, x, w, b, keep, tail, **kw):
    flat = op.reshape(x, shape=(-1, w.shape[0]))
    return op.reshape_to(op.dense(flat, w, b, **kw), _runtime_shape(op, x, keep, tail))


def test_dense_on_a_sequence_becomes_matmul_and_add():
    g, op, x = graph_with(("N", "T", 6), origin="dense")
    g.set_outputs([_tensordot(op, x, c(op, _w(6, 10)), c(op, _w(10)), 2, [10])], ["y"])
    check_rewrite(g, "fold_dense_reshape", "sequence_dense", _LEFT + ["matmul", "add"])


def test_flatten_shared_by_three_projections_folds_each():
    """q, k and v read one flatten; the head split (T, 2, 5) is a static tail after the runtime dims."""
    g, op, x = graph_with(("N", "T", 1, 1, 6), origin="qkv")
    flat = op.reshape(x, shape=(-1, 6))
    outs = [op.reshape_to(op.dense(flat, c(op, _w(6, 10 + i) [:, :10])), _runtime_shape(op, x, 2, [2, 5, 1]))
            for i in range(3)]
    g.set_outputs(outs, ["q", "k", "v"])
    check_rewrite(g, "fold_dense_reshape", "shared_flatten", _LEFT + _SHAPE_NODES * 2 + ["matmul", "reshape"] * 3)


def test_einsum_over_two_trailing_axes():
    """(N, T, 1, 3, 4) flattened to (-1, 12): the output projection of attention heads."""
    g, op, x = graph_with(("N", "T", 1, 3, 4), origin="out")
    g.set_outputs([_tensordot(op, x, c(op, _w(12, 7)), None, 2, [7, 1, 1])], ["y"])
    check_rewrite(g, "fold_dense_reshape", "two_axes", _LEFT + ["reshape", "matmul", "reshape"])


@pytest.mark.parametrize("case", ["shape_of_another_tensor", "fused_activation", "lead_dims_swapped",
                                  "flatten_splits_the_last_axis"])
def test_left_alone(case):
    g, op, x = graph_with(("N", "T", 6), origin="dense")
    w = c(op, _w(6, 10))
    if case == "shape_of_another_tensor":
        other = g.add_input("z", x.type)
        flat = op.reshape(x, shape=(-1, 6))
        y = op.reshape_to(op.dense(flat, w), _runtime_shape(op, other, 2, [10]))
    elif case == "fused_activation":
        y = _tensordot(op, x, w, None, 2, [10], activation="relu")
    elif case == "lead_dims_swapped":
        s = op.concat(op.gather(op.shape(x), _i64(op, [1, 0]), axis=0), _i64(op, [10]), axis=0)
        y = op.reshape_to(op.dense(op.reshape(x, shape=(-1, 6)), w), s)
    else:   # (N*T*2, 3) rows: not a product over the last axis
        flat = op.reshape(x, shape=(-1, 3))
        y = op.reshape_to(op.dense(flat, c(op, _w(3, 10))), _runtime_shape(op, x, 2, [20]))
    g.set_outputs([y], ["y"])
    check_unchanged(g, "fold_dense_reshape")


def test_static_shapes_fold_too_and_fold_shapes_clears_what_is_left():
    """With every dim known the reshape back is a plain reshape; after fold_shapes only the matmul is left."""
    g, op, x = graph_with((2, 5, 6), origin="dense")
    y = op.reshape(op.dense(op.reshape(x, shape=(-1, 6)), c(op, _w(6, 10)), c(op, _w(10))), shape=(2, 5, 10))
    g.set_outputs([y], ["y"])
    check_rewrite(g, "fold_dense_reshape", "static", ["reshape", "matmul", "add"])
    from pass_helpers import apply_pass
    assert apply_pass("fold_shapes", g)
    assert g.op_types() == ["matmul", "add"]


def test_numbers_with_two_different_lengths():
    """The folded graph computes the same as the traced one at lengths 3 and 8."""
    g, op, x = graph_with(("N", "T", 6), origin="dense")
    g.set_outputs([_tensordot(op, x, c(op, _w(6, 10)), c(op, _w(10)), 2, [10])], ["y"])
    feeds = [{"x": np.random.default_rng(t).normal(size=(2, t, 6)).astype(np.float32)} for t in (3, 8)]
    before = [run(g, f)["y"] for f in feeds]
    from pass_helpers import apply_pass
    assert apply_pass("fold_dense_reshape", g)
    for f, want in zip(feeds, before):
        assert_close(want, run(g, f)["y"], 1e-6)
