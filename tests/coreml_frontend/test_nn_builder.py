"""coremltools NeuralNetworkBuilder specs (rank-5, sequence and ND layers) through kcc to ONNX.

The reference is Core ML's semantics as kcc's NeuralNetwork runtime computes
them; onnxruntime runs the kcc ONNX model with default session options.
"""
from __future__ import annotations

import numpy as np
import pytest

import kcc
from kcc.testing import assert_close, assert_not_degenerate
from nn_helpers import run_onnx
from nn_specs import builder_module, extra_layers_model, nd_math_model, nd_model, rank5_cnn, rnn_model

import coremltools  # noqa: E402,F401  (a test dependency; the frontend itself never imports it)


def test_rank5_cnn_layers_unequal_dims():
    spec = rank5_cnn()
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32)
    x[0, 0, 0, :3] = 0.0
    onnx_model = kcc.compile(spec, target="onnx")
    got = run_onnx(onnx_model, {"x": x})["y"]
    ref = np.stack([kcc.coreml.predict(spec, {"x": x[i]})["y"].reshape(-1) for i in range(2)])
    assert_not_degenerate(ref)
    assert_close(ref, got, 1e-4, "rank-5 CNN")
    ops = kcc.compile_model(spec, target="onnx").graph.op_types()
    assert {"conv", "conv_transpose", "prelu", "max_pool", "avg_pool", "dense"} <= set(ops)


def test_recurrent_layers_sequence_axis():
    spec = rnn_model()
    x = np.random.default_rng(1).standard_normal((6, 2, 4)).astype(np.float32)  # (T, N, C)
    onnx_model = kcc.compile(spec, target="onnx")
    assert [d.dim_param or d.dim_value for d in onnx_model.graph.input[0].type.tensor_type.shape.dim] == ["T", "N", 4]
    got = run_onnx(onnx_model, {"x": x})["y"]
    ref = np.stack([kcc.coreml.predict(spec, {"x": x[:, i]})["y"].reshape(-1) for i in range(2)])
    assert_not_degenerate(ref)
    assert_close(ref, got.reshape(ref.shape), 1e-4, "rnn -> reversed gru -> lstm")


def test_nd_layers():
    spec = nd_model()
    rng = np.random.default_rng(2)
    feeds = {"x": rng.standard_normal((2, 3, 5)).astype(np.float32),
             "z": rng.standard_normal((2, 5, 3)).astype(np.float32)}
    feeds["z"][0, 0] = -feeds["x"][0, :, 0]  # exact ties for greaterThan
    got = run_onnx(kcc.compile(spec, target="onnx"), feeds)["y"]
    ref = kcc.coreml.predict(spec, feeds)["y"]
    assert_not_degenerate(ref)
    assert_close(ref, got, 1e-4, "ND layers")


def test_spec_versions_and_mlmodel_file(tmp_path):
    """The same network declared as every specification version 1-8 reads the same; a saved .mlmodel too."""
    spec = rank5_cnn()
    x = np.random.default_rng(3).standard_normal((1, 3, 5, 7)).astype(np.float32)
    ref = run_onnx(kcc.compile(spec, target="onnx"), {"x": x})["y"]
    for version in range(1, 9):
        spec.specificationVersion = version
        assert_close(ref, run_onnx(kcc.compile(spec, target="onnx"), {"x": x})["y"], 0, f"version {version}")
    path = tmp_path / "m.mlmodel"
    path.write_bytes(spec.SerializeToString())
    assert_close(ref, run_onnx(kcc.compile(str(path), target="onnx"), {"x": x})["y"], 0, ".mlmodel file")


def test_more_rank5_layers_and_bidirectional_lstm():
    spec = extra_layers_model()
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    v = rng.standard_normal((2, 3)).astype(np.float32)
    got = run_onnx(kcc.compile(spec, target="onnx"), {"x": x, "v": v[None]})  # v: a one-step sequence (T, N, C)
    for name in ("y", "z"):
        ref = np.stack([kcc.coreml.predict(spec, {"x": x[i], "v": v[i]})[name].reshape(-1) for i in range(2)])
        assert_not_degenerate(ref)
        assert_close(ref, got[name].reshape(ref.shape), 1e-4, name)


def test_nd_math_layers_with_ties():
    spec = nd_math_model()
    rng = np.random.default_rng(5)
    a = rng.uniform(-4, 4, (2, 3, 4)).astype(np.float32)
    a[0, 0] = [-2.5, -0.5, 0.5, 1.5]  # round's halves
    d = (rng.uniform(0.5, 2, (2, 3, 4)) * np.where(rng.random((2, 3, 4)) < 0.5, -1, 1)).astype(np.float32)
    d[0, 1, :2] = [1.0, -1.0]
    a[0, 1, :2] = [3.0, -3.0]  # exact multiples for mod / floorDiv
    got = run_onnx(kcc.compile(spec, target="onnx"), {"a": a, "d": d})["y"]
    ref = kcc.coreml.predict(spec, {"a": a, "d": d})["y"]
    assert_not_degenerate(ref)
    assert_close(ref, got, 1e-4, "ND math")


def test_flexible_input_shape():
    """A shapeRange without an upper bound on H and W: the IR and ONNX dims are symbols; any size runs."""
    datatypes, NeuralNetworkBuilder = builder_module()
    rng = np.random.default_rng(6)
    b = NeuralNetworkBuilder([("x", datatypes.Array(3, 4, 5))], [("y", None)])
    b.add_activation("elu", "ELU", "x", "e1", params=0.7)
    b.add_pooling("gap", height=1, width=1, stride_height=1, stride_width=1, layer_type="AVERAGE",
                  padding_type="VALID", input_name="e1", output_name="g1", is_global=True)
    b.add_inner_product("fc", W=rng.standard_normal((2, 3)).astype(np.float32), b=None, input_channels=3,
                        output_channels=2, has_bias=False, input_name="g1", output_name="y")
    spec = b.spec
    at = spec.description.input[0].type.multiArrayType
    for lo, hi in ((3, 3), (1, -1), (1, -1)):
        rng_ = at.shapeRange.sizeRanges.add()
        rng_.lowerBound, rng_.upperBound = lo, hi
    model = kcc.compile(spec, target="onnx")
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, "x_d1", "x_d2"]
    for h, w in ((4, 5), (7, 2)):
        x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
        got = run_onnx(model, {"x": x})["y"]
        ref = np.stack([kcc.coreml.predict(spec, {"x": x[i]})["y"].reshape(-1) for i in range(2)])
        assert_close(ref, got.reshape(ref.shape), 1e-4, f"{h}x{w}")


@pytest.mark.parametrize("mode", ["SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "PIXEL_SHUFFLE"])
def test_reorganize_data(mode):
    datatypes, NeuralNetworkBuilder = builder_module()
    shape = (3, 4, 6) if mode == "SPACE_TO_DEPTH" else (12, 2, 3)
    b = NeuralNetworkBuilder([("x", datatypes.Array(*shape))], [("y", None)])
    b.add_reorganize_data("r", "x", "y", mode=mode, block_size=2)
    x = np.random.default_rng(7).standard_normal((2,) + shape).astype(np.float32)
    got = run_onnx(kcc.compile(b.spec, target="onnx"), {"x": x})["y"]
    ref = np.stack([kcc.coreml.predict(b.spec, {"x": x[i]})["y"] for i in range(2)])
    assert_close(ref, got.reshape(ref.shape), 0, mode)
