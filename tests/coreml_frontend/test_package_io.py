"""Ways in and out: .mlpackage, .mlmodel + weights/, in-memory spec and MLModel, multifunction
models, flexible shapes, classifiers with image inputs, the CLI (``kcc ... --emit onnx`` with the
dump flags, ``kcc run``), and reading without importing TensorFlow or coremltools."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kcc
from kcc.cli import main as kcc_main
from kcc.coreml import predict
from kcc.frontends.coreml import load_mlprogram
from kcc.frontends.coreml.package import MODEL_FILE
from kcc.testing import assert_close
from mlp_helpers import coremltools, keras_to_mlpackage, program_to_mlpackage, run_onnx_default, seeded

W1, B1 = seeded((4, 5), 1), seeded((4,), 2)
W2 = seeded((3, 5), 3)


def _mb():
    coremltools()
    from coremltools.converters.mil import Builder as mb
    return mb


@pytest.fixture(scope="module")
def flexible(tmp_path_factory) -> Path:
    """y = tanh(x @ W1.T + B1) with x of shape (batch, 5), batch flexible (a MIL symbol)."""
    mb = _mb()
    from coremltools.converters.mil.mil import get_new_symbol

    @mb.program(input_specs=[mb.TensorSpec((get_new_symbol(), 5))])
    def prog(x):
        return mb.tanh(x=mb.linear(x=x, weight=W1, bias=B1), name="y")

    return program_to_mlpackage(prog, tmp_path_factory.mktemp("flex") / "flex.mlpackage")


def _ref(x):
    return np.tanh(x @ W1.T + B1)


def test_flexible_batch_is_symbolic(flexible):
    g = load_mlprogram(flexible)
    assert g.inputs[0].shape == ("N", 5)
    model = kcc.compile(str(flexible), target="onnx")
    for batch in (1, 3):
        x = seeded((batch, 5), 4 + batch)
        assert_close(_ref(x), run_onnx_default(model, {"x": x})["y"], 1e-5)
        assert_close(_ref(x), predict(str(flexible), {"x": x})["y"], 1e-5)
    fixed = kcc.compile(str(flexible), target="onnx", input_name_shape_dict={"x": (3, 5)})
    assert [d.dim_value for d in fixed.graph.input[0].type.tensor_type.shape.dim] == [3, 5]


def test_mlmodel_file_with_weights_dir(tmp_path, flexible):
    d = tmp_path / "plain"
    d.mkdir()
    shutil.copy(flexible / MODEL_FILE, d / "m.mlmodel")
    shutil.copytree(flexible / MODEL_FILE.parent / "weights", d / "weights")
    x = seeded((2, 5), 9)
    assert_close(_ref(x), run_onnx_default(kcc.compile(str(d / "m.mlmodel"), target="onnx"), {"x": x})["y"], 1e-5)
    assert_close(_ref(x), predict(str(d / "m.mlmodel"), {"x": x})["y"], 1e-5)
    np.save(tmp_path / "x.npy", x)
    assert kcc_main(["run", str(d / "m.mlmodel"), str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npz")]) == 0
    with np.load(tmp_path / "y.npz") as saved:
        assert_close(_ref(x), saved["y"], 1e-5)


def test_spec_and_mlmodel_objects(flexible):
    ct = coremltools()
    x = seeded((2, 5), 10)
    mlmodel = ct.models.MLModel(str(flexible), skip_model_load=True)
    assert_close(_ref(x), run_onnx_default(kcc.compile(mlmodel, target="onnx"), {"x": x})["y"], 1e-5)
    assert_close(_ref(x), predict(mlmodel, {"x": x})["y"], 1e-5)
    spec = mlmodel.get_spec()
    weights = flexible / MODEL_FILE.parent / "weights"
    model = kcc.compile(spec, target="onnx", weights_dir=str(weights))
    assert_close(_ref(x), run_onnx_default(model, {"x": x})["y"], 1e-5)


def test_multifunction_model(tmp_path):
    ct, mb = coremltools(), _mb()

    def package(weight, name):
        @mb.program(input_specs=[mb.TensorSpec((2, 5))], opset_version=ct.target.iOS18)
        def prog(x):
            return mb.linear(x=x, weight=weight, name="y")
        return program_to_mlpackage(prog, tmp_path / name, "iOS18")

    desc = ct.utils.MultiFunctionDescriptor()
    desc.add_function(str(package(W1, "a.mlpackage")), src_function_name="main", target_function_name="first")
    desc.add_function(str(package(W2, "b.mlpackage")), src_function_name="main", target_function_name="second")
    desc.default_function_name = "first"
    both = tmp_path / "both.mlpackage"
    ct.utils.save_multifunction(desc, str(both))
    x = seeded((2, 5), 11)
    got = run_onnx_default(kcc.compile(str(both), target="onnx"), {"x": x})["y"]
    assert_close(x @ W1.T, got, 1e-5)
    got = run_onnx_default(kcc.compile(str(both), target="onnx", function_name="second"), {"x": x})["y"]
    assert_close(x @ W2.T, got, 1e-5)
    import onnx
    out = tmp_path / "second.onnx"
    assert kcc_main([str(both), "--emit", "onnx", "--function-name", "second", "-o", str(out)]) == 0
    assert_close(x @ W2.T, run_onnx_default(onnx.load(str(out)), {"x": x})["y"], 1e-5)


@pytest.fixture(scope="module")
def image_classifier(tmp_path_factory):
    """A Keras CNN converted with an RGB image input (scale and per-channel bias) and a classifier config."""
    import keras

    ct = coremltools()
    keras.utils.set_random_seed(3)
    inp = keras.Input((10, 12, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inp, out)
    bias = [-0.5, -0.25, 0.1]
    pkg = keras_to_mlpackage(model, tmp_path_factory.mktemp("cls") / "cls.mlpackage",
                             inputs=[ct.ImageType(shape=(1, 10, 12, 3), scale=1 / 255.0, bias=bias)],
                             classifier_config=ct.ClassifierConfig(["cat", "dog", "eel"]))
    return model, pkg, np.asarray(bias, np.float32), load_mlprogram(pkg).inputs[0].name


def test_classifier_with_image_input(tmp_path, image_classifier):
    from PIL import Image

    model, pkg, bias, image = image_classifier
    pixels = np.random.default_rng(5).integers(0, 256, (10, 12, 3)).astype(np.uint8)
    ref = np.asarray(model(pixels[None].astype(np.float32) / 255.0 + bias))[0]
    labels = ["cat", "dog", "eel"]
    out = predict(str(pkg), {image: Image.fromarray(pixels)})
    assert out["classLabel"] == labels[int(np.argmax(ref))]
    assert_close(ref, np.array([out["classLabel_probs"][k] for k in labels]), 1e-2)
    # The ONNX model takes the image as a float NCHW tensor of pixel values and returns the probabilities.
    onnx_out = run_onnx_default(kcc.compile(str(pkg), target="onnx"),
                                {image: pixels.transpose(2, 0, 1)[None].astype(np.float32)})
    assert_close(ref, onnx_out["classLabel_probs"].reshape(-1), 1e-2)
    # kcc run: an image file in, the label and probabilities out.
    png = tmp_path / "in.png"
    Image.fromarray(pixels).save(png)
    npz = tmp_path / "out.npz"
    assert kcc_main(["run", str(pkg), f"{image}={png}", "-o", str(npz)]) == 0
    with np.load(npz) as saved:
        assert str(saved["classLabel"]) == out["classLabel"]
        assert_close(ref, saved["classLabel_probs"], 1e-2)


def test_cli_emit_with_dump_flags_and_run(tmp_path, flexible, capsys):
    out = tmp_path / "m.onnx"
    dumps = tmp_path / "dumps"
    assert kcc_main([str(flexible), "--emit", "onnx", "-o", str(out), "--dump-ir", str(dumps), "--verify-each",
                     "--time-passes"]) == 0
    text = capsys.readouterr().out
    assert "verify-each: all" in text and "wrote" in text
    assert (dumps / "00-frontend.txt").is_file() or any(p.suffix == ".txt" for p in dumps.iterdir())
    x = seeded((3, 5), 12)
    import onnx
    assert_close(_ref(x), run_onnx_default(onnx.load(str(out)), {"x": x})["y"], 1e-5)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "feeds.npz", x=x)
    for arg in (str(tmp_path / "x.npy"), f"x={tmp_path / 'x.npy'}", str(tmp_path / "feeds.npz")):
        res = tmp_path / "res.npz"
        assert kcc_main(["run", str(flexible), arg, "-o", str(res)]) == 0
        with np.load(res) as saved:
            assert_close(_ref(x), saved["y"], 1e-5)
    assert kcc_main(["run", str(flexible), str(tmp_path / "x.npy")]) == 0
    assert "y: shape [3, 4] float32" in capsys.readouterr().out


def test_reading_imports_neither_tensorflow_nor_coremltools(flexible, image_classifier):
    _, cls_pkg, _, image = image_classifier
    code = f"""
import sys, json
import numpy as np
import kcc
from kcc.coreml import predict
m = kcc.compile({str(flexible)!r}, target="onnx")
y = predict({str(flexible)!r}, {{"x": np.ones((2, 5), np.float32)}})
c = predict({str(cls_pkg)!r}, {{{image!r}: np.zeros((10, 12, 3), np.uint8)}})
bad = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "coremltools", "keras", "tf_keras")]
print(json.dumps({{"bad": bad, "label": c["classLabel"]}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bad"] == [], result["bad"][:10]
    assert result["label"] in ("cat", "dog", "eel")
