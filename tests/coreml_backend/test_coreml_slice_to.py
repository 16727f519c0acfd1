"""ONNX Slice with bounds from Shape, to Core ML: ``slice_to`` as ``sliceDynamic``, run at two lengths.

Hand-built ONNX models with a dynamic batch and length (a 12-row position table
cut to ``T``; a window from ``T - 3`` to INT64_MAX on axis 1, whose bounds are
padded and put in axis order; a step-2 column cut with int32 bounds) convert to
Core ML and run in kcc's runtime at two lengths and two batches, against
onnxruntime (default options) running the original. The NeuralNetwork frontend
reads the ``sliceDynamic`` layer back as ``slice_to``, and the imported graph
computes the same numbers (at both lengths where the length is a range; the
table cut's lengths 1..12 are enumerated, imported at the default shape).
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

import kcc
from kcc.coreml import predict
from kcc.interpreter import run as run_ir
from kcc.testing import assert_close, assert_not_degenerate, run_onnx

F, MAX_LEN = 8, 12


def _const(name: str, value) -> onnx.NodeProto:
    return h.make_node("Constant", [], [name], value=nh.from_array(np.asarray(value), name))


def _model(nodes, out_dims, inits=()) -> onnx.ModelProto:
    x = h.make_tensor_value_info("x", TP.FLOAT, ["batch", "seq", F])
    out = h.make_tensor_value_info("out", TP.FLOAT, out_dims)
    m = h.make_model(h.make_graph(nodes, "g", [x], [out], list(inits)), opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


_LENGTH = [h.make_node("Shape", ["x"], ["s"]), _const("i1", np.array([1], np.int64)),
           h.make_node("Gather", ["s", "i1"], ["t1"], axis=0)]


def _table(shape) -> onnx.TensorProto:
    return nh.from_array(np.random.default_rng(3).standard_normal(shape).astype(np.float32), "table")


def positions() -> onnx.ModelProto:
    nodes = _LENGTH + [_const("z", np.array([0], np.int64)), _const("a0", np.array([0], np.int64)),
                       h.make_node("Slice", ["table", "z", "t1", "a0"], ["pos"]),
                       h.make_node("Add", ["x", "pos"], ["out"])]
    return _model(nodes, ["B", "T", F], [_table((MAX_LEN, F))])


def window() -> onnx.ModelProto:
    nodes = _LENGTH + [_const("three", np.array([3], np.int64)), h.make_node("Sub", ["t1", "three"], ["st"]),
                       _const("end", np.array([np.iinfo(np.int64).max], np.int64)),
                       _const("a1", np.array([1], np.int64)),
                       h.make_node("Slice", ["x", "st", "end", "a1"], ["w"]),
                       _const("two", np.float32(2.0)), h.make_node("Mul", ["w", "two"], ["out"])]
    return _model(nodes, ["B", 3, F])


def strided_columns() -> onnx.ModelProto:
    nodes = _LENGTH + [h.make_node("Cast", ["t1"], ["t1c"], to=TP.INT32),
                       _const("z", np.array([0], np.int32)), _const("a1", np.array([1], np.int32)),
                       _const("st2", np.array([2], np.int32)),
                       h.make_node("Slice", ["table", "z", "t1c", "a1", "st2"], ["cols"]),
                       _const("r1", np.array([1], np.int64)),
                       h.make_node("ReduceSum", ["cols", "r1"], ["csum"], keepdims=0),
                       h.make_node("Add", ["x", "csum"], ["out"])]
    return _model(nodes, ["B", "T", F], [_table((F, MAX_LEN))])


MODELS = [positions, window, strided_columns]
SIZES = [(1, 5), (2, 9)]


def _feed(b: int, t: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(10 * b + t).standard_normal((b, t, F)).astype(np.float32)}


@pytest.mark.parametrize("build", MODELS, ids=lambda f: f.__name__)
def test_slice_dynamic_runs_at_two_lengths(build):
    spec = kcc.compile(build(), target="coreml").get_spec()
    layers = [lyr.WhichOneof("layer") for lyr in spec.neuralNetwork.layers]
    assert "sliceDynamic" in layers and "getShape" in layers, layers
    for b, t in SIZES:
        feed = _feed(b, t)
        (want,) = run_onnx(build(), feed)
        assert_not_degenerate(want, build.__name__)
        got = np.asarray(predict(spec, feed)["out"], np.float32)
        assert got.shape == want.shape, (got.shape, want.shape)
        assert_close(want, got, 1e-5, what=f"{build.__name__} at {(b, t)}")


@pytest.mark.parametrize("build", MODELS, ids=lambda f: f.__name__)
def test_slice_dynamic_imports_back(build):
    from kcc.frontends.coreml.neuralnetwork import load_neuralnetwork

    imported = load_neuralnetwork(kcc.compile(build(), target="coreml").get_spec())
    assert "slice_to" in imported.op_types()
    # Lengths declared as a range import as symbols; enumerated ones (the table cut:
    # 1..12 only) import at the default shape.
    x = imported.inputs[0]
    sizes = SIZES if isinstance(x.shape[1], str) else [tuple(x.shape[:2])]
    assert isinstance(x.shape[1], str) or build is positions, x.type
    for b, t in sizes:
        feed = _feed(b, t)
        (want,) = run_onnx(build(), feed)
        got = np.asarray(run_ir(imported, feed)[imported.output_names[0]], np.float32)
        assert_close(want, got.reshape(want.shape), 1e-5, what=f"{build.__name__} imported, at {(b, t)}")
