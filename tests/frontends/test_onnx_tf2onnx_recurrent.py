"""tf2onnx's Keras 3 GRU / SimpleRNN (an ONNX ``Loop``), ``ReverseSequence`` and symbolic-batch zero states.

tf2onnx 1.17 writes Keras 3's GRU and SimpleRNN as a ``Loop`` over the time
steps, ``go_backwards`` and ``Bidirectional`` as a ``ReverseSequence`` of the
input, and the zero initial state of a symbolic batch as an ``Expand`` to a
shape computed from ``Shape(x)``. kcc imports each Loop as one IR ``gru`` /
``rnn`` (kcc.frontends.onnx.ops.onnx_loop). Every model is converted once per
module (tf2onnx is slow) with random weights (biases non-zero) and unequal
sizes: batch 3, time 7, features 5, units 4. Each is checked four ways against
Keras: tf2onnx's file in onnxruntime, kcc's ONNX in onnxruntime (default
options), kcc's IR in the reference interpreter, and kcc's Keras model. The
stacked model (exported by Keras's own ``model.export(format="onnx")``) takes
sequences of any length and is run at other batch sizes and lengths too.
Negative cases: a masked GRU (the IR ops have no per-step mask), and Loop
bodies edited so that they look like a GRU but compute something else
(gates swapped, an activation replaced) are refused by name, never imported.
"""
from __future__ import annotations

import os
import re

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import kcc
from kcc.api import compile_model
from kcc.errors import ConversionError
from kcc.frontends.onnx import onnx_frontend
from kcc.interpreter import run
from kcc.testing import assert_close, assert_not_degenerate, run_keras, run_onnx

B, T, F, H = 3, 7, 5, 4
TOL = 1e-5


def _randomize(model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign((0.6 * rng.standard_normal(tuple(w.shape))).astype("float32"))


def _cells_model():
    """One input, one output per cell variant (one tf2onnx conversion for all of them)."""
    import keras

    x = keras.Input((T, F), name="x")
    layers = {
        "gru_last": keras.layers.GRU(H),
        "gru_reset_before_seq": keras.layers.GRU(H, reset_after=False, return_sequences=True),
        "rnn_seq": keras.layers.SimpleRNN(H, return_sequences=True),
        "gru_backwards_last": keras.layers.GRU(H, go_backwards=True),
        "rnn_relu_backwards_seq": keras.layers.SimpleRNN(H, activation="relu", go_backwards=True,
                                                         return_sequences=True),
        "gru_hard_sigmoid_seq": keras.layers.GRU(H, recurrent_activation="hard_sigmoid", activation="softsign",
                                                 return_sequences=True),
        "lstm_seq": keras.layers.LSTM(H, return_sequences=True),  # tf2onnx writes an ONNX LSTM node
        "rnn_state": keras.layers.SimpleRNN(H, return_sequences=True, return_state=True),  # [y, final h]
    }
    for name, layer in layers.items():
        layer.name = name  # the Loop nodes are named after their layer
    outputs = []
    for layer in layers.values():
        ys = layer(x)
        outputs += list(ys) if isinstance(ys, (list, tuple)) else [ys]
    model = keras.Model(x, outputs)
    _randomize(model, seed=0)
    return model


def _stacked_model():
    """Bidirectional GRU -> backwards SimpleRNN -> GRU on sequences of any length (exported by Keras itself)."""
    import keras

    x = keras.Input((None, F), name="x")
    y = keras.layers.Bidirectional(keras.layers.GRU(H, return_sequences=True))(x)
    y = keras.layers.SimpleRNN(H + 1, go_backwards=True, return_sequences=True)(y)
    model = keras.Model(x, keras.layers.GRU(H, reset_after=False)(y))
    _randomize(model, seed=1)
    return model


def _tf2onnx(model, batch: int | None) -> onnx.ModelProto:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec((batch, T, F), tf.float32, name="x")]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
    return proto


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((B, T, F)).astype(np.float32)


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    model = _cells_model()
    path = str(tmp_path_factory.mktemp("tf2onnx") / "cells.onnx")
    onnx.save(_tf2onnx(model, None), path)
    return model, path


