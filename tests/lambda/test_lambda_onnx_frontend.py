"""kcc's ONNX frontend: models built with onnx.helper, imported, round-tripped through the ONNX backend.

onnxruntime runs the original and kcc's re-emitted model; the IR interpreter runs
kcc's graph; all three agree. Shape subgraphs on a symbolic batch fold at import.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kcc.api import compile_model
from kcc.errors import ConversionError
from kcc.frontends import frontend_for
from kcc.frontends.onnx import import_onnx_model
from kcc.interpreter import run
from kcc.testing import assert_close, assert_not_degenerate, run_onnx

RNG = np.random.default_rng(7)


def _init(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _w(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.5).astype(np.float32)


def _model(nodes, inputs, outputs, inits, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _f(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def cnn() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p", "w2"], ["c2"], group=2, kernel_shape=[3, 3], auto_pad="SAME_UPPER"),
        helper.make_node("GlobalAveragePool", ["c2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    inits = [_init("w", _w(4, 3, 3, 3)), _init("b", _w(4)), _init("w2", _w(6, 2, 3, 3)),
             _init("fw", _w(5, 6)), _init("fb", _w(5))]
    return _model(nodes, [_f("x", ["N", 3, 8, 8])], [_f("logits", ["N", 5]), _f("probs", ["N", 5])], inits)


def shape_subgraph() -> onnx.ModelProto:
    """Reshape to (batch, -1) computed from Shape(x): folds to reshape(shape=(0, -1)) with a symbolic batch."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
        helper.make_node("MatMul", ["flat", "mw"], ["mm"]),
        helper.make_node("Add", ["mm", "mb"], ["a"]),
        helper.make_node("Tanh", ["a"], ["y"]),
    ]
    inits = [_init("zero", np.int64(0)), _init("axes0", np.array([0], np.int64)),
             _init("minus1", np.array([-1], np.int64)), _init("mw", _w(24, 7)), _init("mb", _w(7))]
    return _model(nodes, [_f("x", ["N", 4, 6])], [_f("y", ["N", 7])], inits)


def tensor_ops() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
        helper.make_node("Slice", ["t", "st", "en", "ax", "sp"], ["sl"]),
        helper.make_node("Split", ["sl", "sizes"], ["s1", "s2"], axis=1),
        helper.make_node("Concat", ["s2", "s1"], ["cat"], axis=1),
        helper.make_node("ReduceMean", ["cat", "axes2"], ["m"], keepdims=1),
        helper.make_node("Sub", ["cat", "m"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["d2"]),
        helper.make_node("Add", ["d2", "eps"], ["d3"]),
        helper.make_node("Sqrt", ["d3"], ["sq"]),
        helper.make_node("Div", ["d", "sq"], ["nrm"]),
        helper.make_node("Clip", ["nrm", "lo", "hi"], ["cl"]),
        helper.make_node("Pad", ["cl", "pads", "pv"], ["pd"], mode="constant"),
        helper.make_node("LeakyRelu", ["pd"], ["lr"], alpha=0.3),
        helper.make_node("Gather", ["lr", "idx"], ["ga"], axis=2),
        helper.make_node("Unsqueeze", ["ga", "axes1"], ["us"]),
        helper.make_node("Squeeze", ["us", "axes1"], ["sqz"]),
        helper.make_node("ReduceMax", ["sqz", "axes2"], ["mx"], keepdims=0),
    ]
    inits = [_init("st", np.array([5, 1], np.int64)), _init("en", np.array([-(2 ** 63), 4], np.int64)),
             _init("ax", np.array([1, 2], np.int64)), _init("sp", np.array([-1, 1], np.int64)),
             _init("sizes", np.array([2, 4], np.int64)), _init("axes2", np.array([2], np.int64)),
             _init("two", np.float32(2.0)), _init("eps", np.float32(0.1)), _init("lo", np.float32(-0.8)),
             _init("hi", np.float32(0.9)), _init("pads", np.array([0, 0, 1, 0, 0, 2], np.int64)),
             _init("pv", np.float32(0.25)), _init("idx", np.array([0, -1, 2], np.int64)),
             _init("axes1", np.array([1], np.int64))]
    outs = [_f("mx", ["N", 6]), _f("sqz", ["N", 6, 3])]
    return _model(nodes, [_f("x", ["N", 3, 6])], outs, inits, opset=18)


def spatial_select() -> onnx.ModelProto:
    """DepthToSpace (both modes), Resize (linear, half-pixel), SpaceToDepth, Where(Greater), CumSum."""
    nodes = [
        helper.make_node("DepthToSpace", ["x"], ["d1"], blocksize=2, mode="DCR"),
        helper.make_node("DepthToSpace", ["x"], ["d2"], blocksize=2, mode="CRD"),
        helper.make_node("Sub", ["d1", "d2"], ["d"]),
        helper.make_node("Resize", ["d", "", "scales"], ["r"], mode="linear",
                         coordinate_transformation_mode="half_pixel"),
        helper.make_node("SpaceToDepth", ["r"], ["s"], blocksize=2),
        helper.make_node("Greater", ["s", "thr"], ["g"]),
        helper.make_node("Where", ["g", "s", "zero"], ["w"]),
        helper.make_node("CumSum", ["w", "axis3"], ["y"], reverse=1),
    ]
    inits = [_init("scales", np.array([1, 1, 2, 2], np.float32)), _init("thr", np.float32(-0.1)),
             _init("zero", np.float32(0.0)), _init("axis3", np.int64(3))]
    return _model(nodes, [_f("x", ["N", 8, 3, 5])], [_f("y", ["N", 8, 6, 10])], inits)


MODELS = {"spatial_select": (spatial_select, (2, 8, 3, 5)), "cnn": (cnn, (2, 3, 8, 8)), "shape_subgraph": (shape_subgraph, (3, 4, 6)),
          "tensor_ops": (tensor_ops, (2, 3, 6))}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_round_trip(name):
    build, shape = MODELS[name]
    model = build()
    x = RNG.standard_normal(shape).astype(np.float32)
    refs = run_onnx(model, {"x": x})
    result = compile_model(model, "onnx")
    got = run_onnx(result.model, {"x": x})
    ir = run(result.graph, {"x": x})
    for k, (ref, o) in enumerate(zip(refs, model.graph.output)):
        assert_not_degenerate(ref, o.name)
        assert_close(ref, got[k], what=f"round-tripped {o.name}")
        assert_close(ref, ir[o.name], what=f"interpreter {o.name}")


def test_frontend_for_accepts_onnx_paths_and_protos(tmp_path):
    model = shape_subgraph()
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert frontend_for(model) is frontend_for(str(path))
    graph = frontend_for(path)(path, boundary="channels_last", options={})
    assert graph.inputs[0].shape == ("N", 4, 6)
    # The shape subgraph folded away: Shape/Gather/Concat left no node.
    assert graph.op_types()[0] == "reshape" and graph.nodes()[0].attrs["shape"] == (0, -1)
    assert "transpose" not in graph.op_types()


def test_unknown_onnx_op_is_named():
    nodes = [helper.make_node("Det", ["x"], ["y"], name="determinant")]
    model = _model(nodes, [_f("x", ["N", 3, 3])], [_f("y", ["N"])], [])
    with pytest.raises(ConversionError, match="determinant.*Det"):
        import_onnx_model(model)
