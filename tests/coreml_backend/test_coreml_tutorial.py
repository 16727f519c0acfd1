"""The tutorial's conversion with kcc's names: the spec field by field, then numbers through the runtime."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kcc  # noqa: E402
from kcc.coreml import predict  # noqa: E402
from kcc.testing import assert_close  # noqa: E402

import keras

LABELS = [str(d) for d in range(10)]
TUTORIAL = dict(input_names="image", image_input_names="image", image_scale=1 / 255.0, class_labels=LABELS,
                output_names="output", author="kcc tests", license="MIT",
                short_description="Handwritten digit classifier", version="1.0",
                input_descriptions={"image": "28x28 grayscale digit, 0-255"},
                output_descriptions={"output": "digit probabilities", "classLabel": "the digit"})


@pytest.fixture(scope="module")
def tutorial():
    from kcc.examples import mnist_small

    model = mnist_small(seed=1)
    return model, kcc.compile(model, target="coreml", **TUTORIAL)


def test_tutorial_spec_fields(tutorial):
    _, mlmodel = tutorial
    spec = mlmodel.get_spec()
    assert spec.specificationVersion == 1
    assert spec.WhichOneof("Type") == "neuralNetworkClassifier"
    (inp,) = spec.description.input
    assert inp.name == "image"
    img = inp.type.imageType
    assert (img.width, img.height) == (28, 28)
    assert type(img).ColorSpace.Name(img.colorSpace) == "GRAYSCALE"
    (pre,) = spec.neuralNetworkClassifier.preprocessing
    assert pre.featureName == "image"
    assert pre.scaler.channelScale == pytest.approx(1 / 255.0)
    assert pre.scaler.grayBias == 0.0
    outs = {o.name: o for o in spec.description.output}
    assert set(outs) == {"output", "classLabel"}
    assert outs["output"].type.WhichOneof("Type") == "dictionaryType"
    assert outs["output"].type.dictionaryType.WhichOneof("KeyType") == "stringKeyType"
    assert outs["classLabel"].type.WhichOneof("Type") == "stringType"
    assert spec.description.predictedFeatureName == "classLabel"
    assert spec.description.predictedProbabilitiesName == "output"
    net = spec.neuralNetworkClassifier
    assert list(net.stringClassLabels.vector) == LABELS
    assert net.labelProbabilityLayerName == "output"
    assert net.layers[-1].output[0] == "output" and net.layers[-1].WhichOneof("layer") == "softmax"
    assert [l.WhichOneof("layer") for l in net.layers].count("convolution") == 3
    meta = spec.description.metadata
    assert (meta.author, meta.license, meta.shortDescription, meta.versionString) == (
        "kcc tests", "MIT", "Handwritten digit classifier", "1.0")
    assert inp.shortDescription == "28x28 grayscale digit, 0-255"
    assert outs["output"].shortDescription == "digit probabilities"
    # the MLModel API users know
    assert mlmodel.author == "kcc tests" and mlmodel.short_description == "Handwritten digit classifier"
    assert mlmodel.input_description["image"] == "28x28 grayscale digit, 0-255"


def test_tutorial_classifies_like_keras(tutorial):
    model, mlmodel = tutorial
    rng = np.random.default_rng(0)
    for k in range(3):
        pixels = rng.integers(0, 256, (28, 28)).astype(np.uint8)
        ref = np.asarray(model(pixels[None, :, :, None].astype(np.float32) / 255.0))[0]
        out = predict(mlmodel, {"image": pixels})
        probs = np.array([out["output"][label] for label in LABELS])
        assert_close(ref, probs, 1e-4, what="class probabilities")
        assert out["classLabel"] == LABELS[int(np.argmax(ref))]


def test_saved_mlmodel_runs(tutorial, tmp_path):
    model, mlmodel = tutorial
    path = tmp_path / "MNISTClassifier.mlmodel"
    kcc.save(mlmodel, path)
    pixels = np.full((28, 28), 200, np.uint8)
    ref = np.asarray(model(pixels[None, :, :, None].astype(np.float32) / 255.0))[0]
    out = predict(str(path), {"image": pixels})
    assert out["classLabel"] == LABELS[int(np.argmax(ref))]


def test_int_labels_from_file_and_rgb_biases(tmp_path):
    """Integer labels, labels from a file, a BGR image with per-channel biases (scale first, then bias)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 5, 3), name="photo")
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("cat\ndog\n\nbird\n")
    mlmodel = kcc.compile(model, target="coreml", image_input_names="photo",
                          is_bgr=True, image_scale=0.5, red_bias=-1.0, green_bias=2.0, blue_bias=3.0,
                          class_labels=str(labels_file))
    spec = mlmodel.get_spec()
    assert list(spec.neuralNetworkClassifier.stringClassLabels.vector) == ["cat", "dog", "bird"]
    img = spec.description.input[0].type.imageType
    assert type(img).ColorSpace.Name(img.colorSpace) == "BGR"
    rgb = np.random.default_rng(1).integers(0, 256, (6, 5, 3)).astype(np.uint8)
    keras_in = rgb.astype(np.float32) * 0.5 + np.array([-1.0, 2.0, 3.0], np.float32)
    keras_in = keras_in[..., ::-1]  # the network sees BGR channel order
    ref = np.asarray(model(keras_in[None]))[0]
    out = predict(mlmodel, {"photo": rgb})
    assert_close(ref, np.array([out[spec.description.predictedProbabilitiesName][k] for k in ("cat", "dog", "bird")]))
    mlmodel = kcc.compile(model, target="coreml", class_labels=[3, 1, 4])
    spec = mlmodel.get_spec()
    assert list(spec.neuralNetworkClassifier.int64ClassLabels.vector) == [3, 1, 4]
    assert spec.description.output[-1].type.WhichOneof("Type") == "int64Type"


def test_gray_bias_and_per_input_scale_dict():
    from kcc.examples import mnist_small

    model = mnist_small(seed=2)
    mlmodel = kcc.compile(model, target="coreml", input_names="image", image_input_names=["image"],
                          image_scale={"image": 1 / 127.5}, gray_bias={"image": -1.0})
    pre = mlmodel.get_spec().neuralNetwork.preprocessing[0]
    assert pre.scaler.channelScale == pytest.approx(1 / 127.5) and pre.scaler.grayBias == -1.0
    pixels = np.random.default_rng(5).integers(0, 256, (28, 28)).astype(np.uint8)
    ref = np.asarray(model(pixels[None, :, :, None].astype(np.float32) / 127.5 - 1.0))[0]
    got = predict(mlmodel, {"image": pixels})
    assert_close(ref, np.asarray(next(iter(got.values()))).reshape(-1))


def test_image_input_in_the_nd_layout():
    """A model that needs ND layers still takes an image: rank-4 image mapping, same preprocessing."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 3), name="photo")
    x = keras.layers.Conv2D(4, 3)(inp)
    model = keras.Model(inp, keras.layers.Softmax(axis=1)(x))
    mlmodel = kcc.compile(model, target="coreml", image_input_names="photo", image_scale=1 / 255.0)
    spec = mlmodel.get_spec()
    assert spec.specificationVersion == 4 and spec.neuralNetwork.imageInputShapeMapping == 1
    rgb = np.random.default_rng(2).integers(0, 256, (6, 6, 3)).astype(np.uint8)
    ref = np.asarray(model(rgb[None].astype(np.float32) / 255.0))[0]       # (4, 4, 4) channels-last
    got = np.asarray(predict(mlmodel, {"photo": rgb})[spec.description.output[0].name])
    assert_close(ref, got.reshape(1, 4, 4, 4)[0].transpose(1, 2, 0))
