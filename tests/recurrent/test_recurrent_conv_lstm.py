"""ConvLSTM1D/2D to ONNX (a Scan over time): numbers against Keras, structure, errors."""
from __future__ import annotations

import pytest

from recurrent_helpers import check, onnx_ops

import kcc
from kcc.errors import ConversionError

import keras
L = keras.layers


def test_conv_lstm2d_stack():
    x = keras.Input((4, 7, 7, 2))
    y = L.ConvLSTM2D(3, 3, padding="same", return_sequences=True)(x)
    y = L.ConvLSTM2D(2, (2, 3), strides=2, go_backwards=True, return_state=True, activation="relu")(y)
    result = check(keras.Model(x, y))
    assert onnx_ops(result).count("Scan") == 2


@pytest.mark.parametrize("opts", [
    {"dilation_rate": 2, "return_sequences": True, "go_backwards": True, "recurrent_activation": "hard_sigmoid"},
    {"padding": "same", "use_bias": False, "return_state": True},
], ids=["dilated-backwards", "same-nobias-states"])
def test_conv_lstm1d_unknown_length(opts):
    x = keras.Input((None, 9, 2))
    check(keras.Model(x, L.ConvLSTM1D(3, 3, **opts)(x)))


def test_conv_lstm_initial_state():
    x = keras.Input((None, 9, 2))
    h, c = keras.Input((9, 3)), keras.Input((9, 3))
    y = L.ConvLSTM1D(3, 3, padding="same", return_sequences=True)(x, initial_state=[h, c])
    check(keras.Model([x, h, c], y))


def test_conv_lstm_channels_first_is_refused():
    x = keras.Input((3, 2, 6, 6))
    model = keras.Model(x, L.ConvLSTM2D(2, 3, data_format="channels_first")(x))
    with pytest.raises(ConversionError, match="data_format"):
        kcc.compile(model, target="onnx")
