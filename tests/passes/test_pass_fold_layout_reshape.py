"""fold_layout_reshape: a Keras-order reshape keeping the channel axis last -> one IR reshape."""
from __future__ import annotations

from pass_helpers import check_rewrite, check_unchanged, graph_with


def test_hw_by_c_reshape_loses_its_transposes():
    g, op, x = graph_with(("N", 8, 4, 5))
    k = op.transpose(x, perm=(0, 2, 3, 1))
    r = op.reshape(k, shape=(0, 20, 8))
    g.set_outputs([op.relu(op.transpose(r, perm=(0, 2, 1)))], ["y"])
    check_rewrite(g, "fold_layout_reshape", "hw_by_c", ["reshape", "relu"])


def test_vector_to_11c_becomes_one_reshape():
    g, op, x = graph_with(("N", 6))
    r = op.reshape(x, shape=(0, 1, 1, 6))
    g.set_outputs([op.relu(op.transpose(r, perm=(0, 3, 1, 2)))], ["y"])
    check_rewrite(g, "fold_layout_reshape", "vector_11c", ["reshape", "relu"])


def test_reshape_that_moves_channels_is_left_alone():
    g, op, x = graph_with(("N", 8, 4, 5))
    k = op.transpose(x, perm=(0, 2, 3, 1))
    r = op.reshape(k, shape=(0, 10, 16))
    g.set_outputs([op.relu(op.transpose(r, perm=(0, 2, 1)))], ["y"])
    check_unchanged(g, "fold_layout_reshape")
