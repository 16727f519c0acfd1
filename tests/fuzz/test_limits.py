"""Limits before allocation: a file cannot make kcc build what it merely declares.

Zip bombs and lying zip directories, HDF5 datasets declared far larger than the
bytes they store, configs nested past any real model, ONNX initializers whose
dims and data disagree, and models larger than the machine's memory: each is one
ModelFileError naming the file, raised before anything is inflated or allocated.
"""
from __future__ import annotations

import json
import struct
import zipfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from fuzz_files import (conv_model, dataset_paths, h5_file, json_pair, keras_file, members,
                        onnx_matmul, replace_dataset, write_zip)

from kcc import limits
from kcc.errors import ModelFileError
from kcc.frontends.keras.loader import load_keras_model
from kcc.frontends.onnx import load_onnx


@pytest.fixture(scope="module")
def conv():
    return conv_model()


def _refused(source, *words: str) -> str:
    with pytest.raises(ModelFileError) as info:
        load_keras_model(source) if not str(source).endswith(".onnx") else load_onnx(source)
    text = str(info.value)
    assert str(source[0] if isinstance(source, tuple) else source) in text, text
    for word in words:
        assert word in text, (word, text)
    return text


# ---- zip archives -------------------------------------------------------------------------

def test_zip_bomb_entry_is_refused_before_inflating(tmp_path, conv):
    path = keras_file(tmp_path, conv)
    entries = members(path)
    entries["config.json"] = bytes(50 << 20)  # 50 MB of zeros deflate to ~50 KB
    write_zip(path, entries, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 1 << 20
    _refused(path, "'config.json'", "zip bomb", "ratio")


def _patch(path, field_local: int, field_central: int, fmt: str, value: int, entry: int = 0) -> None:
    data = bytearray(path.read_bytes())
    local = [i for i in range(len(data)) if data[i:i + 4] == b"PK\x03\x04"][entry]
    central = [i for i in range(len(data)) if data[i:i + 4] == b"PK\x01\x02"][entry]
    struct.pack_into(fmt, data, local + field_local, value)
    struct.pack_into(fmt, data, central + field_central, value)
    path.write_bytes(bytes(data))


def test_zip_entry_lying_about_its_size(tmp_path, conv):
    path = keras_file(tmp_path, conv)
    _patch(path, 22, 24, "<I", 0xFFFFFFF0)
    _refused(path, "stored uncompressed but declares")


def test_encrypted_and_unknown_method_entries(tmp_path, conv):
    path = keras_file(tmp_path, conv)
    _patch(path, 6, 8, "<H", 1)
    _refused(path, "encrypted")
    path = keras_file(tmp_path, conv)
    _patch(path, 8, 10, "<H", 99)
    _refused(path, "compression method 99")


# ---- nesting ------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [150, 100_000])
def test_deeply_nested_config(tmp_path, conv, depth):
    path = keras_file(tmp_path, conv)
    entries = members(path)
    text = entries["config.json"].decode()
    entries["config.json"] = text.replace('"trainable": true', '"trainable": ' + "[" * depth + "]" * depth,
                                          1).encode()
    write_zip(path, entries)
    _refused(path, "nests")


def test_deeply_nested_json_architecture(tmp_path, conv):
    arch, weights = json_pair(tmp_path, conv)
    arch.write_text('{"class_name": "Functional", "config": ' + "[" * 50_000 + "]" * 50_000 + "}")
    _refused((arch, weights), "nests")


# ---- HDF5 declared sizes ------------------------------------------------------------------

def test_hdf5_dataset_declared_huge_with_no_storage(tmp_path, conv):
    def huge(f) -> None:
        kernel = next(p for p in dataset_paths(f) if "dense" in p and "kernel" in p)
        replace_dataset(f, kernel, shape=(10**6, 10**6), dtype="f4")
    text = _refused(h5_file(tmp_path, conv, weights_edit=huge), "TiB")
    assert "memory" in text


def test_hdf5_dataset_declaring_more_than_it_stores(tmp_path, conv):
    def lie(f) -> None:
        replace_dataset(f, "layers/dense/vars/0", shape=(384, 5000), dtype="f4")
    _refused(keras_file(tmp_path, conv, weights_edit=lie), "declares shape (384, 5000)", "stores 0 bytes")


def test_compressed_dataset_within_ratio_is_read(tmp_path, conv):
    """Compression is allowed: gzip-compressed weights (Keras never writes them) still load."""
    def compress(f) -> None:
        data = f["layers/dense/vars/0"][()]
        replace_dataset(f, "layers/dense/vars/0", data=data, compression="gzip", chunks=True)
    spec = load_keras_model(keras_file(tmp_path, conv, weights_edit=compress))
    np.testing.assert_array_equal(spec.layer("dense").weights["kernel"], conv.get_layer("dense").kernel.numpy())


def test_memory_check_names_the_sizes(monkeypatch):
    monkeypatch.setattr(limits, "physical_memory", lambda: 8 << 30)
    with pytest.raises(ModelFileError, match=r"m\.h5: converting it needs about 12\.0 GiB .* has 8\.0 GiB"):
        limits.check_memory(6 << 30, "m.h5")
    limits.check_memory(3 << 30, "m.h5")


# ---- ONNX ---------------------------------------------------------------------------------

def _save(tmp_path, model) -> str:
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_onnx_negative_dims(tmp_path):
    _refused(_save(tmp_path, onnx_matmul(dims=(-1, 4))), "initializer 'w'", "negative")


def test_onnx_raw_data_shorter_than_dims(tmp_path):
    _refused(_save(tmp_path, onnx_matmul(raw=b"\0" * 20)), "initializer 'w'", "need 48 bytes",
             "raw_data holds 20")


def test_onnx_huge_dims_without_data(tmp_path):
    _refused(_save(tmp_path, onnx_matmul(dims=(10**6, 10**7))), "initializer 'w'")


def test_onnx_invalid_utf8_attribute(tmp_path):
    model = onnx_matmul()
    attr = model.graph.node[0].attribute.add()
    attr.name, attr.type, attr.s = "note", onnx.AttributeProto.STRING, b"\xff\xfe"
    _refused(_save(tmp_path, model), "node 'mm'", "UTF-8")


def test_onnx_attribute_without_type(tmp_path):
    model = onnx_matmul()
    attr = model.graph.node[0].attribute.add()
    attr.name = "axis"
    _refused(_save(tmp_path, model), "node 'mm'", "attribute 'axis' has no type")


def test_onnx_checker_runs(tmp_path):
    model = onnx_matmul()
    model.graph.node[0].input[1] = "nowhere"
    _refused(_save(tmp_path, model), "ONNX checker")


def test_onnx_node_count_bound(tmp_path, monkeypatch):
    nodes = [helper.make_node("Relu", [f"v{i}"], [f"v{i + 1}"]) for i in range(20)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("v0", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("v20", TensorProto.FLOAT, [2])])
    path = _save(tmp_path, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert len(load_onnx(path).graph.node) == 20
    monkeypatch.setattr(limits, "MAX_NODES", 10)
    _refused(path, "20 nodes", "more than the 10")


def test_json_limits_helper():
    with pytest.raises(ModelFileError, match="x.json: not valid JSON"):
        limits.load_json(b"{", "x.json")
    with pytest.raises(ModelFileError, match="UTF-8"):
        limits.load_json(b'{"a": "\xff"}', "x.json")
    assert limits.load_json(json.dumps({"a": [1, [2]]}), "x.json") == {"a": [1, [2]]}
