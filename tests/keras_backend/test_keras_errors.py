"""Bad input: an IR op with no Keras form, a model that cannot be made trainable, a bad option."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import kcc
from kcc.errors import ConversionError, OptionError, UnsupportedOpError
from kcc.testing import assert_close, run_onnx


def _model(nodes, inputs, outputs):
    g = helper.make_graph(nodes, "m", inputs, outputs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    return m


def test_op_without_keras_form_names_op_node_and_target():
    axis = helper.make_tensor("axis", TensorProto.INT64, [], [1])
    m = _model([helper.make_node("Constant", [], ["a"], value=axis),
                helper.make_node("CumSum", ["x", "a"], ["y"], exclusive=1, name="running_total")],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])])
    with pytest.raises(UnsupportedOpError, match=r"'cumsum'.*running_total.*'keras'"):
        kcc.compile(m, target="keras")


def test_computed_kernel_needs_inference_only():
    m = _model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], name="dyn")],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 10, 6]),
                helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3, 3, 3])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 10, 6])])
    with pytest.raises(ConversionError, match=r"cannot be made trainable.*keras_trainable=False"):
        kcc.compile(m, target="keras")
    model = kcc.compile(m, target="keras", keras_trainable=False)
    rng = np.random.RandomState(0)
    x, w = rng.normal(size=(2, 3, 10, 6)).astype(np.float32), rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    got = np.asarray(model([np.transpose(x, (0, 2, 3, 1)), w]))  # w is no batch: call, not predict
    assert_close(run_onnx(m, {"x": x, "w": w})[0], np.transpose(got, (0, 3, 1, 2)), tol=1e-5)


def test_bad_boundary_option():
    m = _model([helper.make_node("Relu", ["x"], ["y"])],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])])
    with pytest.raises(OptionError, match="keras_boundary_layout"):
        kcc.compile(m, target="keras", keras_boundary_layout="nchw")
