"""The tutorial's two MNIST CNNs: Keras vs the IR interpreter vs onnxruntime, from memory and from files."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

import kcc
from kcc.examples import TUTORIAL_MODELS
from kcc.interpreter import run
from kcc.testing import assert_not_degenerate, run_keras, run_onnx

TOL = 1e-5  # max abs, as the issue asks; outputs are softmax probabilities in [0, 1]


@pytest.fixture(scope="module", params=sorted(TUTORIAL_MODELS))
def tutorial(request, tmp_path_factory):
    model = TUTORIAL_MODELS[request.param](seed=3)
    x = np.random.default_rng(7).random((5, 28, 28, 1), dtype=np.float32)
    ref = run_keras(model, [x])[0]
    assert_not_degenerate(ref)
    return request.param, model, x, ref, tmp_path_factory.mktemp(request.param)


def _check_onnx(model: onnx.ModelProto, x: np.ndarray, ref: np.ndarray) -> None:
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    assert inferred.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 10
    assert model.opset_import[0].version >= 17
    got = run_onnx(model, [x])[0]
    assert np.max(np.abs(got - ref)) <= TOL


def test_memory_model_matches_keras_in_interpreter_and_onnxruntime(tutorial):
    name, model, x, ref, _ = tutorial
    result = kcc.compile_model(model, target="onnx")
    got_ir = run(result.graph, {result.graph.inputs[0].name: x})
    assert np.max(np.abs(next(iter(got_ir.values())) - ref)) <= TOL
    _check_onnx(result.model, x, ref)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_file_model_matches_keras(tutorial, suffix):
    name, model, x, ref, tmp = tutorial
    path = tmp / f"{name}{suffix}"
    model.save(path)
    _check_onnx(kcc.compile(str(path), target="onnx"), x, ref)


def test_no_transpose_inside_and_at_most_one_per_input(tutorial):
    _, model, _, _, _ = tutorial
    m = kcc.compile(model, target="onnx")
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("Transpose") <= 1
    if "Transpose" in ops:
        assert m.graph.node[0].op_type == "Transpose"


def test_dynamic_batch_and_keras_names(tutorial):
    _, model, x, ref, _ = tutorial
    m = kcc.compile(model, target="onnx")
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [28, 28, 1]
    assert m.graph.input[0].name == model.inputs[0].name.split(":")[0] or m.graph.input[0].name == "image"
    assert m.graph.output[0].name == model.layers[-1].name
    for batch in (1, 3):
        got = run_onnx(m, [x[:batch]])[0]
        assert np.max(np.abs(got - ref[:batch])) <= TOL


def test_user_names_and_nchw_inputs(tutorial):
    _, model, x, ref, _ = tutorial
    m = kcc.compile(model, target="onnx", input_names=["pixels"], output_names=["probs"], input_layout="nchw")
    assert [i.name for i in m.graph.input] == ["pixels"] and [o.name for o in m.graph.output] == ["probs"]
    assert [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim[1:]] == [1, 28, 28]
    assert "Transpose" not in [n.op_type for n in m.graph.node]
    got = run_onnx(m, {"pixels": np.transpose(x, (0, 3, 1, 2))})[0]
    assert np.max(np.abs(got - ref)) <= TOL


def test_weights_are_raw_bytes(tutorial):
    _, model, _, _, _ = tutorial
    m = kcc.compile(model, target="onnx")
    big = [t for t in m.graph.initializer if np.prod(t.dims) > 16]
    assert big and all(t.raw_data and not t.float_data for t in big)


def test_dropout_folded_and_flatten_keeps_keras_order(tutorial):
    _, model, _, _, _ = tutorial
    result = kcc.compile_model(model, target="onnx")
    ops = result.graph.op_types()
    assert "identity" not in ops and "transpose" not in ops
    assert ops.index("flatten") < ops.index("dense")
