"""ONNX files made by tf2onnx come back to Keras and match onnxruntime (default session options);
recurrent models come back with LSTM/GRU layers and no Permute."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
import tf2onnx

from kcc.api import compile_model
from kcc.testing import assert_close, assert_not_degenerate, run_onnx
from keras_backend_helpers import H, W, cnn_tf, images, recurrent, sequences


def test_tf2onnx_cnn_matches_onnxruntime():
    source = cnn_tf(keras, seed=1)
    spec = (tf.TensorSpec((None, H, W, 3), tf.float32, name="image"),)
    onx, _ = tf2onnx.convert.from_keras(source, input_signature=spec, opset=17)
    x = images(3, seed=9)
    ref = run_onnx(onx, {"image": x})[0]
    assert_not_degenerate(ref)
    result = compile_model(onx, target="keras")
    model = result.model
    assert_close(ref, model.predict(x, verbose=0), tol=1e-5)
    # tf2onnx's NHWC->NCHW Transposes become the identity on Keras tensors.
    assert "transpose" in result.graph.op_types() and model.kcc_permutes == 0
    names = {type(l).__name__ for l in model.layers}
    assert {"Conv2D", "DepthwiseConv2D", "Concatenate", "AveragePooling2D", "Dense"} <= names
    assert "Permute" not in names


def test_recurrent_model_comes_back_batch_major():
    source = recurrent(keras)
    x = sequences()
    result = compile_model(source, target="keras")
    model = result.model
    ref = source.predict(x, verbose=0)
    assert_not_degenerate(ref)
    assert_close(ref, model.predict(x, verbose=0), tol=1e-5)
    assert [type(l).__name__ for l in model.layers] == ["InputLayer", "LSTM", "GRU", "Dense"]
    sequence = next(n for n in result.graph.nodes() if n.op == "lstm").outputs[0]
    assert result.graph.meta["keras_layout"][sequence.name] == "batch_major"


def test_tf2onnx_attention_matches_onnxruntime():
    """MultiHeadAttention through tf2onnx (static batch: kcc's ONNX frontend needs it for its reshapes)."""
    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((9, 8), name="tokens")
    x = L.MultiHeadAttention(num_heads=2, key_dim=4)(inp, inp)
    x = L.LayerNormalization()(L.Add()([inp, x]))
    out = L.Dense(3)(L.GlobalAveragePooling1D()(L.Dense(16, activation="relu")(x)))
    source = keras.Model(inp, out)
    x = sequences(3, steps=9, features=8)
    spec = (tf.TensorSpec((3, 9, 8), tf.float32, name="tokens"),)
    onx, _ = tf2onnx.convert.from_keras(source, input_signature=spec, opset=17)
    ref = run_onnx(onx, {"tokens": x})[0]
    assert_not_degenerate(ref)
    model = compile_model(onx, target="keras").model
    assert_close(ref, model.predict(x, verbose=0), tol=1e-5)
    source_transposes = sum(n.op_type == "Transpose" for n in onx.graph.node)
    assert model.kcc_permutes <= source_transposes
    assert {"LayerNormalization", "Add", "Softmax"} <= {type(l).__name__ for l in model.layers}


def test_recurrent_states_and_reverse():
    """LSTM with given initial states and go_backwards, then SimpleRNN; both outputs (sequence and cell state)."""
    keras.utils.set_random_seed(0)
    L = keras.layers
    s, h, c = keras.Input((9, 5), name="seq"), keras.Input((6,), name="h"), keras.Input((6,), name="c")
    y, _, cell = L.LSTM(6, return_sequences=True, return_state=True, go_backwards=True)(s, initial_state=[h, c])
    source = keras.Model([s, h, c], [L.SimpleRNN(4)(y), cell])
    rng = np.random.RandomState(3)
    xs = [sequences(), rng.normal(size=(3, 6)).astype(np.float32), rng.normal(size=(3, 6)).astype(np.float32)]
    back = compile_model(source, target="keras").model
    for ref, got in zip(source.predict(xs, verbose=0), back.predict(xs, verbose=0)):
        assert_not_degenerate(ref)
        assert_close(ref, got, tol=1e-5)
    assert {"LSTM", "SimpleRNN"} <= {type(l).__name__ for l in back.layers} and back.kcc_permutes == 0


def test_embedding_conv1d_gru():
    """Token ids -> Embedding (a trainable table, not a frozen gather) -> Conv1D -> GRU(reset_after=False)."""
    keras.utils.set_random_seed(0)
    L = keras.layers
    tokens = keras.Input((7,), dtype="int32", name="tokens")
    x = L.GRU(4, reset_after=False)(L.Conv1D(5, 3)(L.Embedding(20, 6)(tokens)))
    source = keras.Model(tokens, L.Dense(2)(x))
    ids = np.random.RandomState(0).randint(0, 20, (3, 7)).astype(np.int32)
    ids[0, 0] = 0
    back = compile_model(source, target="keras").model
    assert_close(source.predict(ids, verbose=0), back.predict(ids, verbose=0), tol=1e-5)
    assert [type(l).__name__ for l in back.layers] == [type(l).__name__ for l in source.layers]
