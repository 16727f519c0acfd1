"""ONNX RNN/LSTM/GRU -> kcc IR -> ONNX and -> Keras, checked against onnxruntime.

Three sources of ONNX recurrent nodes: built by hand with ``onnx.helper``
(every attribute the IR holds: directions, layouts, activations with
parameters, initial states, a full-length ``sequence_lens``), written by kcc's
own ONNX backend from Keras layers (the round trip), and written by tf2onnx
from Keras LSTMs (tf2onnx turns Keras 3 GRU/SimpleRNN into a ``Loop``, so those
two are covered by the hand-built models). Dimensions are unequal (batch 2,
sequence 5, input 3, hidden 4) and weights, biases and inputs random.
onnxruntime has no ``layout=1`` kernel, so a layout-1 model is compared with
its layout-0 twin on transposed data.

The Keras models are built with the default boundary (Keras's layout): outputs
that leave through a ``transpose`` (layout 1, kcc's and tf2onnx's batch-major
outputs of Keras layers) used to come back time-major from the Keras backend;
these cases are the regression test for that.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import kcc
from kcc.api import compile_model
from kcc.errors import ConversionError
from kcc.interpreter import run
from kcc.testing import assert_close, assert_not_degenerate, run_keras, run_onnx

T, N, F, H = 5, 2, 3, 4
TOL = 1e-5
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def _onnx_model(op_type: str, direction: str = "forward", layout: int = 0, *, seed: int = 0, states: bool = False,
                seq_lens: list[int] | None = None, peephole: bool = False, **attrs) -> onnx.ModelProto:
    """One ONNX recurrent node with random weights; ``states``: initial_h (and initial_c) are graph inputs."""
    rng = np.random.default_rng(seed)
    d, g = (2 if direction == "bidirectional" else 1), GATES[op_type]
    inits = [numpy_helper.from_array((0.6 * rng.standard_normal(s)).astype(np.float32), n)
             for n, s in (("W", (d, g * H, F)), ("R", (d, g * H, H)), ("B", (d, 2 * g * H)))]
    names = ["X", "W", "R", "B", ""]
    if seq_lens is not None:
        inits.append(numpy_helper.from_array(np.asarray(seq_lens, np.int32), "seq_lens"))
        names[4] = "seq_lens"
    state_shape = (N, d, H) if layout else (d, N, H)
    inputs = [helper.make_tensor_value_info("X", 1, (N, T, F) if layout else (T, N, F))]
    if states:
        names += ["h0"] + (["c0"] if op_type == "LSTM" else [])
        inputs += [helper.make_tensor_value_info(n, 1, state_shape) for n in names[5:]]
    if peephole:
        names += [""] * (7 - len(names)) + ["P"]
        inits.append(numpy_helper.from_array(rng.standard_normal((d, 3 * H)).astype(np.float32), "P"))
    outs = ["Y", "Y_h"] + (["Y_c"] if op_type == "LSTM" else [])
    node = helper.make_node(op_type, names, outs, name="rec", hidden_size=H, direction=direction, layout=layout,
                            **attrs)
    y_shape = (N, T, d, H) if layout else (T, d, N, H)
    graph = helper.make_graph(
        [node], "recurrent", inputs,
        [helper.make_tensor_value_info("Y", 1, y_shape)] + [helper.make_tensor_value_info(o, 1, state_shape)
                                                            for o in outs[1:]], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _feeds(model: onnx.ModelProto, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
            for i in model.graph.input}


def _reference(op_type: str, direction: str, layout: int, feeds: dict[str, np.ndarray], **kw) -> list[np.ndarray]:
    """onnxruntime's outputs; for layout 1 those of the layout-0 twin on transposed data."""
    if not layout:
        return run_onnx(_onnx_model(op_type, direction, 0, **kw), feeds)
    swap = {k: np.ascontiguousarray(np.swapaxes(v, 0, 1)) for k, v in feeds.items()}
    y, *finals = run_onnx(_onnx_model(op_type, direction, 0, **kw), swap)
    return [np.transpose(y, (2, 0, 1, 3))] + [np.swapaxes(f, 0, 1) for f in finals]


def _check_all(model: onnx.ModelProto, path: str, feeds: dict[str, np.ndarray], ref: list[np.ndarray],
               **keras_options) -> None:
    """kcc's ONNX (onnxruntime, default options), kcc's IR (interpreter) and kcc's Keras model all match ``ref``."""
    for r in ref:
        assert_not_degenerate(r)
    result = compile_model(model, target="onnx")
    for i, (r, got) in enumerate(zip(ref, run_onnx(result.model, feeds), strict=True)):
        assert_close(r, got, tol=TOL, what=f"kcc ONNX output {i}")
    env = run(result.graph, {v.name: feeds[v.name] for v in result.graph.inputs})
    for i, (r, name) in enumerate(zip(ref, result.graph.output_names, strict=True)):
        assert_close(r, env[name], tol=TOL, what=f"kcc IR output {i}")
    onnx.save(model, path)
    back = kcc.compile(path, target="keras", **keras_options)
    xs = [feeds[i.name] for i in model.graph.input]
    for i, (r, got) in enumerate(zip(ref, run_keras(back, xs), strict=True)):
        assert_close(r, got, tol=TOL, what=f"kcc Keras output {i}")


HARD_SIGMOID_KERAS = dict(activations=["HardSigmoid", "Tanh", "Tanh"] * 2, activation_alpha=[1 / 6] * 2,
                          activation_beta=[0.5] * 2)


