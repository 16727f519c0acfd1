"""Core ML sources: coremltools ML Programs (float32 and float16) come back as channels-last Keras
models with float32 trainable weights and the source's layer classes, through the IR like any source."""
from __future__ import annotations

import coremltools as ct
import keras
import numpy as np
import pytest

from kcc.api import compile_model
from kcc.testing import assert_close, assert_not_degenerate
from keras_backend_helpers import images, layer_classes, resnet_small


@pytest.mark.parametrize("precision, tol", [("fp32", 1e-5), ("fp16", 1e-2)])
def test_mlprogram_comes_back(tmp_path, precision, tol):
    source = resnet_small(keras)
    prec = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
    ml = ct.convert(source, convert_to="mlprogram", source="tensorflow", compute_precision=prec)
    path = tmp_path / "resnet.mlpackage"
    ml.save(str(path))
    result = compile_model(str(path), target="keras")
    model = result.model
    x = images(3, seed=8)
    ref = source.predict(x, verbose=0)
    assert_not_degenerate(ref)
    assert_close(ref, model.predict(x, verbose=0), tol=tol)
    assert layer_classes(model) == layer_classes(source) and model.kcc_permutes == 0
    assert all(w.dtype == "float32" for w in model.weights) and len(model.trainable_weights) > 10
    assert "cast" not in result.graph.op_types()
