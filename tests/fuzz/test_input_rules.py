"""A layer called on a tensor it cannot take is one kcc error naming the layer, before its handler runs.

Regression cases from the fuzz run (docs/reliability.md): a Conv2D whose input was
edited to rank 3, a 1-D global pooling on a vector, and normalization or softmax
axes that resolve to the batch axis. Each used to fail inside a handler with an
IndexError or an invalid IR node.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest

from fuzz_files import keras_file, layer_config

from kcc import compile as kcc_compile
from kcc.errors import KccError

L = keras.layers


def _model(body) -> keras.Model:
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 5), name="x")
    return keras.Model(inp, body(inp), name="m")


CASES = {
    "conv2d-on-rank-3": (lambda x: L.Conv2D(4, 3, name="conv")(L.Reshape((6, 5, 1), name="reshape")(x)),
                         lambda c: layer_config(c, "reshape").update(target_shape=[5, 6]),
                         r"'conv'.*\(Conv2D\) takes rank-4 inputs.*rank-3"),
    "pool1d-on-vector": (lambda x: L.GlobalAveragePooling1D(name="gap")(x), None, r"'gap'.*rank-3 inputs.*rank-2"),
    "batchnorm-axis-batch": (lambda x: L.BatchNormalization(name="bn")(x),
                             lambda c: layer_config(c, "bn").update(axis=0), r"'bn'.*axis = 0.*batch axis"),
    "layernorm-axis-minus-rank": (lambda x: L.LayerNormalization(name="ln")(x),
                                  lambda c: layer_config(c, "ln").update(axis=[-3]), r"'ln'.*axis = \[-3\]"),
    "softmax-axis-out-of-range": (lambda x: L.Softmax(axis=-1, name="sm")(x),
                                  lambda c: layer_config(c, "sm").update(axis=7), r"'sm'.*axis = 7"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_called_on_a_tensor_it_cannot_take(tmp_path, case):
    body, edit, message = CASES[case]
    if case == "pool1d-on-vector":  # Keras refuses to build it: edit a valid file instead
        edit = _pool_on_flatten
    model = _model(body)
    path = keras_file(tmp_path, model, edit)
    with pytest.raises(KccError, match=message):
        kcc_compile(str(path), target="onnx")


def _pool_on_flatten(config: dict) -> None:
    """Insert a Flatten between the input and the pooling layer (rank 2 into a 1-D pool)."""
    layers = config["config"]["layers"]
    gap = next(layer for layer in layers if layer["name"] == "gap")
    flat = {"module": "keras.layers", "class_name": "Flatten", "name": "flat",
            "config": {"name": "flat", "trainable": True, "dtype": "float32"},
            "registered_name": None, "build_config": {"input_shape": [None, 6, 5]},
            "inbound_nodes": gap["inbound_nodes"]}
    layers.insert(layers.index(gap), flat)
    gap["inbound_nodes"] = [{"args": [{"class_name": "__keras_tensor__", "config": {
        "shape": [None, 30], "dtype": "float32", "keras_history": ["flat", 0, 0]}}], "kwargs": {}}]


def test_the_same_layers_on_fitting_tensors_convert(tmp_path):
    """The rules do not refuse what Keras builds: each unedited model converts and matches."""
    import onnxruntime as ort

    x = np.linspace(-2, 2, 60, dtype=np.float32).reshape(2, 6, 5)
    for name in ("batchnorm-axis-batch", "layernorm-axis-minus-rank", "softmax-axis-out-of-range"):
        model = _model(CASES[name][0])
        (tmp_path / name).mkdir()
        path = keras_file(tmp_path / name, model)
        got = ort.InferenceSession(kcc_compile(str(path), target="onnx").SerializeToString()).run(None, {"x": x})[0]
        ref = np.asarray(model(x))
        assert np.max(np.abs(got - ref)) <= 1e-5 * np.max(np.abs(ref)), name
