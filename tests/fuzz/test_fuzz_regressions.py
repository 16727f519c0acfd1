"""Every crash the fuzzer found, as the smallest file that showed it, now a clear KccError.

Each test names the fuzz case that found it (``bench/fuzz.py --master M --case N``
rebuilds the original) and builds the minimized file in code. The assertion is the
contract: a KccError subclass whose message names the file (and what is wrong),
never AttributeError/TypeError/OverflowError/IRError/ValueError from deep inside.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from fuzz_files import conv_model, h5_file, json_pair, keras_file, layer_config, lstm_model

import kcc
from kcc.coreml import proto
from kcc.errors import KccError, ModelFileError, RuntimeModelError, ShapeError


@pytest.fixture(scope="module")
def conv():
    return conv_model()


@pytest.fixture(scope="module")
def lstm():
    return lstm_model()


def _refused(source, error=KccError, *words: str, target: str = "onnx") -> str:
    with pytest.raises(error) as info:
        kcc.compile_model(source, target=target, serialized=True)
    text = str(info.value)
    assert str(source[0] if isinstance(source, tuple) else source) in text, text
    for word in words:
        assert word in text, (word, text)
    return text


def _node(config: dict, name: str) -> dict:
    return next(layer for layer in config["config"]["layers"] if layer["name"] == name)


@pytest.mark.parametrize("value", [True, {"a": 1}, "dense"])
def test_layer_called_on_a_constant(tmp_path, conv, value):
    """Cases 2, 4, 23, 62 (master 0): ``args`` replaced -> AttributeError in ir.py / core.py."""
    def edit(config: dict) -> None:
        _node(config, "dense")["inbound_nodes"][0]["args"] = [value]
    _refused(json_pair(tmp_path, conv, edit), ModelFileError, "'dense'", "not on tensors")


def test_recurrent_initial_state_not_a_tensor(tmp_path, lstm):
    """Case 53: a constant ``initial_state`` -> AttributeError 'bool' has no 'rank' in recurrent.py."""
    def edit(config: dict) -> None:
        _node(config, "lstm")["inbound_nodes"][0]["kwargs"]["initial_state"] = False
    _refused(keras_file(tmp_path, lstm, edit), ModelFileError, "initial_state = False")


def test_kernel_that_does_not_fit_its_input(tmp_path, conv):
    """Cases 140, 188: a Dense kernel of 9 (or 16) input features after 8 -> IRError from the IR."""
    def edit(f) -> None:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = np.ones((9, 5), np.float32)
    _refused(keras_file(tmp_path, conv, weights_edit=edit), ShapeError, "do not fit together", "dense")


def test_infinite_node_index(tmp_path, conv):
    """Case 784: ``Infinity`` where a node index belongs -> OverflowError in load_config.py."""
    def edit(config: dict) -> None:
        config["config"]["output_layers"] = [["dense", 0, float("inf")]]
    arch, weights = json_pair(tmp_path, conv, edit)
    assert "Infinity" in arch.read_text()
    _refused((arch, weights), ModelFileError, "malformed", "OverflowError")


def test_model_name_not_a_string(tmp_path, conv):
    """Case 1186: the model's name swapped for a list -> TypeError in the ONNX emitter."""
    def edit(config: dict) -> None:
        config["config"]["name"] = ["m"]
    _refused(json_pair(tmp_path, conv, edit), ModelFileError, "model names are strings")


