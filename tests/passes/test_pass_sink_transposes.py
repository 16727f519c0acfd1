"""sink_transposes: regions held in the layout their transposes came from; the transposes cancel.

Each case: the op list after the pass, golden text (before and after), the
interpreter's numbers before == after; then cases that must not fire (a user
that cannot take the transpose, a CNN block) and the reasons ``plan`` gives.
Shapes use unequal sizes everywhere, so a wrong axis cannot pass.
"""
from __future__ import annotations

import numpy as np
import pytest

from pass_helpers import apply_pass, c, check_rewrite, check_unchanged, graph_with
from kcc.backends import with_pass_options
from kcc.backends.onnx import ONNX_LOWERING, emit_onnx
from kcc.interpreter import run, seeded_inputs
from kcc.ir import TensorType
from kcc.passes.sink_transposes import explain, plan
from kcc.pipeline import Pipeline
from kcc.testing import assert_close, run_onnx

TO_IR3, TO_KERAS3 = (0, 2, 1), (0, 2, 1)
TO_IR4, TO_KERAS4 = (0, 3, 1, 2), (0, 2, 3, 1)


def _w(*shape, seed=0):
    return np.random.default_rng(seed + sum(shape)).normal(size=shape).astype(np.float32) * 0.5


def _onnx_matches(g, feeds=None) -> None:
    """The rewritten graph through ONNX lowering and onnxruntime (default options) gives the same numbers."""
    feeds = feeds or seeded_inputs(g)
    ref = run(g, feeds)
    g2 = g.copy()
    Pipeline.from_spec(with_pass_options(ONNX_LOWERING, {"opset": 17})).run(g2)
    got = run_onnx(emit_onnx(g2), feeds)
    for (name, r), o in zip(ref.items(), got):
        assert_close(r, o, 1e-5, what=f"onnx {name}")


def _sequence_block(op, x, units=4, feats=6):
    """Keras (N, T, F) input -> IR layout -> dense -> layer_norm on the features -> back to Keras order."""
    h = op.transpose(x, perm=TO_IR3)
    d = op.dense(h, c(op, _w(feats, units)), c(op, _w(units, seed=1)))
    ln = op.layer_norm(d, c(op, 1 + _w(units, seed=2)), c(op, _w(units, seed=3)), axes=(1,), epsilon=1e-3)
    return op.transpose(op.relu(ln), perm=TO_KERAS3)


def test_dense_and_layer_norm_of_a_sequence_run_in_keras_order():
    g, op, x = graph_with(("N", 5, 6), origin="seq")
    g.set_outputs([_sequence_block(op, x)], ["y"])
    check_rewrite(g, "sink_transposes", "seq_dense_layer_norm", ["matmul", "add", "layer_norm", "relu"])
    (ln,) = [n for n in g.nodes() if n.op == "layer_norm"]
    assert ln.attrs["axes"] == (2,)
    _onnx_matches(g)


def test_residual_add_reads_two_transposed_values():
    """The seed has two users (dense and the residual add): both take it, the count drops to zero."""
    g, op, x = graph_with(("N", 5, 6), origin="block")
    h = op.transpose(x, perm=TO_IR3)
    f = op.gelu(op.dense(h, c(op, _w(6, 9)), c(op, _w(9))))
    f = op.dense(f, c(op, _w(9, 6, seed=4)), c(op, _w(6, seed=5)))
    y = op.layer_norm(op.add(h, f), c(op, 1 + _w(6, seed=6)), c(op, _w(6, seed=7)), axes=(1,))
    g.set_outputs([op.transpose(y, perm=TO_KERAS3)], ["y"])
    check_rewrite(g, "sink_transposes", "residual",
                  ["matmul", "add", "gelu", "matmul", "add", "add", "layer_norm"])
    _onnx_matches(g)


def test_constants_of_every_rank_are_permuted():
    """IR-layout constants (F, T), (T,), (F, 1) and a scalar broadcast against (N, F, T)."""
    g, op, x = graph_with(("N", 5, 6), origin="consts")
    h = op.transpose(x, perm=TO_IR3)                    # (N, 6, 5)
    h = op.add(h, c(op, _w(6, 5)))
    h = op.mul(h, c(op, _w(5, seed=1)))
    h = op.sub(c(op, _w(6, 1, seed=2)), h)
    h = op.max(h, c(op, 0.25))
    g.set_outputs([op.transpose(h, perm=TO_KERAS3)], ["y"])
    check_rewrite(g, "sink_transposes", "constants", ["add", "mul", "sub", "max"])


