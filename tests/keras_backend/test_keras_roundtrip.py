"""Keras -> kcc ONNX (or kcc Core ML) -> kcc Keras: the original's numbers, layer classes, and no Permute inside."""
from __future__ import annotations

import keras
import numpy as np
import pytest

import kcc
from kcc.api import compile_model
from kcc.examples import mnist_small
from kcc.testing import assert_close, assert_not_degenerate
from keras_backend_helpers import images, layer_classes, resnet_small, transposes


@pytest.mark.parametrize("build, inputs", [
    (lambda: mnist_small(), lambda: images(4, shape=(28, 28, 1))),
    (lambda: resnet_small(keras), lambda: images(4, seed=3)),
], ids=["mnist_small", "resnet_small"])
@pytest.mark.parametrize("via", ["onnx", "coreml"])
def test_roundtrip(build, inputs, via, tmp_path):
    source = build()
    x = inputs()
    if via == "onnx":
        middle = kcc.compile(source, target="onnx")
    else:  # a NeuralNetwork .mlmodel file, read back by the Core ML frontend
        middle = str(tmp_path / "model.mlmodel")
        kcc.compile(source, target="coreml").save(middle)
    result = compile_model(middle, target="keras")
    back = result.model
    ref = source.predict(x, verbose=0)
    assert_not_degenerate(ref)
    assert_close(ref, back.predict(x, verbose=0), tol=1e-5)
    assert layer_classes(back) == layer_classes(source)
    assert transposes(back) == 0 and back.kcc_permutes == 0
    assert tuple(back.inputs[0].shape) == (None,) + x.shape[1:]


def test_mnist_logits_before_softmax():
    """The softmax hides errors: compare logits (the last Dense without its softmax)."""
    source = mnist_small()
    source.layers[-1].activation = keras.activations.linear
    x = images(4, seed=7, shape=(28, 28, 1))
    back = kcc.compile(kcc.compile(source, target="onnx"), target="keras")
    ref = source.predict(x, verbose=0)
    assert_not_degenerate(ref)
    assert_close(ref, back.predict(x, verbose=0), tol=1e-5)


def test_source_boundary_layout_keeps_nchw():
    source = resnet_small(keras)
    x = images(2, seed=4)
    onx = kcc.compile(source, target="onnx", input_layout="nchw")
    back = kcc.compile(onx, target="keras", keras_boundary_layout="source")
    assert tuple(back.inputs[0].shape) == (None, 3, 20, 12)
    got = back.predict(np.transpose(x, (0, 3, 1, 2)), verbose=0)
    assert_close(source.predict(x, verbose=0), got, tol=1e-5)
    # One Permute at the input (NCHW -> NHWC for the first conv); none inside.
    assert back.kcc_permutes == 1


def test_keras_source_sequence_layers():
    """Keras -> kcc Keras for 1-D layers: Conv1D, LayerNormalization on one and two axes, UpSampling1D,
    PReLU with shared axes, Dense on a sequence, Reshape; the same layers, no Permute."""
    from keras_backend_helpers import sequences

    keras.utils.set_random_seed(0)
    L = keras.layers
    rnd = "random_normal"
    inp = keras.Input((9, 8), name="seq")
    x = L.Conv1D(6, 3, padding="same")(inp)
    x = L.LayerNormalization(gamma_initializer=rnd, beta_initializer=rnd)(x)
    x2 = L.LayerNormalization(axis=(1, 2), gamma_initializer=rnd, beta_initializer=rnd)(x)
    x = L.UpSampling1D(2)(L.Concatenate()([x, x2]))
    x = L.Dense(5)(L.PReLU(alpha_initializer=rnd, shared_axes=[1])(x))
    source = keras.Model(inp, L.Dense(3)(L.Reshape((18 * 5,))(x)))
    back = kcc.compile(source, target="keras")
    xs = sequences(3, steps=9, features=8)
    assert_close(source.predict(xs, verbose=0), back.predict(xs, verbose=0), tol=1e-5)
    assert [type(l).__name__ for l in back.layers] == [type(l).__name__ for l in source.layers]
    assert back.kcc_permutes == 0
