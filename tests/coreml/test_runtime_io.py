"""Model-level behaviour: image inputs and preprocessing, classifier outputs,
loading from files and MLModel objects, input validation and clear errors."""
from __future__ import annotations

import numpy as np
import pytest

import coreml_runtime_helpers  # noqa: F401  (quiet TF/coremltools logs)
from kcc.coreml import predict
from kcc.errors import ModelFileError, RuntimeModelError

import coremltools as ct
from coremltools.models import datatypes  # noqa: E402
from coremltools.models.neural_network import NeuralNetworkBuilder  # noqa: E402
from PIL import Image  # noqa: E402

RNG = np.random.default_rng(99)


def _identity_image_model(channels: int, is_bgr: bool, **pre):
    b = NeuralNetworkBuilder([("image", datatypes.Array(channels, 4, 5))], [("out", None)])
    b.add_activation("id", "LINEAR", "image", "out", params=[1.0, 0.0])
    b.set_pre_processing_parameters(image_input_names=["image"], is_bgr=is_bgr, **pre)
    return b.spec


def test_rgb_image_scale_then_bias_from_pil():
    spec = _identity_image_model(3, False, red_bias=-1.0, green_bias=-2.0, blue_bias=-3.0, image_scale=0.5)
    pixels = RNG.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    out = predict(spec, {"image": Image.fromarray(pixels)})["out"]
    ref = pixels.transpose(2, 0, 1) * 0.5 + np.array([-1.0, -2.0, -3.0]).reshape(3, 1, 1)
    np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_bgr_image_from_array_swaps_channels():
    spec = _identity_image_model(3, True, red_bias=10.0, green_bias=20.0, blue_bias=30.0, image_scale=2.0)
    pixels = RNG.integers(0, 256, size=(4, 5, 3)).astype(np.uint8)
    out = predict(spec, {"image": pixels})["out"]
    bgr = pixels[..., ::-1].transpose(2, 0, 1)
    np.testing.assert_allclose(out, bgr * 2.0 + np.array([30.0, 20.0, 10.0]).reshape(3, 1, 1), rtol=1e-6)


def test_grayscale_image_and_mean_image():
    spec = _identity_image_model(1, False, gray_bias=-0.5, image_scale=1 / 255)
    pixels = RNG.integers(0, 256, size=(4, 5), dtype=np.uint8)
    out = predict(spec, {"image": Image.fromarray(pixels)})["out"]
    np.testing.assert_allclose(out, pixels[None] / 255 - 0.5, rtol=1e-5, atol=1e-6)
    # a mean image subtracts per pixel
    spec.neuralNetwork.preprocessing[0].ClearField("scaler")
    mean = RNG.standard_normal(20).astype(np.float32)
    spec.neuralNetwork.preprocessing[0].meanImage.meanImage.extend(mean.tolist())
    out = predict(spec, {"image": pixels})["out"]
    np.testing.assert_allclose(out, pixels[None] - mean.reshape(1, 4, 5), rtol=1e-5)


def test_image_of_wrong_size_is_a_clear_error():
    spec = _identity_image_model(3, False)
    with pytest.raises(RuntimeModelError, match=r"6x4 .* expects 5x4"):
        predict(spec, {"image": np.zeros((4, 6, 3), np.uint8)})


@pytest.mark.parametrize("labels", [["cat", "dog", "bird"], [3, 14, 15]])
def test_classifier_outputs(labels):
    b = NeuralNetworkBuilder([("data", datatypes.Array(4))], [("probs", None)], mode="classifier")
    w, bias = RNG.standard_normal((3, 4)).astype(np.float32), RNG.standard_normal(3).astype(np.float32)
    b.add_inner_product("ip", w, bias, 4, 3, True, "data", "logits")
    b.add_softmax("sm", "logits", "probs")
    b.set_class_labels(labels, predicted_feature_name="label", prediction_blob="probs")
    assert b.spec.WhichOneof("Type") == "neuralNetworkClassifier"
    x = RNG.standard_normal(4).astype(np.float32)
    res = predict(b.spec, {"data": x})
    z = w @ x + bias
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    assert res["label"] == labels[int(np.argmax(p))]
    prob_name = b.spec.description.predictedProbabilitiesName
    assert set(res[prob_name]) == set(labels)
    np.testing.assert_allclose([res[prob_name][k] for k in labels], p, rtol=1e-5)


def test_loads_mlmodel_objects_and_files(tmp_path):
    b = NeuralNetworkBuilder([("data", datatypes.Array(3))], [("out", datatypes.Array(3))])
    b.add_unary("ex", "data", "out", "exp")
    path = tmp_path / "m.mlmodel"
    path.write_bytes(b.spec.SerializeToString())
    mlmodel = ct.models.MLModel(b.spec)
    x = np.array([0.0, 1.0, -2.0], np.float32)
    for model in (b.spec, mlmodel, str(path), path):
        np.testing.assert_allclose(predict(model, {"data": x})["out"], np.exp(x), rtol=1e-6)


def test_unknown_layer_type_names_layer_and_type():
    b = NeuralNetworkBuilder([("data", datatypes.Array(3))], [("out", None)], disable_rank5_shape_mapping=True)
    b.add_random_normal_like("noise_layer", "data", "out")
    with pytest.raises(RuntimeModelError, match=r"'noise_layer'.*'randomNormalLike'.*does not implement"):
        predict(b.spec, {"data": np.zeros(3, np.float32)})


def test_wrong_input_shape_and_names():
    b = NeuralNetworkBuilder([("data", datatypes.Array(2, 3))], [("out", None)], disable_rank5_shape_mapping=True)
    b.add_activation("r", "RELU", "data", "out")
    with pytest.raises(RuntimeModelError, match=r"input 'data' has shape \[3, 2\], but the model expects \[2, 3\]"):
        predict(b.spec, {"data": np.zeros((3, 2), np.float32)})
    with pytest.raises(RuntimeModelError, match="missing input 'data'"):
        predict(b.spec, {})
    with pytest.raises(RuntimeModelError, match="unknown input 'x'"):
        predict(b.spec, {"data": np.zeros((2, 3)), "x": 1})


def test_rank5_input_accepts_sequence_axis_but_not_wrong_shapes():
    b = NeuralNetworkBuilder([("data", datatypes.Array(3))], [("out", None)])
    b.add_activation("r", "RELU", "data", "out")
    x = RNG.standard_normal((4, 3)).astype(np.float32)  # (Seq, C)
    out = predict(b.spec, {"data": x})["out"]
    np.testing.assert_allclose(out.reshape(4, 3), np.maximum(x, 0))
    with pytest.raises(RuntimeModelError, match=r"input 'data' has shape \[4\]"):
        predict(b.spec, {"data": np.zeros(4, np.float32)})


def test_empty_ml_program_is_a_clear_error():
    """ML Programs run through the IR (tests/coreml_frontend); an empty or odd one is one clear error."""
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.specificationVersion = 6
    spec.mlProgram.SetInParent()
    with pytest.raises(ModelFileError, match="MIL program version 0"):
        predict(spec, {})
    spec.mlProgram.version = 1
    with pytest.raises(ModelFileError, match="has no functions"):
        predict(spec, {})
