"""Lambda and custom layers through the fallback chain: files, safe_mode, custom classes, errors."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import keras
from kcc.api import compile_model
from kcc.errors import ConversionError, UnsafeModelError
from kcc.frontends.keras import convert_keras
from kcc.frontends.keras.fallback import ORDER
from lambda_helpers import check_three_ways, lambda_model, seeded_inputs
from kcc.testing import assert_close, run_keras, run_onnx


@keras.saving.register_keras_serializable("kcc_lambda_tests")
class ChannelScale(keras.layers.Layer):
    """A learned per-channel scale (like ConvNeXt's LayerScale), a class kcc has no handler for."""

    def __init__(self, init_value: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.init_value = init_value

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(input_shape[-1],), name="gamma",
                                     initializer=keras.initializers.Constant(self.init_value))

    def call(self, x):
        return x * self.gamma

    def get_config(self):
        return {**super().get_config(), "init_value": self.init_value}


SCALE_FOR_FILE_TEST = 3.0


def _layerscale_cnn() -> keras.Model:
    keras.utils.set_random_seed(3)
    i = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(i)
    x = ChannelScale(name="layer_scale")(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(5)(x)
    model = keras.Model(i, out)
    ls = model.get_layer("layer_scale")
    ls.gamma.assign(np.linspace(-2.0, 3.0, 4).astype(np.float32))
    return model


def test_custom_layer_class_is_traced():
    model = _layerscale_cnn()
    check_three_ways(model)
    graph = convert_keras(model, boundary="channels_last", options={})
    # The traced layer is a per-channel mul between the layout transposes, named after the layer.
    assert [n.op for n in graph.nodes() if n.origin == "layer_scale"] == ["transpose", "mul", "transpose"]


def test_custom_layer_class_from_file(tmp_path):
    model = _layerscale_cnn()
    path = tmp_path / "layerscale.keras"
    model.save(path)
    xs = seeded_inputs(model)
    got = run_onnx(compile_model(path, "onnx", custom_objects={"ChannelScale": ChannelScale}).model, xs)[0]
    assert_close(run_keras(model, xs)[0], got)


def test_lambda_on_conv_features_keeps_layout():
    """A rank-4 Lambda runs in Keras layout between explicit layout transposes; numbers prove it."""
    keras.utils.set_random_seed(4)
    i = keras.Input((5, 7, 3))
    x = keras.layers.Conv2D(4, 3)(i)
    x = keras.layers.Lambda(lambda t: t * tf.sigmoid(t) - tf.reduce_mean(t, axis=-1, keepdims=True))(x)
    x = keras.layers.Lambda(lambda t: t[:, 1:, :, 1:3] * 2.0)(x)
    model = keras.Model(i, x)
    check_three_ways(model)


def _save_lambda_model(tmp_path):
    i = keras.Input((6,))
    x = keras.layers.Dense(4)(i)
    # Keras itself reloads a Lambda calling tf ops only with output_shape= (it cannot infer it).
    out = keras.layers.Lambda(lambda t: tf.sin(t) * t + 1.0, output_shape=(4,), name="poly")(x)
    model = keras.Model(i, out)
    path = tmp_path / "lambda.keras"
    model.save(path)
    return model, path


def test_tf_keras_h5_lambda(tmp_path):
    """A Keras 2 (tf_keras) .h5 with a Lambda: the loader rebuilds it with tf_keras, kcc traces it."""
    import tf_keras
    i = tf_keras.Input((6,))
    out = tf_keras.layers.Lambda(lambda t: tf.sin(t) * 2.0 - t, name="wave")(tf_keras.layers.Dense(4)(i))
    model = tf_keras.Model(i, out)
    path = tmp_path / "legacy.h5"
    model.save(path)
    x = np.random.default_rng(1).standard_normal((3, 6)).astype(np.float32)
    got = run_onnx(compile_model(path, "onnx", safe_mode=False).model, [x])[0]
    assert_close(np.asarray(model(x)), got)


def test_lambda_in_keras_file_needs_safe_mode_off(tmp_path):
    model, path = _save_lambda_model(tmp_path)
    with pytest.raises(UnsafeModelError, match="poly"):
        compile_model(path, "onnx")
    xs = seeded_inputs(model)
    # Keras reloads the body without its globals; kcc gives it tf back while tracing.
    got = run_onnx(compile_model(path, "onnx", safe_mode=False).model, xs)[0]
    assert_close(run_keras(model, xs)[0], got)


def test_lambda_in_file_missing_global_is_explained(tmp_path):
    i = keras.Input((6,))
    out = keras.layers.Lambda(lambda t: t * SCALE_FOR_FILE_TEST, output_shape=(6,), name="scaled")(i)
    path = tmp_path / "scaled.keras"
    keras.Model(i, out).save(path)
    with pytest.raises(ConversionError, match=r"'scaled'.*SCALE_FOR_FILE_TEST.*custom_objects"):
        compile_model(path, "onnx", safe_mode=False)
    xs = [np.ones((2, 6), np.float32)]
    got = run_onnx(compile_model(path, "onnx", safe_mode=False,
                                 custom_objects={"SCALE_FOR_FILE_TEST": 3.0}).model, xs)[0]
    assert_close(np.full((2, 6), 3.0, np.float32), got)


@pytest.mark.parametrize("body,tf_op", [
    (lambda x: tf.math.real(tf.signal.fft(tf.cast(x, tf.complex64))), "FFT"),
    (lambda x: tf.py_function(lambda t: t * 2.0, [x], tf.float32), "EagerPyFunc"),
], ids=["fft", "py_function"])
def test_unsupported_tf_op_names_layer_and_op(body, tf_op):
    model = lambda_model([(10,)], body, name="odd_lambda", output_shape=(10,))
    with pytest.raises(ConversionError) as info:
        compile_model(model, "onnx")
    msg = str(info.value)
    assert "'odd_lambda'" in msg and f"TensorFlow op {tf_op!r}" in msg
    assert "custom_conversion_functions" in msg and "add_custom_layers" in msg


def test_custom_conversion_function_comes_first():
    """A custom_conversion_functions entry replaces tracing (here: for a body tracing cannot lower)."""
    model = lambda_model([(10,)], lambda x: tf.py_function(lambda t: t * 2.0, [x], tf.float32), name="pyf",
                         output_shape=(10,))
    calls = []

    def convert(ctx, inputs):
        calls.append(ctx.name)
        return ctx.op.mul(inputs[0], ctx.op.scalar(2.0, inputs[0]))

    xs = seeded_inputs(model)
    got = run_onnx(compile_model(model, "onnx", custom_conversion_functions={"pyf": convert}).model, xs)[0]
    assert calls == ["pyf"]
    assert_close(xs[0] * 2.0, got)
    assert ORDER == ("custom_conversion_function", "trace", "coreml_custom_layer")