def test_bidirectional_merge_mode(tmp_path):
    """Case 1721: merge_mode a list -> unhashable TypeError in recurrent.py."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((4, 3), name="seq")
    model = keras.Model(inp, keras.layers.Bidirectional(keras.layers.GRU(2), name="bi")(inp))

    def edit(config: dict) -> None:
        layer_config(config, "bi")["merge_mode"] = ["concat"]
    _refused(h5_file(tmp_path, model, edit), ModelFileError, "merge_mode")


def test_onnx_name_not_utf8(tmp_path):
    """Case 1148: a byte flip made a node name invalid UTF-8 -> TypeError in validation itself."""
    from fuzz_files import onnx_matmul

    data = onnx_matmul().SerializeToString()
    i = data.index(b"mm")
    path = tmp_path / "m.onnx"
    path.write_bytes(data[:i] + b"\xff\xfe" + data[i + 2:])
    _refused(str(path), ModelFileError, "not valid UTF-8")


def _mlmodel(tmp_path, conv):
    source = keras_file(tmp_path, conv)
    path = tmp_path / "m.mlmodel"
    kcc.save(kcc.compile_model(source, target="coreml", serialized=True).model, path)
    spec = proto.module("Model_pb2").Model()
    spec.ParseFromString(path.read_bytes())
    x = np.random.default_rng(0).standard_normal(
        [int(d) for d in spec.description.input[0].type.multiArrayType.shape]).astype(np.float32)
    return path, spec, {spec.description.input[0].name: x}


def test_mlmodel_output_data_type_out_of_range(tmp_path, conv):
    """Case 298: output dataType -1 -> ValueError from the protobuf enum in runtime.py."""
    path, spec, feeds = _mlmodel(tmp_path, conv)
    assert kcc.coreml.predict(str(path), feeds)
    spec.description.output[0].type.multiArrayType.dataType = -1
    path.write_bytes(spec.SerializeToString())
    with pytest.raises(RuntimeModelError, match="data type -1") as info:
        kcc.coreml.predict(str(path), feeds)
    assert str(path) in str(info.value)


def test_mlmodel_runtime_errors_name_the_file(tmp_path, conv):
    """Cases 5, 11, 16...: runtime errors named the layer but not the file."""
    path, spec, feeds = _mlmodel(tmp_path, conv)
    layer = next(lyr for lyr in spec.neuralNetwork.layers if lyr.WhichOneof("layer") == "innerProduct")
    layer.innerProduct.ClearField("bias")
    path.write_bytes(spec.SerializeToString())
    with pytest.raises(RuntimeModelError) as info:
        kcc.coreml.predict(str(path), feeds)
    assert str(path) in str(info.value) and layer.name in str(info.value)


def test_regressions_still_convert_when_unedited(tmp_path, conv, lstm):
    """The files above differ from convertible ones only by the edit (the tests can fail)."""
    for source in (json_pair(tmp_path, conv), keras_file(tmp_path, lstm)):
        model = kcc.compile_model(source, target="onnx", serialized=True).model
        onnx.checker.check_model(onnx.load_from_string(model), full_check=True)
    assert json.loads(json_pair(tmp_path, conv)[0].read_text())["config"]["name"] == "m"


def _embed_model():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((7,), dtype="int32", name="tokens")
    y = keras.layers.Embedding(20, 4, name="emb")(inp)
    return keras.Model(inp, keras.layers.LayerNormalization(name="ln")(y), name="e")


@pytest.mark.parametrize("fields,words", [
    ({"epsilon": None}, "epsilon = None"),   # master 1 case 764: float(None) in normalization.py
    ({"axis": [0]}, "batch axis 0"),         # master 1 case 962: reshape to ['N'] in normalization.py
    ({"axis": [-1, -1]}, "names an axis twice"),  # master 0 case 9539: reshape (8,) to (8, 8)
])
def test_layer_normalization_fields(tmp_path, fields, words):
    def edit(config: dict) -> None:
        layer_config(config, "ln").update(fields)
    _refused(keras_file(tmp_path, _embed_model(), edit), ModelFileError, "'ln'", words)


def test_malformed_compile_config(tmp_path, conv):
    """Master 0 case 2352: ``compile_config`` a number -> AttributeError in load_config.py."""
    path = h5_file(tmp_path, conv)
    import h5py

    with h5py.File(path, "r+") as f:
        f.attrs["training_config"] = json.dumps({"loss": "mse", "optimizer_config": 1.5})
    _refused(path, ModelFileError, "training (compile) configuration is malformed")


def test_onnx_value_type_out_of_range(tmp_path):
    """Master 0 case 7198: an input's elem_type 2**31-1 -> ValueError from onnx's checker helpers."""
    from fuzz_files import onnx_matmul

    model = onnx_matmul()
    model.graph.input[0].type.tensor_type.elem_type = 2**31 - 1
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    _refused(str(path), ModelFileError, "ONNX checker")


def test_onnx_negative_input_dim(tmp_path):
    """Master 0 case 8970: an input dim_value of -1 -> IRError 'bad dim -1' inside the IR."""
    from fuzz_files import onnx_matmul

    model = onnx_matmul()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = -1
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    _refused(str(path), ModelFileError, "value 'x'", "negative dimension")


def test_pooling_layer_without_config(tmp_path, conv):
    """Master 0 case 4157: a MaxPooling2D whose config is null -> int(None) in layers/common.py."""
    def edit(config: dict) -> None:
        _node(config, "pool")["config"] = None
    _refused(keras_file(tmp_path, conv, edit), ModelFileError, "'pool'", "pool_size = None")


def test_hdf5_heap_object_of_size_zero(tmp_path, conv):
    """Master 0 case 4264: zeroed bytes in the global heap made HDF5 spin forever in C reading
    ``model_config`` (no alarm can interrupt it); the heap is checked before h5py reads it."""
    path = h5_file(tmp_path, conv)
    data = bytearray(path.read_bytes())
    heap = data.index(b"GCOL")
    first = heap + 16  # the first object: index, refcount, reserved, then its 8-byte size
    assert int.from_bytes(data[first:first + 2], "little") != 0
    data[first + 8:first + 16] = bytes(8)
    path.write_bytes(bytes(data))
    _refused(path, ModelFileError, "global heap", "size 0")


def test_hdf5_free_space_of_size_zero(tmp_path, conv):
    """Master 0 case 24420: the heap's free-space header zeroed mid-collection; HDF5 spun forever."""
    path = h5_file(tmp_path, conv)
    data = bytearray(path.read_bytes())
    heap = data.index(b"GCOL")
    second = heap + 16 + 16 + (int.from_bytes(data[heap + 24:heap + 32], "little") + 7) // 8 * 8
    data[second:second + 64] = bytes(64)  # index 0 (free space) with size 0, far from the end
    path.write_bytes(bytes(data))
    _refused(path, ModelFileError, "global heap", "object 0 of size 0")


