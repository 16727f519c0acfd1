"""lower_onnx_rms_norm and lower_coreml_rms_norm: rms_norm's formula where the target has no one-op form.

Op list, golden text and numbers for each rewrite; the must-not-fire cases are
ONNX opset 23 over trailing static axes (one RMSNormalization node).
"""
from __future__ import annotations

import numpy as np

from pass_helpers import check_rewrite, check_unchanged, graph_with

FORMULA = ["mul", "reduce_mean", "add", "sqrt", "div", "mul"]


def _rms(axes=(2,), eps: float = 1e-3, shape=("N", 3, 6)):
    g, op, x = graph_with(shape, name="rms", origin="rms")
    dims = [shape[a] for a in axes]
    scale = op.const(np.linspace(0.5, 2.0, int(np.prod(dims)), dtype=np.float32).reshape(dims))
    g.set_outputs([op.rms_norm(x, scale, axes=axes, epsilon=eps)], ["y"])
    return g


def test_onnx_below_opset_23_writes_the_formula():
    check_rewrite(_rms(), "lower_onnx_rms_norm", "opset17", FORMULA, options={"opset": 17})


def test_onnx_opset_23_over_the_channel_axis_writes_the_formula():
    check_rewrite(_rms(axes=(1,)), "lower_onnx_rms_norm", "opset23_channels", FORMULA, options={"opset": 23})


def test_onnx_opset_23_over_trailing_axes_keeps_one_op():
    check_unchanged(_rms(), "lower_onnx_rms_norm", options={"opset": 23})
    check_unchanged(_rms(axes=(1, 2)), "lower_onnx_rms_norm", options={"opset": 23})


def test_coreml_always_writes_the_formula():
    check_rewrite(_rms(shape=("N", 6), axes=(1,)), "lower_coreml_rms_norm", "features", FORMULA)


def test_coreml_without_scale_drops_the_last_mul():
    g, op, x = graph_with(("N", 6), name="rms", origin="rms")
    g.set_outputs([op.rms_norm(x, None, axes=(1,))], ["y"])
    check_rewrite(g, "lower_coreml_rms_norm", "no_scale", FORMULA[:-1])
