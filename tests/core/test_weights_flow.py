"""Weights flow once: read in place from the archive, streamed from the IR to the output file.

What must not change is checked here (no memory or time assertions; bench/convert_speed.py
and bench/large_model.py measure those):

* the ONNX file written by streaming (``kcc.compile_to_file``, the CLI) holds the very bytes of
  the in-memory model kcc.compile returns, and runs in onnxruntime like Keras;
* past the external-data threshold the two files give onnxruntime numbers equal to the
  in-memory model's, and the data file holds each tensor's bytes;
* the Core ML file written by streaming holds the bytes ``serialize_coreml`` gives (float32
  and float16 weights), and runs in kcc's Core ML runtime like Keras;
* weights read from a ``.keras`` archive (in place, or from an in-memory image of a small
  member) equal Keras's, an archive re-packed with
  compression gives the same ones, and a corrupt weights member is one ModelFileError.
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402

import kcc  # noqa: E402
from kcc.backends.coreml import build_spec  # noqa: E402
from kcc.backends.coreml.options import parse_options  # noqa: E402
from kcc.backends.onnx import build_onnx, external_data, writer  # noqa: E402
from kcc.errors import ModelFileError  # noqa: E402
from kcc.frontends.keras.loader import load_keras_model  # noqa: E402
from kcc.testing import assert_close, assert_not_degenerate, calibrate_batchnorm, run_keras, run_onnx  # noqa: E402

L = keras.layers


def _cnn() -> keras.Model:
    """Conv + calibrated BatchNorm + Flatten + Dense (fold_batchnorm and the Flatten folding rewrite
    weights); unequal sizes everywhere (9x7 image, 5 channels, 12 filters, 6 units, 4 logits)."""
    keras.utils.set_random_seed(5)
    x = keras.Input((9, 7, 5), name="image")
    y = L.Conv2D(12, 3, padding="same", name="conv")(x)
    y = L.BatchNormalization(name="bn")(y)
    y = L.ReLU(name="relu")(y)
    y = L.Flatten(name="flat")(y)
    y = L.Dense(6, activation="tanh", name="hidden")(y)
    model = keras.Model(x, L.Dense(4, name="logits")(y), name="cnn")
    calibrate_batchnorm(model, _image(16, seed=9))
    return model


def _tokens() -> keras.Model:
    """Embedding (int ids, a gather) + Dense: a table and matrices past 1 KiB, small ones under it."""
    keras.utils.set_random_seed(6)
    ids = keras.Input((5,), dtype="int32", name="ids")
    y = L.Embedding(90, 16, name="embed")(ids)
    y = L.Dense(24, activation="relu", name="up")(y)
    y = L.Flatten(name="flat")(y)
    return keras.Model(ids, L.Dense(3, name="logits")(y), name="tokens")


def _image(n: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 9, 7, 5)).astype(np.float32)


def _ids() -> np.ndarray:
    ids = np.random.default_rng(2).integers(0, 90, (3, 5)).astype(np.int32)
    ids[0, 0], ids[2, 4] = 0, 89
    return ids


@pytest.fixture(scope="module", params=["cnn", "tokens"])
def saved(request, tmp_path_factory) -> tuple[Path, keras.Model, np.ndarray]:
    model, x = (_cnn(), _image()) if request.param == "cnn" else (_tokens(), _ids())
    path = tmp_path_factory.mktemp(request.param) / f"{request.param}.keras"
    model.save(path)
    return path, model, x


def test_streamed_onnx_file_is_the_in_memory_model(saved, tmp_path):
    path, model, x = saved
    out = tmp_path / "m.onnx"
    result = kcc.compile_to_file(path, out, target="onnx")
    assert result.model == [out] and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    proto = kcc.compile(path, target="onnx")
    assert out.read_bytes() == proto.SerializeToString()
    _, left_out = build_onnx(result.graph)  # the file's large tensors were streamed, not built
    assert left_out and all(a.nbytes >= external_data.SIZE_THRESHOLD for a in left_out.values())
    ref = run_keras(model, [x])[0]
    assert_not_degenerate(ref)
    assert_close(ref, run_onnx(str(out), [x])[0], 1e-5)


def test_write_stream_matches_serialize_with_fields_after_the_weights():
    """Fields after ``raw_data`` (doc_string), after the initializers (outputs, value_info) and after
    the graph (opset_import, metadata_props) keep their places."""
    big = np.arange(600, dtype=np.float32).reshape(20, 30)
    weights: dict[str, np.ndarray] = {}
    tensor = writer.initializer(big, "w", weights)
    tensor.doc_string = "after raw_data"
    small = onnx.numpy_helper.from_array(np.arange(3, dtype=np.int64), "shape")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 20])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 30])],
        initializer=[small, tensor], doc_string="graph doc")
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], doc_string="doc")
    model.metadata_props.add(key="k", value="v")
    stream = io.BytesIO()
    n = writer.write_stream(model, weights, stream)
    writer.fill_weights(model, weights)
    assert stream.getvalue() == model.SerializeToString() and n == len(stream.getvalue())
    assert np.array_equal(onnx.numpy_helper.to_array(onnx.load_from_string(stream.getvalue()).graph.initializer[1]),
                          big)


def test_external_data_file_runs_like_the_in_memory_model(saved, tmp_path, monkeypatch):
    path, model, x = saved
    monkeypatch.setattr(external_data, "EXTERNAL_DATA_THRESHOLD", 512)
    out = tmp_path / "m.onnx"
    assert kcc.compile_to_file(path, out, target="onnx").model == [out, tmp_path / "m.onnx.data"]
    proto = kcc.compile(path, target="onnx")
    stored = onnx.load(str(out), load_external_data=False)
    data = (tmp_path / "m.onnx.data").read_bytes()
    raw = {t.name: t.raw_data for t in proto.graph.initializer}
    external = [t for t in stored.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external
    for t in external:
        info = {e.key: e.value for e in t.external_data}
        start, length = int(info["offset"]), int(info["length"])
        assert info["location"] == "m.onnx.data" and data[start:start + length] == raw[t.name], t.name
    got = run_onnx(str(out), [x])[0]
    assert np.array_equal(got, run_onnx(proto.SerializeToString(), [x])[0])
    assert_close(run_keras(model, [x])[0], got, 1e-5)


@pytest.mark.parametrize("precision", ["float32", "float16"])
def test_streamed_coreml_file_is_serialize_coreml(saved, tmp_path, precision):
    path, model, x = saved
    out = tmp_path / "m.mlmodel"
    kcc.compile_to_file(path, out, target="coreml", model_precision=precision)
    compiled = kcc.compile_model(path, target="coreml", serialized=True, model_precision=precision)
    assert out.read_bytes() == compiled.model
    holes: list = []  # the file's large weights were streamed, not put in the spec
    build_spec(compiled.graph, parse_options({"model_precision": precision}), holes=holes)
    assert any(h.dtype == (np.float16 if precision == "float16" else np.float32) for h in holes)
    if precision == "float32" and x.dtype == np.float32:
        from kcc.coreml import predict

        spec_in = "image"
        feed = np.transpose(x, (0, 3, 1, 2))
        got = np.stack([np.asarray(next(iter(predict(str(out), {spec_in: f}).values()))).reshape(-1)
                        for f in feed])
        assert_close(run_keras(model, [x])[0].reshape(len(x), -1), got, 1e-5)


@pytest.mark.parametrize("image", [True, False], ids=["image", "in-place"])
def test_archive_weights_are_read_in_place_and_equal_keras(saved, tmp_path, monkeypatch, image):
    """Both ways of opening the member: an in-memory image (small members) and in place
    through a window on the archive (members past archive_keras3.IMAGE_LIMIT)."""
    from kcc.frontends.keras import archive_keras3

    if not image:
        monkeypatch.setattr(archive_keras3, "IMAGE_LIMIT", 0)
    opened = []
    real = archive_keras3.FileWindow
    monkeypatch.setattr(archive_keras3, "FileWindow", lambda *a: opened.append(a) or real(*a))
    path, model, _ = saved
    spec = load_keras_model(path)
    assert len(opened) == (0 if image else 1)
    for layer in model.layers:
        stored = next(s for s in spec.layers if s.name == layer.name).weights
        assert [np.asarray(w).tolist() for w in layer.get_weights()] == [a.tolist() for a in stored.values()]
    # The same archive re-packed with deflate (the member is inflated in memory instead).
    packed = tmp_path / "packed.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
    again = load_keras_model(packed)
    for a, b in zip(spec.layers, again.layers):
        assert a.weights.keys() == b.weights.keys()
        assert all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)


def test_a_corrupt_weights_member_is_one_clear_error(saved, tmp_path):
    path, _, _ = saved
    bad = tmp_path / "bad.keras"
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("model.weights.h5")
    data[info.header_offset + info.compress_size // 2 + 100] ^= 0xFF  # inside the member's bytes
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"bad\.keras.*model\.weights\.h5.*CRC"):
        load_keras_model(bad)