@pytest.mark.parametrize("op_type, direction, layout, kw", [
    ("RNN", "forward", 0, {}),
    ("RNN", "reverse", 1, dict(activations=["Relu"])),
    ("RNN", "bidirectional", 0, dict(states=True, activations=["LeakyRelu", "Affine"], activation_alpha=[0.2, 1.0],
                                     activation_beta=[0.0])),
    ("GRU", "forward", 0, dict(linear_before_reset=1, states=True)),
    ("GRU", "reverse", 0, dict(linear_before_reset=0, seq_lens=[T, T])),
    ("GRU", "bidirectional", 1, dict(linear_before_reset=1, states=True)),
    ("LSTM", "forward", 1, dict(states=True, activations=["Sigmoid", "Softsign", "Softsign"])),
    ("LSTM", "reverse", 0, dict(states=True, seq_lens=[T, T])),
    ("LSTM", "bidirectional", 0, HARD_SIGMOID_KERAS),
], ids=lambda p: p if isinstance(p, (str, int)) else "-".join(sorted(p)) or "defaults")
def test_hand_built_node(op_type, direction, layout, kw, tmp_path):
    model = _onnx_model(op_type, direction, layout, **kw)
    onnx.checker.check_model(model, full_check=True)
    feeds = _feeds(model)
    ref = _reference(op_type, direction, layout, feeds, **kw)
    _check_all(model, str(tmp_path / "m.onnx"), feeds, ref)
    ops = [n.op for n in compile_model(model, target="onnx").graph.nodes()]
    assert ops.count(op_type.lower()) == (2 if direction == "bidirectional" else 1)


@pytest.mark.parametrize("kw, message", [
    (dict(clip=3.0), "attribute clip"),
    (dict(seq_lens=[T, 3]), "sequence_lens"),
    (dict(input_forget=1), "input_forget"),
    (dict(peephole=True), "input P"),
    (dict(activations=["Sigmoid", "Tanh", "Relu"]), "g=tanh and h=relu"),
    (dict(activations=["Sigmoid", "ThresholdedRelu", "ThresholdedRelu"], activation_alpha=[1.0, 1.0]),
     "ThresholdedRelu"),
    (dict(activations=["Sigmoid", "Affine", "Affine"], activation_alpha=[2.0, 2.0], activation_beta=[0.0, 0.0]),
     "Affine with alpha=2.0"),
    (dict(activations=["HardSigmoid", "Tanh", "Tanh"], activation_alpha=[0.2], activation_beta=[0.3]),
     "HardSigmoid with beta=0.3"),
    (dict(activations=["Sigmoid", "Elu", "Elu"], activation_alpha=[0.5, 0.5]), "Elu with alpha=0.5"),
], ids=["clip", "sequence_lens", "input_forget", "peephole", "g_ne_h", "thresholded_relu", "affine", "hard_sigmoid",
        "elu_alpha"])
def test_what_the_ir_cannot_hold_is_refused(kw, message):
    model = _onnx_model("LSTM", **kw)
    with pytest.raises(ConversionError, match=r"ONNX node 'rec' \(LSTM\)") as info:
        compile_model(model, target="onnx")
    assert message in str(info.value)


# --- Keras -> kcc ONNX -> kcc IR -> kcc ONNX and Keras -------------------------------------------

def _keras_models():
    import keras

    def seq(layer):
        inp = keras.Input((T, F))
        return keras.Model(inp, layer(inp))

    return {
        "lstm": lambda: seq(keras.layers.LSTM(H, return_sequences=True)),
        "gru": lambda: seq(keras.layers.GRU(H, return_sequences=True)),
        "gru_reset_before": lambda: seq(keras.layers.GRU(H, return_sequences=True, reset_after=False)),
        "simple_rnn": lambda: seq(keras.layers.SimpleRNN(H, return_sequences=True)),
        "bidirectional_lstm": lambda: seq(keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True))),
        "bidirectional_gru_last": lambda: seq(keras.layers.Bidirectional(keras.layers.GRU(H), merge_mode="sum")),
    }


def _randomize(model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign((0.6 * rng.standard_normal(tuple(w.shape))).astype("float32"))


@pytest.mark.parametrize("name", list(_keras_models()))
def test_kcc_onnx_round_trip(name, tmp_path):
    source = _keras_models()[name]()
    _randomize(source)
    x = np.random.default_rng(2).standard_normal((N, T, F)).astype(np.float32)
    ref = run_keras(source, [x])
    path = str(tmp_path / f"{name}.onnx")
    onnx.save(kcc.compile(source, target="onnx"), path)
    assert {"LSTM", "GRU", "RNN"} & {n.op_type for n in onnx.load(path).graph.node}
    _check_all(onnx.load(path), path, {onnx.load(path).graph.input[0].name: x}, ref)


# --- tf2onnx ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lstm", "bidirectional_lstm"])
def test_tf2onnx_lstm(name, tmp_path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import tf2onnx

    source = _keras_models()[name]()
    _randomize(source, seed=3)
    # A static batch: kcc cannot import the symbolic-batch Expand tf2onnx writes for the zero states.
    model, _ = tf2onnx.convert.from_keras(source, input_signature=[tf.TensorSpec((N, T, F), tf.float32, name="x")],
                                          opset=17)
    assert "LSTM" in {n.op_type for n in model.graph.node}
    feeds = {"x": np.random.default_rng(4).standard_normal((N, T, F)).astype(np.float32)}
    ref = run_onnx(model, feeds)
    assert_close(run_keras(source, [feeds["x"]])[0], ref[0], tol=TOL, what="tf2onnx vs Keras")
    _check_all(model, str(tmp_path / f"{name}.onnx"), feeds, ref)
