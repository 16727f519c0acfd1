"""The foundation's passes, tested the same three ways plus a must-not-fire case:
fold_identity, dce, fuse_activation, fold_flatten_transpose, cancel_transposes."""
from __future__ import annotations

import numpy as np

from pass_helpers import c, check_rewrite, check_unchanged, graph_with
from kcc.ir import TensorType


def _w(*shape):
    return np.random.default_rng(sum(shape) + 2).normal(size=shape).astype(np.float32) * 0.3


def test_fold_identity_removes_dropout_identities():
    g, op, x = graph_with(("N", 3, 6, 6), origin="conv")
    y = op.identity(op.conv(x, c(op, _w(4, 3, 3, 3)), c(op, _w(4))))
    g.set_outputs([op.relu(op.identity(y))], ["y"])
    check_rewrite(g, "fold_identity", "dropout", ["conv", "relu"])


def test_fold_identity_keeps_input_to_output_identity():
    g, op, x = graph_with()
    g.set_outputs([op.identity(x)], ["y"])
    check_unchanged(g, "fold_identity")


def test_dce_removes_unread_nodes_and_constants():
    g, op, x = graph_with()
    op.sigmoid(op.mul(x, c(op, 3.0)))
    g.set_outputs([op.relu(x)], ["y"])
    check_rewrite(g, "dce", "dead_branch", ["relu"])
    assert not g.constants()


def test_dce_keeps_a_live_graph():
    g, op, x = graph_with()
    g.set_outputs([op.relu(op.mul(x, c(op, 3.0)))], ["y"])
    check_unchanged(g, "dce")


FUSABLE = {"fusable": {"conv": ("relu", "sigmoid"), "dense": ("relu",)}}


def test_fuse_activation_into_conv_and_dense():
    g, op, x = graph_with(("N", 3, 6, 6), origin="block")
    y = op.relu(op.conv(x, c(op, _w(4, 3, 3, 3)), c(op, _w(4))))
    y = op.flatten(y, axis=1)
    y = op.relu(op.dense(y, c(op, _w(64, 5))))
    g.set_outputs([y], ["y"])
    out = check_rewrite(g, "fuse_activation", "conv_dense_relu", ["conv", "flatten", "dense"], options=FUSABLE)
    assert [n.attrs.get("activation") for n in out.nodes()] == ["relu", None, "relu"]


def test_fuse_activation_needs_a_table_entry_and_a_single_reader():
    g, op, x = graph_with(("N", 3, 6, 6), origin="block")
    pre = op.conv(x, c(op, _w(4, 3, 3, 3)))
    tanh = op.tanh(op.conv(x, c(op, _w(4, 3, 3, 3))))        # not in the table
    g.set_outputs([op.relu(pre), pre, tanh], ["a", "b", "t"])  # pre-activation read elsewhere
    check_unchanged(g, "fuse_activation", options=FUSABLE)
    check_unchanged(g, "fuse_activation")                     # ONNX's empty table


def test_fold_flatten_transpose_permutes_dense_rows():
    g, op, x = graph_with(("N", 4, 3, 3), origin="flatten")
    t = op.transpose(x, perm=(0, 2, 3, 1))
    g.set_outputs([op.dense(op.flatten(t, axis=1), c(op, _w(36, 5)), c(op, _w(5)))], ["y"])
    check_rewrite(g, "fold_flatten_transpose", "nhwc_flatten_dense", ["flatten", "dense"])


def test_fold_flatten_transpose_needs_constant_weights():
    g, op, x = graph_with(("N", 4, 3, 3), origin="flatten")
    w = g.add_input("w", TensorType((36, 5)))
    g.set_outputs([op.dense(op.flatten(op.transpose(x, perm=(0, 2, 3, 1)), axis=1), w)], ["y"])
    check_unchanged(g, "fold_flatten_transpose")


def test_cancel_transposes_composes_a_round_trip():
    g, op, x = graph_with(("N", 4, 3, 5), origin="layout")
    t = op.transpose(op.transpose(x, perm=(0, 2, 3, 1)), perm=(0, 3, 1, 2))
    g.set_outputs([op.relu(op.transpose(op.transpose(t, perm=(0, 1, 3, 2)), perm=(0, 2, 1, 3)))], ["y"])
    check_rewrite(g, "cancel_transposes", "chain", ["transpose", "relu"])


def test_cancel_transposes_keeps_a_real_transpose():
    g, op, x = graph_with(("N", 4, 3, 5), origin="layout")
    g.set_outputs([op.relu(op.transpose(x, perm=(0, 2, 3, 1)))], ["y"])
    check_unchanged(g, "cancel_transposes")
