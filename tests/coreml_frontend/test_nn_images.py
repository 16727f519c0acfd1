"""Image inputs: preprocessing (scale, per-channel biases, BGR, grayscale, mean image) lowered to IR ops.

The ONNX model takes channels-first RGB (or gray) pixels, 0-255; kcc's Core ML
runtime takes the same pixels as an H x W x C array.
"""
from __future__ import annotations

import numpy as np
import pytest

import kcc
from kcc.testing import assert_close
from nn_helpers import check_nn, run_onnx
from nn_specs import builder_module

import keras  # noqa: E402
layers = keras.layers


def test_bgr_scale_and_biases_from_kcc_conversion():
    keras.utils.set_random_seed(6)
    model = keras.Sequential([keras.Input((6, 5, 3), name="img"), layers.Conv2D(4, (3, 2), activation="relu"),
                              layers.Flatten(), layers.Dense(3)])
    ml = kcc.compile(model, target="coreml", image_input_names=["img"], is_bgr=True, image_scale=0.02,
                     red_bias=-1.0, green_bias=0.5, blue_bias=2.0)
    spec = ml.get_spec()
    out = spec.description.output[0].name
    pixels = np.random.default_rng(6).integers(0, 256, size=(2, 3, 6, 5)).astype(np.float32)  # RGB, NCHW
    pixels[0, :, 0, 0] = [255, 0, 128]
    bgr = pixels[:, ::-1] * 0.02 + np.array([2.0, 0.5, -1.0], np.float32).reshape(1, 3, 1, 1)
    ref = model.predict(bgr.transpose(0, 2, 3, 1), verbose=0)
    check_nn(ml, {"img": pixels}, {out: ref},
             lambda i: {"img": pixels[i].transpose(1, 2, 0).astype(np.uint8)})
    graph = kcc.compile_model(ml, target="onnx").graph
    assert graph.meta["image_inputs"]["img"]["color_space"] == "BGR"


def test_grayscale_mean_image():
    datatypes, NeuralNetworkBuilder = builder_module()
    rng = np.random.default_rng(11)
    b = NeuralNetworkBuilder([("img", datatypes.Array(1, 4, 5))], [("y", None)])
    b.add_inner_product("fc", W=rng.standard_normal((3, 20)).astype(np.float32), b=None, input_channels=20,
                        output_channels=3, has_bias=False, input_name="img", output_name="y")
    spec = b.spec
    t = spec.description.input[0].type
    t.imageType.width, t.imageType.height = 5, 4
    t.imageType.colorSpace = t.imageType.ColorSpace.Value("GRAYSCALE")
    mean = rng.uniform(0, 255, 20).astype(np.float32)
    entry = spec.neuralNetwork.preprocessing.add()
    entry.featureName = "img"
    entry.meanImage.meanImage.extend(mean.tolist())
    pixels = rng.integers(0, 256, size=(2, 1, 4, 5)).astype(np.float32)
    got = run_onnx(kcc.compile(spec, target="onnx"), {"img": pixels})["y"]
    w = np.asarray(spec.neuralNetwork.layers[0].innerProduct.weights.floatValue, np.float32).reshape(3, 20)
    ref = (pixels.reshape(2, 20) - mean) @ w.T
    assert_close(ref, got.reshape(ref.shape), 1e-4, "mean image")
    rt = np.stack([np.asarray(kcc.coreml.predict(spec, {"img": pixels[i, 0].astype(np.uint8)})["y"]).reshape(-1)
                   for i in range(2)])
    assert_close(ref, rt, 1e-4, "runtime mean image")
