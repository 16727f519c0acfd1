"""Keras models converted to Core ML NeuralNetwork specs by kcc, read back by kcc's NeuralNetwork frontend.

Each: Keras -> kcc Core ML -> kcc ONNX -> onnxruntime (default options) must
match Keras within 1e-4 of the output's magnitude and also kcc's Core ML
runtime; the round trip equals Keras -> kcc ONNX directly.
"""
from __future__ import annotations

import numpy as np
import pytest

import kcc
from kcc.examples import mnist_small
from kcc.testing import assert_close
from nn_helpers import calibrate_batchnorm, check_nn, run_onnx

import keras  # noqa: E402
layers = keras.layers


def _round_trip(model, ml, onnx_feed_direct, onnx_feed_back, name_direct, name_back):
    direct = run_onnx(kcc.compile(model, target="onnx"), onnx_feed_direct)[name_direct]
    back = run_onnx(kcc.compile(ml, target="onnx"), onnx_feed_back)[name_back]
    return assert_close(direct, back.reshape(direct.shape), 1e-5, "Keras->ONNX vs Keras->Core ML->ONNX")


def test_mnist_classifier_with_image_input_and_labels():
    model = mnist_small(seed=3)
    labels = [f"digit{i}" for i in range(10)]
    ml = kcc.compile(model, target="coreml", image_input_names=["image"], image_scale=1 / 255.0,
                     class_labels=labels, author="kcc tests", license="MIT", short_description="tutorial CNN",
                     version="1.2")
    spec = ml.get_spec()
    assert spec.WhichOneof("Type") == "neuralNetworkClassifier"
    prob_name, label_name = spec.description.predictedProbabilitiesName, spec.description.predictedFeatureName
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(3, 1, 28, 28)).astype(np.float32)
    ref = model.predict(pixels.transpose(0, 2, 3, 1) / 255.0, verbose=0)
    onnx_model = kcc.compile(ml, target="onnx")
    got = run_onnx(onnx_model, {"image": pixels})
    assert_close(ref, got[prob_name], 1e-4, "probabilities")
    assert list(got[label_name]) == [labels[i] for i in ref.argmax(axis=1)]
    assert [o.name for o in onnx_model.graph.output] == [prob_name, label_name]
    meta = {p.key: p.value for p in onnx_model.metadata_props}
    assert {k: meta.get(k) for k in ("author", "license", "description", "version")} == \
        {"author": "kcc tests", "license": "MIT", "description": "tutorial CNN", "version": "1.2"}
    assert onnx_model.doc_string == "tutorial CNN"
    for i in range(len(pixels)):  # kcc's Core ML runtime agrees on the label and the probabilities
        out = kcc.coreml.predict(ml, {"image": pixels[i, 0].astype(np.uint8)})
        assert out[label_name] == labels[int(ref[i].argmax())]
        assert_close(ref[i], np.array([out[prob_name][lab] for lab in labels]), 1e-4, "runtime probabilities")


def test_cnn_with_batchnorm_unequal_dims_round_trip():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((9, 7, 3)),
        layers.Conv2D(5, (3, 2), strides=(2, 1), padding="same"),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.Conv2D(4, (2, 3), padding="valid", activation="tanh"),
        layers.AveragePooling2D((2, 1)),
        layers.Flatten(),
        layers.Dense(6),
    ])
    rng = np.random.default_rng(1)
    calibrate_batchnorm(model, rng.standard_normal((16, 9, 7, 3)).astype(np.float32) * 2 + 0.5)
    x = rng.standard_normal((2, 9, 7, 3)).astype(np.float32)
    ml = kcc.compile(model, target="coreml")
    inp, out = ml.get_spec().description.input[0].name, ml.get_spec().description.output[0].name
    ref = model.predict(x, verbose=0)
    chw = x.transpose(0, 3, 1, 2)
    check_nn(ml, {inp: chw}, {out: ref}, lambda i: {inp: chw[i]})
    _round_trip(model, ml, {inp: x}, {inp: chw}, out, out)