def test_corrupt_link_name_in_hdf5_tree(tmp_path, conv):
    """Master 0 cases 15051, 19963: a link name that is not UTF-8 -> SystemError out of h5py's
    link walk in safety.check_hdf5."""
    import h5py

    path = h5_file(tmp_path, conv)
    with h5py.File(path, "r+") as f:
        f["model_weights"].create_group("zzlayer")
    data = path.read_bytes()
    i = data.index(b"zzlayer")
    path.write_bytes(data[:i] + b"\x80\x81" + data[i + 2:])
    text = _refused(path, ModelFileError, "object tree")
    assert "utf-8" in text.lower()


def test_input_dtype_not_a_name(tmp_path, conv):
    """Master 0 case 20011: InputLayer dtype a list -> unhashable TypeError in lower.py."""
    def edit(config: dict) -> None:
        layer_config(config, "image")["dtype"] = [1, 2]
    _refused(json_pair(tmp_path, conv, edit), ModelFileError, "'image'", "dtype = [1, 2]")


def test_onnx_duplicate_output_names(tmp_path):
    """Master 0 case 33965: a graph output listed twice -> IRError (output names must be unique)."""
    from fuzz_files import onnx_matmul

    model = onnx_matmul()
    model.graph.output.add().CopyFrom(model.graph.output[0])
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    _refused(str(path), ModelFileError, "lists an output twice")


def test_layer_normalization_weights_that_do_not_fit_the_input(tmp_path):
    """Master 0 case 13052: an edited input shape leaves gamma (8,) over a 4-wide axis -> ValueError."""
    import keras

    inp = keras.Input((5, 8), name="seq")
    model = keras.Model(inp, keras.layers.LayerNormalization(name="ln")(inp))

    def edit(config: dict) -> None:
        layer_config(config, "seq")["batch_shape"] = [None, 5, 4]
    _refused(keras_file(tmp_path, model, edit), KccError, "'ln'", "stored gamma has shape (8,)", "(4,)")


def test_onnx_global_pool_of_rank_2(tmp_path):
    """Master 0 case 29575: GlobalAveragePool of a rank-2 value -> a reduce over no axes, ValueError in the emitter."""
    from onnx import helper

    from fuzz_files import onnx_matmul

    model = onnx_matmul()
    model.graph.node.append(helper.make_node("GlobalAveragePool", ["y"], ["g"], name="gap"))
    model.graph.output[0].name = "g"
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    _refused(str(path), KccError, "'gap'", "rank 2")


def test_wrapped_layer_entry_whose_config_is_a_string(tmp_path, lstm):
    """Master 0 case 79010: a wrapped layer (a Bidirectional's ``layer``) of an unknown class whose
    ``config`` is a string -> AttributeError in loader.py."""
    def edit(config: dict) -> None:
        layer_config(config, "lstm")["layer"] = {"module": "keras.layers", "class_name": "Orthogonal",
                                                 "config": "relu"}
    _refused(h5_file(tmp_path, lstm, edit), KccError, "'Orthogonal'")