def test_axis_attributes_are_remapped():
    """softmax, slice, pad, cumsum, concat, a reduction and a gather on a rank-4 NHWC input (H 4, W 5, C 3)."""
    g, op, x = graph_with(("N", 4, 5, 3), origin="axes")
    h = op.transpose(x, perm=TO_IR4)                    # (N, 3, 4, 5)
    h = op.softmax(h, axis=1)
    h = op.slice(h, starts=(1,), ends=(4,), axes=(3,))  # W 5 -> 3
    h = op.pad(h, pads=(0, 1, 0, 2, 0, 0, 1, 0))        # C 3 -> 4, W 3 -> 5
    h = op.cumsum(h, axis=2)
    h = op.concat(h, op.neg(h), axis=1)                 # C 4 -> 8
    h = op.gather(h, op.const(np.array([4, 0, 3], dtype=np.int64)), axis=3)
    r = op.reduce_mean(h, axes=(2,), keepdims=True)
    g.set_outputs([op.transpose(op.sub(h, r), perm=TO_KERAS4)], ["y"])
    check_rewrite(g, "sink_transposes", "axes",
                  ["softmax", "slice", "pad", "cumsum", "neg", "concat", "gather", "reduce_mean", "sub"])
    _onnx_matches(g)


def test_a_reduction_that_drops_axes_ends_the_transpose():
    """(N, T, F) -> IR -> mean over T, keepdims=False: (N, F) needs no transpose at all."""
    g, op, x = graph_with(("N", 5, 6), origin="pool")
    h = op.relu(op.transpose(x, perm=TO_IR3))
    g.set_outputs([op.reduce_mean(h, axes=(2,))], ["y"])
    check_rewrite(g, "sink_transposes", "reduce_drops_axis", ["relu", "reduce_mean"])


def test_squeeze_unsqueeze_split_and_layer_norm_over_two_axes():
    g, op, x = graph_with(("N", 1, 4, 3), origin="shape")
    h = op.transpose(x, perm=TO_IR4)                    # (N, 3, 1, 4)
    h = op.layer_norm(h, c(op, 1 + _w(3, 4)), c(op, _w(3, 4, seed=1)), axes=(1, 3))
    a, b = op.split(h, axis=1, sizes=(1, 2))
    s = op.squeeze(b, axes=(2,))                        # (N, 2, 4)
    u = op.unsqueeze(s, axes=(1,))                      # (N, 1, 2, 4)
    g.set_outputs([op.transpose(a, perm=TO_KERAS4), op.transpose(u, perm=(0, 1, 3, 2))], ["a", "u"])
    check_rewrite(g, "sink_transposes", "shape_ops", ["layer_norm", "split", "squeeze", "unsqueeze"])


def test_dense_alone_becomes_matmul_when_the_count_does_not_grow():
    """Input transpose -> dense -> IR-layout output: one transpose before and after, and no 1x1 conv."""
    g, op, x = graph_with(("N", 5, 6), origin="d")
    g.set_outputs([op.dense(op.transpose(x, perm=TO_IR3), c(op, _w(6, 4)), None)], ["y"])
    check_rewrite(g, "sink_transposes", "dense_to_output", ["matmul", "transpose"])


def test_constant_transposes_fold():
    g, op, x = graph_with(("N", 3, 4), origin="k")
    w = op.transpose(c(op, _w(4, 3)), perm=(1, 0))
    g.set_outputs([op.add(x, w)], ["y"])
    check_rewrite(g, "sink_transposes", "constant", ["add"])


def test_a_transpose_moves_up_to_the_op_without_a_rule():
    """Hoisting: an image-to-sequence reshape in IR layout, then a layer_norm and a Keras-order handler
    (transpose, matmul, transpose back, residual add): the transpose moves above the layer_norm."""
    g, op, x = graph_with(("N", 4, 3, 5), origin="hoist")
    seq = op.reshape(x, shape=(0, 4, 15))                           # (N, C=4, T=15), IR layout
    ln = op.layer_norm(seq, c(op, 1 + _w(4)), c(op, _w(4, seed=1)), axes=(1,))
    att = op.matmul(op.transpose(ln, perm=TO_KERAS3), c(op, _w(4, 4, seed=2)))
    y = op.add(ln, op.transpose(att, perm=TO_IR3))
    g.set_outputs([op.reduce_mean(y, axes=(2,))], ["y"])
    check_rewrite(g, "sink_transposes", "hoist", ["reshape", "transpose", "layer_norm", "matmul", "add",
                                                  "reduce_mean"])
    (ln,) = [n for n in g.nodes() if n.op == "layer_norm"]
    assert ln.attrs["axes"] == (2,)
    _onnx_matches(g)


# ----------------------------------------------------------------- must not fire

def test_a_transpose_read_by_an_op_without_a_rule_stays():
    """One user (reshape) cannot take it: moving it past the relu would add a transpose."""
    g, op, x = graph_with(("N", 5, 6), origin="stay")
    h = op.transpose(x, perm=TO_IR3)
    g.set_outputs([op.reshape(h, shape=(0, -1)), op.relu(h)], ["flat", "y"])
    p = plan(g, g.nodes()[0])
    assert not p.fires and p.delta == 1
    assert p.reasons == {"stay/reshape": "reshape has no layout rule"}
    check_unchanged(g, "sink_transposes")


