"""The shared ONNX op table (kcc.formats.onnx_ops): true to ONNX, read the same way by importer and emitter.

For every row: the IR op and its attributes exist, the ONNX op exists from the
row's opset and not before it (when that is inside kcc's range), and each
ONNX attribute is one the schema declares. For every one-to-one float row:
an ONNX node imports to the row's IR op, and re-emits to the same ONNX op; the
original node in onnxruntime (default options), kcc's interpreter on the
imported graph and the re-emitted model agree on ties and boundary values
(exact halves for Round, the threshold itself for ThresholdedRelu, +-0, +-inf).
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from kcc.backends.onnx import emit_onnx
from kcc.backends.onnx.context import EMITTERS
from kcc.formats.onnx_ops import BY_IR, MAX_OPSET, MIN_OPSET, ROWS, OpMap
from kcc.frontends.onnx import import_onnx_model
from kcc.frontends.onnx.registry import HANDLERS
from kcc.interpreter import run
from kcc.ops.registry import get_op
from kcc.testing import run_onnx


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.ir)
def test_row_names_real_ops_and_attributes(row: OpMap):
    opdef = get_op(row.ir)
    assert set(row.attrs) <= set(opdef.attrs), f"{row.ir}: attributes {set(row.attrs) - set(opdef.attrs)}"
    schema = onnx.defs.get_schema(row.onnx, max(row.since, MIN_OPSET))
    assert set(a.name for a in row.attrs.values()) | set(row.fixed) <= set(schema.attributes)
    if row.since > MIN_OPSET:
        with pytest.raises(onnx.defs.SchemaError):
            onnx.defs.get_schema(row.onnx, row.since - 1)
        assert row.since <= MAX_OPSET
    # Every row has an emitter and an importer handler: the row's own, or a function reading the row.
    assert row.ir in EMITTERS and row.onnx in HANDLERS


# Ties and boundaries: exact halves, +-0, the ThresholdedRelu/HardSigmoid edges, +-inf.
_EDGES = np.array([-np.inf, -3.0, -2.5, -1.5, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 1.5, 2.5, 3.0, np.inf], np.float32)
_FINITE = np.concatenate([_EDGES[1:-1], np.float32([4.0, -4.0])])
# Ops whose value at +-inf is NaN or undefined in one of the runtimes: fed finite values.
_FINITE_ONLY = {"sin", "cos", "tan", "log", "sqrt", "reciprocal", "softsign", "mish", "gelu", "hard_silu"}
# Ops of one float input and output, no constraints on the input's range beyond the above.
_UNARY_FLOAT = [r for r in ROWS if r.imported and get_op(r.ir).inputs == ("x",)
                and r.ir not in ("identity", "logical_not", "is_nan")]
# Attribute values that are not ONNX's defaults, so a dropped attribute shows.
_ATTRS = {"leaky_relu": {"alpha": 0.3}, "elu": {"alpha": 0.7}, "thresholded_relu": {"alpha": 1.5},
          "hard_sigmoid": {"alpha": 0.25, "beta": 0.375}, "gelu": {"approximate": "tanh"}}


def _one_node_model(row: OpMap, opset: int, attrs: dict) -> onnx.ModelProto:
    node = helper.make_node(row.onnx, ["x"], ["y"], **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 14])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 14])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("row", _UNARY_FLOAT, ids=lambda r: r.ir)
def test_unary_row_round_trips_with_equal_numbers(row: OpMap):
    opset = max(row.since, MIN_OPSET)
    source = _one_node_model(row, opset, _ATTRS.get(row.ir, {}))
    graph = import_onnx_model(source)
    assert graph.op_types() == [row.ir]
    emitted = emit_onnx(graph, opset=opset)
    (node,) = emitted.graph.node
    assert node.op_type == row.onnx
    given = {a.name: helper.get_attribute_value(a) for a in source.graph.node[0].attribute}
    written = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    for k, v in given.items():
        assert written[k] == (v.encode() if isinstance(v, str) else pytest.approx(v)), k
    x = (_FINITE if row.ir in _FINITE_ONLY else _EDGES)[None].repeat(2, axis=0)
    want = run_onnx(source, {"x": x})[0]
    np.testing.assert_allclose(run(graph, {"x": x})[graph.output_names[0]], want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(run_onnx(emitted, {"x": x})[0], want, rtol=1e-6, atol=1e-6)


def test_each_ir_op_and_onnx_op_has_one_row():
    assert len(BY_IR) == len(ROWS) == len({r.onnx for r in ROWS})


def test_emitting_a_row_newer_than_the_opset_is_refused_with_the_fix():
    from kcc.builder import GraphBuilder
    from kcc.errors import ConversionError
    from kcc.ir import Graph, TensorType

    g = Graph("g")
    x = g.add_input("x", TensorType(("N", 4)))
    g.set_outputs([GraphBuilder(g).gelu(x)], ["y"])
    with pytest.raises(ConversionError, match=r"Gelu, which needs opset >= 20 \(emitting 17\).*lowering"):
        emit_onnx(g, opset=17)
    assert [n.op_type for n in emit_onnx(g, opset=20).graph.node] == ["Gelu"]


@pytest.mark.parametrize("attrs,ops", [({}, ["selu"]), ({"alpha": 1.5, "gamma": 2.0}, ["elu", "mul"])])
def test_selu_is_the_ir_op_only_with_its_constants(attrs, ops):
    source = _one_node_model(BY_IR["selu"], MIN_OPSET, attrs)
    graph = import_onnx_model(source)
    assert graph.op_types() == ops
    x = _EDGES[None].repeat(2, axis=0)
    np.testing.assert_allclose(run(graph, {"x": x})[graph.output_names[0]], run_onnx(source, {"x": x})[0],
                               rtol=1e-6, atol=1e-6)
