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


def test_neuralnetwork_classifier_comes_back_through_the_cli(tmp_path):
    """The issue's way back: ``kcc MNISTClassifier.mlmodel --emit keras`` (a kcc-made NeuralNetwork
    classifier with a grayscale image input scaled by 1/255) gives a .keras file that loads in safe
    mode, holds Keras layers (no Lambda), predicts the Core ML runtime's probabilities on raw
    pixels, and trains."""
    from PIL import Image

    import kcc.coreml
    from kcc import compile as kcc_compile
    from kcc.cli import main

    keras.utils.set_random_seed(0)
    source = keras.Sequential([keras.Input((28, 20, 1), name="image"),
                               keras.layers.Conv2D(6, 3, activation="relu", name="conv"),
                               keras.layers.MaxPooling2D(name="pool"), keras.layers.Flatten(name="flat"),
                               keras.layers.Dense(10, activation="softmax", name="probs")])
    mlmodel = tmp_path / "MNISTClassifier.mlmodel"
    kcc_compile(source, target="coreml", input_names="image", image_input_names="image",
                image_scale=1 / 255.0, class_labels=[str(i) for i in range(10)],
                output_names="output").save(str(mlmodel))
    out = tmp_path / "mnist.keras"
    assert main([str(mlmodel), "--emit", "keras", "-o", str(out)]) == 0
    model = keras.models.load_model(out)  # safe_mode=True, no custom_objects
    assert "Lambda" not in {type(l).__name__ for l in model.layers}
    assert {"Conv2D", "MaxPooling2D", "Dense"} <= {type(l).__name__ for l in model.layers}
    pixels = (np.random.default_rng(1).random((3, 28, 20)) * 255).astype(np.uint8)
    got = model.predict(pixels.astype(np.float32)[..., None], verbose=0)
    for i, img in enumerate(pixels):
        ref = kcc.coreml.predict(str(mlmodel), {"image": Image.fromarray(img)})
        probs = np.array([ref["output"][str(k)] for k in range(10)], np.float32)
        assert_close(probs, got[i], tol=1e-5)
        assert ref["classLabel"] == str(int(np.argmax(got[i])))
    assert all(w.dtype == "float32" for w in model.weights) and model.trainable_weights