@pytest.fixture(scope="module")
def stacked(tmp_path_factory):
    model = _stacked_model()
    model(np.zeros((1, T, F), np.float32))  # Keras exports only a model that has been called
    path = str(tmp_path_factory.mktemp("keras_export") / "stacked.onnx")
    model.export(path, format="onnx", verbose=False)
    return model, path


def _check(source, path: str, x: np.ndarray):
    """tf2onnx's file, kcc's ONNX, kcc's IR and kcc's Keras model all give Keras's outputs."""
    ref = run_keras(source, [x])
    for r in ref:
        assert_not_degenerate(r)
    peer = run_onnx(onnx.load(path), {"x": x})
    for i, (r, got) in enumerate(zip(ref, peer, strict=True)):
        assert_close(r, got, tol=TOL, what=f"tf2onnx output {i} vs Keras")
    result = compile_model(path, target="onnx")
    name = result.model.graph.input[0].name
    for i, (r, got) in enumerate(zip(ref, run_onnx(result.model, {name: x}), strict=True)):
        assert_close(r, got, tol=TOL, what=f"kcc ONNX output {i} vs Keras")
    env = run(result.graph, {result.graph.inputs[0].name: x})
    for i, (r, out) in enumerate(zip(ref, result.graph.output_names, strict=True)):
        assert_close(r, env[out], tol=TOL, what=f"kcc IR output {i} vs Keras")
    back = kcc.compile(path, target="keras")
    for i, (r, got) in enumerate(zip(ref, run_keras(back, [x]), strict=True)):
        assert_close(r, got, tol=TOL, what=f"kcc Keras output {i} vs Keras")
    return result, back


def test_gru_and_simple_rnn_loops_become_recurrent_ops(cells, x):
    source, path = cells
    result, _ = _check(source, path, x)
    ops = onnx_frontend(path).op_types()
    assert "loop" not in ops
    assert ops.count("gru") == 4 and ops.count("rnn") == 3 and ops.count("lstm") == 1
    node_types = [n.op_type for n in result.model.graph.node]
    assert node_types.count("GRU") == 4 and node_types.count("RNN") == 3 and "Loop" not in node_types
    # The symbolic-batch zero states (Expand of Shape(x)), of the loops and of the LSTM node, leave no node:
    # the ops' absent state is zeros.
    assert not {"Shape", "Expand", "ConstantOfShape"} & set(node_types)
    assert [i.type.tensor_type.shape.dim[0].dim_param for i in result.model.graph.input] == ["N"]


def test_recognized_attributes(cells):
    _, path = cells
    graph = onnx_frontend(path)
    attrs = [(n.op, n.attrs.get("reset_after"), n.attrs["activation"], n.attrs.get("recurrent_activation"))
             for n in graph.nodes() if n.op in ("gru", "rnn")]
    assert sorted(attrs, key=str) == sorted([
        ("gru", True, "tanh", "sigmoid"), ("gru", False, "tanh", "sigmoid"), ("rnn", None, "tanh", None),
        ("gru", True, "tanh", "sigmoid"), ("rnn", None, "relu", None), ("gru", True, "softsign", "hard_sigmoid"),
        ("rnn", None, "tanh", None),
    ], key=str)
    # go_backwards reaches the loops as a ReverseSequence of x (one, shared by both layers): a time reversal.
    reversals = [n for n in graph.nodes() if n.op == "slice" and n.attrs["steps"] == (-1,)]
    assert len(reversals) == 1 and sum(n.inputs[0] is reversals[0].output for n in graph.nodes()) == 2


def test_other_batch_sizes(cells):
    source, path = cells
    model = kcc.compile(path, target="onnx")
    for batch in (1, 5):
        xb = np.random.default_rng(batch).standard_normal((batch, T, F)).astype(np.float32)
        for i, (r, got) in enumerate(zip(run_keras(source, [xb]), run_onnx(model, {"x": xb}), strict=True)):
            assert_close(r, got, tol=TOL, what=f"batch {batch} output {i}")


