"""The written files, opened in a fresh interpreter the way users do: `kcc --emit keras` with
`keras.models.load_model` (safe mode, no custom_objects), `kcc --emit tensorflow` with
`tf.saved_model.load` (serving signature named after the source's input, dynamic batch)."""
from __future__ import annotations

import json

import numpy as np

import kcc
from kcc.cli import main
from kcc.testing import assert_close
from keras_backend_helpers import cnn_tf, images, run_fresh

FRESH = """
import json, numpy as np, keras, tensorflow as tf
m = keras.models.load_model({keras_path!r})
x1, x5 = np.load({x1!r}), np.load({x5!r})
np.save({y_keras!r}, m.predict(x5, verbose=0))
serve = tf.saved_model.load({saved!r}).signatures["serving_default"]
for x, out in ((x1, {y1!r}), (x5, {y5!r})):
    np.save(out, list(serve(image=tf.constant(x)).values())[0].numpy())
print(json.dumps({{"classes": sorted({{type(l).__name__ for l in m.layers}}),
                  "inputs": list(serve.structured_input_signature[1])}}))
"""


def _source_onnx(tmp_path):
    import keras

    source = cnn_tf(keras)
    path = tmp_path / "cnn.onnx"
    kcc.save(kcc.compile(source, target="onnx"), path)
    return source, path


def test_keras_file_and_savedmodel_load_in_a_fresh_process(tmp_path):
    source, onnx_path = _source_onnx(tmp_path)
    keras_path, saved = tmp_path / "cnn.keras", tmp_path / "saved"
    assert main([str(onnx_path), "--emit", "keras", "-o", str(keras_path), "-q"]) == 0
    assert main([str(onnx_path), "--emit", "tensorflow", "-o", str(saved), "-q"]) == 0
    x1, x5 = images(2, seed=1)[:1], images(5, seed=5)
    files = {k: str(tmp_path / f"{k}.npy") for k in ("x1", "x5", "y_keras", "y1", "y5")}
    np.save(files["x1"], x1)
    np.save(files["x5"], x5)
    info = json.loads(run_fresh(FRESH.format(keras_path=str(keras_path), saved=str(saved), **files))
                      .strip().splitlines()[-1])
    assert "Lambda" not in info["classes"] and {"Conv2D", "DepthwiseConv2D", "Dense"} <= set(info["classes"])
    assert info["inputs"] == ["image"]
    assert_close(source.predict(x5, verbose=0), np.load(files["y_keras"]), tol=1e-5)
    assert_close(source.predict(x5, verbose=0), np.load(files["y5"]), tol=1e-5)
    assert_close(source.predict(x1, verbose=0), np.load(files["y1"]), tol=1e-5)


def test_savedmodel_refuses_a_non_empty_directory(tmp_path):
    _, onnx_path = _source_onnx(tmp_path)
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main([str(onnx_path), "--emit", "tensorflow", "-o", str(out), "-q"]) == 1
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_keras_cli_failure_writes_nothing(tmp_path):
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("CumSum", ["x", "a"], ["y"], exclusive=1)], "m",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])],
                          initializer=[helper.make_tensor("a", TensorProto.INT64, [], [1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    src = tmp_path / "bad.onnx"
    src.write_bytes(m.SerializeToString())
    assert main([str(src), "--emit", "keras", "-o", str(tmp_path / "bad.keras"), "-q"]) == 1
    assert not (tmp_path / "bad.keras").exists()
