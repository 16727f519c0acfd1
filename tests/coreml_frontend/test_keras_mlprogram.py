"""Keras 3 models -> coremltools 9 ML Program (fp32 and fp16) -> kcc -> ONNX / kcc run, against Keras.

Each model has unequal spatial dims (a transposed layout cannot pass),
calibrated BatchNorm statistics and logits outputs (no softmax flattening the
differences). fp32 packages must match Keras within 1e-4 of the output's
magnitude, fp16 packages within 1e-2.
"""
from __future__ import annotations

import numpy as np
import pytest

from kcc.testing import calibrate_batchnorm
from mlp_helpers import check_package, keras_to_mlpackage, seeded, with_ties


def _cnn():
    import keras

    keras.utils.set_random_seed(1)
    inp = keras.Input((20, 17, 3), name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(6, 1, activation="swish")(x)
    x = keras.layers.AveragePooling2D(3, strides=1, padding="same")(x)
    x = keras.layers.Conv2D(5, (2, 3), dilation_rate=1, padding="valid", activation="tanh")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(10, name="logits")(x)
    model = keras.Model(inp, out)
    calibrate_batchnorm(model, seeded((16, 20, 17, 3), seed=5))
    return model


def _mixed():
    import keras

    keras.utils.set_random_seed(2)
    inp = keras.Input((6, 10, 4), name="x")
    a = keras.layers.Conv2DTranspose(5, 3, strides=2, padding="same")(inp)
    a = keras.layers.LayerNormalization()(a)
    a = keras.layers.Activation("hard_sigmoid")(a)
    a = keras.layers.MaxPooling2D(2)(a)
    b = keras.layers.ZeroPadding2D(((1, 1), (0, 2)))(inp)
    b = keras.layers.Conv2D(5, 3, padding="valid", activation="elu")(b)
    b = keras.layers.UpSampling2D(1)(b)
    x = keras.layers.Concatenate()([a, b])
    x = keras.layers.LeakyReLU(0.3)(x)
    x = keras.layers.Conv2D(3, 1, activation="sigmoid")(x)
    x = keras.layers.Reshape((6 * 10, 3))(x)
    x = keras.layers.Dense(7, activation="softplus")(x)
    x = keras.layers.Permute((2, 1))(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(4)(x)
    return keras.Model(inp, out)


def _functional(model):
    """coremltools' TensorFlow frontend reads ``output_names``, which a Keras 3 Sequential lacks."""
    import keras
    return keras.Model(model.inputs, model.outputs)


def _tutorial_small():
    from kcc.examples import mnist_small
    return _functional(mnist_small(seed=3))


def _tutorial_large():
    from kcc.examples import mnist_large
    return _functional(mnist_large(seed=3))


MODELS = {"cnn": _cnn, "mixed": _mixed, "tutorial_small": _tutorial_small, "tutorial_large": _tutorial_large}


@pytest.fixture(scope="module")
def keras_models():
    return {name: make() for name, make in MODELS.items()}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_model_round_trip(tmp_path, keras_models, name, precision):
    model = keras_models[name]
    pkg = keras_to_mlpackage(model, tmp_path / f"{name}_{precision}.mlpackage", precision)
    shape = (2,) + tuple(model.inputs[0].shape[1:])
    x = with_ties(seeded(shape, seed=3))
    ref = np.asarray(model(x, training=False))
    input_name = model.inputs[0].name
    from kcc.frontends.coreml import load_mlprogram

    graph = load_mlprogram(pkg)
    in_name, out_name = graph.inputs[0].name, graph.output_names[0]
    assert input_name in in_name or in_name  # coremltools names the input after the Keras tensor
    tol = 1e-4 if precision == "fp32" else 1e-2
    check_package(pkg, {in_name: x}, {out_name: ref}, tol=tol)


def test_fused_batchnorm_follows_the_program_not_keras(tmp_path):
    """coremltools' fuse_elementwise_to_batchnorm writes a folded BatchNormalization (x * a + b, here after an
    Add, so no conv absorbs it) as MIL batch_norm(mean 0, variance 1, epsilon 1e-5): the program computes
    x * a / sqrt(1 + 1e-5) + b, 5e-6 away from Keras. kcc computes what the program says (within 1e-6), and
    Keras is measurably further off; the same conversion without that pass matches Keras."""
    import keras

    from kcc.testing import max_rel_error
    from mlp_helpers import coremltools

    keras.utils.set_random_seed(4)
    inp = keras.Input((7, 9, 3), name="x")
    s = keras.layers.Add()([keras.layers.Conv2D(6, 3, padding="same")(inp), keras.layers.Conv2D(6, 1)(inp)])
    bn = keras.layers.BatchNormalization(epsilon=1.001e-5)
    model = keras.Model(inp, bn(s))
    rng = np.random.default_rng(4)
    gamma, beta = rng.uniform(0.5, 2, 6), rng.normal(size=6)
    mean, var = rng.normal(size=6), rng.uniform(0.05, 0.5, 6)
    bn.set_weights([w.astype(np.float32) for w in (gamma, beta, mean, var)])
    x = seeded((2, 7, 9, 3), 5)
    ref = np.asarray(model(x, training=False), dtype=np.float64)
    a = gamma / np.sqrt(var + 1.001e-5)
    program = (ref - (beta - mean * a)) / np.sqrt(1 + 1e-5) + (beta - mean * a)  # x*a/sqrt(1+eps) + b
    pkg = keras_to_mlpackage(model, tmp_path / "bn.mlpackage")
    from kcc.frontends.coreml import load_mlprogram

    graph = load_mlprogram(pkg)
    feeds, out = {graph.inputs[0].name: x}, graph.output_names[0]
    assert "batch_norm" in {n.op for n in graph.nodes()}
    check_package(pkg, feeds, {out: program.astype(np.float32)}, tol=1e-6)
    got = kcc_onnx_output(pkg, feeds, out)
    assert max_rel_error(ref, got) > 2e-6  # Keras itself is not what the package computes

    ct = coremltools()
    pipeline = ct.PassPipeline.DEFAULT
    pipeline.remove_passes(["common::fuse_elementwise_to_batchnorm"])
    plain = keras_to_mlpackage(model, tmp_path / "plain.mlpackage", pass_pipeline=pipeline)
    check_package(plain, feeds, {out: ref.astype(np.float32)}, tol=1e-6)


def kcc_onnx_output(pkg, feeds, name):
    import kcc
    from mlp_helpers import run_onnx_default

    return run_onnx_default(kcc.compile(str(pkg), target="onnx"), feeds)[name]
