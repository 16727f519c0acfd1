"""MultiHeadAttention / GroupQueryAttention as one ONNX ``Attention`` node when the user asks for opset 23.

The handler writes the IR ``attention`` op (Keras's dot_product_attention path);
at opset 23 it is emitted whole, below it becomes matmul/softmax/matmul. Both
run in onnxruntime (default options) against Keras, on masks with real zeros
and a fully masked query row (a uniform average in Keras), unequal lengths
(query 5, value 7), and grouped key/value heads (6 query heads over 2).
"""
from __future__ import annotations

import numpy as np
import pytest

import keras

import kcc
from kcc.interpreter import run as run_ir
from kcc.testing import assert_close, assert_not_degenerate, run_keras, run_onnx
from targets_helpers import randomize

L = keras.layers
B, T, S = 2, 5, 7


def _x(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _mask() -> np.ndarray:
    m = (np.random.default_rng(1).random((B, T, S)) > 0.4).astype(np.float32)
    m[1, 2] = 0.0          # a fully masked query row
    m[0, :, 0] = 1.0
    return m


def _cross_mha():
    q, v, k = keras.Input((T, 8), name="query"), keras.Input((S, 10), name="value"), keras.Input((S, 9), name="key")
    mask = keras.Input((T, S), name="mask")
    out = L.MultiHeadAttention(3, 4, value_dim=6, name="mha")(q, v, key=k, attention_mask=mask)
    return keras.Model([q, v, k, mask], out, name="cross"), [_x(B, T, 8), _x(B, S, 10, seed=1),
                                                            _x(B, S, 9, seed=2), _mask()]


def _gqa():
    q, v = keras.Input((T, 8), name="query"), keras.Input((S, 8), name="value")
    mask = keras.Input((T, S), name="mask")
    out = L.GroupQueryAttention(head_dim=4, num_query_heads=6, num_key_value_heads=2, name="gqa")(
        q, v, attention_mask=mask)
    return keras.Model([q, v, mask], out, name="gqa"), [_x(B, T, 8), _x(B, S, 8, seed=1), _mask()]


def _causal_dynamic():
    x = keras.Input((None, 16), name="x")
    out = L.MultiHeadAttention(2, 4, name="mha")(x, x, use_causal_mask=True)
    return keras.Model(x, out, name="causal"), [_x(B, 9, 16)]


MODELS = {"cross_attention_mask": _cross_mha, "group_query": _gqa, "causal_dynamic_length": _causal_dynamic}


def _ops(onnx_model) -> list[str]:
    return [n.op_type for n in onnx_model.graph.node]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_one_attention_node_at_opset_23_and_its_formula_below(name):
    model, xs = MODELS[name]()
    randomize(model)
    want = run_keras(model, xs)[0]
    assert_not_degenerate(want)
    if name == "cross_attention_mask":
        assert np.ptp(want[1, 2]) > 0, "the fully masked row must average the values, not vanish"
    for opset in (17, 23):
        result = kcc.compile_model(model, target="onnx", opset=opset)
        ops = _ops(result.model)
        if opset == 23:
            assert ops.count("Attention") == 1 and "Softmax" not in ops, ops
        else:
            assert "Attention" not in ops and ops.count("Softmax") == 1, ops
        assert_close(want, run_onnx(result.model, xs)[0], what=f"onnxruntime at opset {opset}")
        feeds = {v.name: x for v, x in zip(result.graph.inputs, xs)}
        assert_close(want, next(iter(run_ir(result.graph, feeds).values())), what=f"interpreter at opset {opset}")


def test_explicit_path_keeps_its_formula_at_opset_23():
    """return_attention_scores needs the probabilities, so no Attention node is written."""
    q, v = keras.Input((T, 8), name="query"), keras.Input((S, 10), name="value")
    out, scores = L.MultiHeadAttention(3, 4, name="mha")(q, v, return_attention_scores=True)
    model = randomize(keras.Model([q, v], [out, scores], name="scores"))
    xs = [_x(B, T, 8), _x(B, S, 10, seed=1)]
    onnx_model = kcc.compile(model, target="onnx", opset=23)
    assert "Attention" not in _ops(onnx_model)
    for want, got in zip(run_keras(model, xs), run_onnx(onnx_model, xs)):
        assert_close(want, got)
