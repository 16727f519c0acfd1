"""lower_onnx_fused_activation: conv/dense ``activation`` -> its own node (ONNX Conv/Gemm carry none)."""
from __future__ import annotations

import numpy as np
import pytest

from pass_helpers import c, check_rewrite, check_unchanged, graph_with
from kcc.backends.onnx import emit_onnx
from kcc.errors import ConversionError
from kcc.interpreter import run, seeded_inputs
from kcc.testing import assert_close, run_onnx

_RNG = np.random.default_rng(11)


@pytest.fixture(autouse=True)
def _fresh_rng():
    """Each test draws from a fresh generator: golden text must not depend on which tests ran before."""
    global _RNG
    _RNG = np.random.default_rng(11)


def _conv_graph(activation: str):
    g, op, x = graph_with(("N", 3, 6, 5))
    w = c(op, _RNG.normal(size=(4, 3, 3, 2)))
    g.set_outputs([op.conv(x, w, c(op, _RNG.normal(size=4)), activation=activation)], ["y"])
    return g


def test_conv_relu_splits_and_runs_in_onnxruntime():
    g = _conv_graph("relu")
    check_rewrite(g, "lower_onnx_fused_activation", "conv_relu", ["conv", "relu"])
    feeds = seeded_inputs(g)
    assert_close(run(g, feeds)["y"], run_onnx(emit_onnx(g), feeds)[0], 1e-5)


def test_dense_silu_without_bias_splits():
    g, op, x = graph_with(("N", 4))
    g.set_outputs([op.dense(x, c(op, _RNG.normal(size=(4, 6))), activation="silu")], ["y"])
    check_rewrite(g, "lower_onnx_fused_activation", "dense_silu_nobias", ["dense", "silu"])


def test_linear_is_left_alone():
    check_unchanged(_conv_graph("linear"), "lower_onnx_fused_activation")


def test_the_emitter_refuses_a_fused_activation_it_cannot_express():
    with pytest.raises(ConversionError, match="lower_onnx_fused_activation"):
        emit_onnx(_conv_graph("tanh"))
