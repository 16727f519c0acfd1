"""The recurrent IR ops on their own: shape functions, direction semantics, errors, pipeline structure."""
from __future__ import annotations

import numpy as np
import pytest

from kcc.builder import GraphBuilder
from kcc.errors import IRError
from kcc.interpreter import run
from kcc.ir import Graph, TensorType

H, F = 3, 2


def _weights(op: str, rng: np.random.Generator):
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[op]
    return [rng.standard_normal(s).astype(np.float32) for s in ((gates * H, F), (gates * H, H), (2 * gates * H,))]


def _graph(op: str, steps=5, **attrs):
    g = Graph("t")
    b = GraphBuilder(g)
    x = g.add_input("x", TensorType((steps, "N", F)))
    w, r, bias = (b.const(a) for a in _weights(op, np.random.default_rng(0)))
    outs = getattr(b, op)(x, w, r, bias, **attrs)
    g.set_outputs(list(outs))
    g.validate()
    return g


@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
def test_shapes_keep_symbolic_dims(op):
    g = _graph(op, steps="T")
    assert g.outputs[0].shape == ("T", "N", H)
    assert all(v.shape == ("N", H) for v in g.outputs[1:])
    assert len(g.outputs) == (3 if op == "lstm" else 2)


@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_outputs_stay_at_input_positions(op, direction):
    g = _graph(op, direction=direction)
    x = np.random.default_rng(1).standard_normal((5, 2, F)).astype(np.float32)
    out = run(g, {"x": x})
    y, h = out[g.output_names[0]], out[g.output_names[1]]
    last = 0 if direction == "reverse" else -1
    np.testing.assert_array_equal(y[last], h)
    # A reverse op on x equals a forward op on reversed x, with its sequence reversed back.
    if direction == "reverse":
        fwd = _graph(op)
        out_f = run(fwd, {"x": x[::-1].copy()})
        np.testing.assert_allclose(out_f[fwd.output_names[0]][::-1], y, rtol=1e-6, atol=1e-6)


def test_gru_reset_after_changes_the_result():
    x = np.random.default_rng(2).standard_normal((5, 2, F)).astype(np.float32)
    a, b = _graph("gru", reset_after=True), _graph("gru", reset_after=False)
    ya, yb = run(a, {"x": x})[a.output_names[0]], run(b, {"x": x})[b.output_names[0]]
    assert np.max(np.abs(ya - yb)) > 1e-3


def test_bad_weights_and_attrs_are_rejected():
    g = Graph("t")
    b = GraphBuilder(g)
    x = g.add_input("x", TensorType((5, "N", F)))
    w, r, bias = (b.const(a) for a in _weights("gru", np.random.default_rng(0)))
    with pytest.raises(IRError, match="bias"):
        b.lstm(x, b.const(np.zeros((4 * H, F), np.float32)), b.const(np.zeros((4 * H, H), np.float32)), bias)
    with pytest.raises(IRError, match="direction"):
        b.gru(x, w, r, bias, direction="bidirectional")
    with pytest.raises(IRError, match="activation"):
        b.gru(x, w, r, bias, activation="softmax")
    with pytest.raises(IRError, match="features"):
        b.gru(g.add_input("x2", TensorType((5, "N", F + 1))), w, r, bias)


def test_pipeline_leaves_one_transpose_before_a_stack():
    import keras
    import kcc
    x = keras.Input((None, 4))
    y = keras.layers.GRU(3, return_sequences=True)(x)
    y = keras.layers.LSTM(3, return_sequences=True)(y)
    y = keras.layers.SimpleRNN(2)(y)
    graph = kcc.compile_model(keras.Model(x, y), target="onnx").graph
    assert graph.op_types() == ["transpose", "gru", "lstm", "rnn"]
