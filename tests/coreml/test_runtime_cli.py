"""``python -m kcc.coreml`` / ``kcc.coreml.cli.main``: inputs from .npy/.npz/image
files, printed or saved outputs, atomic writes and one-line errors."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import coreml_runtime_helpers  # noqa: F401  (quiet TF/coremltools logs)
from kcc.coreml.cli import main

from coremltools.models import datatypes  # noqa: E402
from coremltools.models.neural_network import NeuralNetworkBuilder  # noqa: E402


@pytest.fixture()
def two_input_model(tmp_path):
    b = NeuralNetworkBuilder([("a", datatypes.Array(2, 3)), ("b", datatypes.Array(2, 3))],
                             [("sum", None), ("prod", None)], disable_rank5_shape_mapping=True)
    b.add_add_broadcastable("add", ["a", "b"], "sum")
    b.add_multiply_broadcastable("mul", ["a", "b"], "prod")
    path = tmp_path / "two.mlmodel"
    path.write_bytes(b.spec.SerializeToString())
    return path


@pytest.fixture()
def classifier_model(tmp_path):
    b = NeuralNetworkBuilder([("image", datatypes.Array(3, 2, 2))], [("probs", None)], mode="classifier")
    b.add_pooling("gap", 1, 1, 1, 1, "AVERAGE", "VALID", "image", "pooled", is_global=True)
    b.add_flatten("flat", 0, "pooled", "flat")
    b.add_softmax("sm", "flat", "probs")
    b.set_class_labels(["red", "green", "blue"], predicted_feature_name="label", prediction_blob="probs")
    b.set_pre_processing_parameters(image_input_names=["image"], image_scale=1 / 64)
    path = tmp_path / "cls.mlmodel"
    path.write_bytes(b.spec.SerializeToString())
    return path


def test_npy_inputs_saved_to_npz(two_input_model, tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 2.0, np.float32)
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "b.npz", b=b)
    out = tmp_path / "out.npz"
    assert main([str(two_input_model), f"a={tmp_path / 'a.npy'}", f"b={tmp_path / 'b.npz'}", "-o", str(out)]) == 0
    with np.load(out) as res:
        np.testing.assert_allclose(res["sum"], a + b)
        np.testing.assert_allclose(res["prod"], a * b)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".kcc-")] == []


def test_lone_npz_feeds_all_inputs_and_prints(two_input_model, tmp_path, capsys):
    np.savez(tmp_path / "in.npz", a=np.ones((2, 3)), b=np.ones((2, 3)) * 3)
    assert main([str(two_input_model), str(tmp_path / "in.npz")]) == 0
    text = capsys.readouterr().out
    assert "sum: shape [2, 3] float64" in text  # the builder declares DOUBLE outputs and "max 4" in text and "prod:" in text


def test_image_file_classifier_prints_label_and_top5(classifier_model, tmp_path, capsys):
    from PIL import Image

    pixels = np.zeros((2, 2, 3), np.uint8)
    pixels[..., 2] = 200  # mostly blue
    Image.fromarray(pixels).save(tmp_path / "img.png")
    assert main([str(classifier_model), str(tmp_path / "img.png")]) == 0
    text = capsys.readouterr().out
    assert "label: blue" in text and "top-5 blue:" in text


def test_errors_are_one_line_exit_1_and_leave_no_file(two_input_model, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((3, 3), np.float32))
    np.save(tmp_path / "ok.npy", np.zeros((2, 3), np.float32))
    out = tmp_path / "out.npz"
    code = main([str(two_input_model), f"a={tmp_path / 'bad.npy'}", f"b={tmp_path / 'ok.npy'}", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    assert err.startswith("kcc: error: input 'a' has shape [3, 3]") and err.count("\n") == 1
    assert list(p.name for p in tmp_path.iterdir() if p.suffix == ".tmp") == []
    assert main([str(tmp_path / "missing.mlmodel")]) == 1
    assert "kcc: error: cannot read model file" in capsys.readouterr().err
    assert main([str(two_input_model), str(tmp_path / "ok.npy")]) == 1
    assert "has 2 inputs" in capsys.readouterr().err
    assert main(["--bogus"]) == 1
    assert capsys.readouterr().err.startswith("kcc: error:")


def test_python_dash_m_entry_point(two_input_model, tmp_path):
    np.savez(tmp_path / "in.npz", a=np.ones((2, 3)), b=np.ones((2, 3)))
    proc = subprocess.run([sys.executable, "-m", "kcc.coreml", str(two_input_model), str(tmp_path / "in.npz"),
                           "-o", str(tmp_path / "o.npz")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "o.npz") as res:
        np.testing.assert_allclose(res["sum"], 2 * np.ones((2, 3)))
    proc = subprocess.run([sys.executable, "-m", "kcc.coreml", str(tmp_path / "nope.mlmodel")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.strip().startswith("kcc: error:")
    assert len(proc.stderr.strip().splitlines()) == 1
