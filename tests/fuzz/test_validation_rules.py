"""What a Keras file claims is checked: configs against layer rules and against stored weights.

Each case edits one field of a real saved model and expects one ModelFileError
naming the file, the layer, the field and the values (validate.py). The first
test is the issue's example: a Conv2D whose config says 16 (or -5) filters over
a stored 32-filter kernel.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from fuzz_files import conv_model, h5_file, json_pair, keras_file, layer_config, lstm_model

from kcc.errors import ModelFileError
from kcc.frontends.keras.loader import load_keras_model


@pytest.fixture(scope="module")
def conv():
    return conv_model()


@pytest.fixture(scope="module")
def lstm():
    return lstm_model()


def _set(layer: str, **fields):
    def edit(config: dict) -> None:
        layer_config(config, layer).update(fields)
    return edit


def _refused(source, *words: str) -> str:
    with pytest.raises(ModelFileError) as info:
        load_keras_model(source)
    text = str(info.value)
    path = str(source[0] if isinstance(source, tuple) else source)
    assert path in text, text
    for word in words:
        assert re.search(word, text), (word, text)
    return text


@pytest.mark.parametrize("writer", [keras_file, h5_file])
def test_filters_that_contradict_the_stored_kernel(tmp_path, conv, writer):
    path = writer(tmp_path, conv, _set("conv", filters=16))
    _refused(path, "'conv'", r"filters = 16", r"\(3, 3, 3, 32\)", "32 on axis 3")


@pytest.mark.parametrize("writer", [keras_file, h5_file])
def test_negative_filters(tmp_path, conv, writer):
    _refused(writer(tmp_path, conv, _set("conv", filters=-5)), "'conv'", r"filters = -5", "at least 1")


def test_json_pair_is_validated_too(tmp_path, conv):
    _refused(json_pair(tmp_path, conv, _set("dense", units=7)), "'dense'", r"units = 7", r"\(384, 5\)")


@pytest.mark.parametrize("layer,fields,words", [
    ("conv", {"strides": [0, 1]}, [r"strides = \[0, 1\]", "at least 1"]),
    ("conv", {"kernel_size": [3, 3, 3]}, ["kernel_size", "2 integers"]),
    ("conv", {"kernel_size": 4}, ["kernel_size = 4", r"\(3, 3, 3, 32\)"]),
    ("conv", {"groups": 0}, ["groups = 0"]),
    ("conv", {"groups": 5}, ["groups = 5", "does not divide filters = 32"]),
    ("conv", {"padding": "full"}, ["padding = 'full'", "valid"]),
    ("conv", {"activation": "no_such_fn"}, ["activation = 'no_such_fn'", "relu"]),
    ("conv", {"filters": 10**30}, ["filters = 10000000", "too large"]),
    ("conv", {"filters": [32]}, [r"filters = \[32\]", "integer"]),
    ("conv", {"filters": 32.0}, [r"filters = 32.0", "integer"]),
    ("conv", {"filters": True}, [r"filters = True", "integer"]),
    ("conv", {"dilation_rate": -1}, ["dilation_rate"]),
    ("pool", {"pool_size": [0, 2]}, [r"pool_size = \[0, 2\]"]),
    ("pool", {"strides": 0}, ["strides = 0"]),
    ("pool", {"data_format": "nchw"}, ["data_format"]),
    ("dense", {"units": 0}, ["units = 0"]),
])
def test_config_rules(tmp_path, conv, layer, fields, words):
    _refused(keras_file(tmp_path, conv, _set(layer, **fields)), f"'{layer}'", *words)


def test_lstm_units_against_kernels(tmp_path, lstm):
    _refused(h5_file(tmp_path, lstm, _set("lstm", units=5)), "'lstm'", "units", r"\(3, 24\)")


def test_recurrent_activation_name(tmp_path, lstm):
    _refused(keras_file(tmp_path, lstm, _set("lstm", recurrent_activation="sigmoidish")),
             "recurrent_activation = 'sigmoidish'")


def test_duplicate_layer_names(tmp_path, conv):
    def edit(config: dict) -> None:
        layer_config(config, "dense")["name"] = "conv"
        config["config"]["layers"][-1]["name"] = "conv"
    _refused(keras_file(tmp_path, conv, edit), "two layers named 'conv'")


def test_extra_and_missing_variables(tmp_path, conv):
    def extra(f) -> None:
        f["layers/dense/vars/2"] = np.zeros(3, np.float32)
    _refused(keras_file(tmp_path, conv, weights_edit=extra), "'dense'", "3 stored variables")

    def missing_bias(config: dict) -> None:
        layer_config(config, "dense")["use_bias"] = False
    _refused(keras_file(tmp_path, conv, missing_bias), "'dense'", "1")

    def extra_weight(f) -> None:
        group = f["model_weights/pool"]
        group.attrs["weight_names"] = np.array([b"pool/kernel:0"])
        group["pool/kernel:0"] = np.zeros(2, np.float32)
    _refused(h5_file(tmp_path, conv, weights_edit=extra_weight), "'pool'", "owns no variables")


def test_weights_that_are_not_numbers(tmp_path, conv):
    def strings(f) -> None:
        del f["layers/dense/vars/1"]
        f["layers/dense/vars/1"] = np.array([b"a"] * 5)
    _refused(keras_file(tmp_path, conv, weights_edit=strings), "weights are numbers|numeric")


def test_the_unedited_files_load(tmp_path, conv, lstm):
    """The rules accept what Keras writes (so the refusals above are not blanket)."""
    for model in (conv, lstm):
        for writer in (keras_file, h5_file):
            spec = load_keras_model(writer(tmp_path, model))
            assert spec.layers
        assert load_keras_model(json_pair(tmp_path, model)).layers


def test_operations_with_constant_arguments_are_accepted(tmp_path):
    """``x + 3.0`` stores ``arg1 = 3.0`` (MobileNetV3's hard-sigmoid): a constant, not a bad tensor.

    A non-number in the same place (a string) is still refused.
    """
    import json
    import zipfile

    import keras
    import onnxruntime as ort

    from kcc import compile as kcc_compile

    inp = keras.Input((5,), name="x")
    h = keras.layers.Dense(4, name="d")(inp)
    y = keras.layers.ReLU(6.0, name="relu6")(h + 3.0) * (1.0 / 6.0)
    model = keras.Model(inp, y)
    path = tmp_path / "hard_sigmoid.keras"
    model.save(path)
    x = np.linspace(-8, 8, 10, dtype=np.float32).reshape(2, 5)
    onnx_model = kcc_compile(str(path), target="onnx")
    got = ort.InferenceSession(onnx_model.SerializeToString()).run(None, {"x": x})[0]
    ref = np.asarray(model(x))
    assert np.max(np.abs(got - ref)) <= 1e-6 * np.max(np.abs(ref))

    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    text = members["config.json"].decode()
    assert text.count(", 3.0]") == 1  # the Add's second positional argument
    members["config.json"] = text.replace(", 3.0]", ', "rm -rf"]').encode()
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    json.loads(members["config.json"])
    _refused(bad, "arg1")
