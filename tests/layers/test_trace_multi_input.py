"""Traced custom layers get every tensor of their call, positional or keyword, and their captured constants.

``layer(x, y)``, ``layer(q, value=v, scale=0.5)``, ``layer(x, padding_mask=m)``:
each tensor reaches the traced call in its place (the loader keeps extra
positional tensors as ``arg1``...); non-tensor arguments pass through.
Tensors a layer builds in ``build`` (position ids, a constant table) are
constants of the IR, never model inputs.
"""
from __future__ import annotations

import numpy as np
import pytest

import keras
from keras import ops
from kcc.frontends.keras import convert_keras
from attention_layers_helpers import check_targets

B, T, F = 2, 5, 6
PKG = "kcc_trace_multi_input"


@keras.saving.register_keras_serializable(PKG)
class TwoTensors(keras.layers.Layer):
    """call(x, y): the second tensor is positional."""

    def call(self, x, y):
        return x * 2.0 - ops.tanh(y)


@keras.saving.register_keras_serializable(PKG)
class QueryValue(keras.layers.Layer):
    """call(query, value, scale): dot-product attention without weights."""

    def call(self, query, value, scale=1.0, training=None):
        scores = ops.matmul(query, ops.transpose(value, (0, 2, 1))) * scale
        return ops.matmul(ops.softmax(scores, axis=-1), value)


@keras.saving.register_keras_serializable(PKG)
class PaddedMean(keras.layers.Layer):
    """call(x, padding_mask): the mean over the positions the mask keeps."""

    def call(self, x, padding_mask=None):
        m = ops.expand_dims(ops.cast(padding_mask, x.dtype), -1)
        return ops.sum(x * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)


@keras.saving.register_keras_serializable(PKG)
class PositionTable(keras.layers.Layer):
    """Adds position ids and a constant table built in build(): tensors the layer captures."""

    def build(self, input_shape):
        self.positions = ops.arange(input_shape[1], dtype="float32")
        table = np.linspace(-1.0, 1.0, input_shape[1] * input_shape[2], dtype=np.float32)
        self.table = ops.convert_to_tensor(table.reshape(input_shape[1], input_shape[2]))

    def call(self, x):
        return x + ops.expand_dims(self.positions, -1) * 0.25 + self.table


def _x(seed: int, shape=(B, T, F)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _mask() -> np.ndarray:
    m = np.ones((B, T), np.float32)
    m[0, 3:] = 0.0       # padding at the end
    m[1, 1] = 0.0        # and in the middle
    return m


def _models():
    x, y, m = keras.Input((T, F), name="x"), keras.Input((T, F), name="y"), keras.Input((T,), name="m")
    return {
        "positional": (keras.Model([x, y], TwoTensors(name="two")(x, y)), [_x(1), _x(2)]),
        "keyword_tensor_and_number": (keras.Model([x, y], QueryValue(name="qv")(x, value=y, scale=0.5)),
                                      [_x(3), _x(4)]),
        "positional_with_training_flag": (keras.Model([x, y], QueryValue(name="qv")(x, y, training=False)),
                                          [_x(5), _x(6)]),
        "keyword_mask_tensor": (keras.Model([x, m], PaddedMean(name="pm")(x, padding_mask=m)), [_x(7), _mask()]),
        "captured_constants": (keras.Model(x, PositionTable(name="pos")(x)), [_x(8)]),
    }


@pytest.mark.parametrize("case", list(_models()))
def test_traced_layer_gets_every_tensor(case, tmp_path):
    model, xs = _models()[case]
    result, _ = check_targets(model, xs, tmp_path)
    # Every model input is a graph input and nothing else is.
    assert len(result.model.graph.input) == len(model.inputs)


def test_captured_tensors_are_ir_constants():
    model, _ = _models()["captured_constants"]
    graph = convert_keras(model, boundary="channels_last", options={})
    assert [v.name for v in graph.inputs] == ["x"]
    consts = [v for n in graph.nodes() for v in n.inputs if v is not None and v.is_const]
    assert any(v.const.shape in ((T, F), (F, T), (1, T, F), (1, F, T)) for v in consts), \
        [v.const.shape for v in consts]


def test_mask_zeros_change_the_output():
    """The mask is read: all-ones masks give other numbers (so the comparison above can fail)."""
    model, (x, m) = _models()["keyword_mask_tensor"][0], _models()["keyword_mask_tensor"][1]
    ones = model.predict([x, np.ones_like(m)], verbose=0)
    masked = model.predict([x, m], verbose=0)
    assert np.abs(ones - masked).max() > 0.1
