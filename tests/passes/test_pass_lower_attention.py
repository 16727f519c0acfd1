"""lower_onnx_attention (below opset 23) and lower_attention (Core ML, Keras): attention -> its formula.

Shapes are all different (batch 2, 6 query heads over 2 key/value heads, query
length 5, key length 7, dims 4 and 3), so a swapped axis or a wrong head
grouping changes the numbers; the bias masks real positions.
"""
from __future__ import annotations

import numpy as np
import pytest

from pass_helpers import c, check_rewrite, check_unchanged
from kcc.backends.onnx import emit_onnx
from kcc.builder import GraphBuilder
from kcc.interpreter import run, seeded_inputs
from kcc.ir import Graph, TensorType
from kcc.testing import assert_close, run_onnx


def _graph(kv_heads: int, with_bias: bool):
    g = Graph("attn")
    q = g.add_input("q", TensorType(("N", 6, 5, 4)))
    k = g.add_input("k", TensorType(("N", kv_heads, 7, 4)))
    v = g.add_input("v", TensorType(("N", kv_heads, 7, 3)))
    op = GraphBuilder(g, origin="mha", name="mha")
    bias = None
    if with_bias:
        keep = np.random.default_rng(0).random((1, 1, 5, 7)) > 0.4
        keep[..., 0] = True
        bias = c(op, np.where(keep, 0.0, -0.7 * 3.38953e38))
    g.set_outputs([op.attention(q, k, v, bias, scale=0.5)], ["y"])
    return g


CASES = {
    # case -> (kv heads, bias, ops after)
    "bias": (6, True, ["transpose", "mul", "matmul", "add", "softmax", "matmul"]),
    "no_bias": (6, False, ["transpose", "mul", "matmul", "softmax", "matmul"]),
    "grouped_heads": (2, True, ["transpose", "unsqueeze", "tile", "reshape", "unsqueeze", "tile", "reshape", "mul",
                                "matmul", "add", "softmax", "matmul"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("pass_name", ["lower_onnx_attention", "lower_attention"])
def test_attention_becomes_its_formula(case, pass_name):
    """Op list, golden text and numbers (interpreter before == after), then onnxruntime."""
    kv_heads, with_bias, ops = CASES[case]
    g = _graph(kv_heads, with_bias)
    feeds = seeded_inputs(g)
    options = {"opset": 17} if pass_name == "lower_onnx_attention" else {}
    want = run(g, feeds)["y"]
    check_rewrite(g, pass_name, case, ops, options=options, feeds=feeds)
    assert_close(want, run_onnx(emit_onnx(g, opset=17), feeds)[0], what=f"{case} lowered, in onnxruntime")


@pytest.mark.parametrize("case", sorted(CASES))
def test_opset_23_keeps_the_op_and_onnx_attention_matches_the_reference(case):
    kv_heads, with_bias, _ = CASES[case]
    g = _graph(kv_heads, with_bias)
    check_unchanged(g, "lower_onnx_attention", options={"opset": 23})
    feeds = seeded_inputs(g)
    model = emit_onnx(g, opset=23)
    assert [n.op_type for n in model.graph.node] == ["Attention"]
    assert_close(run(g, feeds)["y"], run_onnx(model, feeds)[0], what=f"ONNX Attention, {case}")
