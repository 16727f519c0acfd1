"""lower_onnx_dense: a dense on a rank > 2 input becomes a 1x1 conv; rank 2 stays (ONNX Gemm)."""
from __future__ import annotations

import numpy as np
import pytest

from pass_helpers import c, check_rewrite, check_unchanged, graph_with
from kcc.backends.onnx import emit_onnx
from kcc.interpreter import run, seeded_inputs
from kcc.ir import TensorType
from kcc.testing import assert_close, run_onnx

_RNG = np.random.default_rng(7)


@pytest.fixture(autouse=True)
def _fresh_rng():
    """Each test draws from a fresh generator: golden text must not depend on which tests ran before."""
    global _RNG
    _RNG = np.random.default_rng(7)


def _onnx_matches(g, feeds) -> None:
    ref = run(g, feeds)
    got = run_onnx(emit_onnx(g), feeds)
    for (name, r), o in zip(ref.items(), got):
        assert_close(r, o, 1e-5, what=name)


def test_rank3_dense_with_constant_weights_becomes_conv():
    # Unequal sizes everywhere (features 4, time 5, units 6): a transposed weight cannot pass.
    g, op, x = graph_with(("N", 4, 5))
    g.set_outputs([op.dense(x, c(op, _RNG.normal(size=(4, 6))), c(op, _RNG.normal(size=6)))], ["y"])
    check_rewrite(g, "lower_onnx_dense", "rank3_const", ["conv"])
    (node,) = g.nodes()
    assert node.inputs[1].shape == (6, 4, 1)
    _onnx_matches(g, seeded_inputs(g))


def test_rank4_dense_without_bias_and_computed_weights_becomes_transpose_reshape_conv():
    g, op, x = graph_with(("N", 3, 2, 5))
    w = g.add_input("w", TensorType((3, 7)))
    g.set_outputs([op.dense(x, w)], ["y"])
    check_rewrite(g, "lower_onnx_dense", "rank4_computed_weights", ["transpose", "reshape", "conv"])
    _onnx_matches(g, seeded_inputs(g))


def test_fused_activation_moves_onto_the_conv():
    g, op, x = graph_with(("N", 4, 5))
    g.set_outputs([op.dense(x, c(op, _RNG.normal(size=(4, 3))), activation="relu")], ["y"])
    check_rewrite(g, "lower_onnx_dense", "rank3_relu", ["conv"])
    assert g.nodes()[0].attrs["activation"] == "relu"


def test_rank2_dense_is_left_alone():
    g, op, x = graph_with(("N", 4))
    g.set_outputs([op.dense(x, c(op, _RNG.normal(size=(4, 6))), c(op, _RNG.normal(size=6)))], ["y"])
    check_unchanged(g, "lower_onnx_dense")
    _onnx_matches(g, seeded_inputs(g))
