"""Core ML options: float16 weights, specification versions, names, shapes, bad values, the CLI."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kcc  # noqa: E402
from kcc.errors import ConversionError, OptionError  # noqa: E402

from coreml_backend_helpers import check_coreml, layer_types, network  # noqa: E402

import keras
L = keras.layers


def _cnn(seed: int = 0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 3), name="pixels")
    x = L.Conv2D(6, 3, activation="relu")(inp)
    x = L.MaxPooling2D(2)(x)
    x = L.Flatten()(x)
    return keras.Model(inp, L.Dense(4, name="logits")(x))


def _nd_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((4, 5))
    return keras.Model(inp, L.Softmax(axis=1, name="time_softmax")(L.Dense(3)(inp)))


def test_float16_weights_spec2_and_float16_tolerance():
    model = _cnn()
    mlmodel, errors = check_coreml(model, tol=3e-3, model_precision="float16")
    spec = mlmodel.get_spec()
    assert spec.specificationVersion == 2
    for layer in network(spec).layers:
        if layer.WhichOneof("layer") in ("convolution", "innerProduct"):
            params = getattr(layer, layer.WhichOneof("layer"))
            assert params.weights.float16Value and not len(params.weights.floatValue)
    assert max(errors) > 1e-7, "float16 weights should differ from float32 a little"
    mlmodel32, _ = check_coreml(model)
    assert mlmodel32.get_spec().specificationVersion == 1
    assert len(spec.SerializeToString()) < 0.7 * len(mlmodel32.get_spec().SerializeToString())


def test_lowest_spec_versions():
    assert kcc.compile(_cnn(), target="coreml").get_spec().specificationVersion == 1
    spec = kcc.compile(_nd_model(), target="coreml").get_spec()
    assert spec.specificationVersion == 4
    assert network(spec).arrayInputShapeMapping == 1
    assert "softmaxND" in layer_types(spec)


def test_deployment_target_is_floor_and_ceiling():
    spec = kcc.compile(_cnn(), target="coreml", minimum_deployment_target="iOS13").get_spec()
    assert spec.specificationVersion == 4
    assert network(spec).arrayInputShapeMapping == 0  # still the rank-5 layout: it is valid in spec 4
    with pytest.raises(ConversionError, match=r"iOS11.*time_softmax.*ND layers"):
        kcc.compile(_nd_model(), target="coreml", minimum_deployment_target="iOS11")
    with pytest.raises(ConversionError, match="float16"):
        kcc.compile(_cnn(), target="coreml", minimum_deployment_target="iOS11", model_precision="float16")
    assert kcc.compile(_cnn(), target="coreml", minimum_deployment_target="iOS11.2",
                       model_precision="float16").get_spec().specificationVersion == 2


def test_names_and_shapes():
    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3), name="img")
    model = keras.Model(inp, L.GlobalAveragePooling2D()(L.Conv2D(2, 3)(inp)))
    mlmodel = kcc.compile(model, target="coreml", input_names=["photo"], output_names=["scores"],
                          input_name_shape_dict={"photo": (12, 10, 3)})
    spec = mlmodel.get_spec()
    assert spec.description.input[0].name == "photo"
    assert list(spec.description.input[0].type.multiArrayType.shape) == [3, 12, 10]
    assert spec.description.output[0].name == "scores"
    assert list(spec.description.output[0].type.multiArrayType.shape) == [2]
    # without it, the dynamic height and width are an image-like range (test_coreml_flexible_shapes.py)
    flexible = kcc.compile(model, target="coreml").get_spec().description.input[0].type.multiArrayType
    assert [(r.lowerBound, r.upperBound) for r in flexible.shapeRange.sizeRanges] == [(3, 3), (3, -1), (3, -1)]


BAD = [
    ({"model_precision": "float64"}, "model_precision"),
    ({"image_scale": "big"}, "image_scale"),
    ({"image_input_names": "nope"}, "image_input_names"),
    ({"image_input_names": "pixels", "is_bgr": 1}, "is_bgr"),
    ({"image_input_names": "pixels", "red_bias": {"other": 1.0}}, "red_bias"),
    ({"class_labels": 5}, "class_labels"),
    ({"class_labels": ["a", "b"]}, "class_labels"),
    ({"class_labels": ["a", 1, "c", "d"]}, "class_labels"),
    ({"class_labels": "/no/such/labels.txt"}, "class_labels"),
    ({"class_labels": list("abcd"), "predicted_probabilities_output": "nope"}, "predicted_probabilities_output"),
    ({"input_descriptions": {"nope": "x"}}, "input_descriptions"),
    ({"output_descriptions": ["x"]}, "output_descriptions"),
    ({"use_float_arraytype": False}, "use_float_arraytype"),
    ({"minimum_deployment_target": "iOS9"}, "minimum_deployment_target"),
    ({"author": 3}, "author"),
    ({"respect_trainable": "yes"}, "respect_trainable"),
    ({"custom_conversion_functions": {"X": 3}}, "custom_conversion_functions"),
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize("options,name", BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_bad_option_names_the_option(options, name):
    with pytest.raises(OptionError, match=name):
        kcc.compile(_cnn(), target="coreml", **options)


def test_cli_writes_mlmodel_and_nothing_on_error(tmp_path, capsys):
    from kcc.cli import main

    model = _cnn()
    src = tmp_path / "cnn.keras"
    model.save(src)
    out = tmp_path / "Cnn.mlmodel"
    rc = main([str(src), "--emit", "coreml", "-o", str(out), "--input-names", "image",
               "--image-input-names", "image", "--image-scale", "0.00392157", "--class-labels", "a", "b", "c", "d",
               "--output-names", "output", "--author", "me", "--short-description", "a test",
               "--input-description", "image=an image"])
    assert rc == 0, capsys.readouterr().err
    from kcc.coreml import load_spec
    spec = load_spec(str(out))
    assert spec.description.metadata.author == "me"
    assert spec.description.input[0].type.WhichOneof("Type") == "imageType"
    assert list(spec.neuralNetworkClassifier.stringClassLabels.vector) == ["a", "b", "c", "d"]
    bad = tmp_path / "Bad.mlmodel"
    rc = main([str(src), "--emit", "coreml", "-o", str(bad), "--class-labels", "a", "b"])
    assert rc == 1
    assert "class_labels" in capsys.readouterr().err
    assert not bad.exists() and not list(tmp_path.glob(".Bad*"))
    rc = main([str(src), "--emit", "coreml", "-o", str(bad), "--minimum-deployment-target", "iOS2"])
    assert rc == 1 and not bad.exists()


def test_large_dense_weights_written_exactly():
    """A 4M-weight Dense keeps every weight, transposed to Core ML's (out, in) order.

    How fast the weights are written (as bytes, never one float at a time) is a
    benchmark (bench/convert_speed.py), not a timed test.
    """
    keras.utils.set_random_seed(0)
    inp = keras.Input((2048,))
    model = keras.Model(inp, L.Dense(2048)(inp))
    mlmodel = kcc.compile(model, target="coreml")
    w = network(mlmodel.get_spec()).layers[0].innerProduct.weights
    assert len(w.floatValue) == 2048 * 2048
    np.testing.assert_array_equal(np.asarray(w.floatValue, np.float32), model.weights[0].numpy().T.ravel())
