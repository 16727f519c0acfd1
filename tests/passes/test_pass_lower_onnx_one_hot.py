"""lower_onnx_one_hot: non-int64 indices get a cast (onnxruntime's OneHot reads int64)."""
from __future__ import annotations

import numpy as np

from pass_helpers import check_rewrite, check_unchanged
from kcc.backends.onnx import emit_onnx
from kcc.builder import GraphBuilder
from kcc.interpreter import run
from kcc.ir import Graph, TensorType
from kcc.testing import run_onnx


def _graph(dtype: str):
    g = Graph("g")
    i = g.add_input("i", TensorType(("N", 5), dtype))
    op = GraphBuilder(g, origin="lambda", name="lambda")
    g.set_outputs([op.one_hot(i, depth=4, on_value=2.0, off_value=-1.0)], ["y"])
    return g


def _feeds(dtype: str):
    # Every index, the last one (depth - 1) included.
    return {"i": np.array([[0, 1, 2, 3, 3], [3, 2, 1, 0, 1]], dtype=dtype)}


def test_int32_indices_are_cast():
    g = _graph("i32")
    feeds = _feeds("int32")
    check_rewrite(g, "lower_onnx_one_hot", "int32", ["cast", "one_hot"], feeds=feeds)
    np.testing.assert_array_equal(run(g, feeds)["y"], run_onnx(emit_onnx(g), feeds)[0])


def test_int64_indices_are_left_alone():
    g = _graph("i64")
    check_unchanged(g, "lower_onnx_one_hot")
    feeds = _feeds("int64")
    np.testing.assert_array_equal(run(g, feeds)["y"], run_onnx(emit_onnx(g), feeds)[0])
