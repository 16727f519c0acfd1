"""ZeroPadding then pooling on values that can be negative, under onnxruntime's default options.

The ResNet*V2 stem is ``ZeroPadding2D -> MaxPooling2D`` on a conv output that is often
negative. onnxruntime's default graph optimizations fold a zero ``Pad`` into the next
``MaxPool``'s padding, which MaxPool fills with -inf: a border window whose real values
are all negative then gives their maximum instead of the padded 0. Each model here has
such windows (the bias pushes the conv output below zero), unequal spatial sizes and
unequal begin/end padding, and the test asserts the Keras output really holds those
padded zeros, so a fused Pad cannot pass. passes/lower_onnx_pad_max_pool.py is the fix.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras  # noqa: E402

import kcc  # noqa: E402
from kcc.testing import assert_close, keras_inputs, run_keras, run_onnx  # noqa: E402
from layers_helpers import check_model  # noqa: E402

L = keras.layers
NEGATIVE = keras.initializers.Constant(-1.5)


def _padded_pool_model(rank: int, pool: str) -> keras.Model:
    """Conv (negative bias) -> ZeroPadding -> pooling, on unequal spatial sizes."""
    keras.utils.set_random_seed(rank)
    spatial = {1: (13,), 2: (9, 12), 3: (5, 6, 7)}[rank]
    padding = {1: (1, 2), 2: ((1, 2), (2, 1)), 3: ((1, 0), (0, 2), (2, 1))}[rank]
    conv = {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}[rank]
    zero_pad = {1: L.ZeroPadding1D, 2: L.ZeroPadding2D, 3: L.ZeroPadding3D}[rank]
    pooling = {("max", 1): L.MaxPooling1D, ("max", 2): L.MaxPooling2D, ("max", 3): L.MaxPooling3D,
               ("avg", 1): L.AveragePooling1D, ("avg", 2): L.AveragePooling2D,
               ("avg", 3): L.AveragePooling3D}[(pool, rank)]
    x = keras.Input(spatial + (3,))
    h = conv(4, 3, padding="same", bias_initializer=NEGATIVE)(x)
    h = pooling(3, strides=2)(zero_pad(padding)(h))
    return keras.Model(x, h)


def _assert_padding_wins_somewhere(ref: np.ndarray) -> None:
    """Some outputs are exactly the padded 0 (their window's real values are all negative)."""
    assert np.any(ref == 0.0) and np.any(ref < 0.0), "no window where the zero padding decides: test cannot fail"


@pytest.mark.parametrize("opset", [17, 18, 19, 20, 21])
def test_zero_padding_then_max_pooling_2d_matches_keras_at_every_opset(opset):
    model = _padded_pool_model(2, "max")
    xs = keras_inputs(model)
    _assert_padding_wins_somewhere(run_keras(model, xs)[0])
    check_model(model, xs, tol=1e-5, opset=opset)


@pytest.mark.parametrize("rank", [1, 3])
def test_zero_padding_then_max_pooling_1d_3d_matches_keras(rank):
    model = _padded_pool_model(rank, "max")
    xs = keras_inputs(model)
    _assert_padding_wins_somewhere(run_keras(model, xs)[0])
    check_model(model, xs, tol=1e-5)


def test_default_and_unoptimized_onnxruntime_agree():
    """The second opinion: every graph optimization off gives the same numbers."""
    model = _padded_pool_model(2, "max")
    xs = keras_inputs(model)
    ref = run_keras(model, xs)[0]
    got = run_onnx(kcc.compile_model(model, target="onnx").model, xs, also_unoptimized=True, tol=1e-6)[0]
    assert_close(ref, got, 1e-5)


def test_zero_padding_then_average_pooling_matches_keras():
    """The pad stays +0 before an average (the zeros count in the mean); onnxruntime keeps it right."""
    model = _padded_pool_model(2, "avg")
    xs = keras_inputs(model)
    result = kcc.compile_model(model, target="onnx")
    pads = [n for n in result.graph.nodes() if n.op == "pad"]
    assert [np.signbit(n.attrs["value"]) for n in pads] == [False]
    got = run_onnx(result.model, xs, also_unoptimized=True, tol=1e-6)[0]
    assert_close(run_keras(model, xs)[0], got, 1e-5)
