"""respect_trainable: updatable Core ML models with the compiled Keras model's loss and optimizer."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

import kcc  # noqa: E402
from kcc.errors import ConversionError, OptionError  # noqa: E402

from coreml_backend_helpers import network  # noqa: E402

import keras
L = keras.layers


def _model(optimizer, loss="categorical_crossentropy", softmax=True):
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1), name="image")
    x = L.Conv2D(4, 3, activation="relu", name="frozen_conv")(inp)
    x = L.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = L.Flatten()(x)
    x = L.Dense(8, activation="relu", name="hidden")(x)
    out = L.Dense(3, activation="softmax" if softmax else None, name="probs")(x)
    model = keras.Model(inp, out)
    model.get_layer("frozen_conv").trainable = False
    if optimizer is not None:
        model.compile(optimizer=optimizer, loss=loss)
    return model


def _updatable(spec) -> dict[str, bool]:
    return {l.name.split("/")[0]: l.isUpdatable for l in network(spec).layers if l.WhichOneof("layer") in
            ("convolution", "innerProduct")}


def test_sgd_cross_entropy_classifier():
    model = _model(keras.optimizers.SGD(learning_rate=0.05, momentum=0.8))
    spec = kcc.compile(model, target="coreml", respect_trainable=True, output_names="output",
                       class_labels=["a", "b", "c"]).get_spec()
    assert spec.isUpdatable and spec.specificationVersion == 4
    marks = _updatable(spec)
    assert marks == {"frozen_conv": False, "conv": True, "hidden": True, "probs": True}
    for layer in network(spec).layers:
        kind = layer.WhichOneof("layer")
        if kind in ("convolution", "innerProduct"):
            params = getattr(layer, kind)
            assert params.weights.isUpdatable == layer.isUpdatable
            assert params.bias.isUpdatable == layer.isUpdatable
    updates = network(spec).updateParams
    (loss,) = updates.lossLayers
    assert loss.categoricalCrossEntropyLossLayer.input == "output"
    assert loss.categoricalCrossEntropyLossLayer.target == "output_true"
    sgd = updates.optimizer.sgdOptimizer
    assert sgd.learningRate.defaultValue == pytest.approx(0.05)
    assert sgd.momentum.defaultValue == pytest.approx(0.8)
    assert sgd.miniBatchSize.defaultValue == 32 and list(sgd.miniBatchSize.set.values) == [32]
    assert updates.epochs.defaultValue == 1 and updates.shuffle.defaultValue
    names = [f.name for f in spec.description.trainingInput]
    assert names == ["image", "classLabel"]
    assert spec.description.trainingInput[1].type.WhichOneof("Type") == "stringType"


def test_adam_mse_regressor():
    model = _model(keras.optimizers.Adam(learning_rate=0.002, beta_1=0.85, beta_2=0.99, epsilon=1e-6), loss="mse",
                   softmax=False)
    spec = kcc.compile(model, target="coreml", respect_trainable=True).get_spec()
    updates = network(spec).updateParams
    (loss,) = updates.lossLayers
    out = spec.description.output[0].name
    assert loss.meanSquaredErrorLossLayer.input == out
    assert loss.meanSquaredErrorLossLayer.target == f"{out}_true"
    adam = updates.optimizer.adamOptimizer
    assert adam.learningRate.defaultValue == pytest.approx(0.002)
    assert (adam.beta1.defaultValue, adam.beta2.defaultValue) == (pytest.approx(0.85), pytest.approx(0.99))
    assert adam.eps.defaultValue == pytest.approx(1e-6)
    target = spec.description.trainingInput[-1]
    assert target.name == f"{out}_true" and list(target.type.multiArrayType.shape) == [3]


def test_plain_cross_entropy_target_is_an_index():
    spec = kcc.compile(_model("sgd"), target="coreml", respect_trainable=True).get_spec()
    target = spec.description.trainingInput[-1]
    arr = target.type.multiArrayType
    assert list(arr.shape) == [1] and type(arr).ArrayDataType.Name(arr.dataType) == "INT32"


def test_refusals():
    with pytest.raises(ConversionError, match="compiled"):
        kcc.compile(_model(None), target="coreml", respect_trainable=True)
    with pytest.raises(ConversionError, match="RMSprop"):
        kcc.compile(_model("rmsprop"), target="coreml", respect_trainable=True)
    with pytest.raises(ConversionError, match="softmax"):
        kcc.compile(_model("sgd", softmax=False), target="coreml", respect_trainable=True)
    with pytest.raises(OptionError, match="float16"):
        kcc.compile(_model("sgd"), target="coreml", respect_trainable=True, model_precision="float16")
    with pytest.raises(ConversionError, match="iOS12"):
        kcc.compile(_model("sgd"), target="coreml", respect_trainable=True, minimum_deployment_target="iOS12")


def test_from_a_saved_keras_file(tmp_path):
    model = _model(keras.optimizers.SGD(learning_rate=0.05, momentum=0.8))
    path = tmp_path / "trainable.keras"
    model.save(path)
    spec = kcc.compile(str(path), target="coreml", respect_trainable=True).get_spec()
    assert spec.isUpdatable
    assert _updatable(spec) == {"frozen_conv": False, "conv": True, "hidden": True, "probs": True}
    assert network(spec).updateParams.optimizer.sgdOptimizer.momentum.defaultValue == pytest.approx(0.8)


def test_the_training_config_reaches_the_backend_as_a_typed_field():
    from kcc.api import compile_model
    from kcc.training import Optimizer, TrainingConfig

    graph = compile_model(_model(keras.optimizers.Adam(learning_rate=0.003)), "coreml", respect_trainable=True).graph
    assert isinstance(graph.training, TrainingConfig)
    assert graph.training.optimizer == Optimizer("Adam", graph.training.optimizer.config)
    assert graph.training.optimizer.config["learning_rate"] == pytest.approx(0.003)
    assert graph.training.trainable["frozen_conv"] is False and graph.training.trainable["conv"] is True
    assert graph.copy().training is graph.training
    assert not graph.meta.get("keras_training_config")