def test_keras_export_of_stacked_bidirectional(stacked, x):
    source, path = stacked
    result, back = _check(source, path, x)
    assert sorted(n.op for n in result.graph.nodes() if n.op in ("gru", "rnn")) == ["gru"] * 3 + ["rnn"]
    classes = [type(layer).__name__ for layer in back.layers]
    assert classes.count("GRU") == 3 and classes.count("SimpleRNN") == 1


def test_dynamic_sequence_length(stacked):
    """With ``Input((None, F))`` the trip count and the reversals' lengths come from Shape(x) at run time."""
    source, path = stacked
    result = compile_model(path, target="onnx")
    assert result.graph.inputs[0].shape[:2] == ("N", onnx.load(path).graph.input[0].type.tensor_type.shape.dim[1]
                                                 .dim_param)
    for batch, steps in ((1, 2), (5, 11)):
        xb = np.random.default_rng(steps).standard_normal((batch, steps, F)).astype(np.float32)
        ref = run_keras(source, [xb])[0]
        assert_close(ref, run_onnx(result.model, {"x": xb})[0], tol=TOL, what=f"kcc ONNX at ({batch}, {steps})")
        got = run(result.graph, {result.graph.inputs[0].name: xb})[result.graph.output_names[0]]
        assert_close(ref, got, tol=TOL, what=f"kcc IR at ({batch}, {steps})")


def test_static_batch_loop_of_constants(x, tmp_path):
    """With a static batch every input of the Loop is a constant; it must still be imported, not folded."""
    import keras

    inp = keras.Input((T, F), name="x")
    source = keras.Model(inp, keras.layers.GRU(H, reset_after=False, return_sequences=True)(inp))
    _randomize(source, seed=2)
    path = str(tmp_path / "static.onnx")
    onnx.save(_tf2onnx(source, B), path)
    _check(source, path, x)


def test_masked_gru_is_refused_by_name(tmp_path):
    import keras

    inp = keras.Input((T, F), name="x")
    source = keras.Model(inp, keras.layers.GRU(H)(keras.layers.Masking(0.0)(inp)))
    path = str(tmp_path / "masked.onnx")
    onnx.save(_tf2onnx(source, None), path)
    with pytest.raises(ConversionError, match=r"ONNX node '[^']*while_loop' \(Loop\).*2 sequences.*Masking"):
        kcc.compile(path, target="onnx")


# --- Loop bodies that look like a GRU but are not one -----------------------------------------------

def _gru_loop(model: onnx.ModelProto) -> tuple[onnx.NodeProto, onnx.GraphProto]:
    """The Loop of the cells model's first GRU (reset_after=True) and its body."""
    node = next(n for n in model.graph.node if n.op_type == "Loop" and "gru_last" in n.name)
    return node, next(a.g for a in node.attribute if a.name == "body")


def _swap_update_gate(body: onnx.GraphProto) -> None:
    """``z * h`` becomes ``r * h``: same kernels, biases and activations, another function."""
    sigmoids = [n for n in body.node if n.op_type == "Sigmoid"]
    state = body.input[3].name
    mul = next(n for n in body.node if n.op_type == "Mul" and state in n.input)
    z = next(i for i in mul.input if i != state)
    other = next(s.output[0] for s in sigmoids if s.output[0] != z)
    mul.input[list(mul.input).index(z)] = other


def _replace_tanh(body: onnx.GraphProto) -> None:
    next(n for n in body.node if n.op_type == "Tanh").op_type = "Sin"


@pytest.mark.parametrize("edit, message", [
    (_swap_update_gate, r"does not compute one: gru\(w \(12, 5\), r \(12, 4\)\) .* differs by"),
    (_replace_tanh, r"activations \['sigmoid'\]"),
], ids=["update_gate_swapped", "tanh_replaced"])
def test_a_body_that_is_not_the_cell_is_refused(cells, edit, message, tmp_path):
    _, path = cells
    model = onnx.load(path)
    loop, body = _gru_loop(model)
    edit(body)
    with pytest.raises(ConversionError) as info:
        compile_model(model, target="onnx")
    assert f"ONNX node {loop.name!r} (Loop)" in str(info.value)
    assert re.search(message, str(info.value)), str(info.value)


