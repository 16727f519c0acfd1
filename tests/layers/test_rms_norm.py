"""RMSNormalization: the ``rms_norm`` op, its ONNX forms (formula < 23, one node at 23) and Core ML's formula.

Inputs hold an all-zero row (0 / sqrt(eps) = 0), rows of magnitude 1e15
(squares near float32's range) and rows of magnitude 0.01 where a wrong or
dropped epsilon changes the output by far more than the tolerance.
"""
from __future__ import annotations

import numpy as np
import pytest

import keras
import kcc
from kcc.interpreter import run as run_ir
from kcc.ir import Graph, TensorType
from kcc.passes.base import PASSES
from kcc.testing import assert_close, run_keras, run_onnx
from attention_layers_helpers import check_coreml, check_onnx, check_targets, layer_types, op_counts, saved, seeded_weights

B, T, F = 2, 5, 6


def _boundary_inputs(shape: tuple, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((B,) + shape).astype(np.float32)
    flat = x.reshape(B, -1, shape[-1])
    flat[0, 0] = 0.0                 # an all-zero row
    flat[1, 0] *= np.float32(1e15)   # large values: squares near 1e30
    flat[0, -1] *= np.float32(0.01)  # small values: epsilon matters
    return flat.reshape(x.shape)


def _model(shape: tuple, **kwargs) -> keras.Model:
    x = keras.Input(shape, name="x")
    return seeded_weights(keras.Model(x, keras.layers.RMSNormalization(name="rms", **kwargs)(x)))


@pytest.mark.parametrize("shape, kwargs", [
    ((F,), {}),
    ((F,), {"epsilon": 1e-3}),
    ((T, F), {}),
    ((T, F), {"epsilon": 1e-3}),
    ((T, 3, 4), {"axis": (-2, -1)}),
    ((F, F), {"axis": 1}),           # Keras multiplies its scale along the last axis (numpy broadcasting)
], ids=["rank2", "rank2_eps", "rank3", "rank3_eps", "two_axes", "axis1_square"])
@pytest.mark.parametrize("opset", [17, 23])
def test_rms_norm_matches_keras(shape, kwargs, opset, tmp_path):
    model = _model(shape, **kwargs)
    check_targets(model, [_boundary_inputs(shape)], tmp_path, coreml=opset == 17, opset=opset)


def test_opset23_rank2_is_one_node_and_opset17_the_formula(tmp_path):
    model = _model((F,), epsilon=1e-3)
    xs = [_boundary_inputs((F,))]
    refs = run_keras(model, xs)
    assert op_counts(check_onnx(model, xs, refs, opset=23).model) == {"RMSNormalization": 1}
    formula = op_counts(check_onnx(model, xs, refs, opset=17).model)
    assert formula == {"Mul": 2, "ReduceMean": 1, "Add": 1, "Sqrt": 1, "Div": 1}, formula


def test_opset23_sequence_is_one_node_with_no_transpose(tmp_path):
    """(N, T, F) on the last axis: the layout pass holds it in Keras order, so one RMSNormalization."""
    model = _model((None, F))
    xs = [_boundary_inputs((T, F))]
    assert op_counts(check_onnx(model, xs, run_keras(model, xs), opset=23).model) == {"RMSNormalization": 1}


def test_coreml_is_the_formula_in_rank5_layers(tmp_path):
    model = _model((F,))
    xs = [_boundary_inputs((F,))]
    mlmodel = check_coreml(model, xs, run_keras(model, xs))
    types = layer_types(mlmodel)
    assert "reduce" in types and types.count("unary") == 2, types


def test_dynamic_length_at_two_lengths(tmp_path):
    model = _model((None, F))
    path = saved(model, tmp_path)
    compiled = None
    for length in (5, 8):
        xs = [_boundary_inputs((length, F), seed=length)]
        refs = run_keras(model, xs)
        compiled = compiled or check_onnx(model, xs, refs, opset=23)
        assert_close(refs[0], run_onnx(compiled.model, xs)[0], what=f"length {length}")
        check_onnx(path, xs, refs, opset=17)


def _graph(rank: int, axes: tuple[int, ...], eps: float = 1e-6) -> Graph:
    g = Graph("rms")
    shape = (2, 3, 5)[:rank - 1] + (6,)
    x = g.add_input("x", TensorType(("N",) + shape[1:], "f32"))
    scale = g.add_const(np.linspace(0.5, 2.0, int(np.prod([shape[a] for a in axes]))).astype(np.float32)
                        .reshape([shape[a] for a in axes]), "scale")
    y = g.add_node("rms_norm", [x, scale], {"axes": axes, "epsilon": eps}, name="rms").output
    g.set_outputs([y], ["y"])
    return g


def test_reference_all_zero_row_is_zero_and_formula_holds():
    g = _graph(2, (1,), eps=1e-4)
    x = np.array([[0, 0, 0, 0, 0, 0], [1, -2, 3, -4, 5, -6]], np.float32)
    y = run_ir(g, {"x": x})["y"]
    want = x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + 1e-4) * np.linspace(0.5, 2.0, 6)
    np.testing.assert_array_equal(y[0], 0.0)
    np.testing.assert_allclose(y, want, rtol=1e-6)


@pytest.mark.parametrize("opset, axes, lowered", [
    (17, (2,), True), (23, (2,), False), (23, (1,), True), (23, (1, 2), False)])
def test_lower_onnx_rms_norm_fires_only_without_a_native_form(opset, axes, lowered):
    g = _graph(3, axes)
    x = np.random.default_rng(0).standard_normal((2, 3, 6)).astype(np.float32)
    before = run_ir(g, {"x": x})["y"]
    changed = PASSES.get("lower_onnx_rms_norm")(opset=opset).run(g)
    g.validate()
    assert changed is lowered
    ops = [n.op for n in g.nodes()]
    assert ("rms_norm" in ops) is not lowered, ops
    if lowered:
        assert ops == ["mul", "reduce_mean", "add", "sqrt", "div", "mul"], ops
    np.testing.assert_allclose(run_ir(g, {"x": x})["y"], before, rtol=1e-5, atol=1e-6)


def test_lower_coreml_rms_norm_always_writes_the_formula():
    g = _graph(2, (1,))
    x = np.random.default_rng(1).standard_normal((2, 6)).astype(np.float32)
    before = run_ir(g, {"x": x})["y"]
    assert PASSES.get("lower_coreml_rms_norm")().run(g)
    g.validate()
    assert "rms_norm" not in [n.op for n in g.nodes()]
    np.testing.assert_allclose(run_ir(g, {"x": x})["y"], before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape, kwargs", [((F,), {}), ((T, F), {"epsilon": 1e-3}), ((T, 3, 4), {"axis": (-2, -1)})],
                         ids=["rank2", "rank3", "two_axes"])
def test_keras_target_writes_rms_normalization_back(shape, kwargs):
    model = _model(shape, **kwargs)
    xs = [_boundary_inputs(shape)]
    back = kcc.compile(model, target="keras")
    assert "RMSNormalization" in [type(layer).__name__ for layer in back.layers]
    assert_close(run_keras(model, xs)[0], run_keras(back, xs)[0], what="Keras -> kcc -> Keras")
