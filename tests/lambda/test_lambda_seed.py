"""The three seed models of issue 5: Dense(10) then a Lambda, converted natively and exactly."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from kcc.api import compile_model
from kcc.testing import assert_close, assert_not_degenerate

from kcc.frontends.keras import convert_keras
from lambda_helpers import check_three_ways, lambda_model

SEEDS = [
    ("square", lambda x: tf.square(x), ["dense", "mul"]),
    ("standardize", lambda x: (x - tf.reduce_mean(x)) / tf.math.sqrt(tf.math.reduce_variance(x) + 1e-7),
     ["dense", "reduce_mean", "sub", "mul", "reduce_mean", "add", "sqrt", "reduce_mean", "sub", "div"]),
    ("sin_plus_cos", lambda x: tf.math.sin(x) + tf.math.cos(x), ["dense", "sin", "cos", "add"]),
]


@pytest.mark.parametrize("name,body,ops", SEEDS, ids=[s[0] for s in SEEDS])
def test_seed_model(name, body, ops):
    model = lambda_model([(5,)], body, dense=10)
    result, err = check_three_ways(model)
    # The Lambda lowers to native IR primitives (no approximation, no custom layer); the
    # pipeline may fuse them further (e.g. into layer_norm), each fused op native too.
    assert convert_keras(model, boundary="channels_last", options={}).op_types() == ops
    assert not any("custom" in op for op in result.graph.op_types())
    print(f"seed {name}: max relative error {err:.3g}")


@pytest.mark.parametrize("name,body,ops", SEEDS, ids=[s[0] for s in SEEDS])
def test_seed_model_core_ml(name, body, ops):
    """The same models as Core ML specs: native layers only, matching Keras in kcc's Core ML runtime."""
    from kcc.coreml import predict

    model = lambda_model([(5,)], body, dense=10)
    spec = compile_model(model, "coreml").model.get_spec()
    kinds = [layer.WhichOneof("layer") for layer in spec.neuralNetwork.layers]
    assert "custom" not in kinds, kinds
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((1, 5)).astype(np.float32)
        ref = np.asarray(model(x))
        assert_not_degenerate(ref)
        got = next(iter(predict(spec, {spec.description.input[0].name: x}).values()))
        assert_close(ref, np.asarray(got).reshape(ref.shape))
