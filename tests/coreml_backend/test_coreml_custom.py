"""Custom layers: unknown Keras layers become Core ML custom layers carrying their weights and parameters."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kcc  # noqa: E402
from kcc.errors import ConversionError, UnsupportedOpError  # noqa: E402

from coreml_backend_helpers import layer_types, network  # noqa: E402

import keras
L = keras.layers
ops = keras.ops


@keras.saving.register_keras_serializable(package="kcc_coreml_tests")
class SortScale(L.Layer):
    """Sorts features then scales them: tracing cannot lower sort, so it stays unknown."""

    def __init__(self, power=2, mode="fast", **kwargs):
        super().__init__(**kwargs)
        self.power, self.mode = power, mode

    def build(self, shape):
        self.scale = self.add_weight(shape=(shape[-1],), initializer="random_normal", name="scale")
        self.offset = self.add_weight(shape=(2, shape[-1]), initializer="random_normal", name="offset")

    def call(self, x):
        return ops.sort(x, axis=-1) * self.scale + self.offset[0]

    def get_config(self):
        return {**super().get_config(), "power": self.power, "mode": self.mode}


def _model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((5,))
    x = SortScale(power=3, mode="exact", name="sorter")(L.Dense(4)(inp))
    return keras.Model(inp, L.Dense(2)(x))


def _custom_layer(spec):
    (layer,) = [l for l in network(spec).layers if l.WhichOneof("layer") == "custom"]
    return layer


def _weights(wp) -> np.ndarray:
    return np.asarray(wp.floatValue, np.float32)


def test_add_custom_layers_carries_weights_and_parameters():
    model = _model()
    spec = kcc.compile(model, target="coreml", add_custom_layers=True).get_spec()
    assert layer_types(spec) == ["innerProduct", "custom", "innerProduct"]
    assert spec.specificationVersion == 2
    layer = _custom_layer(spec)
    p = layer.custom
    assert p.className == "SortScale"
    assert p.parameters["power"].intValue == 3 and p.parameters["mode"].stringValue == "exact"
    live = model.get_layer("sorter")
    assert len(p.weights) == 2
    np.testing.assert_array_equal(_weights(p.weights[0]), live.scale.numpy().ravel())
    np.testing.assert_array_equal(_weights(p.weights[1]), live.offset.numpy().ravel())
    # wired between the two dense layers
    dense0, _, dense1 = network(spec).layers
    assert list(layer.input) == list(dense0.output) and list(dense1.input) == list(layer.output)


def test_conversion_function_receives_the_layer():
    from coremltools.proto import NeuralNetwork_pb2

    seen = []

    def convert_sort_scale(layer):
        seen.append(layer)
        params = NeuralNetwork_pb2.CustomLayerParams()
        params.className = "MySortScale"
        params.description = "sorts then scales"
        params.parameters["power"].doubleValue = float(layer.power)
        w = params.weights.add()
        w.floatValue.extend(layer.get_weights()[0].tolist())
        return params

    model = _model()
    spec = kcc.compile(model, target="coreml", custom_conversion_functions={"SortScale": convert_sort_scale}).get_spec()
    assert seen and seen[0] is model.get_layer("sorter")
    p = _custom_layer(spec).custom
    assert (p.className, p.description) == ("MySortScale", "sorts then scales")
    assert p.parameters["power"].doubleValue == 3.0
    np.testing.assert_allclose(_weights(p.weights[0]), model.get_layer("sorter").scale.numpy())


def test_conversion_function_returning_a_dict():
    spec = kcc.compile(_model(), target="coreml", custom_conversion_functions={
        "sorter": lambda layer: {"className": "S", "parameters": {"flag": True}, "weights": [np.arange(3.0)]}},
    ).get_spec()
    p = _custom_layer(spec).custom
    assert p.className == "S" and p.parameters["flag"].boolValue
    np.testing.assert_array_equal(_weights(p.weights[0]), [0.0, 1.0, 2.0])


def test_without_the_option_the_layer_is_reported():
    with pytest.raises(ConversionError, match="sorter.*add_custom_layers=True"):
        kcc.compile(_model(), target="coreml")


def test_onnx_rejects_custom_layers_clearly():
    with pytest.raises(UnsupportedOpError, match="custom_layer.*sorter"):
        kcc.compile(_model(), target="onnx", custom_conversion_functions={"SortScale": lambda layer: {
            "className": "S"}})
