"""ONNX LayerNormalization and RMSNormalization read into the IR's layer_norm and rms_norm.

Hand-built nodes run in onnxruntime (default options) as the reference, then
read by kcc and written back (one LayerNormalization / RMSNormalization node
again), both run in onnxruntime and kcc's interpreter. Shapes are unequal on
every axis (batch 2, 5 rows, 7 features); rows have unequal means and scales
and one row is constant (variance 0: only epsilon keeps it finite), so a wrong
axis, a dropped epsilon or a dropped bias shows. LayerNormalization's optional
Mean and InvStdDev outputs are computed when read. The last test is the way
back the Keras backend needed: a Keras model with LayerNormalization goes to
kcc's ONNX and back to Keras.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto, numpy_helper

import kcc
from kcc.errors import ConversionError
from kcc.interpreter import run as run_ir
from kcc.testing import assert_close, run_onnx

SHAPE = ["N", 5, 7]


def _x() -> np.ndarray:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 7)) * rng.uniform(0.5, 4.0, (2, 5, 1)) + rng.uniform(-3, 3, (2, 5, 1))
    x[1, 2] = 1.25   # a constant row: variance 0
    return x.astype(np.float32)


def _model(op: str, axis: int, params: dict[str, np.ndarray], outputs=("y",), opset: int = 17,
           **attrs) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(a, k) for k, a in params.items()]
    node = oh.make_node(op, ["x", *params], list(outputs), axis=axis, **attrs)
    outs = [oh.make_tensor_value_info(o, TensorProto.FLOAT, SHAPE if o == "y" else SHAPE[:2] + [1])
            for o in outputs]
    graph = oh.make_graph([node], "norm", [oh.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)], outs, inits)
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)], ir_version=10)


def _params(axis: int, bias: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(axis + 10)
    dims = (5, 7)[axis:] if axis < 0 else (5, 7)[axis - 1:]
    out = {"scale": rng.uniform(0.5, 2.0, dims).astype(np.float32)}
    if bias:
        out["bias"] = rng.uniform(-1.0, 1.0, dims).astype(np.float32)
    return out


CASES = {
    "last_axis": ("LayerNormalization", -1, _params(-1), {"epsilon": 1e-3}),
    "last_two_axes": ("LayerNormalization", 1, _params(1), {}),
    "no_bias": ("LayerNormalization", -1, _params(-1, bias=False), {}),
    "scalar_scale": ("LayerNormalization", -1, {"scale": np.float32([1.5]), "bias": np.float32([0.25])}, {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_norm_round_trips_as_one_node(case):
    op, axis, params, attrs = CASES[case]
    source, feeds = _model(op, axis, params, **attrs), {"x": _x()}
    want = run_onnx(source, feeds)[0]
    result = kcc.compile_model(source, target="onnx")
    assert [n.op_type for n in result.model.graph.node] == [op]
    assert_close(want, run_onnx(result.model, feeds)[0], 1e-5, what=f"{case}, onnxruntime")
    assert_close(want, run_ir(result.graph, feeds)["y"], 1e-5, what=f"{case}, interpreter")


def test_mean_and_inv_std_dev_outputs_are_computed():
    source = _model("LayerNormalization", -1, _params(-1), outputs=("y", "mean", "inv_std"), epsilon=1e-3)
    feeds = {"x": _x()}
    want = run_onnx(source, feeds)
    got = run_onnx(kcc.compile(source, target="onnx"), feeds)
    for name, a, b in zip(("y", "mean", "inv_std"), want, got):
        assert a.shape == b.shape == ((2, 5, 7) if name == "y" else (2, 5, 1))
        assert_close(a, b, 1e-5, what=name)


def test_rms_normalization_at_opset_23_and_below():
    source = _model("RMSNormalization", -1, {"scale": _params(-1)["scale"]}, opset=23, epsilon=1e-3)
    feeds = {"x": _x()}
    want = run_onnx(source, feeds)[0]
    for opset in (23, 17):
        result = kcc.compile_model(source, target="onnx", opset=opset)
        ops = [n.op_type for n in result.model.graph.node]
        assert ("RMSNormalization" in ops) == (opset == 23), ops
        assert_close(want, run_onnx(result.model, feeds)[0], 1e-5, what=f"opset {opset}")


def test_a_computed_scale_of_other_dims_and_a_bad_axis_are_clear_errors():
    scale = oh.make_node("Relu", ["s0"], ["scale"])
    node = oh.make_node("LayerNormalization", ["x", "scale"], ["y"], axis=-1, name="ln")
    graph = oh.make_graph([scale, node], "g", [oh.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE),
                                               oh.make_tensor_value_info("s0", TensorProto.FLOAT, [1])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=10)
    with pytest.raises(ConversionError, match=r"'ln'.*Scale has shape \[1\].*normalized dims \[7\]"):
        kcc.compile(model, target="onnx")
    with pytest.raises(ConversionError, match="axis=3 is out of range"):
        kcc.compile(_model("LayerNormalization", 3, {"scale": np.ones(7, np.float32)}), target="onnx")


def test_keras_layer_norm_comes_back_from_kcc_onnx(tmp_path):
    """Keras LayerNormalization -> kcc ONNX (one LayerNormalization) -> kcc Keras -> the Keras original."""
    keras = pytest.importorskip("keras")
    inp = keras.Input((5, 7), name="x")
    h = keras.layers.Dense(6, name="proj")(inp)
    h = keras.layers.LayerNormalization(epsilon=1e-3, name="ln")(h)
    model = keras.Model(inp, keras.layers.Dense(3, name="head")(h))
    ln = model.get_layer("ln")
    rng = np.random.default_rng(1)
    ln.set_weights([rng.uniform(0.5, 2.0, 6).astype(np.float32), rng.uniform(-1, 1, 6).astype(np.float32)])
    onx = kcc.compile(model, target="onnx")
    assert "LayerNormalization" in [n.op_type for n in onx.graph.node]
    path = tmp_path / "ln.onnx"
    onnx.save(onx, path)
    back = kcc.compile(str(path), target="keras")
    assert "LayerNormalization" in {type(layer).__name__ for layer in back.layers}
    x = _x()
    assert_close(np.asarray(model(x)), np.asarray(back(x)), 1e-5, what="Keras -> ONNX -> Keras")
