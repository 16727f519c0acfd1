"""python -m kcc.demo: trains briefly, writes MNISTClassifier.mlmodel/.onnx, prints the comparison table."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


import sklearn  # noqa: F401  (the demo needs it)


def test_demo_end_to_end(tmp_path, capsys):
    from kcc.coreml import load_spec
    from kcc.demo import main

    assert main(["--out", str(tmp_path), "--epochs", "1"]) == 0
    text = capsys.readouterr().out
    for name in ("MNISTClassifier.mlmodel", "MNISTClassifier.onnx", "results.txt"):
        assert (tmp_path / name).is_file(), name
    spec = load_spec(str(tmp_path / "MNISTClassifier.mlmodel"))
    assert spec.description.input[0].name == "image"
    assert spec.description.metadata.author == "kcc demo"
    rows = {line.split("  ")[0].strip(): line.split() for line in text.splitlines()
            if line.startswith(("Keras", "Core ML", "ONNX"))}
    assert set(rows) == {"Keras", "Core ML (kcc runtime)", "ONNX (onnxruntime)"}
    # Core ML and ONNX agree with Keras on (nearly) every held-back digit
    for name in ("Core ML (kcc runtime)", "ONNX (onnxruntime)"):
        agree = float(rows[name][-2].rstrip("%"))
        assert agree >= 99.0, text
