"""A model input that Keras's layers read must reach an output of the converted graph.

A padding mask a conversion drops would make the model silently wrong wherever
the mask is 0. Here a custom layer reads ``padding_mask=``: traced, it uses the
mask (numbers match Keras with real zeros in the mask); converted by a user
function that ignores the mask, the conversion is refused, naming the input.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402

import kcc  # noqa: E402
from kcc.errors import ConversionError  # noqa: E402
from kcc.testing import assert_close, run_onnx, seeded  # noqa: E402


@keras.saving.register_keras_serializable("kcc_test")
class MaskedMean(keras.layers.Layer):
    """Mean over time of the positions where ``padding_mask`` is 1."""

    def call(self, x, padding_mask=None):
        m = keras.ops.cast(padding_mask, x.dtype)[:, :, None]
        return keras.ops.sum(x * m, axis=1) / keras.ops.maximum(keras.ops.sum(m, axis=1), 1.0)


def _model():
    x = keras.Input((6, 4), name="x")
    mask = keras.Input((6,), dtype="int32", name="padding_mask")
    return keras.Model([x, mask], MaskedMean(name="pool")(x, padding_mask=mask))


def _feeds():
    mask = np.ones((3, 6), np.int32)
    mask[1, 4:] = 0
    mask[2, 1:3] = 0
    return {"x": seeded((3, 6, 4)), "padding_mask": mask}


def test_traced_layer_reads_the_mask():
    model = _model()
    feeds = _feeds()
    want = np.asarray(model([feeds["x"], feeds["padding_mask"]]))
    got = run_onnx(kcc.compile(model, target="onnx"), feeds)[0]
    assert_close(want, got)


def test_dropped_mask_input_is_an_error_naming_it():
    def ignore_mask(ctx, inputs):
        return ctx.op.reduce_mean(inputs[0], axes=(2,), keepdims=False)  # the mean over time, mask unread

    with pytest.raises(ConversionError, match=r"model input 'padding_mask' is read by layer\(s\) 'pool'"):
        kcc.compile(_model(), target="onnx", custom_conversion_functions={"MaskedMean": ignore_mask})
