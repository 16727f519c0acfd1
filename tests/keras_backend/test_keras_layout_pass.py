"""layout_channels_last: structure (op list and decisions), numbers (interpreter), and where it must not act."""
from __future__ import annotations

import numpy as np

import os
import sys

from kcc.builder import GraphBuilder
from kcc.ir import Graph, TensorType
from kcc.passes.layout_channels_last import META_KEY, LayoutChannelsLast

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "passes"))
from pass_helpers import check_rewrite  # noqa: E402


def _conv_flatten_dense(dense_weights_const: bool = True) -> Graph:
    g = Graph("cfd")
    x = g.add_input("x", TensorType(("N", 2, 6, 4)))
    op = GraphBuilder(g)
    rng = np.random.RandomState(0)
    c = op.conv(x, op.const(rng.normal(size=(3, 2, 3, 3)).astype(np.float32)), None, pads=(1, 1, 1, 1))
    f = op.flatten(c)
    w = op.const(rng.normal(size=(72, 5)).astype(np.float32)) if dense_weights_const else f
    y = op.dense(f, w, None) if dense_weights_const else op.relu(f)
    g.set_outputs([y], ["y"])
    return g


def test_flatten_dense_gets_the_transpose_and_permuted_rows():
    g = check_rewrite(_conv_flatten_dense(), "layout_channels_last", "flatten_dense",
                      ["conv", "transpose", "flatten", "dense"])
    assert g.meta[META_KEY] == {"x": True, "conv": True}


def test_flatten_without_dense_is_left_alone():
    g = _conv_flatten_dense(dense_weights_const=False)
    LayoutChannelsLast().run(g)
    assert g.op_types() == ["conv", "flatten", "relu"]  # the emitter puts one Permute before Flatten


def test_source_boundary_keeps_inputs_in_the_source_layout():
    g = _conv_flatten_dense()
    LayoutChannelsLast(keras_boundary_layout="source").run(g)
    assert "x" not in g.meta[META_KEY] and g.meta[META_KEY]["conv"] is True


def test_transpose_pairs_vanish_on_keras_tensors():
    g = Graph("t")
    x = g.add_input("x", TensorType(("N", 5, 4, 3)))  # NHWC, as tf2onnx declares it
    op = GraphBuilder(g)
    t = op.transpose(x, perm=(0, 3, 1, 2))
    c = op.conv(t, op.const(np.ones((2, 3, 1, 1), np.float32)), None)
    g.set_outputs([op.transpose(c, perm=(0, 2, 3, 1))], ["y"])
    LayoutChannelsLast().run(g)
    layout = g.meta[META_KEY]
    # x stays as declared (already Keras order); the transposes' outputs are the identity on Keras tensors.
    assert "x" not in layout and layout["transpose"] is True and layout["conv"] is True
    assert "transpose_1" not in layout
