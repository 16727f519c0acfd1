"""fold_channel_affine: per-channel add/sub/mul/div by constants into conv/dense weights."""
from __future__ import annotations

import numpy as np

from pass_helpers import c, check_rewrite, check_unchanged, graph_with


def _w(*shape):
    return np.random.default_rng(sum(shape) + 1).normal(size=shape).astype(np.float32) * 0.3


def test_bias_add_folds_into_bias_free_conv():
    g, op, x = graph_with(("N", 3, 6, 6), origin="conv")
    y = op.conv(x, c(op, _w(8, 3, 3, 3)))
    g.set_outputs([op.add(c(op, _w(8).reshape(8, 1, 1)), y)], ["y"])
    out = check_rewrite(g, "fold_channel_affine", "bias_add_conv", ["conv"])
    assert out.nodes()[0].inputs[2].shape == (8,)


def test_scale_then_shift_fold_into_dense():
    # Dense(10, use_bias=False) then Lambda(x * gamma + beta)
    g, op, x = graph_with(("N", 6), origin="dense")
    y = op.dense(x, c(op, _w(6, 10)), c(op, _w(10)))
    y = op.sub(op.div(op.mul(y, c(op, np.linspace(0.5, 2, 10))), c(op, 2.0)), c(op, _w(1, 10)))
    g.set_outputs([y], ["y"])
    check_rewrite(g, "fold_channel_affine", "scale_shift_dense", ["dense"])


def test_conv_mul_batchnorm_add_chain_folds_completely():
    g, op, x = graph_with(("N", 3, 6, 6), origin="block")
    y = op.conv(x, c(op, _w(4, 3, 3, 3)), c(op, _w(4)), group=1)
    y = op.mul(y, c(op, np.array([1.0, -2.0, 0.5, 3.0]).reshape(4, 1, 1)))
    y = op.batch_norm(y, c(op, np.full(4, 1.5)), c(op, np.zeros(4)), c(op, np.full(4, 0.1)), c(op, np.ones(4)))
    g.set_outputs([op.add(y, c(op, 0.25))], ["y"])
    check_rewrite(g, "fold_channel_affine", "conv_mul_bn_add", ["conv"])


def test_constant_minus_output_folds_with_negative_scale():
    g, op, x = graph_with(("N", 6), origin="dense")
    g.set_outputs([op.sub(c(op, _w(10)), op.dense(x, c(op, _w(6, 10))))], ["y"])
    check_rewrite(g, "fold_channel_affine", "rsub_dense", ["dense"])


def test_depthwise_and_transposed_conv_scale():
    g, op, x = graph_with(("N", 4, 5, 5), origin="block")
    d = op.conv(x, c(op, _w(4, 1, 3, 3)), group=4)
    t = op.conv_transpose(d, c(op, _w(4, 3, 2, 2)), group=2, strides=(2, 2))
    g.set_outputs([op.mul(t, c(op, np.linspace(-1, 1, 6).reshape(6, 1, 1)))], ["y"])
    check_rewrite(g, "fold_channel_affine", "conv_transpose_scale", ["conv", "conv_transpose"])


def test_non_per_channel_shared_reversed_or_zero_divisor_stay():
    g, op, x = graph_with(("N", 3, 6, 6), origin="block")
    w = c(op, _w(4, 3, 3, 3))
    spatial = op.add(op.conv(x, w), c(op, _w(4, 4)))              # varies along W: not a bias
    shared = op.conv(x, w)
    used_twice = op.add(shared, c(op, _w(4, 1, 1)))
    reversed_div = op.div(c(op, _w(4, 1, 1)), op.conv(x, w))      # c / y is not affine in y
    zero = op.div(op.conv(x, w), c(op, np.array([1.0, 0.0, 2.0, 1.0]).reshape(4, 1, 1)))
    act = op.add(op.conv(x, w, activation="relu"), c(op, _w(4, 1, 1)))
    g.set_outputs([spatial, used_twice, shared, reversed_div, zero, act], list("abcdef"))
    check_unchanged(g, "fold_channel_affine")
