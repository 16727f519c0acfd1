"""ConvLSTM2D comes back as ConvLSTM2D (the IR's conv_lstm: gates relaid i o f c -> i f c o, kernels OIHW -> HWIO).

Unequal sizes everywhere (T=5, H=9, W=7, C=3, filters 4 then 2, a (3, 1) kernel),
'same' and strided 'valid' padding, and go_backwards; the converted model is
compared with the source Keras model on seeded inputs with zeros in them.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest

import kcc
from kcc.testing import assert_close, assert_not_degenerate


@pytest.mark.parametrize("options", [dict(padding="same"), dict(padding="valid", strides=2, go_backwards=True)])
def test_conv_lstm_comes_back_as_conv_lstm(options):
    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((5, 9, 7, 3), name="frames")
    x = L.ConvLSTM2D(4, 3, return_sequences=True, **options)(inp)
    out = L.ConvLSTM2D(2, (3, 1), padding="same")(x)
    source = keras.Model(inp, out)
    model = kcc.compile(source, target="keras")
    assert [type(l).__name__ for l in model.layers].count("ConvLSTM2D") == 2
    x = np.random.default_rng(1).normal(size=(2, 5, 9, 7, 3)).astype(np.float32)
    x[:, 0, :2] = 0.0
    want = source.predict(x, verbose=0)
    assert_not_degenerate(want)
    assert_close(want, model.predict(x, verbose=0), tol=1e-5)