# --- ReverseSequence, hand-built ----------------------------------------------------------------------

def _reverse_sequence(lens, time_axis: int, lens_input: bool = False) -> onnx.ModelProto:
    shape = [T, B, F] if time_axis == 0 else [B, T, F]
    inputs = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)]
    inits = []
    if lens_input:
        inputs.append(helper.make_tensor_value_info("lens", onnx.TensorProto.INT64, [B]))
    else:
        inits.append(numpy_helper.from_array(np.asarray(lens, np.int64), "lens"))
    node = helper.make_node("ReverseSequence", ["x", "lens"], ["y"], name="rev", time_axis=time_axis,
                            batch_axis=1 - time_axis)
    graph = helper.make_graph([node], "rev", inputs, [helper.make_tensor_value_info("y", 1, shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime reads
    return model


@pytest.mark.parametrize("lens, time_axis, op", [
    ([T] * B, 0, "slice"), ([T] * B, 1, "slice"), ([T, 3, 1], 0, "gather"), ([2, T, 5], 1, "gather"),
])
def test_reverse_sequence(lens, time_axis, op):
    model = _reverse_sequence(lens, time_axis)
    xs = np.arange(T * B * F, dtype=np.float32).reshape(T, B, F) if time_axis == 0 else \
        np.arange(T * B * F, dtype=np.float32).reshape(B, T, F)
    ref = run_onnx(model, {"x": xs})[0]
    assert not np.array_equal(ref, xs)
    result = compile_model(model, target="onnx")
    assert op in result.graph.op_types()
    assert np.array_equal(run_onnx(result.model, {"x": xs})[0], ref)
    assert np.array_equal(run(result.graph, {"x": xs})["y"], ref)


def test_reverse_sequence_with_lengths_at_run_time_is_refused():
    with pytest.raises(ConversionError, match=r"ONNX node 'rev' \(ReverseSequence\).*computed at run time"):
        compile_model(_reverse_sequence(None, 0, lens_input=True), target="onnx")


def test_a_loop_that_is_no_cell_is_refused_by_name():
    """A running sum over the steps (h' = h + x_t): a Loop kcc has no op for, refused with what it holds."""
    body = helper.make_graph(
        [helper.make_node("Gather", ["xs", "i"], ["x_t"]), helper.make_node("Add", ["h", "x_t"], ["h_next"]),
         helper.make_node("Identity", ["cond"], ["cond_out"]), helper.make_node("Identity", ["h_next"], ["y_t"])],
        "body",
        [helper.make_tensor_value_info("i", onnx.TensorProto.INT64, []),
         helper.make_tensor_value_info("cond", onnx.TensorProto.BOOL, []),
         helper.make_tensor_value_info("h", 1, [B, F])],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in
         (("cond_out", onnx.TensorProto.BOOL, []), ("h_next", 1, [B, F]), ("y_t", 1, [B, F]))])
    loop = helper.make_node("Loop", ["steps", "", "h0"], ["h_final", "ys"], name="running_sum", body=body)
    graph = helper.make_graph(
        [loop], "sum", [helper.make_tensor_value_info("xs", 1, [T, B, F])],
        [helper.make_tensor_value_info("ys", 1, [T, B, F])],
        [numpy_helper.from_array(np.asarray(T, np.int64), "steps"),
         numpy_helper.from_array(np.zeros((B, F), np.float32), "h0")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    xs = np.random.default_rng(0).standard_normal((T, B, F)).astype(np.float32)
    assert_close(np.cumsum(xs, axis=0), run_onnx(model, {"xs": xs})[0], tol=TOL, what="the running sum")
    with pytest.raises(ConversionError, match=r"ONNX node 'running_sum' \(Loop\): its body is not a GRU or "
                                              r"SimpleRNN cell kcc knows: kernels on the step input \[\]"):
        compile_model(model, target="onnx")
