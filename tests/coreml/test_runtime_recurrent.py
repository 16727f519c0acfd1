"""Recurrent models through coremltools 9.

coremltools 9 cannot convert Keras 3's GRU/LSTM while-loops (its TF2 frontend
fails on the ``StatelessWhile`` condition graph), so two routes are tested:

* Keras 3 RNNs with ``unroll=True`` (iOS14 target): every time step becomes
  batchedMatmul / splitND / slice / activation / add / multiply layers;
* tf_keras (Keras 2) RNNs traced to a concrete function: the converter keeps the
  while loop, so the spec holds ``loop``, ``branch``, ``copy``, ``scatter`` and
  ``gather`` layers with nested networks.
"""
from __future__ import annotations

import numpy as np

from coreml_runtime_helpers import convert, layer_types, randomize_weights, rel_error, run_single

TOL = 1e-4


def test_keras3_conv1d_gru_lstm_unrolled():
    import keras
    L = keras.layers
    keras.utils.set_random_seed(10)
    i = keras.Input((12, 4))
    x = L.Conv1D(6, 3, activation="relu")(i)
    x = L.GRU(5, return_sequences=True, unroll=True)(x)
    x = L.LSTM(7, unroll=True)(x)
    x = L.Dense(3)(x)
    model = keras.Model(i, x)
    randomize_weights(model, 10, scale=1.5)
    spec = convert(model, "iOS14")
    assert {"batchedMatmul", "activation", "splitND"} <= layer_types(spec)
    xin = np.random.default_rng(11).standard_normal((1, 12, 4)).astype(np.float32)
    assert rel_error(run_single(spec, xin), np.asarray(model(xin))) <= TOL


def test_keras3_simple_rnn_unrolled_sequence_output():
    import keras
    L = keras.layers
    keras.utils.set_random_seed(12)
    i = keras.Input((6, 3))
    x = L.SimpleRNN(4, return_sequences=True, unroll=True)(i)
    x = L.Bidirectional(L.GRU(3, return_sequences=True, unroll=True))(x)
    model = keras.Model(i, x)
    randomize_weights(model, 12, scale=1.5)
    spec = convert(model, "iOS14")
    xin = np.random.default_rng(13).standard_normal((1, 6, 3)).astype(np.float32)
    assert rel_error(run_single(spec, xin), np.asarray(model(xin))) <= TOL


def test_tf_keras_lstm_gru_as_control_flow_loops():
    import tensorflow as tf
    import tf_keras as tfk
    L = tfk.layers
    tf.random.set_seed(14)
    i = tfk.Input((10, 4), batch_size=1)
    x = L.Conv1D(6, 3)(i)
    x = L.GRU(5, return_sequences=True)(x)
    x = L.Bidirectional(L.LSTM(4))(x)
    x = L.Dense(3)(x)
    model = tfk.Model(i, x)
    randomize_weights(model, 14, scale=1.5)
    fn = tf.function(model).get_concrete_function(tf.TensorSpec((1, 10, 4), tf.float32))
    spec = convert([fn], "iOS14")
    assert {"loop", "branch", "copy", "scatter", "gather", "reverse"} <= layer_types(spec)
    xin = np.random.default_rng(15).standard_normal((1, 10, 4)).astype(np.float32)
    assert rel_error(run_single(spec, xin), np.asarray(model(xin))) <= TOL
