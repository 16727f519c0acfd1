"""``kcc X.mlmodel --emit coreml``: a Core ML classifier with an image input comes back as one.

The re-emitted spec keeps the class labels, the label and probabilities output
names, the image input (width, height; its color swap and scaler are IR ops in
the network, so it is declared RGB with no scaler) and the metadata; kcc's
runtime gives the same label and probabilities from both specs on the same
pixels.
"""
from __future__ import annotations

import numpy as np

import kcc
from kcc.cli import main as kcc_main
from kcc.testing import assert_close
from nn_helpers import run_onnx
from nn_specs import builder_module

import keras  # noqa: E402
from coremltools.models.utils import load_spec  # noqa: E402

layers = keras.layers


def _same_predictions(first, second, images: list[dict], label: str, probs: str) -> None:
    for feed in images:
        a, b = kcc.coreml.predict(first, feed), kcc.coreml.predict(second, feed)
        assert a[label] == b[label]
        keys = sorted(a[probs])
        assert keys == sorted(b[probs])
        assert_close(np.array([a[probs][k] for k in keys]), np.array([b[probs][k] for k in keys]), 1e-5, probs)


def test_kcc_classifier_with_a_bgr_image_comes_back_as_a_classifier(tmp_path):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((6, 5, 3), name="img"), layers.Conv2D(4, (3, 2), activation="relu"),
                              layers.Flatten(), layers.Dense(3, activation="softmax")])
    first = kcc.compile(model, target="coreml", image_input_names=["img"], is_bgr=True, image_scale=0.02,
                        red_bias=-1.0, green_bias=0.5, blue_bias=2.0, class_labels=["cat", "dog", "eel"],
                        predicted_feature_name="animal", author="kcc tests", license="MIT")
    path = tmp_path / "first.mlmodel"
    first.save(str(path))
    out = tmp_path / "again.mlmodel"
    assert kcc_main([str(path), "--emit", "coreml", "-o", str(out)]) == 0     # the CLI's way
    second = load_spec(str(out))
    spec = first.get_spec()
    assert second == kcc.compile(str(path), target="coreml").get_spec()      # the API's way
    assert second.WhichOneof("Type") == "neuralNetworkClassifier"
    assert list(second.neuralNetworkClassifier.stringClassLabels.vector) == ["cat", "dog", "eel"]
    for field in ("predictedFeatureName", "predictedProbabilitiesName"):
        assert getattr(second.description, field) == getattr(spec.description, field)
    assert [o.name for o in second.description.output] == [o.name for o in spec.description.output]
    image = second.description.input[0].type.imageType
    assert (second.description.input[0].type.WhichOneof("Type"), image.width, image.height) == ("imageType", 5, 6)
    assert type(image).ColorSpace.Name(image.colorSpace) == "RGB"
    assert (second.description.metadata.author, second.description.metadata.license) == ("kcc tests", "MIT")
    rng = np.random.default_rng(3)
    pixels = [rng.integers(0, 256, (6, 5, 3)).astype(np.uint8) for _ in range(4)]
    _same_predictions(spec, second, [{"img": p} for p in pixels], "animal", spec.description.predictedProbabilitiesName)
    # ... and the numbers still match Keras on the BGR, scaled and shifted pixels.
    bgr = np.stack(pixels).astype(np.float32)[..., ::-1] * 0.02 + np.array([2.0, 0.5, -1.0], np.float32)
    probs = spec.description.predictedProbabilitiesName
    again = np.stack([[kcc.coreml.predict(second, {"img": p})[probs][k] for k in ("cat", "dog", "eel")]
                      for p in pixels])
    assert_close(model.predict(bgr, verbose=0), again, 1e-5, "Keras vs re-emitted Core ML")


def test_coremltools_classifier_with_int_labels_and_a_grayscale_image():
    datatypes, NeuralNetworkBuilder = builder_module()
    rng = np.random.default_rng(4)
    b = NeuralNetworkBuilder([("img", datatypes.Array(1, 4, 5))], [("scores", None)], mode="classifier")
    b.add_inner_product("fc", W=rng.standard_normal((3, 20)).astype(np.float32) * 0.05, b=None, input_channels=20,
                        output_channels=3, has_bias=False, input_name="img", output_name="logits")
    b.add_softmax("sm", "logits", "scores")
    b.set_class_labels([7, 3, 11], predicted_feature_name="digit", prediction_blob="scores")
    spec = b.spec
    t = spec.description.input[0].type
    t.imageType.width, t.imageType.height = 5, 4
    t.imageType.colorSpace = t.imageType.ColorSpace.Value("GRAYSCALE")
    entry = spec.neuralNetworkClassifier.preprocessing.add()
    entry.featureName = "img"
    entry.scaler.channelScale, entry.scaler.grayBias = 1 / 64, -2.0
    second = kcc.compile(spec, target="coreml").get_spec()
    assert list(second.neuralNetworkClassifier.int64ClassLabels.vector) == [7, 3, 11]
    assert second.description.predictedFeatureName == "digit"
    assert second.description.predictedProbabilitiesName == spec.description.predictedProbabilitiesName
    image = second.description.input[0].type.imageType
    assert type(image).ColorSpace.Name(image.colorSpace) == "GRAYSCALE"
    pixels = [rng.integers(0, 256, (4, 5)).astype(np.uint8) for _ in range(5)]
    _same_predictions(spec, second, [{"img": p} for p in pixels], "digit", spec.description.predictedProbabilitiesName)
    labels = {kcc.coreml.predict(second, {"img": p})["digit"] for p in pixels}
    assert len(labels) > 1, labels   # the inputs reach more than one class
    # The ONNX route of the same source names its outputs the same way.
    onnx_out = run_onnx(kcc.compile(spec, target="onnx"), {"img": np.stack(pixels)[:, None].astype(np.float32)})
    assert {"digit", spec.description.predictedProbabilitiesName} <= set(onnx_out)


def test_a_target_that_cannot_hold_the_layers_says_why(tmp_path, capsys):
    """ND layers re-emitted for iOS 12: one error naming the layer and what to change, exit 1, no file."""
    from nn_specs import nd_model

    src, out = tmp_path / "nd.mlmodel", tmp_path / "out.mlmodel"
    src.write_bytes(nd_model().SerializeToString())
    assert kcc_main([str(src), "--emit", "coreml", "--minimum-deployment-target", "iOS12", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "layer 'mm'" in err[0] and "Raise minimum_deployment_target to iOS13" in err[0], err
    assert not out.exists()
