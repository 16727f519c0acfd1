"""NeuralNetwork models as files, pipelines and classifiers: API, CLI, re-emission, and no heavy imports."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

import kcc
from kcc.cli import main as kcc_main
from kcc.coreml import proto
from kcc.testing import assert_close, assert_not_degenerate
from nn_helpers import run_onnx
from nn_specs import builder_module, rank5_cnn

import coremltools  # noqa: E402,F401  (a test dependency; the frontend itself never imports it)

LABELS = [10, 20, 30, 40]


def _pipeline_classifier():
    """Stage 1: x (6,) -> dense -> tanh -> h (5,); stage 2 (a classifier): h -> dense -> softmax, int64 labels."""
    datatypes, NeuralNetworkBuilder = builder_module()
    rng = np.random.default_rng(7)
    b1 = NeuralNetworkBuilder([("x", datatypes.Array(6))], [("h", datatypes.Array(5))])
    b1.add_inner_product("fc1", W=rng.standard_normal((5, 6)).astype(np.float32), b=None, input_channels=6,
                         output_channels=5, has_bias=False, input_name="x", output_name="h0")
    b1.add_activation("tanh", "TANH", "h0", "h")
    b2 = NeuralNetworkBuilder([("h", datatypes.Array(5))], [("probs", None)], mode="classifier")
    b2.add_inner_product("fc2", W=rng.standard_normal((4, 5)).astype(np.float32) * 2, b=None, input_channels=5,
                         output_channels=4, has_bias=False, input_name="h", output_name="logits")
    b2.add_softmax("softmax", "logits", "probs")
    b2.set_class_labels(LABELS, predicted_feature_name="label", prediction_blob="probs")
    stage2 = b2.spec
    spec = proto.module("Model_pb2").Model()
    spec.specificationVersion = 4
    spec.description.input.add().CopyFrom(b1.spec.description.input[0])
    for o in stage2.description.output:
        spec.description.output.add().CopyFrom(o)
    spec.description.predictedFeatureName = stage2.description.predictedFeatureName
    spec.description.predictedProbabilitiesName = stage2.description.predictedProbabilitiesName
    spec.description.metadata.author = "pipeline author"
    spec.pipelineClassifier.pipeline.models.extend([b1.spec, stage2])
    return spec, b1.spec, stage2


def test_pipeline_classifier_int_labels():
    spec, s1, s2 = _pipeline_classifier()
    x = np.random.default_rng(8).standard_normal((5, 6)).astype(np.float32)
    model = kcc.compile(spec, target="onnx")
    got = run_onnx(model, {"x": x})
    probs_name = spec.description.predictedProbabilitiesName
    assert [o.name for o in model.graph.output] == [probs_name, "label"]
    ref = []
    for i in range(len(x)):  # the stages one after the other in kcc's Core ML runtime
        h = np.asarray(kcc.coreml.predict(s1, {"x": x[i]})["h"], np.float32).reshape(-1)
        out = kcc.coreml.predict(s2, {"h": h})
        ref.append([out[probs_name][lab] for lab in LABELS])
        assert out["label"] == int(got["label"][i])
    ref = np.asarray(ref, np.float32)
    assert_not_degenerate(ref)
    assert_close(ref, got[probs_name], 1e-4, "pipeline probabilities")
    assert got["label"].dtype == np.int64 and list(got["label"]) == [LABELS[i] for i in ref.argmax(1)]
    assert {p.key: p.value for p in model.metadata_props}["author"] == "pipeline author"


def test_cli_mlmodel_to_onnx_with_dumps(tmp_path, capsys):
    spec = rank5_cnn()
    src = tmp_path / "m.mlmodel"
    src.write_bytes(spec.SerializeToString())
    out, dump = tmp_path / "m.onnx", tmp_path / "ir"
    assert kcc_main([str(src), "--emit", "onnx", "-o", str(out), "--dump-ir", str(dump)]) == 0
    x = np.random.default_rng(9).standard_normal((1, 3, 5, 7)).astype(np.float32)
    got = run_onnx(onnx.load(str(out)), {"x": x})["y"]
    assert_close(kcc.coreml.predict(spec, {"x": x[0]})["y"].reshape(1, -1), got, 1e-4, "CLI output")
    assert any(dump.iterdir())


def test_emit_coreml_from_coreml_source():
    """--emit coreml from a NeuralNetwork source re-emits a NeuralNetwork spec with the same numbers."""
    spec = rank5_cnn()
    ml = kcc.compile(spec, target="coreml")
    again = ml.get_spec()
    assert again.WhichOneof("Type") == "neuralNetwork"
    x = np.random.default_rng(10).standard_normal((3, 5, 7)).astype(np.float32)
    ref = kcc.coreml.predict(spec, {"x": x})["y"].reshape(-1)
    name = again.description.output[0].name
    assert_close(ref, np.asarray(kcc.coreml.predict(again, {"x": x})[name]).reshape(-1), 1e-4, "re-emitted")


def test_reading_mlmodel_imports_no_tensorflow_or_coremltools(tmp_path):
    src = tmp_path / "m.mlmodel"
    src.write_bytes(rank5_cnn().SerializeToString())
    code = f"""
import json, sys
import kcc
kcc.compile({str(src)!r}, target="onnx")
bad = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "coremltools", "keras", "tf_keras")]
print(json.dumps(bad))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
