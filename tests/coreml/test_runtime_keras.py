"""The runtime against coremltools 9's converter on small Keras 3 models.

Each model gets seeded random weights (biases and BatchNorm statistics included),
is converted with ``ct.convert(..., convert_to="neuralnetwork")`` and run by the
kcc runtime; the outputs must match Keras' own within 1e-4 of their largest
magnitude.
"""
from __future__ import annotations

import numpy as np

from coreml_runtime_helpers import (
    calibrate_batchnorm, convert, layer_types, randomize_weights, rel_error, run_single)

import keras
L = keras.layers

TOL = 1e-4


def _check(model, x, seed=0, target="iOS13", expect_types=()):
    randomize_weights(model, seed)
    calibrate_batchnorm(model, x)
    spec = convert(model, target)
    assert set(expect_types) <= layer_types(spec), layer_types(spec)
    got = run_single(spec, x)
    ref = np.asarray(model(x, training=False))
    assert rel_error(got, ref) <= TOL
    return spec


def _input(shape, seed=1):
    return np.random.default_rng(seed).standard_normal((1,) + shape).astype(np.float32)


def test_small_cnn():
    keras.utils.set_random_seed(0)
    i = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, padding="same")(i)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2D(6, 3, strides=2, padding="valid", activation="elu")(x)
    x = L.AveragePooling2D(2, padding="same")(x)
    x = L.Flatten()(x)
    x = L.Dense(10)(x)
    x = L.Softmax()(x)
    x2 = _input((16, 16, 3))
    _check(keras.Model(i, x), x2, expect_types={"convolution", "pooling", "softmaxND", "innerProduct"})


def test_logits_of_small_cnn_are_not_softmaxed():
    keras.utils.set_random_seed(1)
    i = keras.Input((12, 12, 2))
    x = L.Conv2D(4, 3, dilation_rate=2, padding="same", activation="sigmoid")(i)
    x = L.BatchNormalization()(x)
    x = L.GlobalMaxPooling2D()(x)
    x = L.Dense(5, activation="tanh")(x)
    _check(keras.Model(i, x), _input((12, 12, 2)))


def test_merge_layers():
    keras.utils.set_random_seed(2)
    i = keras.Input((8, 8, 3))
    a = L.Conv2D(4, 1)(i)
    b = L.Conv2D(4, 3, padding="same", activation="relu")(i)
    cat = L.Concatenate()([a, b])
    s = L.Add()([a, b])
    m = L.Multiply()([a, b])
    d = L.Subtract()([a, b])
    mx = L.Maximum()([a, b])
    av = L.Average()([a, b, s])
    x = L.Concatenate(axis=-1)([cat, s, m, d, mx, av])
    x = L.GlobalAveragePooling2D()(x)
    _check(keras.Model(i, x), _input((8, 8, 3)), expect_types={"concat"})


def test_depthwise_separable_and_transposed_conv():
    keras.utils.set_random_seed(3)
    i = keras.Input((12, 12, 4))
    x = L.DepthwiseConv2D(3, strides=2, padding="same")(i)
    x = L.SeparableConv2D(6, 3, dilation_rate=2, activation="relu6")(x)
    x = L.Conv2DTranspose(3, 3, strides=2, padding="same")(x)
    x = L.Conv2DTranspose(2, 2, strides=2, padding="valid")(x)
    spec = _check(keras.Model(i, x), _input((12, 12, 4)))
    convs = [lyr.convolution for lyr in spec.neuralNetwork.layers if lyr.WhichOneof("layer") == "convolution"]
    assert any(c.isDeconvolution for c in convs) and any(c.nGroups > 1 for c in convs)


def test_conv1d_dense_and_normalization():
    keras.utils.set_random_seed(4)
    i = keras.Input((20, 5))
    x = L.Conv1D(8, 3, padding="causal")(i)
    x = keras.activations.gelu(x, approximate=True) + keras.ops.erf(x)
    x = L.LayerNormalization()(x)
    x = L.MaxPooling1D(2)(x)
    x = L.Conv1D(6, 3, strides=2, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.Dense(4, activation="swish")(x)
    x = L.GlobalAveragePooling1D()(x)
    _check(keras.Model(i, x), _input((20, 5)))


def test_padding_cropping_upsampling_and_reshapes():
    keras.utils.set_random_seed(5)
    i = keras.Input((6, 8, 3))
    x = L.ZeroPadding2D(((1, 2), (0, 1)))(i)
    x = L.Conv2D(4, 3)(x)
    x = L.UpSampling2D((2, 3))(x)
    x = L.Cropping2D(((1, 0), (2, 1)))(x)
    x = L.UpSampling2D(2, interpolation="bilinear")(x)
    x = L.Permute((3, 1, 2))(x)
    x = L.Reshape((4, -1))(x)
    x = L.Dense(3, activation="softplus")(x)
    x = L.LeakyReLU(0.2)(x)
    _check(keras.Model(i, x), _input((6, 8, 3)), target="iOS14", expect_types={"upsample", "padding"})


def test_embedding_and_elementwise_math():
    keras.utils.set_random_seed(6)
    i = keras.Input((7,))
    e = L.Embedding(11, 4)(keras.ops.cast(i, "int32"))
    x = L.Flatten()(e)
    x = L.Dense(6, activation="selu")(x)
    y = keras.ops.exp(-keras.ops.abs(x)) + keras.ops.sqrt(keras.ops.abs(x) + 1.0)
    y = keras.ops.clip(y * 3.0, 0.5, 2.5) / (1.0 + keras.ops.square(x))
    z = keras.ops.reshape(y, (-1, 2, 3))
    z = keras.ops.mean(z, axis=-1) - keras.ops.max(z, axis=1, keepdims=False)[:, :2]
    x = keras.Model(i, z)
    data = np.random.default_rng(7).integers(0, 11, size=(1, 7)).astype(np.float32)
    _check(x, data)
