"""keras.applications models (a representative subset of bench/applications.py) from .keras files.

Random weights with BatchNorm statistics calibrated on a varied batch (fresh ones make
the logits vanish and any converter "match"), logits compared within 1e-4 of their
largest magnitude, and no Transpose inside the ONNX graph (only the NHWC boundary).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras

import kcc  # noqa: E402
from kcc.testing import assert_close, assert_not_degenerate, calibrate_batchnorm, run_keras, run_onnx  # noqa: E402
from layers_helpers import interior_transposes  # noqa: E402

APPS = {
    "MobileNetV2": lambda: keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3), weights=None,
                                                          classifier_activation=None),
    "ResNet50": lambda: keras.applications.ResNet50(input_shape=(64, 64, 3), weights=None,
                                                    classifier_activation=None),
    "EfficientNetB0": lambda: keras.applications.EfficientNetB0(input_shape=(64, 64, 3), weights=None,
                                                                classifier_activation=None),
    "DenseNet121": lambda: keras.applications.DenseNet121(input_shape=(32, 32, 3), weights=None,
                                                          classifier_activation=None),
}


def _images(model, batch: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (batch,) + tuple(model.inputs[0].shape[1:])
    if any(type(layer).__name__ == "Rescaling" for layer in model.layers):
        return (rng.random(shape) * 255).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(APPS))
def test_application_from_keras_file(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = APPS[name]()
    calibrate_batchnorm(model, _images(model, 32, 1))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    onnx_model = kcc.compile(str(path), target="onnx")
    x = _images(model, 2, 0)
    ref = run_keras(model, [x])[0]
    assert_not_degenerate(ref)
    assert_close(ref, run_onnx(onnx_model, [x])[0], 1e-4, what=name)
    assert interior_transposes(onnx_model) == []


@pytest.mark.slow
def test_resnet50v2_stem_and_logits_under_default_onnxruntime(tmp_path):
    """ResNet*V2's stem: ZeroPadding2D -> MaxPooling2D on a conv output that is often negative.

    onnxruntime's default Pad fusion would give the padded windows the -inf padding of
    MaxPool (passes/lower_onnx_pad_max_pool.py). With random weights the ReLU after the
    next BatchNorm hides those borders from the logits, so the stem is a second output.
    """
    keras.utils.set_random_seed(0)
    base = keras.applications.ResNet50V2(input_shape=(32, 32, 3), weights=None, classifier_activation=None)
    calibrate_batchnorm(base, _images(base, 32, 1))
    model = keras.Model(base.input, [base.output, base.get_layer("pool1_pool").output])
    path = tmp_path / "ResNet50V2.keras"
    model.save(path)
    onnx_model = kcc.compile(str(path), target="onnx")
    x = _images(model, 2, 0)
    logits, stem = run_keras(model, [x])
    assert np.any(stem == 0.0) and np.any(stem < 0.0), "no stem output decided by the zero padding"
    got = run_onnx(onnx_model, [x], also_unoptimized=True)
    assert_close(logits, got[0], 1e-4, what="ResNet50V2 logits")
    assert_close(stem, got[1], 1e-5, what="ResNet50V2 stem (pool1_pool)")
