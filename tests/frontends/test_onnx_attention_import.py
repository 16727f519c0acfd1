"""ONNX Attention (opset 23, 4-D form) read into the IR ``attention`` op and written back.

Each model is hand-built, run in onnxruntime (default options) as the reference,
then read by kcc and emitted at opset 23 (one Attention node again) and at
opset 17 (the formula), both run in onnxruntime and kcc's interpreter. Sizes
differ on every axis (batch 2, 4 query heads over 2 key/value heads, query
length 5, key length 7, dims 6 and 3); masks hold real False/-inf entries.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto

import kcc
from kcc.errors import ConversionError
from kcc.interpreter import run as run_ir
from kcc.testing import assert_close, run_onnx

B, H, HKV, T, S, D, DV = 2, 4, 2, 5, 7, 6, 3


def _model(mask: str | None, **attrs) -> onnx.ModelProto:
    inputs = [oh.make_tensor_value_info("q", TensorProto.FLOAT, ["N", H, T, D]),
              oh.make_tensor_value_info("k", TensorProto.FLOAT, ["N", HKV, S, D]),
              oh.make_tensor_value_info("v", TensorProto.FLOAT, ["N", HKV, S, DV])]
    names = ["q", "k", "v"]
    if mask is not None:
        elem = TensorProto.BOOL if mask == "bool" else TensorProto.FLOAT
        inputs.append(oh.make_tensor_value_info("mask", elem, ["N", 1, T, S]))
        names.append("mask")
    node = oh.make_node("Attention", names, ["y"], **attrs)
    graph = oh.make_graph([node], "attention", inputs,
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, ["N", H, T, DV])])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 23)], ir_version=10)


def _feeds(mask: str | None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {"q": rng.standard_normal((B, H, T, D)).astype(np.float32),
             "k": rng.standard_normal((B, HKV, S, D)).astype(np.float32),
             "v": rng.standard_normal((B, HKV, S, DV)).astype(np.float32)}
    keep = rng.random((B, 1, T, S)) > 0.4
    keep[..., 0] = True
    if mask == "bool":
        feeds["mask"] = keep
    elif mask == "float":
        feeds["mask"] = np.where(keep, rng.standard_normal(keep.shape) * 0.5, -np.inf).astype(np.float32)
    return feeds


CASES = {"bool_mask": ("bool", {}), "float_mask_and_scale": ("float", {"scale": 0.3}),
         "causal": (None, {"is_causal": 1}), "no_mask": (None, {})}


@pytest.mark.parametrize("case", sorted(CASES))
def test_attention_round_trips_at_opset_23_and_lowers_below(case):
    mask, attrs = CASES[case]
    source, feeds = _model(mask, **attrs), _feeds(mask)
    want = run_onnx(source, feeds)[0]
    for opset in (23, 17):
        result = kcc.compile_model(source, target="onnx", opset=opset)
        ops = [n.op_type for n in result.model.graph.node]
        assert ("Attention" in ops) == (opset == 23), ops
        assert_close(want, run_onnx(result.model, feeds)[0], 1e-5, what=f"{case} at opset {opset}")
        assert_close(want, run_ir(result.graph, feeds)["y"], 1e-5, what=f"{case}, interpreter")


@pytest.mark.parametrize("attrs,message", [({"q_num_heads": 4, "kv_num_heads": 2}, "3-D form"),
                                           ({"softcap": 2.0}, "softcap")])
def test_forms_kcc_does_not_read_are_clear_errors(attrs, message):
    with pytest.raises(ConversionError, match=message):
        kcc.compile(_model(None, **attrs), target="onnx", opset=23)