def test_dense_activation_model():
    keras.utils.set_random_seed(2)
    model = keras.Sequential([
        keras.Input((8,)),
        layers.Dense(7, activation="elu"),
        layers.Dense(6, activation="softsign"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Dense(5, activation="sigmoid"),
        layers.Dense(4, activation="tanh"),
        layers.Dense(3),
    ])
    x = np.random.default_rng(2).standard_normal((4, 8)).astype(np.float32) * 3
    x[0, :3] = 0.0  # the activations' boundary
    ml = kcc.compile(model, target="coreml")
    inp, out = ml.get_spec().description.input[0].name, ml.get_spec().description.output[0].name
    ref = model.predict(x, verbose=0)
    check_nn(ml, {inp: x}, {out: ref}, lambda i: {inp: x[i]})
    _round_trip(model, ml, {inp: x}, {inp: x}, out, out)


def test_lstm_model():
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((6, 8)), layers.LSTM(5), layers.Dense(3)])
    x = np.random.default_rng(3).standard_normal((2, 6, 8)).astype(np.float32)
    ml = kcc.compile(model, target="coreml")
    spec = ml.get_spec()
    inp, out = spec.description.input[0].name, spec.description.output[0].name
    assert "uniDirectionalLSTM" in [l.WhichOneof("layer") for l in spec.neuralNetwork.layers]
    ref = model.predict(x, verbose=0)
    blob = x.transpose(0, 2, 1)[:, :, None, :]  # kcc's Core ML input: (F, 1, T)
    check_nn(ml, {inp: blob}, {out: ref}, lambda i: {inp: blob[i]})
    _round_trip(model, ml, {inp: x}, {inp: blob}, out, out)


def test_nd_layout_model():
    """A model kcc emits with ND layers (specification 4: gelu, layerNormalization, broadcastables, softmaxND)."""
    keras.utils.set_random_seed(4)
    inp = keras.Input((5, 6))
    h = layers.LayerNormalization()(layers.Dense(4, activation="gelu")(inp))
    h2 = layers.Dense(4)(inp)
    h = layers.Multiply()([layers.Add()([h, h2]), layers.Activation("sigmoid")(h2)])
    h = layers.Softmax(axis=1)(layers.Permute((2, 1))(layers.Reshape((4, 5))(h)))
    model = keras.Model(inp, layers.Dense(3)(layers.Flatten()(h)))
    x = np.random.default_rng(4).standard_normal((1, 5, 6)).astype(np.float32)
    ml = kcc.compile(model, target="coreml")
    spec = ml.get_spec()
    assert spec.neuralNetwork.arrayInputShapeMapping == 1
    assert {"layerNormalization", "softmaxND", "addBroadcastable"} <= {l.WhichOneof("layer")
                                                                       for l in spec.neuralNetwork.layers}
    inp_name, out = spec.description.input[0].name, spec.description.output[0].name
    blob = x.transpose(0, 2, 1)  # channels-first (N, F, T)
    check_nn(ml, {inp_name: blob}, {out: model.predict(x, verbose=0)}, lambda i: {inp_name: blob[i:i + 1]})


def test_conv3d_model():
    keras.utils.set_random_seed(5)
    model = keras.Sequential([
        keras.Input((4, 6, 5, 2)),
        layers.Conv3D(3, (2, 3, 2), padding="same"),
        layers.MaxPooling3D((2, 2, 1)),
        layers.Conv3DTranspose(2, (2, 2, 3), strides=(1, 2, 1)),
        layers.AveragePooling3D((1, 2, 2), padding="same"),
        layers.GlobalAveragePooling3D(),
        layers.Dense(3),
    ])
    x = np.random.default_rng(5).standard_normal((1, 4, 6, 5, 2)).astype(np.float32)
    ml = kcc.compile(model, target="coreml")
    spec = ml.get_spec()
    assert {"convolution3d", "pooling3d"} <= {l.WhichOneof("layer") for l in spec.neuralNetwork.layers}
    inp, out = spec.description.input[0].name, spec.description.output[0].name
    blob = x.transpose(0, 4, 1, 2, 3)
    check_nn(ml, {inp: blob}, {out: model.predict(x, verbose=0)}, lambda i: {inp: blob[i:i + 1]})
