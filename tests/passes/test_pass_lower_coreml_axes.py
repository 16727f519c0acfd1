"""lower_coreml_axes: resize / dense / layer_norm / batch_norm with their data moved to the layer's axes."""
from __future__ import annotations

import numpy as np
import pytest
from pass_helpers import c, check_rewrite, check_unchanged, graph_with

from kcc.ir import TensorType

P = "lower_coreml_axes"
R = np.random.default_rng(7)


@pytest.fixture(autouse=True)
def _fresh_r():
    """Each test draws from a fresh generator: golden text must not depend on which tests ran before."""
    global R
    R = np.random.default_rng(7)


def _w(*shape, positive=False):
    a = R.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.5 if positive else a


def test_resize_by_a_fraction_is_a_resampling_matmul_per_axis():
    g, op, x = graph_with(("N", 3, 4, 5))
    g.set_outputs([op.resize(x, mode="bilinear", sizes=(3, 7))], ["y"])
    check_rewrite(g, P, "resize_bilinear", ["transpose", "matmul", "transpose", "matmul"])


def test_resize_of_the_last_axis_needs_no_transpose():
    g, op, x = graph_with(("N", 3, 4, 5))
    g.set_outputs([op.resize(x, mode="nearest", sizes=(4, 3))], ["y"])
    check_rewrite(g, P, "resize_last_axis", ["matmul"])


def test_resize_of_the_height_moves_it_last_and_back():
    g, op, x = graph_with(("N", 3, 4, 5))
    g.set_outputs([op.resize(x, mode="nearest", sizes=(6, 5))], ["y"])
    out = check_rewrite(g, P, "resize_height", ["transpose", "matmul", "transpose"])
    assert out.nodes()[0].attrs["perm"] == (0, 1, 3, 2)


def test_dense_with_computed_weights_is_matmul_with_features_last():
    g, op, x = graph_with(("N", 4, 6))
    y = g.add_input("w", TensorType((4, 3)))
    g.set_outputs([op.dense(x, y, c(op, _w(3)))], ["out"])
    feeds = {"x": _w(2, 4, 6), "w": _w(4, 3)}
    check_rewrite(g, P, "dense_computed", ["transpose", "matmul", "add", "transpose"], feeds=feeds)


def test_dense_on_rank5_is_matmul():
    g, op, x = graph_with(("N", 2, 2, 3, 3))
    g.set_outputs([op.dense(x, c(op, _w(2, 3)), None)], ["y"])
    check_rewrite(g, P, "dense_rank5", ["transpose", "matmul", "transpose"])


def test_layer_norm_over_channels_moves_them_last_and_back():
    g, op, x = graph_with(("N", 3, 4, 5))
    g.set_outputs([op.layer_norm(x, c(op, _w(3)), c(op, _w(3)), axes=(1,))], ["y"])
    out = check_rewrite(g, P, "layer_norm_channels", ["transpose", "layer_norm", "transpose"])
    assert out.nodes()[1].attrs["axes"] == (3,)


def test_layer_norm_over_two_leading_axes_keeps_the_parameter_shape():
    g, op, x = graph_with(("N", 3, 4, 5))
    g.set_outputs([op.layer_norm(x, c(op, _w(3, 4)), None, axes=(1, 2))], ["y"])
    check_rewrite(g, P, "layer_norm_leading", ["transpose", "layer_norm", "transpose"])


def test_batch_norm_of_rank5_folds_depth_into_height():
    g, op, x = graph_with(("N", 2, 3, 4, 5))
    params = [c(op, _w(2, positive=True)) for _ in range(4)]
    g.set_outputs([op.batch_norm(x, *params, epsilon=1e-3)], ["y"])
    out = check_rewrite(g, P, "batch_norm_rank5", ["reshape", "batch_norm", "reshape"])
    assert out.nodes()[0].attrs["shape"] == (0, 2, 12, 5)


def test_forms_with_a_layer_are_left_alone():
    g, op, x = graph_with(("N", 3, 4, 5))
    a = op.resize(x, mode="nearest", sizes=(8, 15))                            # integer: upsample
    b = op.dense(x, c(op, _w(3, 2)), c(op, _w(2)))                              # 1x1 convolution
    d = op.layer_norm(x, c(op, _w(4, 5)), c(op, _w(4, 5)), axes=(2, 3))        # trailing axes
    e = op.batch_norm(x, *[c(op, _w(3, positive=True)) for _ in range(4)])     # rank 4
    g.set_outputs([a, b, d, e], ["a", "b", "d", "e"])
    check_unchanged(g, P)