def test_a_cnn_block_stays_channels_first():
    g, op, x = graph_with(("N", 8, 6, 3), origin="cnn")
    h = op.relu(op.transpose(x, perm=TO_IR4))
    h = op.conv(h, c(op, _w(5, 3, 3, 3)), c(op, _w(5)), pads=(1, 1, 1, 1))
    h = op.batch_norm(h, c(op, 1 + _w(5)), c(op, _w(5, seed=1)), c(op, _w(5, seed=2)), c(op, 1 + np.abs(_w(5))))
    h = op.max_pool(op.relu(h), kernel=(2, 2), strides=(2, 2))
    g.set_outputs([op.transpose(op.add(h, c(op, 0.5)), perm=TO_KERAS4)], ["y"])
    why = explain(g)
    assert why[0].startswith("cnn/transpose: stays (transposes +0, 1 ops moved; "
                             "outside: cnn/conv: conv has no layout rule"), why
    check_unchanged(g, "sink_transposes")


def test_dense_on_a_held_tensor_whose_contracted_axis_is_not_last_stays():
    g, op, x = graph_with(("N", 6, 4, 5), origin="odd")
    h = op.transpose(x, perm=(0, 1, 3, 2))              # IR axis 1 stays axis 1
    g.set_outputs([op.dense(h, c(op, _w(6, 3)), None)], ["y"])
    p = plan(g, g.nodes()[0])
    assert "the contracted IR axis 1 is not the last axis" in p.reasons["odd/dense"]
    check_unchanged(g, "sink_transposes")


def test_operands_held_with_different_transposes_stay():
    g, op, x = graph_with(("N", 4, 5, 3), origin="mix")
    z = g.add_input("z", TensorType(("N", 3, 5, 4)))
    a = op.transpose(x, perm=TO_IR4)                    # (N, 3, 4, 5)
    b = op.transpose(z, perm=(0, 1, 3, 2))              # (N, 3, 4, 5)
    g.set_outputs([op.add(a, b)], ["y"])
    assert plan(g, g.nodes()[0]).reasons == {
        "mix/add": "input 1 (%mix/transpose_1) is held with (0, 1, 3, 2), another input with (0, 3, 1, 2)"}
    check_unchanged(g, "sink_transposes")


@pytest.mark.parametrize("n_users", [1, 3])
def test_never_more_transposes(n_users):
    """Seed with several users that all take it, ending at graph outputs in IR layout: the count does not grow."""
    g, op, x = graph_with(("N", 5, 6), origin="fan")
    h = op.transpose(x, perm=TO_IR3)
    outs = [op.mul(h, c(op, float(k + 2))) for k in range(n_users)]
    g.set_outputs(outs, [f"y{k}" for k in range(n_users)])
    before = g.op_types().count("transpose")
    apply_pass("sink_transposes", g)
    assert g.op_types().count("transpose") <= before


def test_rms_norm_moves_onto_the_last_axis():
    g, op, x = graph_with(("N", 5, 6), origin="rms")
    h = op.rms_norm(op.transpose(x, perm=TO_IR3), c(op, 1 + _w(6)), axes=(1,), epsilon=1e-6)
    g.set_outputs([op.transpose(h, perm=TO_KERAS3)], ["y"])
    check_rewrite(g, "sink_transposes", "rms_norm", ["rms_norm"])
    assert g.nodes()[0].attrs["axes"] == (2,)


def _random_graph(seed: int):
    """Transposes mixed with elementwise, broadcast constants, axis ops and ops without a rule."""
    rng = np.random.default_rng(seed)
    g, op, x = graph_with(("N", 3, 4, 5), origin=f"r{seed}")
    vals = [x]
    for _ in range(10):
        v = vals[int(rng.integers(len(vals)))]
        kind = rng.choice(["transpose", "transpose", "relu", "const", "binary", "softmax", "reduce", "reshape"])
        if kind == "transpose":
            perm = (0,) + tuple(int(i) + 1 for i in rng.permutation(3))
            v = op.transpose(v, perm=perm)
        elif kind == "relu":
            v = op.tanh(v)
        elif kind == "const":
            rank = int(rng.integers(0, 4))
            shape = tuple(v.shape[4 - rank:])
            shape = tuple(d if rng.random() < 0.7 else 1 for d in shape)
            v = op.mul(v, c(op, rng.normal(size=shape)))
        elif kind == "binary":
            same = [w for w in vals if w.shape == v.shape and w is not v]
            if same:
                v = op.add(v, same[int(rng.integers(len(same)))])
        elif kind == "softmax":
            v = op.softmax(v, axis=int(rng.integers(1, 4)))
        elif kind == "reduce":
            v = op.reduce_max(v, axes=(int(rng.integers(1, 4)),), keepdims=True)
        else:
            v = op.relu(op.reshape(v, shape=tuple(v.shape[1:2]) and (0, 0, -1, int(v.shape[3]))))
        vals.append(v)
    outs = [v for v in vals[1:] if not g.users(v)] or [vals[-1]]
    g.set_outputs(outs, [f"y{i}" for i in range(len(outs))])
    return g


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_keep_their_numbers_and_never_gain_transposes(seed):
    g = _random_graph(seed)
    feeds = seeded_inputs(g)
    before = run(g, feeds)
    count = g.op_types().count("transpose")
    apply_pass("sink_transposes", g)
    g.validate()
    assert g.op_types().count("transpose") <= count
    after = run(g, feeds)
    for name, ref in before.items():
        assert_close(ref, after[name], 1e-5, what=f"seed {seed} output {name}")
