"""Model outputs that are not produced by an ordinary node still get a tensor of their own.

A constant output (a folded branch), an input passed straight through, and one value
exposed under two names: each must come out of onnxruntime (default options) under
its own name with the right numbers.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort

from kcc.backends.onnx import emit_onnx
from kcc.builder import GraphBuilder
from kcc.ir import Graph, TensorType


def test_constant_input_and_duplicate_outputs_reach_onnx():
    g = Graph("g")
    x = g.add_input("x", TensorType(("N", 3), "f32"))
    op = GraphBuilder(g)
    y = op.relu(x)
    table = np.arange(4, dtype=np.float32) - 1.5
    c = op.const(table)
    g.set_outputs([y, c, x, y], ["y", "c", "x_out", "y_again"])
    model = emit_onnx(g)
    sess = ort.InferenceSession(model.SerializeToString())
    feed = np.array([[-1.0, 0.0, 2.5], [3.0, -0.5, 1.0]], np.float32)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": feed})))
    assert sorted(got) == ["c", "x_out", "y", "y_again"]
    np.testing.assert_array_equal(got["c"], table)
    np.testing.assert_array_equal(got["x_out"], feed)
    np.testing.assert_array_equal(got["y"], np.maximum(feed, 0))
    np.testing.assert_array_equal(got["y_again"], np.maximum(feed, 0))
