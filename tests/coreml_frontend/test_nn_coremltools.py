"""NeuralNetwork specs made by coremltools 9 (``convert_to="neuralnetwork"``) from Keras models, read by kcc.

coremltools 9 takes a Keras 3 model through TensorFlow as a concrete function.
Core ML -> kcc -> ONNX -> onnxruntime must match Keras within 1e-4 of the
output's magnitude, and kcc's NeuralNetwork runtime too.
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

from nn_helpers import calibrate_batchnorm, check_nn

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import coremltools as ct  # noqa: E402
layers = keras.layers


def _convert(model, shape):
    warnings.filterwarnings("ignore")
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(tf.TensorSpec(shape, tf.float32))
    return ct.convert([fn], convert_to="neuralnetwork", source="tensorflow")


def test_coremltools_cnn_with_batchnorm():
    keras.utils.set_random_seed(8)
    model = keras.Sequential([
        keras.Input((9, 7, 3)),
        layers.Conv2D(5, (3, 2), strides=(2, 1), padding="same"),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.DepthwiseConv2D((2, 3)),
        layers.AveragePooling2D((1, 2)),
        layers.Flatten(),
        layers.Dense(6, activation="tanh"),
        layers.Dense(4),
    ])
    rng = np.random.default_rng(8)
    calibrate_batchnorm(model, rng.standard_normal((16, 9, 7, 3)).astype(np.float32) * 2 + 0.5)
    x = rng.standard_normal((1, 9, 7, 3)).astype(np.float32)
    ml = _convert(model, (1, 9, 7, 3))
    spec = ml.get_spec()
    assert spec.WhichOneof("Type") == "neuralNetwork"
    inp, out = spec.description.input[0].name, spec.description.output[0].name
    check_nn(ml, {inp: x}, {out: model.predict(x, verbose=0)}, lambda i: {inp: x[i:i + 1]})


def test_coremltools_dense_activations():
    keras.utils.set_random_seed(9)
    model = keras.Sequential([keras.Input((8,)), layers.Dense(7, activation="elu"), layers.Dense(6, activation="sigmoid"),
                              layers.Dense(5, activation="softplus"), layers.Dense(3, activation="softmax")])
    x = np.random.default_rng(9).standard_normal((1, 8)).astype(np.float32) * 2
    ml = _convert(model, (1, 8))
    spec = ml.get_spec()
    inp, out = spec.description.input[0].name, spec.description.output[0].name
    check_nn(ml, {inp: x}, {out: model.predict(x, verbose=0)}, lambda i: {inp: x[i:i + 1]})


def test_coremltools_cnn_comes_back_to_keras():
    """issue 11: a coremltools NeuralNetwork spec -> kcc -> a channels-last Keras model with the
    source's convolution layers, matching the source Keras model."""
    from kcc.api import compile_model

    keras.utils.set_random_seed(10)
    model = keras.Sequential([keras.Input((9, 7, 3)), layers.Conv2D(5, 3, padding="same", activation="relu"),
                              layers.MaxPooling2D(), layers.Conv2D(4, (2, 3)), layers.Flatten(), layers.Dense(4)])
    x = np.random.default_rng(10).standard_normal((1, 9, 7, 3)).astype(np.float32)
    ml = _convert(model, (1, 9, 7, 3))
    back = compile_model(ml.get_spec(), target="keras").model
    names = {type(l).__name__ for l in back.layers}
    assert {"Conv2D", "MaxPooling2D", "Dense"} <= names and "Lambda" not in names
    assert back.kcc_permutes == 0
    ref = model.predict(x, verbose=0)
    got = np.asarray(back.predict(x, verbose=0)).reshape(ref.shape)
    assert np.max(np.abs(got - ref)) <= 1e-5 * np.max(np.abs(ref))
