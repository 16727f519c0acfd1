"""Bidirectional (every merge mode) and TimeDistributed to ONNX: numbers against Keras, structure, errors."""
from __future__ import annotations

import pytest

from recurrent_helpers import check, onnx_ops

import kcc
from kcc.errors import ConversionError

import keras
L = keras.layers

MERGES = ["concat", "sum", "mul", "ave", None]


@pytest.mark.parametrize("merge_mode", MERGES, ids=str)
@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
def test_bidirectional_sequences(cls, merge_mode):
    x = keras.Input((6, 3))
    y = L.Bidirectional(getattr(L, cls)(4, return_sequences=True), merge_mode=merge_mode)(x)
    result = check(keras.Model(x, y))
    assert "Slice" not in onnx_ops(result)  # Keras flips the backward sequence: nothing to reverse


@pytest.mark.parametrize("merge_mode", MERGES, ids=str)
def test_bidirectional_last_step_with_states(merge_mode):
    x = keras.Input((5, 3))
    y = L.Bidirectional(L.LSTM(4, return_state=True), merge_mode=merge_mode)(x)
    check(keras.Model(x, y))


def test_bidirectional_gru_states_and_initial_state():
    x = keras.Input((5, 3))
    hf, hb = keras.Input((4,)), keras.Input((4,))
    y = L.Bidirectional(L.GRU(4, return_sequences=True, return_state=True, reset_after=False))(
        x, initial_state=[hf, hb])
    check(keras.Model([x, hf, hb], y))


def test_bidirectional_explicit_backward_layer_and_cells():
    x = keras.Input((None, 3))
    fwd = L.RNN(L.LSTMCell(3, activation="relu"), return_sequences=True)
    bwd = L.RNN(L.LSTMCell(3, activation="relu"), return_sequences=True, go_backwards=True)
    y = L.Bidirectional(fwd, backward_layer=bwd, merge_mode="sum")(x)
    check(keras.Model(x, y))


def test_time_distributed_dense_moves_no_data():
    x = keras.Input((None, 3))
    y = L.LSTM(4, return_sequences=True)(x)
    y = L.TimeDistributed(L.Dense(5, activation="relu"))(y)
    result = check(keras.Model(x, y))
    assert onnx_ops(result).count("Reshape") == 0


def test_time_distributed_conv_pool_flatten_dense():
    x = keras.Input((4, 8, 8, 2))
    y = L.TimeDistributed(L.Conv2D(3, 3, padding="same", activation="relu"))(x)
    y = L.TimeDistributed(L.MaxPooling2D(2))(y)
    y = L.TimeDistributed(L.Flatten())(y)
    y = L.TimeDistributed(L.Dense(6))(y)
    y = L.GRU(3)(y)
    check(keras.Model(x, y))


def test_time_distributed_conv1d():
    x = keras.Input((5, 7, 2))
    y = L.TimeDistributed(L.Conv1D(3, 2))(x)
    check(keras.Model(x, y))


def test_time_distributed_unfolding_needs_a_length():
    x = keras.Input((None, 6, 6, 1))
    model = keras.Model(x, L.TimeDistributed(L.Conv2D(2, 3))(x))
    with pytest.raises(ConversionError, match="time_distributed.*fixed sequence length"):
        kcc.compile(model, target="onnx")


def test_masked_sequence_is_refused():
    x = keras.Input((5, 3))
    model = keras.Model(x, L.LSTM(2)(L.Masking()(x)))
    with pytest.raises(ConversionError):
        kcc.compile(model, target="onnx")


def test_time_distributed_softmax_batchnorm_lstm_lambda():
    x = keras.Input((4, 6, 2))
    y = L.TimeDistributed(L.LSTM(3, return_sequences=True))(x)        # (N, 4, 6, 3)
    y = L.TimeDistributed(L.Softmax(axis=-1))(y)
    y = L.TimeDistributed(L.BatchNormalization())(y)
    y = L.TimeDistributed(L.Lambda(lambda t: t * 2.0 + 1.0))(y)
    y = L.TimeDistributed(L.Flatten())(y)
    check(keras.Model(x, y))
