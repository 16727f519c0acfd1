"""keras.applications models (weights=None, small inputs) converted by coremltools 9
and run in the kcc runtime; logits must match Keras within 1e-4 of their largest
magnitude. BatchNorm layers first get the statistics of real activations, so the
logits do not vanish (see rel_error's guard)."""
from __future__ import annotations

import numpy as np
import pytest

from coreml_runtime_helpers import calibrate_batchnorm, convert, layer_types, rel_error, run_single

import keras
A = keras.applications

CASES = {
    "MobileNetV2": (lambda: A.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None,
                                          classifier_activation=None), {"convolution", "unary", "padding"}),
    "MobileNetV3Small": (lambda: A.MobileNetV3Small(input_shape=(64, 64, 3), weights=None, classifier_activation=None,
                                                    include_preprocessing=False), {"multiplyBroadcastable"}),
    "ResNet50": (lambda: A.ResNet50(input_shape=(32, 32, 3), weights=None, classifier_activation=None),
                 {"pooling", "add"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_application_logits(name):
    build, expect = CASES[name]
    keras.utils.set_random_seed(0)
    model = build()
    rng = np.random.default_rng(0)
    shape = model.input_shape[1:]
    calibrate_batchnorm(model, rng.uniform(-1, 1, (8,) + shape).astype(np.float32))
    x = rng.uniform(-1, 1, (1,) + shape).astype(np.float32)
    spec = convert(model)
    assert expect <= layer_types(spec)
    assert rel_error(run_single(spec, x), np.asarray(model(x, training=False))) <= 1e-4
