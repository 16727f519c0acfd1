"""``kcc inspect``: every format kcc reads, as text and as JSON, without importing TensorFlow."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from kcc.cli import main
from kcc.examples import mnist_small

TUTORIAL_OPTIONS = ["--input-names", "image", "--image-input-names", "image", "--image-scale", "0.00392157",
                    "--class-labels", *[str(d) for d in range(10)], "--output-names", "output",
                    "--author", "Jane Doe", "--license", "MIT", "--short-description", "Digits"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inspect")
    model = mnist_small(seed=2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    paths = {"keras": d / "mnist.keras", "h5": d / "mnist.h5", "json": d / "arch.json",
             "weights": d / "w.weights.h5", "onnx": d / "mnist.onnx", "mlmodel": d / "mnist.mlmodel"}
    model.save(paths["keras"])
    model.save(paths["h5"])
    paths["json"].write_text(model.to_json())
    model.save_weights(paths["weights"])
    assert main([str(paths["keras"]), "--emit", "onnx", "-o", str(paths["onnx"])]) == 0
    assert main([str(paths["keras"]), "--emit", "coreml", "-o", str(paths["mlmodel"]), *TUTORIAL_OPTIONS]) == 0
    return paths


def _inspect(capsys, *args: str) -> str:
    capsys.readouterr()
    assert main(["inspect", *args]) == 0
    return capsys.readouterr().out


# mnist_small: Conv2D 5x5x1->32, 3x3x32->64, 1x1x64->128, Dense 2*2*128->128, 128->10; each counted once.
PARAMS = (5 * 5 * 1 * 32 + 32) + (3 * 3 * 32 * 64 + 64) + (64 * 128 + 128) + (512 * 128 + 128) + (128 * 10 + 10)


@pytest.mark.parametrize("kind", ["keras", "h5", "json"])
def test_keras_files(files, capsys, kind):
    args = [str(files["json"]), str(files["weights"])] if kind == "json" else [str(files[kind])]
    info = json.loads(_inspect(capsys, *args, "--json"))
    assert info["versions"]["keras"] == __import__("keras").__version__ or kind == "json"
    assert info["ops"] == {"Conv2D": 3, "Dropout": 3, "MaxPooling2D": 3, "Dense": 2, "Flatten": 1,
                           "InputLayer": 1}
    assert info["parameters"] == PARAMS and info["parameter_bytes"] == 4 * PARAMS
    assert info["inputs"] == [{"name": "image", "shape": ["N", 28, 28, 1], "dtype": "float32",
                               "layout": "NHWC", "note": ""}]
    assert [(o["shape"], o["dtype"]) for o in info["outputs"]] == [(["N", 10], "float32")]
    if kind != "json":
        assert info["metadata"]["optimizer"].lower() == "adam"
    text = _inspect(capsys, *args)
    assert "Conv2D 3" in text and f"parameters: {PARAMS:,}" in text and "NHWC" in text


def test_onnx(files, capsys):
    text = _inspect(capsys, str(files["onnx"]))
    assert "opset 17" in text and "Conv 3" in text and "MaxPool 3" in text
    info = json.loads(_inspect(capsys, str(files["onnx"]), "--json"))
    assert info["format"] == "ONNX" and info["versions"]["producer"].startswith("kcc")
    assert info["inputs"][0]["shape"] == ["N", 28, 28, 1] and info["outputs"][0]["shape"][-1] == 10
    assert info["parameter_dtypes"]["float32"] == PARAMS


def test_mlmodel(files, capsys):
    text = _inspect(capsys, str(files["mlmodel"]))
    assert "Core ML NeuralNetwork classifier" in text and "specification 1" in text
    assert "image GRAYSCALE" in text and "scale 0.00392157" in text
    assert "labels: 10: 0, 1, 2" in text and "Jane Doe" in text and "MIT" in text
    info = json.loads(_inspect(capsys, str(files["mlmodel"]), "--json"))
    assert info["labels"] == [str(d) for d in range(10)]
    assert info["ops"]["convolution"] == 3 and info["ops"]["innerProduct"] == 2
    assert info["parameters"] == PARAMS
    assert {o["name"] for o in info["outputs"]} == {"output", "classLabel"}


def test_lambda_model_is_described_without_tensorflow(tmp_path):
    """A Lambda needs Keras to rebuild: inspect still lists the layers, and TensorFlow stays unloaded."""
    import keras

    inp = keras.Input((6,), name="x")
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Lambda(lambda t: t * 2.0, name="f")(inp)))
    path = tmp_path / "lambda.keras"
    model.save(path)
    code = ("import sys, json; from kcc.cli import main; rc = main(['inspect', sys.argv[1], '--json']); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["ops"] == {"Dense": 1, "InputLayer": 1, "Lambda": 1}
    assert any("Lambda" in n for n in info["notes"]) and info["parameters"] == 6 * 3 + 3


def test_mlpackage_ml_program(tmp_path, capsys):
    """An ML Program package written by coremltools: operations, consts and the spec version."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))])
    def prog(x):
        w = np.arange(12, dtype=np.float32).reshape(3, 4)
        return mb.relu(x=mb.linear(x=x, weight=w, name="dense"), name="y")

    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS15,
                       compute_precision=ct.precision.FLOAT32)
    path = tmp_path / "tiny.mlpackage"
    model.save(str(path))
    info = json.loads(_inspect(capsys, str(path), "--json"))
    assert info["format"].startswith("Core ML ML Program")
    assert info["ops"].get("linear") == 1 and info["ops"].get("relu") == 1
    assert info["parameter_dtypes"].get("float32", 0) >= 12
    assert info["inputs"][0]["shape"] == [1, 4]


def test_bad_files_give_one_error(tmp_path, capsys):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(np.random.default_rng(0).bytes(300))
    weights_only = tmp_path / "w.h5"
    with h5py.File(weights_only, "w") as f:
        f.attrs["layer_names"] = [b"dense"]
    for path in (bad, weights_only, tmp_path / "missing.keras", tmp_path / "model.pt"):
        if path.name == "model.pt":
            path.write_bytes(b"\x00" * 10)
        assert main(["inspect", str(path)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("kcc: error:") and str(path.name) in err and len(err.strip().splitlines()) == 1
